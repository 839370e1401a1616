//! [`DualEncoder`]: CLIP or SigLIP behind one interface, chosen by the checkpoint's
//! `model_type`, and [`Embedder`]: a model with its image processor and tokenizer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use image::RgbImage;
use verdict_models::nn::{LayerBuilder, LinearFactory};

use crate::clip::{ClipConfig, ClipModel};
use crate::error::read_json;
use crate::loss::{info_nce_loss, sigmoid_loss};
use crate::preprocess::ImageProcessor;
use crate::siglip::{SiglipConfig, SiglipModel};
use crate::tokenize::{Padding, TextBatch, TextTokenizer};
use crate::transformer::l2_normalize;
use crate::{Error, Result};

/// Which family a checkpoint belongs to; decides the loss and how scores become probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderKind {
    /// Softmax over candidates (InfoNCE training).
    Clip,
    /// Independent sigmoid per image-text pair (sigmoid loss).
    Siglip,
}

/// A loaded CLIP or SigLIP model.
#[derive(Debug, Clone)]
pub enum DualEncoder {
    Clip(ClipModel),
    Siglip(SiglipModel),
}

impl DualEncoder {
    /// Reads `config.json` of `dir` and builds the model from `vb` (checkpoint weights, or a
    /// `VarMap` for fresh ones); linear layers come from `factory` (plain when `None`).
    pub fn from_var_builder(
        dir: &Path,
        vb: VarBuilder,
        factory: Option<Arc<dyn LinearFactory>>,
    ) -> Result<Self> {
        let config_path = dir.join("config.json");
        let value: serde_json::Value = read_json(&config_path)?;
        let model_type = value
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let builder = match factory {
            Some(factory) => LayerBuilder::with_linear_factory(vb, factory),
            None => LayerBuilder::new(vb),
        };
        let parse_error = |source| Error::Json {
            path: config_path.clone(),
            source,
        };
        match model_type.as_str() {
            "clip" => {
                let config: ClipConfig = serde_json::from_value(value).map_err(parse_error)?;
                Ok(Self::Clip(ClipModel::new(&config, &builder)?))
            }
            "siglip" => {
                let config: SiglipConfig = serde_json::from_value(value).map_err(parse_error)?;
                Ok(Self::Siglip(SiglipModel::new(&config, &builder)?))
            }
            other => Err(Error::Config(format!(
                "{}: model_type {other:?} is neither \"clip\" nor \"siglip\"",
                config_path.display()
            ))),
        }
    }

    /// Loads a checkpoint directory's safetensors weights.
    pub fn load(
        dir: &Path,
        device: &Device,
        factory: Option<Arc<dyn LinearFactory>>,
    ) -> Result<Self> {
        let vb = verdict_models::qwen3_vl::weights::var_builder(dir, DType::F32, device)?;
        Self::from_var_builder(dir, vb, factory)
    }

    pub fn kind(&self) -> EncoderKind {
        match self {
            Self::Clip(_) => EncoderKind::Clip,
            Self::Siglip(_) => EncoderKind::Siglip,
        }
    }

