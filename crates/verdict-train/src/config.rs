//! Training settings: serde data with the fine-tuning recipe of the seeds as defaults
//! (LoRA r=16, alpha=32, dropout 0.05 on vision + language attention and MLP layers; lr 1e-4,
//! 3 epochs, 5% warmup then cosine decay; early stopping on validation macro-F1).

use serde::{Deserialize, Serialize};
use verdict_lora::{LoraConfig, ModuleSwitches, QWEN3_VL_LINEAR_NAMES};
use verdict_models::{DType, Device};

use crate::batch::Objective;
use crate::optim::AdamWConfig;
use crate::schedule::Decay;
use crate::sft::AnswerFormat;

/// Numeric precision of the frozen base model (adapters and optimiser state stay f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// bf16 on CUDA, f32 on CPU.
    #[default]
    Auto,
    F32,
    Bf16,
}

impl Precision {
    pub fn dtype(self, device: &Device) -> DType {
        match self {
            Precision::Auto if device.is_cuda() => DType::BF16,
            Precision::Auto | Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub lora: LoraConfig,
    pub epochs: usize,
    pub learning_rate: f64,
    /// Share of all optimiser steps spent warming up linearly from 0.
    pub warmup_ratio: f64,
    pub decay: Decay,
    pub optimizer: AdamWConfig,
    /// Sequences per forward/backward pass.
    pub micro_batch_size: usize,
    /// Micro-batches whose gradients are summed into one optimiser step.
    pub grad_accumulation: usize,
    /// Global gradient-norm bound (0 disables clipping).
    pub max_grad_norm: f64,
    pub objective: Objective,
    pub answer_format: AnswerFormat,
    /// Validate every N optimiser steps; `None`: after every epoch.
    pub validate_every_steps: Option<u64>,
    /// Checkpoint every N optimiser steps; `None`: after every epoch.
    pub checkpoint_every_steps: Option<u64>,
    /// Validate the untouched model before training (the number fine-tuning must beat).
    pub validate_before_training: bool,
    /// Stop after this many validations without a better macro-F1 (0: never stop early).
    pub patience: usize,
    pub seed: u64,
    /// Use only the first N training and validation rows (a quick sanity run).
    pub max_rows: Option<usize>,
    pub precision: Precision,
    /// Keep the frozen base weights quantised (QLoRA's `nf4`, or `int8`), dequantised on the
    /// fly under the f32 adapters; `None`: the base stays in the training precision.
    pub quant: Option<verdict_quant::Scheme>,
    /// Recompute each decoder layer in the backward pass instead of keeping its activations
    /// (`verdict_models::nn::recompute`): activation memory drops to the layers' inputs plus
    /// one layer, for one extra forward pass of the decoder (taken with the fused inference
    /// kernels on CUDA).
    pub recompute: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let target_modules = ModuleSwitches::default()
            .target_modules(&QWEN3_VL_LINEAR_NAMES)
            .unwrap_or_default();
        Self {
            lora: LoraConfig {
                target_modules,
                ..LoraConfig::default()
            },
            epochs: 3,
            learning_rate: 1e-4,
            warmup_ratio: 0.05,
            decay: Decay::Cosine,
            optimizer: AdamWConfig::default(),
            micro_batch_size: 1,
            grad_accumulation: 8,
            max_grad_norm: 1.0,
            objective: Objective::Answer,
            answer_format: AnswerFormat::Label,
            validate_every_steps: None,
            checkpoint_every_steps: None,
            validate_before_training: true,
            patience: 2,
            seed: 42,
            max_rows: None,
            precision: Precision::Auto,
            quant: None,
            recompute: false,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(crate::Error::Invalid(m));
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.micro_batch_size == 0 || self.grad_accumulation == 0 {
            return bad("micro_batch_size and grad_accumulation must be at least 1".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(format!(
                "learning_rate must be positive, got {}",
                self.learning_rate
            ));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad(format!(
                "warmup_ratio must be in [0, 1), got {}",
                self.warmup_ratio
            ));
        }
        if self.validate_every_steps == Some(0) || self.checkpoint_every_steps == Some(0) {
            return bad("validate_every_steps and checkpoint_every_steps must be positive".into());
        }
        Ok(self.lora.validate()?)
    }
}
