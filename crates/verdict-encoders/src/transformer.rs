//! The pre-norm transformer encoder shared by CLIP and SigLIP (both towers of both models).
//!
//! Checkpoint layout (`encoder.layers.{i}.*`): `self_attn.{q,k,v,out}_proj`, `layer_norm1`,
//! `mlp.fc1`, `mlp.fc2`, `layer_norm2`. Every linear layer comes from the builder's
//! [`verdict_models::nn::LinearFactory`], so adapters attach by checkpoint path.

use std::sync::Arc;

use candle_core::{Tensor, D};
use verdict_models::nn::{scaled_dot_product_attention, LayerBuilder, LayerNorm, LinearLayer};

use crate::{Error, Result};

/// Activation functions by their `hidden_act` names; all have a backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`, the original CLIP activation (`"quick_gelu"`).
    QuickGelu,
    /// Exact GELU (`"gelu"`).
    GeluErf,
    /// Tanh-approximated GELU (`"gelu_pytorch_tanh"`, `"gelu_new"`), SigLIP's default.
    GeluTanh,
    Relu,
}

impl Activation {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "quick_gelu" => Ok(Self::QuickGelu),
            "gelu" => Ok(Self::GeluErf),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            other => Err(Error::Config(format!(
                "unsupported activation {other:?} (hidden_act)"
            ))),
        }
    }

    pub fn forward(self, xs: &Tensor) -> Result<Tensor> {
        Ok(match self {
            // sigmoid written out: candle-nn's fused sigmoid is fine, but this keeps the
            // backward explicit and the formula next to its name.
            Self::QuickGelu => {
                let gate = ((xs * -1.702)?.exp()? + 1.0)?.recip()?;
                (xs * gate)?
            }
            Self::GeluErf => xs.gelu_erf()?,
            Self::GeluTanh => xs.gelu()?,
            Self::Relu => xs.relu()?,
        })
    }
}

/// Hyper-parameters of one encoder stack, taken from a tower's config.
#[derive(Debug, Clone, Copy)]
pub struct EncoderSpec {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_heads: usize,
    pub num_layers: usize,
    pub layer_norm_eps: f64,
    pub activation: Activation,
}

/// Multi-head self-attention with biased `q/k/v/out` projections.
#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Arc<dyn LinearLayer>,
    k_proj: Arc<dyn LinearLayer>,
    v_proj: Arc<dyn LinearLayer>,
    out_proj: Arc<dyn LinearLayer>,
    num_heads: usize,
    head_dim: usize,
}

impl Attention {
    pub fn new(spec: &EncoderSpec, builder: &LayerBuilder) -> Result<Self> {
        let d = spec.hidden_size;
        if spec.num_heads == 0 || d % spec.num_heads != 0 {
            return Err(Error::Config(format!(
                "hidden_size {d} is not a multiple of num_attention_heads {}",
                spec.num_heads
            )));
        }
        Ok(Self {
            q_proj: builder.linear("q_proj", d, d, true)?,
            k_proj: builder.linear("k_proj", d, d, true)?,
            v_proj: builder.linear("v_proj", d, d, true)?,
            out_proj: builder.linear("out_proj", d, d, true)?,
            num_heads: spec.num_heads,
            head_dim: d / spec.num_heads,
        })
    }

    /// # Shapes
    /// `xs`: `(batch, seq, hidden)`; `mask`: additive, broadcastable to
    /// `(batch, heads, seq, seq)`; returns `(batch, seq, hidden)`.
    pub fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, s, d) = xs.dims3()?;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, s, self.num_heads, self.head_dim))?
                .transpose(1, 2)?)
        };
        let q = split(self.q_proj.forward(xs)?)?;
        let k = split(self.k_proj.forward(xs)?)?;
        let v = split(self.v_proj.forward(xs)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let attended = scaled_dot_product_attention(&q, &k, &v, mask, scale)?;
        let merged = attended.transpose(1, 2)?.reshape((b, s, d))?;
        Ok(self.out_proj.forward(&merged)?)
    }
}

/// Two-layer feed-forward block `fc2(act(fc1(x)))`.
#[derive(Debug, Clone)]
pub struct Mlp {
    fc1: Arc<dyn LinearLayer>,
    fc2: Arc<dyn LinearLayer>,
    activation: Activation,
}

