//! Tokenizer and chat template of a Qwen3-VL checkpoint: messages -> prompt text -> token ids.
//!
//! The prompt is the checkpoint's own Jinja chat template rendered with `minijinja` under the
//! same settings as the reference (`trim_blocks`, `lstrip_blocks`, Python string methods), so
//! a checkpoint with a different template keeps working. Each image in the rendered prompt is a
//! single `<|image_pad|>`; [`ChatTokenizer::encode_prompt`] expands it to one pad token per merged
//! vision token (`t * h * w / merge^2`), exactly as the reference processor does before
//! tokenising.

use std::path::Path;

use minijinja::{Environment, ErrorKind};
use serde::Serialize;
use tokenizers::Tokenizer;

use crate::{Error, Result};

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ContentPart {
    /// An image slot; the pixels travel separately through the image processor.
    Image,
    Text {
        text: String,
    },
}

/// Message content: a plain string or a list of parts (images first, then text, for the
/// classifier prompts).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One chat message in the shape chat templates expect (`{"role": .., "content": ..}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: String,
    pub content: Content,
}

impl Message {
    pub fn system(text: impl Into<String>) -> Self {
        Self {
            role: "system".into(),
            content: Content::Text(text.into()),
        }
    }

    /// A user turn with `n_images` image slots followed by the text.
    pub fn user_with_images(n_images: usize, text: impl Into<String>) -> Self {
        let mut parts = vec![ContentPart::Image; n_images];
        parts.push(ContentPart::Text { text: text.into() });
        Self {
            role: "user".into(),
            content: Content::Parts(parts),
        }
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        Self {
            role: "assistant".into(),
            content: Content::Text(text.into()),
        }
    }
}

/// Token ids of the vision special tokens, looked up in the tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisionTokens {
    pub image_pad: u32,
    pub vision_start: u32,
    pub vision_end: u32,
}

const IMAGE_PAD: &str = "<|image_pad|>";

/// Finds the chat template of a checkpoint directory, in the reference's order of precedence:
/// `chat_template.jinja`, then `chat_template.json`, then `tokenizer_config.json`.
pub fn find_chat_template(dir: &Path) -> Result<String> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.exists() {
        return std::fs::read_to_string(&jinja).map_err(|source| Error::Io {
            path: jinja,
            source,
        });
    }
    for name in ["chat_template.json", "tokenizer_config.json"] {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            })?;
        match value.get("chat_template") {
            Some(serde_json::Value::String(template)) => return Ok(template.clone()),
            // A list of named templates: the reference uses the one named "default".
            Some(serde_json::Value::Array(named)) => {
                let default = named
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"));
                if let Some(template) = default
                    .and_then(|t| t.get("template"))
                    .and_then(|t| t.as_str())
                {
                    return Ok(template.to_string());
                }
                return Err(Error::Template(format!(
                    "{}: no template named \"default\"",
                    path.display()
                )));
            }
            _ => {}
        }
    }
    Err(Error::Template(format!(
        "no chat template in {} (looked for chat_template.jinja, chat_template.json, tokenizer_config.json)",
        dir.display()
    )))
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles template source with the reference's Jinja settings.
    pub fn new(source: impl Into<String>) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Templates call Python string methods (`.strip()`, `.startswith(..)`, ...).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned("chat", source.into())
            .map_err(|err| Error::Template(format!("{err:#}")))?;
        Ok(Self { env })
    }

    /// Renders the conversation; `add_generation_prompt` appends the assistant turn opener.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|err| Error::Template(format!("{err:#}")))?;
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                tools => minijinja::Value::UNDEFINED,
            })
            .map_err(|err| Error::Template(format!("{err:#}")))
    }
}

/// Tokenizer + chat template of a checkpoint.
pub struct ChatTokenizer {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    vision: VisionTokens,
}

impl std::fmt::Debug for ChatTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTokenizer")
            .field("vision", &self.vision)
            .finish_non_exhaustive()
    }
}

impl ChatTokenizer {
    /// Loads `tokenizer.json` and the chat template from a checkpoint directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&path)
            .map_err(|err| Error::Tokenizer(format!("{}: {err}", path.display())))?;
        let template = ChatTemplate::new(find_chat_template(dir)?)?;
        Self::new(tokenizer, template)
    }

    pub fn new(tokenizer: Tokenizer, template: ChatTemplate) -> Result<Self> {
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| Error::Tokenizer(format!("the vocabulary has no {token} token")))
        };
        let vision = VisionTokens {
            image_pad: id(IMAGE_PAD)?,
            vision_start: id("<|vision_start|>")?,
            vision_end: id("<|vision_end|>")?,
        };
        Ok(Self {
            tokenizer,
            template,
            vision,
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn vision_tokens(&self) -> VisionTokens {
        self.vision
    }

    /// Id of a token string (special tokens included), if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// Renders the checkpoint's chat template.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.template.render(messages, add_generation_prompt)
    }

    /// Tokenises a rendered prompt, expanding the `i`-th `<|image_pad|>` to
    /// `image_tokens[i]` pad tokens. Errors if the counts of placeholders and images differ.
    pub fn encode_prompt(&self, prompt: &str, image_tokens: &[usize]) -> Result<Vec<u32>> {
        let placeholders = prompt.matches(IMAGE_PAD).count();
        if placeholders != image_tokens.len() {
            return Err(Error::Input(format!(
                "the prompt has {placeholders} image placeholders but {} images were given",
                image_tokens.len()
            )));
        }
        let mut expanded = String::with_capacity(
            prompt.len() + image_tokens.iter().sum::<usize>() * IMAGE_PAD.len(),
        );
        let mut pieces = prompt.split(IMAGE_PAD);
        expanded.push_str(pieces.next().unwrap_or_default());
        for (piece, &count) in pieces.zip(image_tokens) {
            for _ in 0..count {
                expanded.push_str(IMAGE_PAD);
            }
            expanded.push_str(piece);
        }
        self.encode(&expanded)
    }

    /// Plain encoding of text (special tokens in the text are recognised).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|err| Error::Tokenizer(err.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Ids of a continuation string (a label, a JSON fragment) as it is appended after a
    /// prompt: encoded on its own, without special tokens.
    pub fn encode_continuation(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|err| Error::Tokenizer(err.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.tokenizer
            .decode(ids, skip_special_tokens)
            .map_err(|err| Error::Tokenizer(err.to_string()))
    }
}
