//! Fine-tuning on the mixed SFT data with the project's LoRA trainer.
//!
//! The trainer validates by scoring candidate answers; here the candidates are every distinct
//! assistant answer of the data (label-set JSONs of the worksheets and knowledge answers), and
//! the validation records are the held-out labelled images only. Its number is a training
//! signal; the ontology evaluation (`evaluate`) of the trained model is the score to report.

use std::path::{Path, PathBuf};

use verdict_models::Device;
use verdict_train::session::Session;
use verdict_train::sft::read_jsonl;
use verdict_train::trainer::{self, Data};

/// Trainer types callers need, so the binary needs no direct dependency on the trainer.
pub use verdict_train::trainer::{Observer, Outcome, Silent};
pub use verdict_train::TrainConfig;

use crate::error::{OntologyError, Result};

/// Training records (`train.jsonl`: images + knowledge questions) and validation records
/// (`images_val.jsonl`) of a folder written by `verdict ontology sft`, with the answer set.
pub fn training_data(sft_dir: &Path) -> Result<Data> {
    let read = |name: &str| {
        let path = sft_dir.join(name);
        read_jsonl(&path).map_err(|e| OntologyError::ontology(&path, e.to_string()))
    };
    let train = read("train.jsonl")?;
    let val = read("images_val.jsonl")?;
    if train.is_empty() {
        return Err(OntologyError::ontology(
            sft_dir.join("train.jsonl"),
            "no training records",
        ));
    }
    let mut labels: Vec<String> = Vec::new();
    for record in train.iter().chain(&val) {
        if !labels.contains(&record.label) {
            labels.push(record.label.clone());
        }
    }
    Ok(Data { train, val, labels })
}

/// What a training run produced.
#[derive(Debug, Clone)]
pub struct Trained {
    pub outcome: Outcome,
    /// The PEFT adapter directory.
    pub adapter: PathBuf,
    /// The base checkpoint with the adapter merged in, when asked for: a checkpoint directory
    /// `classify-image` and `ontology eval` load directly.
    pub merged: Option<PathBuf>,
}

/// Runs LoRA fine-tuning of `base` on the data in `sft_dir` into `out`.
pub fn train(
    base: &Path,
    sft_dir: &Path,
    out: &Path,
    config: &TrainConfig,
    merge: bool,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<Trained> {
    let data = training_data(sft_dir)?;
    let mut config = config.clone();
    if data.val.is_empty() {
        // Nothing held out: train without validation rather than fail.
        config.validate_before_training = false;
        config.patience = 0;
    }
    let train_error = |e: verdict_train::Error| OntologyError::Input(format!("training: {e}"));
    config.validate().map_err(train_error)?;
    let dtype = config.precision.dtype(device);
    let session =
        Session::load(base, &config.lora, device, dtype, config.seed).map_err(train_error)?;
    let outcome =
        trainer::run(&session, &data, &config, out, false, observer).map_err(train_error)?;
    let adapter = out.join("adapter");
    let merged = if merge {
        let merged = out.join("merged");
        verdict_lora::merge_into_checkpoint(base, &adapter, &merged)
            .map_err(|e| OntologyError::Input(format!("merging the adapter: {e}")))?;
        Some(merged)
    } else {
        None
    };
    Ok(Trained {
        outcome,
        adapter,
        merged,
    })
}