impl Mlp {
    pub fn new(spec: &EncoderSpec, builder: &LayerBuilder) -> Result<Self> {
        Ok(Self {
            fc1: builder.linear("fc1", spec.hidden_size, spec.intermediate_size, true)?,
            fc2: builder.linear("fc2", spec.intermediate_size, spec.hidden_size, true)?,
            activation: spec.activation,
        })
    }

    /// # Shapes
    /// `xs`: `(.., hidden)` -> `(.., hidden)`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let hidden = self.activation.forward(&self.fc1.forward(xs)?)?;
        Ok(self.fc2.forward(&hidden)?)
    }
}

/// `x + attn(ln1(x))`, then `x + mlp(ln2(x))`.
#[derive(Debug, Clone)]
pub struct EncoderLayer {
    self_attn: Attention,
    layer_norm1: LayerNorm,
    mlp: Mlp,
    layer_norm2: LayerNorm,
}

impl EncoderLayer {
    pub fn new(spec: &EncoderSpec, builder: &LayerBuilder) -> Result<Self> {
        Ok(Self {
            self_attn: Attention::new(spec, &builder.pp("self_attn"))?,
            layer_norm1: LayerNorm::new(
                spec.hidden_size,
                spec.layer_norm_eps,
                &builder.pp("layer_norm1"),
            )?,
            mlp: Mlp::new(spec, &builder.pp("mlp"))?,
            layer_norm2: LayerNorm::new(
                spec.hidden_size,
                spec.layer_norm_eps,
                &builder.pp("layer_norm2"),
            )?,
        })
    }

    /// # Shapes
    /// `xs`: `(batch, seq, hidden)`, same shape out.
    pub fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let attended = self
            .self_attn
            .forward(&self.layer_norm1.forward(xs)?, mask)?;
        let xs = (xs + attended)?;
        let fed = self.mlp.forward(&self.layer_norm2.forward(&xs)?)?;
        Ok((xs + fed)?)
    }
}

/// The stack `encoder.layers.{0..n}`.
#[derive(Debug, Clone)]
pub struct Encoder {
    layers: Vec<EncoderLayer>,
}

impl Encoder {
    /// `builder` points at the tower's `encoder`.
    pub fn new(spec: &EncoderSpec, builder: &LayerBuilder) -> Result<Self> {
        let layers = (0..spec.num_layers)
            .map(|i| EncoderLayer::new(spec, &builder.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    /// # Shapes
    /// `xs`: `(batch, seq, hidden)`, same shape out.
    pub fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let mut xs = xs.clone();
        for layer in &self.layers {
            xs = layer.forward(&xs, mask)?;
        }
        Ok(xs)
    }
}

/// Turns images into patch tokens with the checkpoint's `patch_embedding` convolution weight,
/// written as an unfold + matmul (a stride-`p` convolution with a `p x p` kernel is exactly that)
/// so it backpropagates on every backend.
///
/// # Shapes
/// `pixel_values`: `(batch, channels, height, width)`; `weight`: `(hidden, channels, p, p)`;
/// `bias`: `(hidden,)`; returns `(batch, (height / p) * (width / p), hidden)` in raster order.
pub fn patchify(pixel_values: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (b, c, h, w) = pixel_values.dims4()?;
    let (hidden, wc, p, p2) = weight.dims4()?;
    if wc != c || p != p2 || p == 0 || h % p != 0 || w % p != 0 {
        return Err(Error::Input(format!(
            "pixel values {:?} do not fit patch embedding {:?}",
            (b, c, h, w),
            (hidden, wc, p, p2)
        )));
    }
    let (gh, gw) = (h / p, w / p);
    let patches = pixel_values
        .reshape((b, c, gh, p, gw, p))?
        .permute((0, 2, 4, 1, 3, 5))?
        .contiguous()?
        .reshape((b, gh * gw, c * p * p))?;
    let flat = weight.reshape((hidden, c * p * p))?;
    let out = patches.broadcast_matmul(&flat.t()?)?;
    Ok(match bias {
        Some(bias) => out.broadcast_add(bias)?,
        None => out,
    })
}

/// Divides each row by its L2 norm.
///
/// # Shapes
/// `xs`: `(n, d)`, same shape out.
pub fn l2_normalize(xs: &Tensor) -> Result<Tensor> {
    let norm = xs.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    Ok(xs.broadcast_div(&norm)?)
}
