//! The full Qwen3-VL model: vision tower + language model + LM head, and the glue between
//! them (image tokens replaced by image features, DeepStack gather indices, 3-D positions).

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::config::Config;
use super::rope::{MropePositions, TextRotary};
use super::text::{Deepstack, KvCache, TextModel};
use super::vision::{VisionModel, VisionOutput};
use super::weights;
use crate::nn::{attention_mask, GradSink, LayerBuilder, LinearFactory, LinearLayer};
use crate::{Error, Result};

/// One batch of model input, already tokenised and preprocessed.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Token ids, all rows the same length (padded).
    pub input_ids: Vec<Vec<u32>>,
    /// `true` for real tokens, `false` for padding; `None` means no padding.
    pub attention_mask: Option<Vec<Vec<bool>>>,
    /// `(patches, patch_dim)` pixel patches of all images of the batch, in order.
    pub pixel_values: Option<Tensor>,
    /// Patch grid (t, h, w) of every image, in order of appearance over the batch.
    pub image_grid_thw: Vec<[usize; 3]>,
}

impl Batch {
    /// A single text-only or image sequence without padding.
    pub fn single(
        input_ids: Vec<u32>,
        pixel_values: Option<Tensor>,
        image_grid_thw: Vec<[usize; 3]>,
    ) -> Self {
        Self {
            input_ids: vec![input_ids],
            attention_mask: None,
            pixel_values,
            image_grid_thw,
        }
    }

    /// Left-pads sequences of different lengths with `pad_id` (generation continues at the
    /// right end of every row).
    pub fn left_padded(
        sequences: Vec<Vec<u32>>,
        pad_id: u32,
        pixel_values: Option<Tensor>,
        image_grid_thw: Vec<[usize; 3]>,
    ) -> Self {
        let len = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(sequences.len());
        let mut mask = Vec::with_capacity(sequences.len());
        for seq in sequences {
            let pad = len - seq.len();
            mask.push(
                std::iter::repeat_n(false, pad)
                    .chain(std::iter::repeat_n(true, seq.len()))
                    .collect(),
            );
            ids.push(std::iter::repeat_n(pad_id, pad).chain(seq).collect());
        }
        Self {
            input_ids: ids,
            attention_mask: Some(mask),
            pixel_values,
            image_grid_thw,
        }
    }

    pub fn batch_size(&self) -> usize {
        self.input_ids.len()
    }

    pub fn seq_len(&self) -> usize {
        self.input_ids.first().map(Vec::len).unwrap_or(0)
    }
}

/// Which positions get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Every position (training, scoring, parity checks).
    All,
    /// Only the last position (generation).
    Last,
}

/// Everything a forward pass produces.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// `(batch, seq | 1, vocab)`.
    pub logits: Tensor,
    /// Text hidden states when requested (see [`super::text::TextOutput::all_hidden`]).
    pub hidden_states: Vec<Tensor>,
    /// Vision tower output when the batch had images.
    pub vision: Option<VisionOutput>,
    /// The 3-D rotary positions used.
    pub positions: MropePositions,
}

/// Qwen3-VL for conditional generation (checkpoint root: `model.visual`,
/// `model.language_model`, `lm_head`).
#[derive(Debug, Clone)]
pub struct Qwen3VL {
    config: Config,
    visual: VisionModel,
    text: TextModel,
    lm_head: Option<Arc<dyn LinearLayer>>,
    rotary: TextRotary,
    device: Device,
    dtype: DType,
}

impl Qwen3VL {
    /// Builds the model from `builder` (checkpoint weights or fresh `VarMap` variables).
    pub fn new(config: &Config, builder: &LayerBuilder) -> Result<Self> {
        config.validate()?;
        let text_cfg = &config.text_config;
        let model = builder.pp("model");
        let visual = VisionModel::new(&config.vision_config, &model.pp("visual"))?;
        let text = TextModel::new(text_cfg, &model.pp("language_model"))?;
        let lm_head = if config.tie_word_embeddings() {
            None
        } else {
            Some(builder.linear("lm_head", text_cfg.hidden_size, text_cfg.vocab_size, false)?)
        };
        let rotary = TextRotary::new(
            text_cfg.head_dim(),
            text_cfg.rope_theta(),
            &text_cfg.mrope_section(),
        );
        Ok(Self {
            config: config.clone(),
            visual,
            text,
            lm_head,
            rotary,
            device: builder.device().clone(),
            dtype: builder.dtype(),
        })
    }

