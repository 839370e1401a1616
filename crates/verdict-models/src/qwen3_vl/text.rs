//! Qwen3 decoder of Qwen3-VL: QK-norm, grouped-query attention, SwiGLU, RMSNorm, interleaved
//! multimodal rotary and DeepStack injection of visual features into the first layers.

use std::sync::Arc;

use candle_core::{Tensor, Var};
use candle_nn::Init;

use super::config::TextConfig;
use crate::nn::ops::{apply_rotary, Activation};
use crate::nn::{
    checkpoint, merge_heads, scaled_dot_product_attention, GradSink, LayerBuilder, LinearLayer,
    RmsNorm,
};
use crate::{Error, Result};

/// Keys and values of every layer for the tokens seen so far.
///
/// Generation appends to it; [`KvCache::reset`] empties it for the next prompt, and training
/// simply passes no cache.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
        }
    }

    /// Forgets every cached token.
    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(|layer| *layer = None);
    }

    /// Number of cached tokens (0 when empty).
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .and_then(|(k, _)| k.dim(2).ok())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Repeats a single-sequence cache `n` times along the batch, so several continuations
    /// (e.g. candidate labels) share one prompt computation.
    pub fn repeat_batch(&self, n: usize) -> Result<Self> {
        let repeat = |t: &Tensor| -> Result<Tensor> {
            let (b, h, s, d) = t.dims4()?;
            if b != 1 {
                return Err(Error::Input(format!(
                    "can only repeat a batch-1 cache, got {b}"
                )));
            }
            Ok(t.broadcast_as((n, h, s, d))?.contiguous()?)
        };
        let layers = self
            .layers
            .iter()
            .map(|layer| match layer {
                Some((k, v)) => Ok(Some((repeat(k)?, repeat(v)?))),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q_proj: Arc<dyn LinearLayer>,
    k_proj: Arc<dyn LinearLayer>,
    v_proj: Arc<dyn LinearLayer>,
    o_proj: Arc<dyn LinearLayer>,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &TextConfig, builder: &LayerBuilder) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim());
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.num_key_value_heads());
        let bias = cfg.attention_bias;
        Ok(Self {
            q_proj: builder.linear("q_proj", h, heads * hd, bias)?,
            k_proj: builder.linear("k_proj", h, kv_heads * hd, bias)?,
            v_proj: builder.linear("v_proj", h, kv_heads * hd, bias)?,
            o_proj: builder.linear("o_proj", heads * hd, h, bias)?,
            q_norm: RmsNorm::new(hd, cfg.rms_norm_eps, &builder.pp("q_norm"))?,
            k_norm: RmsNorm::new(hd, cfg.rms_norm_eps, &builder.pp("k_norm"))?,
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim: hd,
        })
    }

    /// # Shapes
    /// `xs`: `(batch, seq, hidden)`; `cos`, `sin`: `(batch, 1, seq, head_dim)`;
    /// `mask`: additive, broadcastable to `(batch, heads, seq, past + seq)`.
    fn forward(
        &self,
        xs: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let (b, s, _) = xs.dims3()?;
        let heads =
            |t: Tensor, n: usize| -> Result<Tensor> { Ok(t.reshape((b, s, n, self.head_dim))?) };
        let q = self
            .q_norm
            .forward(&heads(self.q_proj.forward(xs)?, self.num_heads)?)?;
        let k = self
            .k_norm
            .forward(&heads(self.k_proj.forward(xs)?, self.num_kv_heads)?)?;
        let v = heads(self.v_proj.forward(xs)?, self.num_kv_heads)?;
        let q = apply_rotary(&q.transpose(1, 2)?, cos, sin)?;
        let k = apply_rotary(&k.transpose(1, 2)?, cos, sin)?;
        let v = v.transpose(1, 2)?;
        let (k, v) = match cache {
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some((past_k, past_v)) => (
                        Tensor::cat(&[&past_k, &k], 2)?,
                        Tensor::cat(&[&past_v, &v], 2)?,
                    ),
                    None => (k.contiguous()?, v.contiguous()?),
                };
                *slot = Some((k.clone(), v.clone()));
                (k, v)
            }
            None => (k, v),
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let out = scaled_dot_product_attention(&q, &k, &v, mask, scale)?;
        self.o_proj.forward(&merge_heads(&out)?)
    }
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
    self_attn: Attention,
    gate_proj: Arc<dyn LinearLayer>,
    up_proj: Arc<dyn LinearLayer>,
    down_proj: Arc<dyn LinearLayer>,
    act: Activation,
}

