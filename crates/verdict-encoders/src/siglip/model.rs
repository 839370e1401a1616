//! SigLIP towers and the dual model, parameters looked up by `SiglipModel` checkpoint keys.

use std::sync::Arc;

use candle_core::{DType, Module, Tensor};
use candle_nn::Init;
use verdict_models::nn::{
    attention_mask as build_attention_mask, scaled_dot_product_attention, LayerBuilder, LayerNorm,
    LinearLayer,
};

use super::config::{SiglipConfig, SiglipTextConfig, SiglipVisionConfig};
use crate::transformer::{patchify, Encoder, EncoderSpec, Mlp};
use crate::{Error, Result};

fn init() -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: 0.02,
    }
}

/// `vision_model.head`: a learned probe query attends over all patch tokens
/// (`torch.nn.MultiheadAttention` with packed `in_proj_weight`), then a residual MLP.
#[derive(Debug, Clone)]
pub struct MultiheadAttentionPoolingHead {
    probe: Tensor,
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: Arc<dyn LinearLayer>,
    layernorm: LayerNorm,
    mlp: Mlp,
    num_heads: usize,
}

impl MultiheadAttentionPoolingHead {
    pub fn new(spec: &EncoderSpec, builder: &LayerBuilder) -> Result<Self> {
        let d = spec.hidden_size;
        let attention = builder.pp("attention");
        Ok(Self {
            probe: builder.get((1, 1, d), "probe", init())?,
            in_proj_weight: attention.get((3 * d, d), "in_proj_weight", init())?,
            in_proj_bias: attention.get(3 * d, "in_proj_bias", Init::Const(0.0))?,
            out_proj: attention.linear("out_proj", d, d, true)?,
            layernorm: LayerNorm::new(d, spec.layer_norm_eps, &builder.pp("layernorm"))?,
            mlp: Mlp::new(spec, &builder.pp("mlp"))?,
            num_heads: spec.num_heads,
        })
    }

    /// # Shapes
    /// `hidden`: `(batch, seq, hidden)` -> `(batch, hidden)`.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let (b, s, d) = hidden.dims3()?;
        let head_dim = d / self.num_heads;
        let project = |xs: &Tensor, part: usize| -> Result<Tensor> {
            let weight = self.in_proj_weight.narrow(0, part * d, d)?;
            let bias = self.in_proj_bias.narrow(0, part * d, d)?;
            Ok(candle_nn::Linear::new(weight, Some(bias)).forward(xs)?)
        };
        let probe = self.probe.broadcast_as((b, 1, d))?.contiguous()?;
        let heads = |t: Tensor, len: usize| -> Result<Tensor> {
            Ok(t.reshape((b, len, self.num_heads, head_dim))?
                .transpose(1, 2)?)
        };
        let q = heads(project(&probe, 0)?, 1)?;
        let k = heads(project(hidden, 1)?, s)?;
        let v = heads(project(hidden, 2)?, s)?;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let attended = scaled_dot_product_attention(&q, &k, &v, None, scale)?
            .transpose(1, 2)?
            .reshape((b, 1, d))?;
        let attended = self.out_proj.forward(&attended)?;
        let fed = self.mlp.forward(&self.layernorm.forward(&attended)?)?;
        Ok((attended + fed)?.squeeze(1)?)
    }
}

/// `vision_model.*`: biased patch convolution + position embeddings, encoder,
/// `post_layernorm` over all tokens, then the attention-pooling head.
#[derive(Debug, Clone)]
pub struct SiglipVisionTransformer {
    patch_weight: Tensor,
    patch_bias: Tensor,
    position_embedding: Tensor,
    encoder: Encoder,
    post_layernorm: LayerNorm,
    head: Option<MultiheadAttentionPoolingHead>,
}

impl SiglipVisionTransformer {
    pub fn new(cfg: &SiglipVisionConfig, builder: &LayerBuilder) -> Result<Self> {
        let spec = cfg.encoder_spec()?;
        let d = cfg.hidden_size;
        let embeddings = builder.pp("embeddings");
        let patch = embeddings.pp("patch_embedding");
        let head = if cfg.vision_use_head {
            Some(MultiheadAttentionPoolingHead::new(
                &spec,
                &builder.pp("head"),
            )?)
        } else {
            None
        };
        Ok(Self {
            patch_weight: patch.get(
                (d, cfg.num_channels, cfg.patch_size, cfg.patch_size),
                "weight",
                init(),
            )?,
            patch_bias: patch.get(d, "bias", Init::Const(0.0))?,
            position_embedding: embeddings.pp("position_embedding").get(
                (cfg.grid() * cfg.grid(), d),
                "weight",
                init(),
            )?,
            encoder: Encoder::new(&spec, &builder.pp("encoder"))?,
            post_layernorm: LayerNorm::new(d, cfg.layer_norm_eps, &builder.pp("post_layernorm"))?,
            head,
        })
    }

