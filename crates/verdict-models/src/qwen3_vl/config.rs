//! Qwen3-VL configuration, deserialised straight from a checkpoint's `config.json`.
//!
//! Defaults follow the reference configuration classes, so a minimal `config.json` written by
//! `save_pretrained` loads the same model. Rotary settings are accepted both in the current
//! `rope_parameters` form and the older `rope_theta` + `rope_scaling` form.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Rotary settings (`rope_parameters` / `rope_scaling`); only the fields Qwen3-VL uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_type: Option<String>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// Rotary frequency pairs given to the temporal, height and width positions.
    #[serde(default)]
    pub mrope_section: Option<Vec<usize>>,
    #[serde(default)]
    pub mrope_interleaved: Option<bool>,
}

/// Vision tower settings (`vision_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VisionConfig {
    pub depth: usize,
    pub hidden_size: usize,
    pub hidden_act: String,
    pub intermediate_size: usize,
    pub num_heads: usize,
    pub in_channels: usize,
    pub patch_size: usize,
    pub spatial_merge_size: usize,
    pub temporal_patch_size: usize,
    pub out_hidden_size: usize,
    pub num_position_embeddings: usize,
    pub deepstack_visual_indexes: Vec<usize>,
    pub rope_parameters: Option<RopeParameters>,
    pub rope_theta: Option<f64>,
}

impl Default for VisionConfig {
    fn default() -> Self {
        Self {
            depth: 27,
            hidden_size: 1152,
            hidden_act: "gelu_pytorch_tanh".into(),
            intermediate_size: 4304,
            num_heads: 16,
            in_channels: 3,
            patch_size: 16,
            spatial_merge_size: 2,
            temporal_patch_size: 2,
            out_hidden_size: 3584,
            num_position_embeddings: 2304,
            deepstack_visual_indexes: vec![8, 16, 24],
            rope_parameters: None,
            rope_theta: None,
        }
    }
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Base of the 2-D rotary frequencies (10000 unless the checkpoint says otherwise).
    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10_000.0)
    }

    /// Values per patch in `pixel_values`: channels x temporal patch x patch x patch.
    pub fn patch_dim(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }
}

/// Language model settings (`text_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub attention_bias: bool,
    pub rope_parameters: Option<RopeParameters>,
    pub rope_scaling: Option<RopeParameters>,
    pub rope_theta: Option<f64>,
    pub tie_word_embeddings: Option<bool>,
    pub pad_token_id: Option<u32>,
}

impl Default for TextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 151_936,
            hidden_size: 4096,
            intermediate_size: 22_016,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            num_key_value_heads: None,
            head_dim: None,
            hidden_act: "silu".into(),
            max_position_embeddings: 128_000,
            rms_norm_eps: 1e-6,
            attention_bias: false,
            rope_parameters: None,
            rope_scaling: None,
            rope_theta: None,
            tie_word_embeddings: None,
            pad_token_id: None,
        }
    }
}

impl TextConfig {
    pub fn num_key_value_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    fn rope(&self) -> Option<&RopeParameters> {
        self.rope_parameters.as_ref().or(self.rope_scaling.as_ref())
    }

    /// Rotary base; the reference default for this model family is 500000.
    pub fn rope_theta(&self) -> f64 {
        self.rope()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(500_000.0)
    }

    /// Frequency pairs per (temporal, height, width) axis; defaults to `[24, 20, 20]`.
    pub fn mrope_section(&self) -> Vec<usize> {
        self.rope()
            .and_then(|p| p.mrope_section.clone())
            .unwrap_or_else(|| vec![24, 20, 20])
    }
}

/// The whole model (`Qwen3VLForConditionalGeneration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub text_config: TextConfig,
    pub vision_config: VisionConfig,
    pub image_token_id: u32,
    pub video_token_id: u32,
    pub vision_start_token_id: u32,
    pub vision_end_token_id: u32,
    pub tie_word_embeddings: Option<bool>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            text_config: TextConfig::default(),
            vision_config: VisionConfig::default(),
            image_token_id: 151_655,
            video_token_id: 151_656,
            vision_start_token_id: 151_652,
            vision_end_token_id: 151_653,
            tie_word_embeddings: None,
        }
    }
}

