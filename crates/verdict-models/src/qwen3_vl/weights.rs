//! Locating and reading a checkpoint directory: `config.json` plus one or several
//! safetensors files (sharded checkpoints list theirs in `model.safetensors.index.json`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::{Error, Result};

/// The safetensors files of a checkpoint directory, in a stable order.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|source| Error::Io {
            path: index.clone(),
            source,
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| Error::Json {
                path: index.clone(),
                source,
            })?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| {
                Error::Config(format!(
                    "{}: missing object field \"weight_map\"",
                    index.display()
                ))
            })?;
        let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(Error::Config(format!(
            "{} holds no model.safetensors, no model.safetensors.index.json and no *.safetensors file",
            dir.display()
        )));
    }
    Ok(found)
}

/// Reads every tensor of the given files (converted to `dtype` when looked up).
pub fn load_tensors(files: &[PathBuf], device: &Device) -> Result<HashMap<String, Tensor>> {
    let mut tensors = HashMap::new();
    for file in files {
        if !file.exists() {
            return Err(Error::Io {
                path: file.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "shard listed but missing",
                ),
            });
        }
        let shard = candle_core::safetensors::load(file, device).map_err(|e| {
            Error::Config(format!("cannot read safetensors {}: {e}", file.display()))
        })?;
        tensors.extend(shard);
    }
    Ok(tensors)
}

/// A `VarBuilder` over a checkpoint directory's weights.
pub fn var_builder(dir: &Path, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
    let tensors = load_tensors(&safetensors_files(dir)?, device)?;
    Ok(VarBuilder::from_tensors(tensors, dtype, device))
}
