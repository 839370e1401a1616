//! Tokenizer metadata for llama.cpp's byte-level BPE ("gpt2" model, "qwen2" pre-tokeniser):
//! the token list padded to the model's vocabulary size, token types, merges, special ids
//! and the chat template.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;

use super::writer::Value;
use crate::error::read_json;
use crate::{Error, Result};

/// gguf-py `TokenType`.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// The `tokenizer.*` keys for the checkpoint in `dir` (tokenizer.json, tokenizer_config.json,
/// generation_config.json, chat_template.json or .jinja).
pub fn metadata(dir: &Path, vocab_size: usize) -> Result<Vec<(String, Value)>> {
    let path = dir.join("tokenizer.json");
    let tokenizer = read_json(&path)?;
    let field = |name: &str, message: &str| Error::Field {
        path: path.clone(),
        field: name.to_string(),
        message: message.to_string(),
    };
    let model = tokenizer
        .get("model")
        .ok_or_else(|| field("model", "missing"))?;
    if model.get("type").and_then(Json::as_str) != Some("BPE") {
        return Err(field(
            "model.type",
            "only byte-level BPE tokenizers are exported",
        ));
    }
    let mut by_id: BTreeMap<usize, (String, i32)> = BTreeMap::new();
    let vocab = model
        .get("vocab")
        .and_then(Json::as_object)
        .ok_or_else(|| field("model.vocab", "missing object"))?;
    for (token, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| field("model.vocab", &format!("id of {token:?} is not an integer")))?;
        by_id.insert(id as usize, (token.clone(), NORMAL));
    }
    for added in tokenizer
        .get("added_tokens")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(id), Some(content)) = (
            added.get("id").and_then(Json::as_u64),
            added.get("content").and_then(Json::as_str),
        ) else {
            return Err(field("added_tokens", "entry without id or content"));
        };
        let special = added
            .get("special")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let kind = if special { CONTROL } else { USER_DEFINED };
        by_id.insert(id as usize, (content.to_string(), kind));
    }
    let size = vocab_size.max(by_id.keys().next_back().map_or(0, |k| k + 1));
    let mut tokens = Vec::with_capacity(size);
    let mut types = Vec::with_capacity(size);
    for id in 0..size {
        match by_id.remove(&id) {
            Some((token, kind)) => {
                tokens.push(token);
                types.push(kind);
            }
            // As convert_hf_to_gguf.py pads the embedding rows no token uses.
            None => {
                tokens.push(format!("[PAD{id}]"));
                types.push(USER_DEFINED);
            }
        }
    }
    let merges: Vec<String> = model
        .get("merges")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|m| match m {
            Json::String(s) => Ok(s.clone()),
            Json::Array(pair) => {
                let parts: Vec<&str> = pair.iter().filter_map(Json::as_str).collect();
                Ok(parts.join(" "))
            }
            _ => Err(field(
                "model.merges",
                "entry is neither a string nor a pair",
            )),
        })
        .collect::<Result<_>>()?;

    let mut out = vec![
        (
            "tokenizer.ggml.model".to_string(),
            Value::String("gpt2".into()),
        ),
        (
            "tokenizer.ggml.pre".to_string(),
            Value::String("qwen2".into()),
        ),
        (
            "tokenizer.ggml.tokens".to_string(),
            Value::ArrayString(tokens.clone()),
        ),
        (
            "tokenizer.ggml.token_type".to_string(),
            Value::ArrayI32(types),
        ),
        (
            "tokenizer.ggml.merges".to_string(),
            Value::ArrayString(merges),
        ),
    ];
    let id_of = |text: &str| tokens.iter().position(|t| t == text).map(|i| i as u32);
    let tokenizer_config = dir.join("tokenizer_config.json");
    let config = if tokenizer_config.exists() {
        read_json(&tokenizer_config)?
    } else {
        Json::Null
    };
    let token_field = |name: &str| -> Option<String> {
        match config.get(name)? {
            Json::String(s) => Some(s.clone()),
            Json::Object(o) => o.get("content").and_then(Json::as_str).map(str::to_string),
            _ => None,
        }
    };
    if let Some(id) = token_field("eos_token").and_then(|t| id_of(&t)) {
        out.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(id)));
    }
    if let Some(id) = token_field("pad_token").and_then(|t| id_of(&t)) {
        out.push(("tokenizer.ggml.padding_token_id".into(), Value::U32(id)));
    }
    // Qwen tokenizers have no BOS in the prompt; llama.cpp reads the id from the generation
    // config (as the converter does) and must not add it.
    let generation = dir.join("generation_config.json");
    if generation.exists() {
        if let Some(id) = read_json(&generation)?
            .get("bos_token_id")
            .and_then(Json::as_u64)
        {
            out.push(("tokenizer.ggml.bos_token_id".into(), Value::U32(id as u32)));
        }
    }
    out.push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)));
    if let Some(template) = chat_template(dir, &config)? {
        out.push(("tokenizer.chat_template".into(), Value::String(template)));
    }
    Ok(out)
}

/// The chat template from `chat_template.jinja`, `chat_template.json` or the tokenizer config.
pub fn chat_template(dir: &Path, tokenizer_config: &Json) -> Result<Option<String>> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.exists() {
        return std::fs::read_to_string(&jinja)
            .map(Some)
            .map_err(crate::error::io_error(&jinja));
    }
    let json = dir.join("chat_template.json");
    if json.exists() {
        let value = read_json(&json)?;
        return Ok(value
            .get("chat_template")
            .and_then(Json::as_str)
            .map(str::to_string));
    }
    Ok(tokenizer_config
        .get("chat_template")
        .and_then(Json::as_str)
        .map(str::to_string))
}
