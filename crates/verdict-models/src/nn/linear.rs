//! Linear layers built through one constructor.
//!
//! Models never create a linear layer directly: they describe it with a [`LinearSpec`]
//! (checkpoint path, dimensions, bias) and ask the [`LinearFactory`] of their
//! [`crate::nn::LayerBuilder`]. An adapter crate supplies its own factory that wraps the base
//! layer of selected paths (e.g. every `q_proj`), so adapters attach without forking a model and
//! base weights keep their checkpoint names.

use std::sync::Arc;

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use super::ops::Activation;
use crate::Result;

/// A layer computing `xs @ weight^T + bias` (or something that behaves like one).
pub trait LinearLayer: Send + Sync + std::fmt::Debug {
    /// # Shapes
    /// `xs`: `(.., in_dim)` -> `(.., out_dim)`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor>;

    /// `act(forward(xs))`; a plain layer fuses its bias add into the activation on GPUs.
    ///
    /// # Shapes
    /// `xs`: `(.., in_dim)` -> `(.., out_dim)`.
    fn forward_act(&self, xs: &Tensor, act: Activation) -> Result<Tensor> {
        act.forward(&self.forward(xs)?)
    }
}

/// Description of one linear layer as the model asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearSpec {
    /// Full checkpoint path of the layer, e.g. `model.language_model.layers.0.self_attn.q_proj`.
    pub path: String,
    pub in_dim: usize,
    pub out_dim: usize,
    pub bias: bool,
}

/// Builds every linear layer of a model; see the module docs for why this is a trait object.
pub trait LinearFactory: Send + Sync {
    /// Builds the layer described by `spec`; `vb` is already prefixed with `spec.path`.
    fn build(&self, spec: &LinearSpec, vb: VarBuilder) -> Result<Arc<dyn LinearLayer>>;
}

/// Plain dense layer: weight `(out_dim, in_dim)` and optional bias `(out_dim,)`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// Loads `weight` (and `bias`) under `vb`; with a `VarMap`-backed builder the tensors are
    /// created as trainable variables with the usual fan-in initialisation.
    pub fn load(spec: &LinearSpec, vb: &VarBuilder) -> Result<Self> {
        let bound = 1.0 / (spec.in_dim as f64).sqrt();
        let init = candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints((spec.out_dim, spec.in_dim), "weight", init)?;
        let bias = if spec.bias {
            Some(vb.get_with_hints(spec.out_dim, "bias", init)?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `xs @ weight^T`, without the bias.
    fn product(&self, xs: &Tensor) -> Result<Tensor> {
        if xs.track_op() && !self.weight.track_op() {
            // Training through a frozen layer: no gradient for the weight (see `frozen`).
            let mut dims = xs.dims().to_vec();
            let width = dims.pop().unwrap_or(0);
            let rows = xs.contiguous()?.reshape(((), width))?;
            dims.push(self.weight.dim(0)?);
            return Ok(super::frozen::matmul_t(&rows, &self.weight)?.reshape(dims)?);
        }
        let layer = candle_nn::Linear::new(self.weight.clone(), None);
        if xs.is_contiguous() {
            Ok(layer.forward(xs)?)
        } else {
            Ok(layer.forward(&xs.contiguous()?)?)
        }
    }
}

impl LinearLayer for Linear {
    fn forward_act(&self, xs: &Tensor, act: Activation) -> Result<Tensor> {
        if let (Some(bias), Activation::GeluTanh) = (&self.bias, act) {
            let product = self.product(xs)?;
            if let Some(out) = super::gpu::bias_gelu_tanh(&product, bias)? {
                return Ok(out);
            }
            return act.forward(&product.broadcast_add(bias)?);
        }
        act.forward(&self.forward(xs)?)
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        // candle_nn::Linear has a backward and folds a contiguous (b, s, in) input into one
        // 2-D product; a strided input (e.g. the last position of each sequence) would instead
        // take its broadcast path, which copies the weight once per batch row: for a language
        // model head that copy cost more than the whole rest of the forward on a GPU.
        let product = self.product(xs)?;
        match &self.bias {
            None => Ok(product),
            Some(bias) => match super::gpu::bias_add(&product, bias)? {
                Some(out) => Ok(out),
                None => Ok(product.broadcast_add(bias)?),
            },
        }
    }
}

/// The factory used when nothing wraps the model: loads a [`Linear`] from the checkpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultLinearFactory;

impl LinearFactory for DefaultLinearFactory {
    fn build(&self, spec: &LinearSpec, vb: VarBuilder) -> Result<Arc<dyn LinearLayer>> {
        Ok(Arc::new(Linear::load(spec, &vb)?))
    }
}