impl DecoderLayer {
    fn new(cfg: &TextConfig, builder: &LayerBuilder) -> Result<Self> {
        let mlp = builder.pp("mlp");
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            input_layernorm: RmsNorm::new(h, cfg.rms_norm_eps, &builder.pp("input_layernorm"))?,
            post_attention_layernorm: RmsNorm::new(
                h,
                cfg.rms_norm_eps,
                &builder.pp("post_attention_layernorm"),
            )?,
            self_attn: Attention::new(cfg, &builder.pp("self_attn"))?,
            gate_proj: mlp.linear("gate_proj", h, i, false)?,
            up_proj: mlp.linear("up_proj", h, i, false)?,
            down_proj: mlp.linear("down_proj", i, h, false)?,
            act: Activation::from_name(&cfg.hidden_act)?,
        })
    }

    /// Runs the layer on `xs + pending` and returns its output as `(residual, mlp)`, unadded,
    /// so each residual add happens inside the following norm's kernel on GPUs. `pending` is
    /// the previous layer's `mlp`.
    ///
    /// # Shapes
    /// `xs`, `pending`: `(batch, seq, hidden)`; both results have that shape.
    fn forward_deferred(
        &self,
        xs: &Tensor,
        pending: Option<&Tensor>,
        (cos, sin): (&Tensor, &Tensor),
        mask: Option<&Tensor>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<(Tensor, Tensor)> {
        let (xs, normed) = match pending {
            Some(delta) => self.input_layernorm.forward_add(xs, delta)?,
            None => (xs.clone(), self.input_layernorm.forward(xs)?),
        };
        let attn = self.self_attn.forward(&normed, cos, sin, mask, cache)?;
        let (xs, normed) = self.post_attention_layernorm.forward_add(&xs, &attn)?;
        let gated = self.act.forward_gated(
            &self.gate_proj.forward(&normed)?,
            &self.up_proj.forward(&normed)?,
        )?;
        Ok((xs, self.down_proj.forward(&gated)?))
    }
}

/// Visual features added to the hidden states after the first layers (DeepStack).
#[derive(Debug, Clone)]
pub struct Deepstack {
    /// For every flattened `(batch * seq)` position: 0 for text, `1 + k` for the `k`-th image token.
    pub gather: Tensor,
    /// One `(image_tokens, hidden)` feature map per injected layer, in layer order.
    pub features: Vec<Tensor>,
}

/// Output of the decoder stack.
#[derive(Debug, Clone)]
pub struct TextOutput {
    /// Final normed hidden states, `(batch, seq, hidden)`.
    pub hidden: Tensor,
    /// When requested: input embeddings, then every layer's output (before DeepStack
    /// injection), the last replaced by the normed output; `num_layers + 1` tensors.
    pub all_hidden: Vec<Tensor>,
}

/// The language model (`model.language_model`) without its head.
#[derive(Debug, Clone)]
pub struct TextModel {
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    hidden_size: usize,
}

