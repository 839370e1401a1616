//! CLIP configuration, deserialised straight from a checkpoint's `config.json`
//! (`transformers`' `CLIPConfig` layout; OpenAI and OpenCLIP conversions share it).

use serde::Deserialize;

use crate::transformer::{Activation, EncoderSpec};
use crate::Result;

fn default_layer_norm_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "quick_gelu".to_string()
}
fn default_channels() -> usize {
    3
}

/// `text_config` of a CLIP checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct ClipTextConfig {
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
    /// The pooled token is the first occurrence of this id; the legacy value 2 means "the
    /// largest id in the row" instead (checkpoints converted before the config carried it).
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

/// `vision_config` of a CLIP checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct ClipVisionConfig {
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
}

/// Top-level CLIP config.
#[derive(Debug, Clone, Deserialize)]
pub struct ClipConfig {
    pub text_config: ClipTextConfig,
    pub vision_config: ClipVisionConfig,
    pub projection_dim: usize,
}

impl ClipTextConfig {
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
}

impl ClipVisionConfig {
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

    /// Patches per image side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }
}
