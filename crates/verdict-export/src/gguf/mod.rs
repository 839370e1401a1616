//! GGUF export of Qwen3-VL's language model for llama.cpp (`general.architecture = "qwen3vl"`).
//!
//! The metadata and tensor names are those llama.cpp's `convert_hf_to_gguf.py` writes for
//! `Qwen3VLForConditionalGeneration` (a Qwen3 text model with multimodal rotary sections and
//! DeepStack layer count). The vision tower goes, in llama.cpp's layout, to a separate
//! multimodal projector (`mmproj`) file; this module writes the language model only and
//! reports how many vision tensors it left out.

pub mod names;
pub mod quant;
pub mod vocab;
pub mod writer;

use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value as Json;

use crate::error::read_json;
use crate::{Error, Result};
use names::Mapping;
use quant::{Preset, TensorRole, TensorType};
use writer::{GgufWriter, TensorEntry, Value};

/// The architecture name llama.cpp registers for Qwen3-VL's dense language model.
pub const ARCHITECTURE: &str = "qwen3vl";

/// One written tensor.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WrittenTensor {
    pub name: String,
    pub source: String,
    /// PyTorch-order shape.
    pub shape: Vec<usize>,
    pub tensor_type: &'static str,
}

/// What [`export`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GgufReport {
    pub preset: &'static str,
    pub tensors: Vec<WrittenTensor>,
    /// Vision tensors left for a multimodal projector file.
    pub vision_tensors_skipped: usize,
    pub bytes: u64,
}

/// Writes the language model of the checkpoint in `model_dir` to `out` as GGUF.
pub fn export(model_dir: &Path, out: &Path, preset: Preset, name: &str) -> Result<GgufReport> {
    let config_path = model_dir.join("config.json");
    let config = read_json(&config_path)?;
    let text = config.get("text_config").unwrap_or(&config);
    let hp = Hyper::read(&config_path, &config, text)?;

    let mut writer = GgufWriter::new();
    let arch = |key: &str| format!("{ARCHITECTURE}.{key}");
    writer.set("general.architecture", Value::String(ARCHITECTURE.into()));
    writer.set("general.type", Value::String("model".into()));
    writer.set("general.name", Value::String(name.into()));
    writer.set("general.quantization_version", Value::U32(2));
    writer.set("general.file_type", Value::U32(preset.file_type()));
    writer.set(arch("context_length"), Value::U32(hp.context_length));
    writer.set(arch("embedding_length"), Value::U32(hp.hidden));
    writer.set(arch("block_count"), Value::U32(hp.layers as u32));
    writer.set(arch("feed_forward_length"), Value::U32(hp.intermediate));
    writer.set(arch("attention.head_count"), Value::U32(hp.heads));
    writer.set(arch("attention.head_count_kv"), Value::U32(hp.kv_heads));
    writer.set(arch("attention.key_length"), Value::U32(hp.head_dim));
    writer.set(arch("attention.value_length"), Value::U32(hp.head_dim));
    writer.set(
        arch("attention.layer_norm_rms_epsilon"),
        Value::F32(hp.rms_eps),
    );
    writer.set(arch("rope.freq_base"), Value::F32(hp.rope_theta));
    writer.set(arch("rope.dimension_count"), Value::U32(hp.head_dim));
    writer.set(
        arch("rope.dimension_sections"),
        Value::ArrayI32(hp.mrope_sections.clone()),
    );
    writer.set(arch("n_deepstack_layers"), Value::U32(hp.deepstack_layers));
    for (key, value) in vocab::metadata(model_dir, hp.vocab_size)? {
        writer.set(key, value);
    }

    let files = verdict_models::qwen3_vl::weights::safetensors_files(model_dir)?;
    let tensors = verdict_models::qwen3_vl::weights::load_tensors(&files, &Device::Cpu)?;
    let has_lm_head = tensors.contains_key("lm_head.weight");
    let tied = hp.tied || !has_lm_head;
    let mut planned: Vec<(String, Option<usize>, String, TensorRole, &Tensor)> = Vec::new();
    let mut vision = 0;
    for (source, tensor) in &tensors {
        match names::map(source) {
            Some(Mapping::Vision) => vision += 1,
            Some(Mapping::Language { name, layer, kind }) => {
                if kind == quant::Kind::Output && hp.tied {
                    continue; // tied: llama.cpp reads the output from token_embd
                }
                planned.push((
                    name,
                    layer,
                    source.clone(),
                    TensorRole { layer, kind },
                    tensor,
                ));
            }
            None => {
                return Err(Error::Unsupported(format!(
                    "{}: tensor {source} has no llama.cpp counterpart in {ARCHITECTURE}",
                    model_dir.display()
                )))
            }
        }
    }
    if !planned.iter().any(|p| p.0 == "token_embd.weight") {
        return Err(Error::Unsupported(format!(
            "{}: no language-model token embedding (model.language_model.embed_tokens.weight)",
            model_dir.display()
        )));
    }
    // llama.cpp's order: token embedding, blocks in order, then the head.
    planned.sort_by_key(|(name, layer, ..)| {
        let rank = match (layer, name.as_str()) {
            (None, "token_embd.weight") => 0,
            (Some(_), _) => 1,
            _ => 2,
        };
        (rank, layer.unwrap_or(0), name.clone())
    });

    let mut written = Vec::with_capacity(planned.len());
    for (gguf_name, _, source, role, tensor) in planned {
        let row_len = tensor.dims().last().copied().unwrap_or(1);
        let tensor_type = quant::choose(preset, role, hp.layers, tied).fitting(row_len);
        let data = tensor_type.encode(tensor)?;
        let dims = tensor.dims().iter().rev().map(|d| *d as u64).collect();
        writer.add_tensor(TensorEntry {
            name: gguf_name.clone(),
            dims,
            ggml_type: tensor_type.ggml_id(),
            data,
        })?;
        written.push(WrittenTensor {
            name: gguf_name,
            source,
            shape: tensor.dims().to_vec(),
            tensor_type: TensorType::name(tensor_type),
        });
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(crate::error::io_error(parent))?;
    }
    let bytes = writer.write(out)?;
    tracing::info!(path = %out.display(), bytes, vision_skipped = vision, "wrote GGUF");
    Ok(GgufReport {
        preset: preset.name(),
        tensors: written,
        vision_tensors_skipped: vision,
        bytes,
    })
}

