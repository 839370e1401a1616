//! CLIP towers and the dual model, parameters looked up by `CLIPModel` checkpoint keys.

use std::sync::Arc;

use candle_core::{DType, Tensor};
use candle_nn::Init;
use verdict_models::nn::{attention_mask, LayerBuilder, LayerNorm, LinearLayer};

use super::config::{ClipConfig, ClipTextConfig, ClipVisionConfig};
use crate::transformer::{patchify, Encoder};
use crate::{Error, Result};

/// `vision_model.*`: patch + class embeddings, `pre_layrnorm` (sic, the checkpoint's name),
/// encoder, `post_layernorm` on the class token.
#[derive(Debug, Clone)]
pub struct ClipVisionTransformer {
    patch_weight: Tensor,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_layrnorm: LayerNorm,
    encoder: Encoder,
    post_layernorm: LayerNorm,
}

impl ClipVisionTransformer {
    pub fn new(cfg: &ClipVisionConfig, builder: &LayerBuilder) -> Result<Self> {
        let spec = cfg.encoder_spec()?;
        let d = cfg.hidden_size;
        let embeddings = builder.pp("embeddings");
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let patch_weight = embeddings.pp("patch_embedding").get(
            (d, cfg.num_channels, cfg.patch_size, cfg.patch_size),
            "weight",
            init,
        )?;
        let class_embedding = embeddings.get(d, "class_embedding", init)?;
        let num_positions = cfg.grid() * cfg.grid() + 1;
        let position_embedding =
            embeddings
                .pp("position_embedding")
                .get((num_positions, d), "weight", init)?;
        Ok(Self {
            patch_weight,
            class_embedding,
            position_embedding,
            pre_layrnorm: LayerNorm::new(d, cfg.layer_norm_eps, &builder.pp("pre_layrnorm"))?,
            encoder: Encoder::new(&spec, &builder.pp("encoder"))?,
            post_layernorm: LayerNorm::new(d, cfg.layer_norm_eps, &builder.pp("post_layernorm"))?,
        })
    }

    /// Returns `(last_hidden_state, pooled)`.
    ///
    /// # Shapes
    /// `pixel_values`: `(batch, 3, image_size, image_size)` ->
    /// `((batch, 1 + patches, hidden), (batch, hidden))`.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<(Tensor, Tensor)> {
        let pixel_values = pixel_values.to_dtype(self.patch_weight.dtype())?;
        let patches = patchify(&pixel_values, &self.patch_weight, None)?;
        let (b, n, d) = patches.dims3()?;
        if n + 1 != self.position_embedding.dim(0)? {
            return Err(Error::Input(format!(
                "{n} patches, but the checkpoint has {} positions (image size differs from the config)",
                self.position_embedding.dim(0)? - 1
            )));
        }
        let class = self
            .class_embedding
            .reshape((1, 1, d))?
            .broadcast_as((b, 1, d))?;
        let tokens = Tensor::cat(&[&class, &patches], 1)?;
        let tokens = tokens.broadcast_add(&self.position_embedding.unsqueeze(0)?)?;
        let hidden = self
            .encoder
            .forward(&self.pre_layrnorm.forward(&tokens)?, None)?;
        let pooled = self
            .post_layernorm
            .forward(&hidden.narrow(1, 0, 1)?.squeeze(1)?)?;
        Ok((hidden, pooled))
    }
}

/// `text_model.*`: token + position embeddings, causal encoder, `final_layer_norm`, pooled at
/// the end-of-text token.
#[derive(Debug, Clone)]
pub struct ClipTextTransformer {
    token_embedding: Tensor,
    position_embedding: Tensor,
    encoder: Encoder,
    final_layer_norm: LayerNorm,
    eos_token_id: Option<u32>,
}

impl ClipTextTransformer {
    pub fn new(cfg: &ClipTextConfig, builder: &LayerBuilder) -> Result<Self> {
        let spec = cfg.encoder_spec()?;
        let d = cfg.hidden_size;
        let embeddings = builder.pp("embeddings");
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        Ok(Self {
            token_embedding: embeddings.pp("token_embedding").get(
                (cfg.vocab_size, d),
                "weight",
                init,
            )?,
            position_embedding: embeddings.pp("position_embedding").get(
                (cfg.max_position_embeddings, d),
                "weight",
                init,
            )?,
            encoder: Encoder::new(&spec, &builder.pp("encoder"))?,
            final_layer_norm: LayerNorm::new(
                d,
                cfg.layer_norm_eps,
                &builder.pp("final_layer_norm"),
            )?,
            eos_token_id: cfg.eos_token_id,
        })
    }

