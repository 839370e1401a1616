//! SigLIP configuration, deserialised straight from a checkpoint's `config.json`
//! (`transformers`' `SiglipConfig` layout).

use serde::Deserialize;

use crate::transformer::{Activation, EncoderSpec};
use crate::Result;

fn default_layer_norm_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "gelu_pytorch_tanh".to_string()
}
fn default_channels() -> usize {
    3
}
fn default_true() -> bool {
    true
}

/// `text_config` of a SigLIP checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct SiglipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Output size of `text_model.head`; defaults to `hidden_size`.
    #[serde(default)]
    pub projection_size: Option<usize>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
}

/// `vision_config` of a SigLIP checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct SiglipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Whether the multi-head attention pooling head exists (`vision_model.head`).
    #[serde(default = "default_true")]
    pub vision_use_head: bool,
}

/// Top-level SigLIP config.
#[derive(Debug, Clone, Deserialize)]
pub struct SiglipConfig {
    pub text_config: SiglipTextConfig,
    pub vision_config: SiglipVisionConfig,
}

impl SiglipTextConfig {
    pub fn encoder_spec(&self) -> Result<EncoderSpec> {
        Ok(EncoderSpec {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_heads: self.num_attention_heads,
            num_layers: self.num_hidden_layers,
            layer_norm_eps: self.layer_norm_eps,
            activation: Activation::from_name(&self.hidden_act)?,
        })
    }

    pub fn projection_size(&self) -> usize {
        self.projection_size.unwrap_or(self.hidden_size)
    }
}

impl SiglipVisionConfig {
    pub fn encoder_spec(&self) -> Result<EncoderSpec> {
        Ok(EncoderSpec {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_heads: self.num_attention_heads,
            num_layers: self.num_hidden_layers,
            layer_norm_eps: self.layer_norm_eps,
            activation: Activation::from_name(&self.hidden_act)?,
        })
    }

    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }
}