    /// Returns `(last_hidden_state, pooled)`; without a head, `pooled` is the token mean.
    ///
    /// # Shapes
    /// `pixel_values`: `(batch, 3, size, size)` -> `((batch, patches, hidden), (batch, hidden))`.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<(Tensor, Tensor)> {
        let pixel_values = pixel_values.to_dtype(self.patch_weight.dtype())?;
        let patches = patchify(&pixel_values, &self.patch_weight, Some(&self.patch_bias))?;
        let n = patches.dim(1)?;
        if n != self.position_embedding.dim(0)? {
            return Err(Error::Input(format!(
                "{n} patches, but the checkpoint has {} positions (image size differs from the config)",
                self.position_embedding.dim(0)?
            )));
        }
        let tokens = patches.broadcast_add(&self.position_embedding.unsqueeze(0)?)?;
        let hidden = self.encoder.forward(&tokens, None)?;
        let hidden = self.post_layernorm.forward(&hidden)?;
        let pooled = match &self.head {
            Some(head) => head.forward(&hidden)?,
            None => hidden.mean(1)?,
        };
        Ok((hidden, pooled))
    }
}

/// `text_model.*`: embeddings, bidirectional encoder, `final_layer_norm`, the last position's
/// state through `head`.
#[derive(Debug, Clone)]
pub struct SiglipTextTransformer {
    token_embedding: Tensor,
    position_embedding: Tensor,
    encoder: Encoder,
    final_layer_norm: LayerNorm,
    head: Arc<dyn LinearLayer>,
}

impl SiglipTextTransformer {
    pub fn new(cfg: &SiglipTextConfig, builder: &LayerBuilder) -> Result<Self> {
        let spec = cfg.encoder_spec()?;
        let d = cfg.hidden_size;
        let embeddings = builder.pp("embeddings");
        Ok(Self {
            token_embedding: embeddings.pp("token_embedding").get(
                (cfg.vocab_size, d),
                "weight",
                init(),
            )?,
            position_embedding: embeddings.pp("position_embedding").get(
                (cfg.max_position_embeddings, d),
                "weight",
                init(),
            )?,
            encoder: Encoder::new(&spec, &builder.pp("encoder"))?,
            final_layer_norm: LayerNorm::new(
                d,
                cfg.layer_norm_eps,
                &builder.pp("final_layer_norm"),
            )?,
            head: builder.linear("head", d, cfg.projection_size(), true)?,
        })
    }

    /// Returns `(last_hidden_state, pooled)`. SigLIP is trained on texts padded to the full
    /// context without a mask, so `attention_mask` is normally `None`; when given, padding keys
    /// are hidden as in the reference.
    ///
    /// # Shapes
    /// `input_ids`: `(batch, seq)` -> `((batch, seq, hidden), (batch, projection_size))`.
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
        let mask = match attention_mask {
            Some(mask) => {
                let valid: Vec<Vec<bool>> = mask
                    .to_dtype(DType::U32)?
                    .to_vec2::<u32>()?
                    .into_iter()
                    .map(|row| row.into_iter().map(|v| v != 0).collect())
                    .collect();
                Some(build_attention_mask(
                    s,
                    0,
                    false,
                    Some(&valid),
                    xs.device(),
                )?)
            }
            None => None,
        };
        let hidden = self.encoder.forward(&xs, mask.as_ref())?;
        let hidden = self.final_layer_norm.forward(&hidden)?;
        let last = hidden.narrow(1, s - 1, 1)?.squeeze(1)?;
        Ok((hidden, self.head.forward(&last)?))
    }
}

/// The whole `SiglipModel`: both towers, `logit_scale` and `logit_bias`.
#[derive(Debug, Clone)]
pub struct SiglipModel {
    pub vision: SiglipVisionTransformer,
    pub text: SiglipTextTransformer,
    logit_scale: Tensor,
    logit_bias: Tensor,
    config: SiglipConfig,
}

impl SiglipModel {
    pub fn new(config: &SiglipConfig, builder: &LayerBuilder) -> Result<Self> {
        if config.text_config.projection_size() != config.vision_config.hidden_size {
            return Err(Error::Config(format!(
                "text projection_size {} differs from vision hidden_size {}",
                config.text_config.projection_size(),
                config.vision_config.hidden_size
            )));
        }
        Ok(Self {
            vision: SiglipVisionTransformer::new(
                &config.vision_config,
                &builder.pp("vision_model"),
            )?,
            text: SiglipTextTransformer::new(&config.text_config, &builder.pp("text_model"))?,
            logit_scale: builder.get(1, "logit_scale", Init::Const(10f64.ln()))?,
            logit_bias: builder.get(1, "logit_bias", Init::Const(-10.0))?,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &SiglipConfig {
        &self.config
    }

    /// # Shapes
    /// `pixel_values`: `(batch, 3, size, size)` -> `(batch, hidden)`.
    pub fn image_features(&self, pixel_values: &Tensor) -> Result<Tensor> {
        Ok(self.vision.forward(pixel_values)?.1)
    }

    /// # Shapes
    /// `input_ids`: `(batch, seq)` -> `(batch, projection_size)`.
    pub fn text_features(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        Ok(self.text.forward(input_ids, attention_mask)?.1)
    }

    /// Log scale, shape `(1,)`.
    pub fn logit_scale(&self) -> &Tensor {
        &self.logit_scale
    }

    /// Bias, shape `(1,)`.
    pub fn logit_bias(&self) -> &Tensor {
        &self.logit_bias
    }
}
