//! PEFT's on-disk adapter format, so PEFT and vLLM load our adapters and we load theirs.
//!
//! A directory holds `adapter_config.json` (PEFT's `LoraConfig` fields) and
//! `adapter_model.safetensors` with, for every adapted layer at checkpoint path `<path>`:
//! `base_model.model.<path>.lora_A.weight` `(r, in)` and
//! `base_model.model.<path>.lora_B.weight` `(out, r)`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use serde_json::json;

use crate::config::{leaf_name, LoraConfig, TargetModules};
use crate::factory::LoraFactory;
use crate::{Error, Result};

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const PREFIX: &str = "base_model.model.";

/// `(lora_A, lora_B)` of every adapted layer, by the layer's checkpoint path.
pub type AdapterTensors = BTreeMap<String, (Tensor, Tensor)>;

/// The fields of PEFT's `adapter_config.json` that change what the adapter computes.
#[derive(Debug, Deserialize)]
struct PeftConfigFile {
    peft_type: Option<String>,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: f64,
    target_modules: Option<TargetModules>,
    #[serde(default)]
    exclude_modules: Option<TargetModules>,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    rank_pattern: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    alpha_pattern: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    modules_to_save: Option<serde_json::Value>,
    #[serde(default)]
    lora_bias: bool,
    #[serde(default)]
    trainable_token_indices: Option<serde_json::Value>,
    #[serde(default)]
    target_parameters: Option<serde_json::Value>,
    #[serde(default)]
    layer_replication: Option<serde_json::Value>,
}

/// Reads `adapter_config.json`, refusing options whose computation differs from plain LoRA.
pub fn read_config(dir: &Path) -> Result<LoraConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(crate::error::io_error(&path))?;
    let file: PeftConfigFile = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    let unsupported = |field: &str, why: &str| {
        Error::Config(format!(
            "{}: {field} {why} is not supported",
            path.display()
        ))
    };
    if let Some(kind) = &file.peft_type {
        if kind != "LORA" {
            return Err(unsupported("peft_type", &format!("{kind:?}")));
        }
    }
    if file.use_dora {
        return Err(unsupported("use_dora", "true"));
    }
    if file.fan_in_fan_out {
        return Err(unsupported("fan_in_fan_out", "true"));
    }
    if let Some(bias) = file.bias.as_deref().filter(|b| *b != "none") {
        return Err(unsupported("bias", &format!("{bias:?}")));
    }
    if file.rank_pattern.as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(unsupported("rank_pattern", "with entries"));
    }
    if file.alpha_pattern.as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(unsupported("alpha_pattern", "with entries"));
    }
    if file
        .modules_to_save
        .as_ref()
        .is_some_and(|m| !m.is_null() && m.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err(unsupported("modules_to_save", "with entries"));
    }
    if file.lora_bias {
        return Err(unsupported("lora_bias", "true"));
    }
    for (field, value) in [
        ("trainable_token_indices", &file.trainable_token_indices),
        ("target_parameters", &file.target_parameters),
        ("layer_replication", &file.layer_replication),
    ] {
        if value.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(unsupported(field, "with a value"));
        }
    }
    let config = LoraConfig {
        r: file.r,
        alpha: file.lora_alpha,
        dropout: file.lora_dropout,
        target_modules: file.target_modules.unwrap_or_default(),
        exclude_modules: file.exclude_modules,
        use_rslora: file.use_rslora,
    };
    config
        .validate()
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    Ok(config)
}