impl TextModel {
    pub fn new(cfg: &TextConfig, builder: &LayerBuilder) -> Result<Self> {
        let embed_tokens = builder.pp("embed_tokens").get(
            (cfg.vocab_size, cfg.hidden_size),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, &builder.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens,
            layers,
            norm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, &builder.pp("norm"))?,
            hidden_size: cfg.hidden_size,
        })
    }

    /// The token embedding matrix `(vocab, hidden)`; tied heads reuse it.
    pub fn embed_weight(&self) -> &Tensor {
        &self.embed_tokens
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// # Shapes
    /// `input_ids`: `(batch, seq)` u32 -> `(batch, seq, hidden)`.
    pub fn embed(&self, input_ids: &Tensor) -> Result<Tensor> {
        let (b, s) = input_ids.dims2()?;
        let flat = input_ids.flatten_all()?;
        Ok(self
            .embed_tokens
            .index_select(&flat, 0)?
            .reshape((b, s, self.hidden_size))?)
    }

    /// Runs the decoder stack.
    ///
    /// # Shapes
    /// `embeds`: `(batch, seq, hidden)`; `cos`, `sin`: `(batch, 1, seq, head_dim)`;
    /// `mask`: additive `(batch | 1, 1, seq, past + seq)` or `None` for full attention.
    pub fn forward(
        &self,
        embeds: &Tensor,
        (cos, sin): (&Tensor, &Tensor),
        mask: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
        deepstack: Option<&Deepstack>,
        capture_hidden: bool,
    ) -> Result<TextOutput> {
        let (b, s, h) = embeds.dims3()?;
        let mut all_hidden = Vec::new();
        if capture_hidden {
            all_hidden.push(embeds.clone());
        }
        let mut xs = embeds.clone();
        // The last layer's MLP output not yet added to `xs` (see `forward_deferred`).
        let mut pending: Option<Tensor> = None;
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            let (residual, mlp) =
                layer.forward_deferred(&xs, pending.as_ref(), (cos, sin), mask, slot)?;
            let features = deepstack.and_then(|ds| ds.features.get(i).map(|f| (ds, f)));
            if capture_hidden || features.is_some() {
                xs = (residual + mlp)?;
                pending = None;
            } else {
                xs = residual;
                pending = Some(mlp);
            }
            if capture_hidden {
                all_hidden.push(xs.clone());
            }
            if let Some((ds, features)) = features {
                let zero = Tensor::zeros((1, h), features.dtype(), features.device())?;
                let table = Tensor::cat(&[&zero, features], 0)?;
                let add = table.index_select(&ds.gather, 0)?.reshape((b, s, h))?;
                xs = (xs + add.to_dtype(embeds.dtype())?)?;
            }
        }
        let hidden = match &pending {
            Some(mlp) => self.norm.forward_add(&xs, mlp)?.1,
            None => self.norm.forward(&xs)?,
        };
        if capture_hidden {
            all_hidden.pop();
            all_hidden.push(hidden.clone());
        }
        Ok(TextOutput { hidden, all_hidden })
    }

    /// Training forward pass that keeps only each layer's input and recomputes the layer in
    /// the backward pass (see [`crate::nn::recompute`]); gradients of variables inside the
    /// layers (adapters) arrive in `sink`. Returns the final normed hidden states, tracked.
    ///
    /// # Shapes
    /// As [`TextModel::forward`] without a cache: `embeds` `(batch, seq, hidden)` ->
    /// `(batch, seq, hidden)`.
    pub fn forward_recomputed(
        &self,
        embeds: &Tensor,
        (cos, sin): (&Tensor, &Tensor),
        mask: Option<&Tensor>,
        deepstack: Option<&Deepstack>,
        sink: &GradSink,
    ) -> Result<Tensor> {
        let (b, s, h) = embeds.dims3()?;
        // The chain of recomputed layers needs a tracked start; frozen embeddings get a
        // throwaway variable (its gradient is computed and dropped).
        let mut xs = if embeds.track_op() {
            embeds.clone()
        } else {
            Var::from_tensor(embeds)?.into_inner()
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let layer = layer.clone();
            let (cos, sin, mask) = (cos.detach(), sin.detach(), mask.map(Tensor::detach));
            xs = checkpoint(
                &xs,
                move |x: &Tensor| {
                    let (residual, mlp) =
                        layer.forward_deferred(x, None, (&cos, &sin), mask.as_ref(), None)?;
                    Ok((residual + mlp)?)
                },
                sink,
            )?;
            if let Some(features) = deepstack.and_then(|ds| ds.features.get(i).map(|f| (ds, f))) {
                // Outside the recomputed block: the features may carry gradients of their own.
                let (ds, features) = features;
                let zero = Tensor::zeros((1, h), features.dtype(), features.device())?;
                let table = Tensor::cat(&[&zero, features], 0)?;
                let add = table.index_select(&ds.gather, 0)?.reshape((b, s, h))?;
                xs = (xs + add.to_dtype(embeds.dtype())?)?;
            }
        }
        self.norm.forward(&xs)
    }
}
