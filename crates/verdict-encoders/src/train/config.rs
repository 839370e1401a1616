//! What a fine-tuning run does; saved next to its checkpoints so every artifact says how it was
//! made.

use serde::{Deserialize, Serialize};

use crate::head::HeadConfig;
use crate::zero_shot::DEFAULT_TEMPLATES;

/// The five ablation scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Everything frozen; labels scored by prompt.
    ZeroShot,
    /// Encoders frozen; a linear head trained on image embeddings.
    LinearProbe,
    /// Adapters on the image tower + the projections, contrastive loss; scored by prompt.
    VisionLora,
    /// Adapters on the text tower + the projections.
    TextLora,
    /// Adapters on both towers + the projections.
    DualLora,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Self::ZeroShot,
        Self::LinearProbe,
        Self::VisionLora,
        Self::TextLora,
        Self::DualLora,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::ZeroShot => "zero_shot",
            Self::LinearProbe => "linear_probe",
            Self::VisionLora => "vision_lora",
            Self::TextLora => "text_lora",
            Self::DualLora => "dual_lora",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether the scenario trains the encoders contrastively.
    pub fn is_contrastive(self) -> bool {
        matches!(self, Self::VisionLora | Self::TextLora | Self::DualLora)
    }

    /// Checkpoint-path pattern of the adapted layers (PEFT `target_modules` regex form).
    pub fn lora_pattern(self, modules: &[String]) -> Option<String> {
        let towers = match self {
            Self::VisionLora => "vision_model",
            Self::TextLora => "text_model",
            Self::DualLora => "(?:vision_model|text_model)",
            _ => return None,
        };
        Some(format!(
            r"{towers}\.encoder\.layers\.\d+\.(?:self_attn|mlp)\.(?:{})",
            modules.join("|")
        ))
    }
}

/// Hyper-parameters of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub scenario: Scenario,
    pub epochs: usize,
    /// Pairs per optimiser step (split into `gradient_accumulation` micro-batches).
    pub batch_size: usize,
    pub gradient_accumulation: usize,
    /// Peak learning rate of the projection / head group.
    pub projection_learning_rate: f64,
    /// Peak learning rate of the adapters.
    pub lora_learning_rate: f64,
    pub weight_decay: f64,
    /// Share of optimiser steps spent warming up.
    pub warmup_ratio: f64,
    pub lora_r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    /// Layer names adapted inside the chosen towers.
    pub lora_modules: Vec<String>,
    /// Also tune the projections in the adapter scenarios.
    pub train_projections: bool,
    /// Prompt ensemble for zero-shot scoring; `{}` is the label text.
    pub templates: Vec<String>,
    /// The linear-probe head.
    pub head: HeadConfig,
    pub seed: u64,
    /// Continue from the newest `epoch-N` checkpoint in the output folder.
    pub resume: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            scenario: Scenario::DualLora,
            epochs: 5,
            batch_size: 32,
            gradient_accumulation: 1,
            projection_learning_rate: 1e-3,
            lora_learning_rate: 1e-3,
            weight_decay: 0.01,
            warmup_ratio: 0.1,
            lora_r: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.0,
            lora_modules: vec!["q_proj".into(), "v_proj".into()],
            train_projections: true,
            templates: DEFAULT_TEMPLATES.iter().map(|t| t.to_string()).collect(),
            head: HeadConfig::default(),
            seed: 0,
            resume: false,
        }
    }
}