/// Config plus `(A, B)` of every adapted layer (by checkpoint path) of an adapter directory.
pub fn read_adapter(dir: &Path, device: &Device) -> Result<(LoraConfig, AdapterTensors)> {
    let config = read_config(dir)?;
    let path = dir.join(WEIGHTS_FILE);
    let tensors = crate::st::read(&path, device)?;
    let mut halves: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
    for (key, tensor) in tensors {
        let bad = || Error::Mismatch(format!("{}: unexpected tensor {key:?}", path.display()));
        let rest = key.strip_prefix(PREFIX).ok_or_else(bad)?;
        // PEFT drops the adapter name on save; accept `lora_A.default.weight` too.
        let (layer, half) = [
            (".lora_A.weight", 0),
            (".lora_B.weight", 1),
            (".lora_A.default.weight", 0),
            (".lora_B.default.weight", 1),
        ]
        .iter()
        .find_map(|(suffix, half)| rest.strip_suffix(suffix).map(|l| (l, *half)))
        .ok_or_else(bad)?;
        let entry = halves.entry(layer.to_string()).or_default();
        let tensor = tensor.to_dtype(DType::F32)?;
        if half == 0 {
            entry.0 = Some(tensor);
        } else {
            entry.1 = Some(tensor);
        }
    }
    let mut adapters = BTreeMap::new();
    for (layer, pair) in halves {
        match pair {
            (Some(a), Some(b)) => {
                let (r, _) = a.dims2()?;
                if r != config.r || b.dims2()?.1 != r {
                    return Err(Error::Mismatch(format!(
                        "{}: {layer} has lora_A {:?} and lora_B {:?}, config says r = {}",
                        path.display(),
                        a.dims(),
                        b.dims(),
                        config.r
                    )));
                }
                adapters.insert(layer, (a, b));
            }
            _ => {
                return Err(Error::Mismatch(format!(
                    "{}: {layer} lacks lora_A or lora_B",
                    path.display()
                )))
            }
        }
    }
    if adapters.is_empty() {
        return Err(Error::Mismatch(format!(
            "{} holds no LoRA tensors",
            path.display()
        )));
    }
    Ok((config, adapters))
}

/// Writes `adapter_config.json` and `adapter_model.safetensors` of `factory` into `dir`
/// (created if needed), each file atomically.
pub(crate) fn save(factory: &LoraFactory, dir: &Path, base_model_name: &str) -> Result<()> {
    let adapters = factory.adapters();
    if adapters.is_empty() {
        return Err(Error::Mismatch(
            "no layer was adapted: build the model with this factory first, and check target_modules"
                .into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(crate::error::io_error(dir))?;
    let mut tensors = BTreeMap::new();
    for (path, adapter) in &adapters {
        tensors.insert(
            format!("{PREFIX}{path}.lora_A.weight"),
            adapter.a.as_tensor().to_dtype(DType::F32)?,
        );
        tensors.insert(
            format!("{PREFIX}{path}.lora_B.weight"),
            adapter.b.as_tensor().to_dtype(DType::F32)?,
        );
    }
    crate::st::write(&dir.join(WEIGHTS_FILE), &tensors)?;
    let config = factory.config();
    // PEFT resolves "all-linear" to the layer names it found before saving; do the same so
    // loaders that do not know the special value select the same layers.
    let target_modules = if config.target_modules.is_all_linear() {
        let names: BTreeSet<&str> = adapters.iter().map(|(p, _)| leaf_name(p)).collect();
        json!(names)
    } else {
        json!(config.target_modules)
    };
    // PEFT's field is an int; keep whole values integral so strict readers accept them.
    let alpha = if config.alpha.fract() == 0.0 && config.alpha.abs() < 1e15 {
        json!(config.alpha as i64)
    } else {
        json!(config.alpha)
    };
    let file = json!({
        "alpha_pattern": {},
        "auto_mapping": null,
        "base_model_name_or_path": base_model_name,
        "bias": "none",
        "exclude_modules": config.exclude_modules,
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layers_pattern": null,
        "layers_to_transform": null,
        "lora_alpha": alpha,
        "lora_dropout": config.dropout,
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": config.r,
        "rank_pattern": {},
        "revision": null,
        "target_modules": target_modules,
        "task_type": "CAUSAL_LM",
        "use_dora": false,
        "use_rslora": config.use_rslora,
    });
    let text = serde_json::to_string_pretty(&file).map_err(|source| Error::Json {
        path: dir.join(CONFIG_FILE),
        source,
    })?;
    crate::st::write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())
}