/// The language model's hyper-parameters as the GGUF keys need them.
struct Hyper {
    context_length: u32,
    hidden: u32,
    layers: usize,
    intermediate: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    rms_eps: f32,
    rope_theta: f32,
    mrope_sections: Vec<i32>,
    deepstack_layers: u32,
    vocab_size: usize,
    tied: bool,
}

impl Hyper {
    fn read(path: &Path, config: &Json, text: &Json) -> Result<Self> {
        let missing = |field: &str| Error::Field {
            path: path.to_path_buf(),
            field: format!("text_config.{field}"),
            message: "missing or not a number".into(),
        };
        let int = |field: &str| {
            text.get(field)
                .and_then(Json::as_u64)
                .ok_or_else(|| missing(field))
        };
        let float = |field: &str| text.get(field).and_then(Json::as_f64);
        let hidden = int("hidden_size")?;
        let heads = int("num_attention_heads")?;
        let head_dim = text
            .get("head_dim")
            .and_then(Json::as_u64)
            .unwrap_or(hidden / heads.max(1));
        let rope = text
            .get("rope_parameters")
            .or_else(|| text.get("rope_scaling"));
        let rope_theta = float("rope_theta")
            .or_else(|| {
                rope.and_then(|r| r.get("rope_theta"))
                    .and_then(Json::as_f64)
            })
            .ok_or_else(|| missing("rope_theta"))?;
        let mut sections: Vec<i32> = rope
            .and_then(|r| r.get("mrope_section"))
            .and_then(Json::as_array)
            .ok_or_else(|| missing("rope_scaling.mrope_section"))?
            .iter()
            .map(|v| {
                v.as_i64()
                    .map(|v| v as i32)
                    .ok_or_else(|| missing("rope_scaling.mrope_section"))
            })
            .collect::<Result<_>>()?;
        sections.resize(4, 0);
        let deepstack = config
            .get("vision_config")
            .and_then(|v| v.get("deepstack_visual_indexes"))
            .and_then(Json::as_array)
            .map_or(0, Vec::len);
        let tied = config
            .get("tie_word_embeddings")
            .or_else(|| text.get("tie_word_embeddings"))
            .and_then(Json::as_bool)
            .unwrap_or(false);
        Ok(Self {
            context_length: int("max_position_embeddings")? as u32,
            hidden: hidden as u32,
            layers: int("num_hidden_layers")? as usize,
            intermediate: int("intermediate_size")? as u32,
            heads: heads as u32,
            kv_heads: int("num_key_value_heads")? as u32,
            head_dim: head_dim as u32,
            rms_eps: float("rms_norm_eps").ok_or_else(|| missing("rms_norm_eps"))? as f32,
            rope_theta: rope_theta as f32,
            mrope_sections: sections,
            deepstack_layers: deepstack as u32,
            vocab_size: int("vocab_size")? as usize,
            tied,
        })
    }
}