    /// Loads `config.json` and the safetensors weights of a checkpoint directory.
    /// `linear_factory` lets adapters wrap linear layers; `None` gives plain layers.
    pub fn load(
        dir: &Path,
        dtype: DType,
        device: &Device,
        linear_factory: Option<Arc<dyn LinearFactory>>,
    ) -> Result<Self> {
        let config = Config::from_file(&dir.join("config.json"))?;
        let vb = weights::var_builder(dir, dtype, device)?;
        let builder = match linear_factory {
            Some(factory) => LayerBuilder::with_linear_factory(vb, factory),
            None => LayerBuilder::new(vb),
        };
        Self::new(&config, &builder)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn vision(&self) -> &VisionModel {
        &self.visual
    }

    /// A KV cache sized for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.text.num_layers())
    }

    /// Token embeddings with image features placed at image tokens, plus DeepStack indices.
    fn embed_batch(
        &self,
        batch: &Batch,
    ) -> Result<(Tensor, Option<VisionOutput>, Option<Deepstack>)> {
        let (b, s) = (batch.batch_size(), batch.seq_len());
        if batch.input_ids.iter().any(|row| row.len() != s) {
            return Err(Error::Input(
                "input_ids rows differ in length; pad them first".into(),
            ));
        }
        let flat: Vec<u32> = batch.input_ids.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat.clone(), (b, s), &self.device)?;
        let embeds = self.text.embed(&ids)?;
        let image_token = self.config.image_token_id;
        let image_positions: Vec<usize> = (0..flat.len())
            .filter(|&i| flat[i] == image_token)
            .collect();
        let Some(pixel_values) = &batch.pixel_values else {
            if !image_positions.is_empty() {
                return Err(Error::Input(format!(
                    "{} image tokens but no pixel_values",
                    image_positions.len()
                )));
            }
            return Ok((embeds, None, None));
        };
        let vision = self.visual.forward(pixel_values, &batch.image_grid_thw)?;
        let image_rows = vision.embeds.dim(0)?;
        if image_rows != image_positions.len() {
            return Err(Error::Input(format!(
                "image features and image tokens do not match: {image_rows} features, {} tokens",
                image_positions.len()
            )));
        }
        let hidden = embeds.dim(2)?;
        let mut take = (0..flat.len() as u32).collect::<Vec<u32>>();
        let mut deepstack_gather = vec![0u32; flat.len()];
        for (k, &p) in image_positions.iter().enumerate() {
            take[p] = (flat.len() + k) as u32;
            deepstack_gather[p] = (k + 1) as u32;
        }
        let take = Tensor::from_vec(take, flat.len(), &self.device)?;
        let table = Tensor::cat(
            &[
                &embeds.reshape((b * s, hidden))?,
                &vision.embeds.to_dtype(embeds.dtype())?,
            ],
            0,
        )?;
        let embeds = table.index_select(&take, 0)?.reshape((b, s, hidden))?;
        let deepstack = Deepstack {
            gather: Tensor::from_vec(deepstack_gather, flat.len(), &self.device)?,
            features: vision.deepstack.clone(),
        };
        Ok((embeds, Some(vision), Some(deepstack)))
    }

    /// Forward pass over a whole batch from an empty cache (prefill), or without a cache
    /// (training). Padding follows `batch.attention_mask`.
    pub fn forward(
        &self,
        batch: &Batch,
        cache: Option<&mut KvCache>,
        logits: Logits,
        capture_hidden: bool,
    ) -> Result<ForwardOutput> {
        if let Some(cache) = &cache {
            if !cache.is_empty() {
                return Err(Error::Input(
                    "forward expects an empty cache; call reset() first".into(),
                ));
            }
        }
        let (embeds, vision, deepstack) = self.embed_batch(batch)?;
        let positions = MropePositions::new(
            &batch.input_ids,
            batch.attention_mask.as_deref(),
            &batch.image_grid_thw,
            self.config.image_token_id,
            self.config.vision_config.spatial_merge_size,
        )?;
        let output = self.forward_embeds(
            &embeds,
            &positions,
            0,
            batch.attention_mask.as_deref(),
            cache,
            deepstack.as_ref(),
            logits,
            capture_hidden,
        )?;
        Ok(ForwardOutput {
            logits: output.0,
            hidden_states: output.1,
            vision,
            positions,
        })
    }

    /// Continues cached sequences with more text tokens (generation and label scoring).
    ///
    /// `key_valid` marks real tokens over all `cache.len() + seq` keys per row (`None`: no
    /// padding anywhere). Returns `(batch, seq | 1, vocab)` logits.
    pub fn forward_continuation(
        &self,
        input_ids: &[Vec<u32>],
        positions: &MropePositions,
        key_valid: Option<&[Vec<bool>]>,
        cache: &mut KvCache,
        logits: Logits,
    ) -> Result<Tensor> {
        let (b, s) = (
            input_ids.len(),
            input_ids.first().map(Vec::len).unwrap_or(0),
        );
        let flat: Vec<u32> = input_ids.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat, (b, s), &self.device)?;
        let embeds = self.text.embed(&ids)?;
        let past = cache.len();
        Ok(self
            .forward_embeds(
                &embeds,
                positions,
                past,
                key_valid,
                Some(cache),
                None,
                logits,
                false,
            )?
            .0)
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_embeds(
        &self,
        embeds: &Tensor,
        positions: &MropePositions,
        past: usize,
        key_valid: Option<&[Vec<bool>]>,
        cache: Option<&mut KvCache>,
        deepstack: Option<&Deepstack>,
        logits: Logits,
        capture_hidden: bool,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let s = embeds.dim(1)?;
        let (cos, sin) = self
            .rotary
            .cos_sin(positions, embeds.dtype(), &self.device)?;
        let mask = if s == 1 && key_valid.is_none() {
            None
        } else {
            Some(attention_mask(s, past, true, key_valid, &self.device)?)
        };
        let output = self.text.forward(
            embeds,
            (&cos, &sin),
            mask.as_ref(),
            cache,
            deepstack,
            capture_hidden,
        )?;
        let hidden = match logits {
            Logits::All => output.hidden,
            Logits::Last => output.hidden.narrow(1, s - 1, 1)?,
        };
        Ok((self.project(&hidden)?, output.all_hidden))
    }

    /// Final hidden states (after the last norm) of a whole batch without a cache, for
    /// training objectives that need logits at a few positions only: computing the
    /// vocabulary projection for the answer tokens alone saves `seq x vocab` activations.
    ///
    /// # Shapes
    /// -> `(batch, seq, hidden)`; [`Qwen3VL::project`] maps any `(.., hidden)` to logits.
    pub fn forward_hidden(&self, batch: &Batch) -> Result<Tensor> {
        self.forward_hidden_with(batch, None)
    }

    /// [`Qwen3VL::forward_hidden`], optionally recomputing each decoder layer in the
    /// backward pass instead of keeping its activations (`recompute`: where the gradients of
    /// the adapters inside the layers go; merge them with [`GradSink::merge_into`] after
    /// `loss.backward()`).
    pub fn forward_hidden_with(
        &self,
        batch: &Batch,
        recompute: Option<&GradSink>,
    ) -> Result<Tensor> {
        let (embeds, _, deepstack) = self.embed_batch(batch)?;
        let positions = MropePositions::new(
            &batch.input_ids,
            batch.attention_mask.as_deref(),
            &batch.image_grid_thw,
            self.config.image_token_id,
            self.config.vision_config.spatial_merge_size,
        )?;
        let s = embeds.dim(1)?;
        let (cos, sin) = self
            .rotary
            .cos_sin(&positions, embeds.dtype(), &self.device)?;
        let mask = attention_mask(s, 0, true, batch.attention_mask.as_deref(), &self.device)?;
        if let Some(sink) = recompute {
            return self.text.forward_recomputed(
                &embeds,
                (&cos, &sin),
                Some(&mask),
                deepstack.as_ref(),
                sink,
            );
        }
        let output = self.text.forward(
            &embeds,
            (&cos, &sin),
            Some(&mask),
            None,
            deepstack.as_ref(),
            false,
        )?;
        Ok(output.hidden)
    }

    /// The LM head (or the tied embedding matrix).
    ///
    /// # Shapes
    /// `hidden`: `(.., hidden)` -> `(.., vocab)`.
    pub fn project(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(match &self.lm_head {
            Some(head) => head.forward(hidden)?,
            None => {
                // Tied embeddings: one 2-D product over every position. A broadcast matmul
                // would materialise the (vocab x hidden) matrix once per batch row, which
                // cost more than the rest of a batched GPU forward and grew without bound.
                let weight = self.text.embed_weight();
                let mut dims = hidden.dims().to_vec();
                let width = dims.pop().unwrap_or(0);
                let rows = hidden.contiguous()?.reshape(((), width))?;
                let logits = crate::nn::frozen::matmul_t(&rows, weight)?;
                dims.push(weight.dim(0)?);
                logits.reshape(dims)?
            }
        })
    }
}
