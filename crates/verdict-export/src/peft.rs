//! `--format peft`: the adapter alone, exactly as PEFT saves it (`adapter_config.json` +
//! `adapter_model.safetensors`), after checking that it reads back as a valid adapter.

use std::path::Path;

use candle_core::Device;
use verdict_lora::peft::{CONFIG_FILE, WEIGHTS_FILE};

use crate::error::io_error;
use crate::{staging, Result};

/// What [`export`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeftReport {
    /// Adapted layers.
    pub layers: usize,
    pub rank: usize,
    pub parameters: usize,
}

/// Copies the adapter in `adapter` to `out` after validating it.
pub fn export(adapter: &Path, out: &Path) -> Result<PeftReport> {
    let (config, tensors) = verdict_lora::peft::read_adapter(adapter, &Device::Cpu)?;
    let parameters = tensors
        .values()
        .map(|(a, b)| a.elem_count() + b.elem_count())
        .sum();
    staging::build_dir(out, |tmp| {
        for file in [CONFIG_FILE, WEIGHTS_FILE] {
            let from = adapter.join(file);
            std::fs::copy(&from, tmp.join(file)).map_err(io_error(&from))?;
        }
        Ok(PeftReport {
            layers: tensors.len(),
            rank: config.r,
            parameters,
        })
    })
}
