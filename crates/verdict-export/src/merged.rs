//! `--format merged`: a self-contained Hugging Face checkpoint directory, with any adapter
//! folded into the base weights, that `transformers` and vLLM load without adapter support.
//!
//! Layout: `model-0000i-of-0000n.safetensors` shards no larger than the shard limit (a tensor
//! larger than the limit gets a shard of its own), `model.safetensors.index.json` mapping every
//! tensor to its shard, and the base directory's other files (config, tokenizer files, chat
//! template, processor configs). A `generation_config.json` derived from the config is added
//! when the base has none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde_json::{json, Value as Json};

use crate::error::{io_error, read_json};
use crate::{staging, Error, Result};

/// `transformers`' default `max_shard_size` for `save_pretrained` (5 GB).
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 5_000_000_000;
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// What [`export`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MergedReport {
    pub shards: Vec<String>,
    pub tensors: usize,
    pub total_bytes: u64,
    /// Layers an adapter was merged into (0 without an adapter).
    pub merged_layers: usize,
    /// Files copied from the base directory.
    pub copied: Vec<String>,
    /// Whether a generation config was derived because the base had none.
    pub generation_config_derived: bool,
}

/// Writes `out`: the checkpoint of `base` (with `adapter` merged in when given), resharded.
/// Built in a temporary sibling and renamed into place.
pub fn export(
    base: &Path,
    adapter: Option<&Path>,
    out: &Path,
    max_shard_bytes: u64,
) -> Result<MergedReport> {
    for required in ["config.json", "tokenizer.json"] {
        if !base.join(required).is_file() {
            return Err(Error::Unsupported(format!(
                "{} has no {required}; a Hugging Face directory needs it",
                base.display()
            )));
        }
    }
    staging::build_dir(out, |tmp| {
        let (source, merged_layers, _merge_dir) = match adapter {
            Some(adapter) => {
                let merge_dir = PathBuf::from(format!("{}.merge", tmp.display()));
                let count = verdict_lora::merge_into_checkpoint(base, adapter, &merge_dir)?;
                (merge_dir.clone(), count, Some(staging::Cleanup(merge_dir)))
            }
            None => (base.to_path_buf(), 0, None),
        };
        let files = verdict_models::qwen3_vl::weights::safetensors_files(&source)?;
        let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
        for file in &files {
            tensors.extend(verdict_lora::st::read(file, &Device::Cpu)?);
        }
        let (shards, total_bytes) = write_shards(tmp, &tensors, max_shard_bytes)?;
        let copied = copy_side_files(&source, tmp)?;
        let generation_config_derived = !tmp.join("generation_config.json").exists();
        if generation_config_derived {
            let config = read_json(&source.join("config.json"))?;
            let text =
                serde_json::to_string_pretty(&generation_config(&config)).unwrap_or_default();
            verdict_lora::st::write_atomic(&tmp.join("generation_config.json"), text.as_bytes())?;
        }
        Ok(MergedReport {
            shards,
            tensors: tensors.len(),
            total_bytes,
            merged_layers,
            copied,
            generation_config_derived,
        })
    })
}

/// Packs tensors in name order into shards of at most `max_bytes` and writes the index.
///
/// Returns the shard file names and the total tensor bytes.
pub fn write_shards(
    dir: &Path,
    tensors: &BTreeMap<String, Tensor>,
    max_bytes: u64,
) -> Result<(Vec<String>, u64)> {
    let mut groups: Vec<Vec<&String>> = vec![Vec::new()];
    let mut current = 0u64;
    let mut total = 0u64;
    for (name, tensor) in tensors {
        let bytes = (tensor.elem_count() * tensor.dtype().size_in_bytes()) as u64;
        total += bytes;
        let last = groups.last().map_or(0, Vec::len);
        if last > 0 && current + bytes > max_bytes {
            groups.push(Vec::new());
            current = 0;
        }
        current += bytes;
        if let Some(group) = groups.last_mut() {
            group.push(name);
        }
    }
    let count = groups.len();
    let mut weight_map = serde_json::Map::new();
    let mut shard_names = Vec::with_capacity(count);
    for (i, group) in groups.iter().enumerate() {
        let file = format!("model-{:05}-of-{count:05}.safetensors", i + 1);
        let shard: BTreeMap<String, Tensor> = group
            .iter()
            .map(|name| ((*name).clone(), tensors[*name].clone()))
            .collect();
        verdict_lora::st::write(&dir.join(&file), &shard)?;
        for name in group {
            weight_map.insert((*name).clone(), Json::String(file.clone()));
        }
        shard_names.push(file);
    }
    let index = json!({ "metadata": { "total_size": total }, "weight_map": weight_map });
    let text = serde_json::to_string_pretty(&index).unwrap_or_default();
    verdict_lora::st::write_atomic(&dir.join(INDEX_FILE), text.as_bytes())?;
    Ok((shard_names, total))
}

/// Copies every regular file of `from` except weights, the old index and merge staging files.
fn copy_side_files(from: &Path, to: &Path) -> Result<Vec<String>> {
    let mut copied = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(from)
        .map_err(io_error(from))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_weights = path.extension().is_some_and(|e| e == "safetensors");
        if is_weights || name == INDEX_FILE || name.starts_with('.') {
            continue;
        }
        std::fs::copy(&path, to.join(&name)).map_err(io_error(&path))?;
        copied.push(name);
    }
    Ok(copied)
}

/// A generation config with the token ids `transformers` would take from the model config.
fn generation_config(config: &Json) -> Json {
    let text = config.get("text_config").unwrap_or(config);
    let pick = |key: &str| {
        config
            .get(key)
            .or_else(|| text.get(key))
            .cloned()
            .unwrap_or(Json::Null)
    };
    json!({
        "bos_token_id": pick("bos_token_id"),
        "eos_token_id": pick("eos_token_id"),
        "pad_token_id": pick("pad_token_id"),
        "do_sample": false,
    })
}
