//! Hugging Face Qwen3-VL tensor names -> llama.cpp's GGUF names for the `qwen3vl` language
//! model (gguf-py `MODEL_ARCH.QWEN3VL`). The vision tower belongs in a separate multimodal
//! projector file in llama.cpp's layout and is not part of this file.

use super::quant::Kind;

/// Prefixes under which checkpoints keep the language model; older exports used `model.`.
const LANGUAGE_PREFIXES: [&str; 2] = ["model.language_model.", "model."];

/// Where a checkpoint tensor goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// A language-model tensor with its GGUF name, block index and type-rule family.
    Language {
        name: String,
        layer: Option<usize>,
        kind: Kind,
    },
    /// Vision tower / projector: belongs to the multimodal projector file.
    Vision,
}

/// Maps one checkpoint tensor name; `None` for a language tensor llama.cpp has no slot for.
pub fn map(hf_name: &str) -> Option<Mapping> {
    if hf_name.starts_with("model.visual.") || hf_name.starts_with("visual.") {
        return Some(Mapping::Vision);
    }
    if hf_name == "lm_head.weight" {
        return Some(language("output.weight", None, Kind::Output));
    }
    let rest = LANGUAGE_PREFIXES
        .iter()
        .find_map(|p| hf_name.strip_prefix(p))?;
    match rest {
        "embed_tokens.weight" => {
            return Some(language("token_embd.weight", None, Kind::TokenEmbedding))
        }
        "norm.weight" => return Some(language("output_norm.weight", None, Kind::Vector)),
        _ => {}
    }
    let rest = rest.strip_prefix("layers.")?;
    let (index, tail) = rest.split_once('.')?;
    let layer: usize = index.parse().ok()?;
    let (module, suffix) = tail.rsplit_once('.')?;
    let (gguf, kind) = match module {
        "input_layernorm" => ("attn_norm", Kind::Vector),
        "post_attention_layernorm" => ("ffn_norm", Kind::Vector),
        "self_attn.q_proj" => ("attn_q", Kind::OtherMatrix),
        "self_attn.k_proj" => ("attn_k", Kind::OtherMatrix),
        "self_attn.v_proj" => ("attn_v", Kind::AttnV),
        "self_attn.o_proj" => ("attn_output", Kind::OtherMatrix),
        "self_attn.q_norm" => ("attn_q_norm", Kind::Vector),
        "self_attn.k_norm" => ("attn_k_norm", Kind::Vector),
        "mlp.gate_proj" => ("ffn_gate", Kind::OtherMatrix),
        "mlp.up_proj" => ("ffn_up", Kind::OtherMatrix),
        "mlp.down_proj" => ("ffn_down", Kind::FfnDown),
        _ => return None,
    };
    let kind = if suffix == "bias" { Kind::Vector } else { kind };
    Some(language(
        &format!("blk.{layer}.{gguf}.{suffix}"),
        Some(layer),
        kind,
    ))
}

fn language(name: &str, layer: Option<usize>, kind: Kind) -> Mapping {
    Mapping::Language {
        name: name.to_string(),
        layer,
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(hf: &str) -> String {
        match map(hf) {
            Some(Mapping::Language { name, .. }) => name,
            other => panic!("{hf}: {other:?}"),
        }
    }

    #[test]
    fn language_names_follow_llama_cpp() {
        let p = "model.language_model";
        assert_eq!(
            name_of(&format!("{p}.embed_tokens.weight")),
            "token_embd.weight"
        );
        assert_eq!(name_of(&format!("{p}.norm.weight")), "output_norm.weight");
        assert_eq!(name_of("lm_head.weight"), "output.weight");
        assert_eq!(
            name_of(&format!("{p}.layers.3.self_attn.o_proj.weight")),
            "blk.3.attn_output.weight"
        );
        assert_eq!(
            name_of(&format!("{p}.layers.0.self_attn.k_norm.weight")),
            "blk.0.attn_k_norm.weight"
        );
        assert_eq!(
            name_of(&format!("{p}.layers.11.post_attention_layernorm.weight")),
            "blk.11.ffn_norm.weight"
        );
        assert_eq!(
            name_of(&format!("{p}.layers.1.mlp.down_proj.weight")),
            "blk.1.ffn_down.weight"
        );
    }

    #[test]
    fn vision_and_unknown() {
        assert_eq!(
            map("model.visual.blocks.0.attn.qkv.weight"),
            Some(Mapping::Vision)
        );
        assert_eq!(map("model.language_model.layers.0.mystery.weight"), None);
    }
}