    /// Returns `(last_hidden_state, pooled)`.
    ///
    /// # Shapes
    /// `input_ids`: `(batch, seq)` u32; `attention_mask`: `(batch, seq)` of 0/1 or `None`;
    /// returns `((batch, seq, hidden), (batch, hidden))`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let (b, s) = input_ids.dims2()?;
        if s > self.position_embedding.dim(0)? {
            return Err(Error::Input(format!(
                "{s} tokens exceed the {} text positions",
                self.position_embedding.dim(0)?
            )));
        }
        let ids = input_ids.to_dtype(DType::U32)?;
        let d = self.token_embedding.dim(1)?;
        let tokens = self
            .token_embedding
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, s, d))?;
        let xs = tokens.broadcast_add(&self.position_embedding.narrow(0, 0, s)?.unsqueeze(0)?)?;
        let key_valid = match attention_mask {
            Some(mask) => Some(
                mask.to_dtype(DType::U32)?
                    .to_vec2::<u32>()?
                    .into_iter()
                    .map(|row| row.into_iter().map(|v| v != 0).collect())
                    .collect::<Vec<Vec<bool>>>(),
            ),
            None => None,
        };
        let mask = attention_mask_for(s, key_valid.as_deref(), xs.device())?;
        let hidden = self.encoder.forward(&xs, Some(&mask))?;
        let hidden = self.final_layer_norm.forward(&hidden)?;
        let rows = ids.to_vec2::<u32>()?;
        let mut flat_index = Vec::with_capacity(b);
        for (row_index, row) in rows.iter().enumerate() {
            let position = match self.eos_token_id {
                Some(eos) if eos != 2 => row.iter().position(|&t| t == eos).ok_or_else(|| {
                    Error::Input(format!(
                        "text {row_index} has no end-of-text token {eos} (truncated without it?)"
                    ))
                })?,
                // Legacy configs: the end-of-text token has the largest id of the vocabulary.
                _ => {
                    let max = row.iter().copied().max().unwrap_or(0);
                    row.iter().position(|&t| t == max).unwrap_or(0)
                }
            };
            flat_index.push((row_index * s + position) as u32);
        }
        let index = Tensor::new(flat_index, hidden.device())?;
        let pooled = hidden.reshape((b * s, d))?.index_select(&index, 0)?;
        Ok((hidden, pooled))
    }
}

/// Causal mask combined with key padding, shaped for the attention scores.
fn attention_mask_for(
    seq: usize,
    key_valid: Option<&[Vec<bool>]>,
    device: &candle_core::Device,
) -> Result<Tensor> {
    Ok(attention_mask(seq, 0, true, key_valid, device)?)
}

/// The whole `CLIPModel`: both towers, `visual_projection`, `text_projection` (no biases) and
/// `logit_scale` (a log temperature).
#[derive(Debug, Clone)]
pub struct ClipModel {
    pub vision: ClipVisionTransformer,
    pub text: ClipTextTransformer,
    visual_projection: Arc<dyn LinearLayer>,
    text_projection: Arc<dyn LinearLayer>,
    logit_scale: Tensor,
    config: ClipConfig,
}

impl ClipModel {
    pub fn new(config: &ClipConfig, builder: &LayerBuilder) -> Result<Self> {
        let p = config.projection_dim;
        Ok(Self {
            vision: ClipVisionTransformer::new(&config.vision_config, &builder.pp("vision_model"))?,
            text: ClipTextTransformer::new(&config.text_config, &builder.pp("text_model"))?,
            visual_projection: builder.linear(
                "visual_projection",
                config.vision_config.hidden_size,
                p,
                false,
            )?,
            text_projection: builder.linear(
                "text_projection",
                config.text_config.hidden_size,
                p,
                false,
            )?,
            logit_scale: builder.get((), "logit_scale", Init::Const(2.6592))?,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// Projected (not normalised) image features.
    ///
    /// # Shapes
    /// `pixel_values`: `(batch, 3, size, size)` -> `(batch, projection_dim)`.
    pub fn image_features(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let (_, pooled) = self.vision.forward(pixel_values)?;
        Ok(self.visual_projection.forward(&pooled)?)
    }

    /// Projected (not normalised) text features.
    ///
    /// # Shapes
    /// `input_ids`: `(batch, seq)`; `attention_mask`: `(batch, seq)` or `None`;
    /// returns `(batch, projection_dim)`.
    pub fn text_features(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (_, pooled) = self.text.forward(input_ids, attention_mask)?;
        Ok(self.text_projection.forward(&pooled)?)
    }

    /// The log temperature, a scalar tensor.
    pub fn logit_scale(&self) -> &Tensor {
        &self.logit_scale
    }
}
