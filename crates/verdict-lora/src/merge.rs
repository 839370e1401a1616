//! Folding adapters into base weights: `W' = W + scaling * B @ A`, written as a complete
//! checkpoint directory that loads without any adapter support.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// Where the merge came from, written beside the merged weights.
pub const MERGE_INFO_FILE: &str = "verdict_merge.json";

/// Writes `out_dir`: every file of `base_dir` (config, tokenizer, processor, index) copied,
/// and every safetensors shard rewritten with the adapter of `adapter_dir` merged in, each
/// tensor keeping its dtype and name. The result is built in a temporary sibling directory
/// and renamed into place, so `out_dir` is never left half-written.
///
/// Returns the number of merged layers.
pub fn merge_into_checkpoint(base_dir: &Path, adapter_dir: &Path, out_dir: &Path) -> Result<usize> {
    let device = Device::Cpu;
    let (config, adapters) = crate::peft::read_adapter(adapter_dir, &device)?;
    let scaling = config.scaling();
    let shards = verdict_models::qwen3_vl::weights::safetensors_files(base_dir)?;
    let shard_names: BTreeSet<PathBuf> = shards.iter().cloned().collect();

    let parent = out_dir.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(crate::error::io_error(parent))?;
    let name = out_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Config(format!("{} is not a directory name", out_dir.display())))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(crate::error::io_error(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(crate::error::io_error(&tmp))?;

    let result = (|| -> Result<usize> {
        copy_other_files(base_dir, &tmp, &shard_names)?;
        let mut merged = BTreeSet::new();
        for shard in &shards {
            let mut tensors: BTreeMap<String, Tensor> =
                crate::st::read(shard, &device)?.into_iter().collect();
            for (layer, (a, b)) in &adapters {
                let key = format!("{layer}.weight");
                if let Some(weight) = tensors.get_mut(&key) {
                    *weight = merge_weight(weight, a, b, scaling)
                        .map_err(|e| Error::Mismatch(format!("{key}: {e}")))?;
                    merged.insert(layer.clone());
                }
            }
            let file_name = shard.file_name().unwrap_or_default();
            crate::st::write(&tmp.join(file_name), &tensors)?;
        }
        if let Some(missing) = adapters.keys().find(|k| !merged.contains(*k)) {
            return Err(Error::Mismatch(format!(
                "{} has no weight {missing}.weight for the adapter of {}",
                base_dir.display(),
                adapter_dir.display()
            )));
        }
        let info = serde_json::json!({
            "base": base_dir.display().to_string(),
            "adapter": adapter_dir.display().to_string(),
            "lora": config,
            "merged_layers": merged.len(),
        });
        let text = serde_json::to_string_pretty(&info).unwrap_or_default();
        crate::st::write_atomic(&tmp.join(MERGE_INFO_FILE), text.as_bytes())?;
        Ok(merged.len())
    })();
    let count = match result {
        Ok(count) => count,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if out_dir.exists() {
        std::fs::remove_dir_all(out_dir).map_err(crate::error::io_error(out_dir))?;
    }
    std::fs::rename(&tmp, out_dir).map_err(crate::error::io_error(out_dir))?;
    Ok(count)
}

/// `weight + scaling * B @ A`, computed in f32 and cast back to the weight's dtype.
///
/// # Shapes
/// `weight`: `(out, in)`; `a`: `(r, in)`; `b`: `(out, r)`.
pub fn merge_weight(weight: &Tensor, a: &Tensor, b: &Tensor, scaling: f64) -> Result<Tensor> {
    let dtype = weight.dtype();
    let delta = (b.to_dtype(DType::F32)?.matmul(&a.to_dtype(DType::F32)?)? * scaling)?;
    if delta.dims() != weight.dims() {
        return Err(Error::Mismatch(format!(
            "update is {:?} but the weight is {:?}",
            delta.dims(),
            weight.dims()
        )));
    }
    Ok((weight.to_dtype(DType::F32)? + delta)?.to_dtype(dtype)?)
}

fn copy_other_files(from: &Path, to: &Path, skip: &BTreeSet<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(crate::error::io_error(from))?;
    for entry in entries {
        let entry = entry.map_err(crate::error::io_error(from))?;
        let path = entry.path();
        let is_weights = path.extension().is_some_and(|e| e == "safetensors");
        if !path.is_file() || skip.contains(&path) || is_weights {
            continue;
        }
        let target = to.join(entry.file_name());
        std::fs::copy(&path, &target).map_err(crate::error::io_error(&path))?;
    }
    Ok(())
}