    /// Checkpoint paths of the layers that map tower outputs into the shared space; the
    /// "projection/head" parameter group when fine-tuning.
    pub fn projection_paths(&self) -> &'static [&'static str] {
        match self {
            Self::Clip(_) => &["visual_projection", "text_projection"],
            Self::Siglip(_) => &["vision_model.head.mlp.fc2", "text_model.head"],
        }
    }

    /// # Shapes
    /// `(batch, 3, size, size)` -> `(batch, dim)`, not normalised.
    pub fn image_features(&self, pixel_values: &Tensor) -> Result<Tensor> {
        match self {
            Self::Clip(m) => m.image_features(pixel_values),
            Self::Siglip(m) => m.image_features(pixel_values),
        }
    }

    /// # Shapes
    /// `input_ids`: `(batch, seq)` -> `(batch, dim)`, not normalised.
    pub fn text_features(&self, input_ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        match self {
            Self::Clip(m) => m.text_features(input_ids, mask),
            Self::Siglip(m) => m.text_features(input_ids, mask),
        }
    }

    /// L2-normalised image embeddings.
    pub fn image_embeddings(&self, pixel_values: &Tensor) -> Result<Tensor> {
        l2_normalize(&self.image_features(pixel_values)?)
    }

    /// L2-normalised text embeddings.
    pub fn text_embeddings(&self, batch: &TextBatch, device: &Device) -> Result<Tensor> {
        let (ids, mask) = batch.to_tensors(device)?;
        l2_normalize(&self.text_features(&ids, mask.as_ref())?)
    }

    /// `exp(logit_scale)` and the bias (zero for CLIP), as scalar tensors of shape `()`.
    pub fn scale_and_bias(&self) -> Result<(Tensor, Tensor)> {
        match self {
            Self::Clip(m) => {
                let scale = m.logit_scale().reshape(())?.exp()?;
                let bias = scale.zeros_like()?;
                Ok((scale, bias))
            }
            Self::Siglip(m) => Ok((
                m.logit_scale().reshape(())?.exp()?,
                m.logit_bias().reshape(())?,
            )),
        }
    }

    /// Image-text logits from normalised embeddings: `scale * img @ txt^T + bias`.
    ///
    /// # Shapes
    /// `images`: `(n, d)`, `texts`: `(m, d)` -> `(n, m)`.
    pub fn logits(&self, images: &Tensor, texts: &Tensor) -> Result<Tensor> {
        let (scale, bias) = self.scale_and_bias()?;
        let cosine = images.matmul(&texts.t()?)?;
        Ok(cosine.broadcast_mul(&scale)?.broadcast_add(&bias)?)
    }

    /// The family's training loss on matching pairs (row `i` of both inputs belong together):
    /// symmetric InfoNCE for CLIP, the pairwise sigmoid loss for SigLIP.
    ///
    /// # Shapes
    /// `images`, `texts`: `(n, d)` normalised -> scalar.
    pub fn pair_loss(&self, images: &Tensor, texts: &Tensor) -> Result<Tensor> {
        let logits = self.logits(images, texts)?;
        match self.kind() {
            EncoderKind::Clip => info_nce_loss(&logits),
            EncoderKind::Siglip => sigmoid_loss(&logits),
        }
    }

    fn text_limits(&self) -> (usize, Padding, u32) {
        match self {
            Self::Clip(m) => {
                let text = &m.config().text_config;
                let pad = text.pad_token_id.or(text.eos_token_id).unwrap_or(0);
                (text.max_position_embeddings, Padding::Longest, pad)
            }
            Self::Siglip(m) => {
                let text = &m.config().text_config;
                (
                    text.max_position_embeddings,
                    Padding::MaxLength,
                    text.pad_token_id.unwrap_or(1),
                )
            }
        }
    }
}

/// A dual encoder with its checkpoint's preprocessing: images and texts in, normalised
/// embeddings out.
#[derive(Debug, Clone)]
pub struct Embedder {
    pub model: DualEncoder,
    pub processor: Arc<ImageProcessor>,
    pub tokenizer: TextTokenizer,
    pub device: Device,
    pub dir: PathBuf,
}

impl Embedder {
    /// Loads model, `preprocessor_config.json` and `tokenizer.json` from `dir`.
    pub fn load(
        dir: &Path,
        device: &Device,
        factory: Option<Arc<dyn LinearFactory>>,
    ) -> Result<Self> {
        let model = DualEncoder::load(dir, device, factory)?;
        Self::with_model(dir, model, device)
    }

    /// Wraps an already built model (e.g. one with trainable adapters) with `dir`'s
    /// preprocessing.
    pub fn with_model(dir: &Path, model: DualEncoder, device: &Device) -> Result<Self> {
        let (max_length, padding, pad_id) = model.text_limits();
        Ok(Self {
            processor: Arc::new(ImageProcessor::from_dir(dir)?),
            tokenizer: TextTokenizer::from_dir(dir, max_length, padding, pad_id)?,
            model,
            device: device.clone(),
            dir: dir.to_path_buf(),
        })
    }

    /// # Shapes
    /// Returns `(images.len(), dim)` normalised.
    pub fn embed_images(&self, images: &[RgbImage]) -> Result<Tensor> {
        let pixels = self.processor.preprocess(images, &self.device)?;
        self.model.image_embeddings(&pixels)
    }

    /// # Shapes
    /// Returns `(texts.len(), dim)` normalised.
    pub fn embed_texts<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tensor> {
        if texts.is_empty() {
            return Err(Error::Input("no texts to embed".into()));
        }
        let batch = self.tokenizer.encode(texts)?;
        self.model.text_embeddings(&batch, &self.device)
    }
}
