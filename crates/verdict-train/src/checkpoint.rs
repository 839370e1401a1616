//! Checkpoints: everything a run needs to continue exactly where it stopped.
//!
//! ```text
//! <out>/checkpoints/step-000120/   adapter_config.json, adapter_model.safetensors (PEFT),
//!                                  optimizer.safetensors, state.json
//! <out>/checkpoints/latest         name of the newest complete checkpoint
//! ```
//! A checkpoint is written into a temporary folder and renamed into place; `latest` is
//! replaced (temporary file + rename) only afterwards, so a run killed at any moment leaves
//! either the old or the new checkpoint, never a half-written one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use verdict_lora::{LoraFactory, RngState};

use crate::optim::AdamW;
use crate::validate::Validation;
use crate::{Error, Result};

/// Where the data loader, early stopping and random streams stand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epoch in progress (0-based).
    pub epoch: usize,
    /// Samples of this epoch's shuffled order already consumed.
    pub position: usize,
    /// Optimiser steps taken.
    pub step: u64,
    /// Dropout stream of the adapters.
    pub rng: RngState,
    /// Validation of the untouched model, when asked for.
    pub initial: Option<Validation>,
    /// Best validation so far and the step it was reached at.
    pub best: Option<(u64, Validation)>,
    /// Validations since the best one without improvement.
    pub bad_validations: usize,
    /// Early stopping fired.
    pub stopped: bool,
    /// Fingerprint of the settings and data the run started with; resuming with others fails.
    pub run_key: String,
}

pub const STATE_FILE: &str = "state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

fn checkpoints_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// Writes a complete checkpoint and points `latest` at it; older checkpoints are removed.
pub fn save(
    out: &Path,
    state: &TrainState,
    factory: &LoraFactory,
    optimizer: &AdamW,
    base_model: &str,
) -> Result<PathBuf> {
    let root = checkpoints_dir(out);
    std::fs::create_dir_all(&root).map_err(crate::error::io_error(&root))?;
    let name = format!("step-{:06}", state.step);
    let tmp = root.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(crate::error::io_error(&tmp))?;
    }
    factory.save_peft(&tmp, base_model)?;
    optimizer.save(&tmp.join(OPTIMIZER_FILE))?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| Error::Invalid(e.to_string()))?;
    verdict_lora::st::write_atomic(&tmp.join(STATE_FILE), &json)?;
    let dir = root.join(&name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(crate::error::io_error(&dir))?;
    }
    std::fs::rename(&tmp, &dir).map_err(crate::error::io_error(&dir))?;
    verdict_lora::st::write_atomic(&root.join("latest"), name.as_bytes())?;
    // Only now is the previous checkpoint redundant.
    let entries = std::fs::read_dir(&root).map_err(crate::error::io_error(&root))?;
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with("step-") && file_name != name {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(dir)
}

/// The newest complete checkpoint of `out`, if any.
pub fn latest(out: &Path) -> Result<Option<PathBuf>> {
    let root = checkpoints_dir(out);
    let pointer = root.join("latest");
    if !pointer.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&pointer).map_err(crate::error::io_error(&pointer))?;
    let dir = root.join(name.trim());
    if !dir.join(STATE_FILE).exists() {
        return Err(Error::Checkpoint {
            path: dir,
            message: "named by `latest` but incomplete".into(),
        });
    }
    Ok(Some(dir))
}

/// Reads a checkpoint's state and restores adapter weights and optimiser moments.
pub fn restore(dir: &Path, factory: &LoraFactory, optimizer: &mut AdamW) -> Result<TrainState> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(crate::error::io_error(&path))?;
    let state: TrainState = serde_json::from_str(&text).map_err(|e| Error::Format {
        path: path.clone(),
        line: Some(e.line()),
        message: e.to_string(),
    })?;
    factory.restore_peft_weights(dir)?;
    optimizer.load(&dir.join(OPTIMIZER_FILE))?;
    factory.set_rng_state(state.rng);
    Ok(state)
}