impl Config {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Config = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Whether the LM head reuses the token embedding matrix. The top-level flag wins; older
    /// checkpoints only set it inside `text_config`.
    pub fn tie_word_embeddings(&self) -> bool {
        self.tie_word_embeddings
            .or(self.text_config.tie_word_embeddings)
            .unwrap_or(false)
    }

    /// Checks the relations the model code relies on, with messages naming the field.
    pub fn validate(&self) -> Result<()> {
        let text = &self.text_config;
        let vision = &self.vision_config;
        let fail = |msg: String| Err(Error::Config(msg));
        if text.num_attention_heads == 0
            || text.num_attention_heads % text.num_key_value_heads() != 0
        {
            return fail(format!(
                "text_config.num_attention_heads ({}) must be a positive multiple of num_key_value_heads ({})",
                text.num_attention_heads,
                text.num_key_value_heads()
            ));
        }
        let half = text.head_dim() / 2;
        let section: usize = text.mrope_section().iter().sum();
        if text.mrope_section().len() != 3 || section > half {
            return fail(format!(
                "text_config mrope_section {:?} must have 3 entries summing to at most head_dim/2 = {half}",
                text.mrope_section()
            ));
        }
        if vision.num_heads == 0 || vision.hidden_size % vision.num_heads != 0 {
            return fail(format!(
                "vision_config.hidden_size ({}) must be divisible by num_heads ({})",
                vision.hidden_size, vision.num_heads
            ));
        }
        if vision.head_dim() % 4 != 0 {
            return fail(format!(
                "vision head_dim ({}) must be a multiple of 4 for 2-D rotary embeddings",
                vision.head_dim()
            ));
        }
        let side = (vision.num_position_embeddings as f64).sqrt() as usize;
        if side * side != vision.num_position_embeddings {
            return fail(format!(
                "vision_config.num_position_embeddings ({}) must be a square number",
                vision.num_position_embeddings
            ));
        }
        if vision.out_hidden_size != text.hidden_size {
            return fail(format!(
                "vision_config.out_hidden_size ({}) must equal text_config.hidden_size ({})",
                vision.out_hidden_size, text.hidden_size
            ));
        }
        if let Some(&index) = vision
            .deepstack_visual_indexes
            .iter()
            .find(|&&i| i >= vision.depth)
        {
            return fail(format!(
                "vision_config.deepstack_visual_indexes contains {index}, but depth is {}",
                vision.depth
            ));
        }
        if vision.deepstack_visual_indexes.len() > text.num_hidden_layers {
            return fail(format!(
                "{} DeepStack taps but only {} text layers to inject them into",
                vision.deepstack_visual_indexes.len(),
                text.num_hidden_layers
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_current_and_legacy_rope_fields() {
        let current: Config = serde_json::from_str(
            r#"{"text_config": {"hidden_size": 64, "num_attention_heads": 4, "head_dim": 16,
                "rope_parameters": {"rope_type": "default", "rope_theta": 5000000.0,
                "mrope_section": [4, 2, 2], "mrope_interleaved": true}},
               "vision_config": {"out_hidden_size": 64}}"#,
        )
        .expect("valid config");
        assert_eq!(current.text_config.rope_theta(), 5_000_000.0);
        assert_eq!(current.text_config.mrope_section(), vec![4, 2, 2]);
        let legacy: TextConfig = serde_json::from_str(
            r#"{"rope_theta": 1000.0, "rope_scaling": {"mrope_section": [2, 1, 1]}}"#,
        )
        .expect("valid config");
        assert_eq!(legacy.rope_theta(), 1000.0);
        assert_eq!(legacy.mrope_section(), vec![2, 1, 1]);
    }

    #[test]
    fn validation_names_the_field() {
        let mut config = Config::default();
        config.vision_config.out_hidden_size = 7;
        let message = config.validate().expect_err("mismatch").to_string();
        assert!(message.contains("out_hidden_size"), "{message}");
    }
}
