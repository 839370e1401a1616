//! [`LayerBuilder`]: a `VarBuilder` plus the linear-layer constructor, passed down a model tree.

use std::sync::Arc;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::{Init, VarBuilder};

use super::linear::{DefaultLinearFactory, LinearFactory, LinearLayer, LinearSpec};
use crate::Result;

/// Where a model's parameters come from and how its linear layers are built.
///
/// `pp("name")` descends into a checkpoint sub-path exactly like `VarBuilder::pp`, so model
/// code reads like the checkpoint's key names.
#[derive(Clone)]
pub struct LayerBuilder<'a> {
    vb: VarBuilder<'a>,
    linear_factory: Arc<dyn LinearFactory>,
}

impl<'a> LayerBuilder<'a> {
    /// Builder with plain dense linear layers.
    pub fn new(vb: VarBuilder<'a>) -> Self {
        Self {
            vb,
            linear_factory: Arc::new(DefaultLinearFactory),
        }
    }

    /// Builder whose linear layers come from `factory` (adapters, quantisation, ...).
    pub fn with_linear_factory(vb: VarBuilder<'a>, factory: Arc<dyn LinearFactory>) -> Self {
        Self {
            vb,
            linear_factory: factory,
        }
    }

    /// Descends into the sub-path `name`.
    pub fn pp<S: ToString>(&self, name: S) -> Self {
        Self {
            vb: self.vb.pp(name),
            linear_factory: self.linear_factory.clone(),
        }
    }

    /// Full checkpoint path of this builder, e.g. `model.visual.blocks.0`.
    pub fn path(&self) -> String {
        self.vb.prefix()
    }

    /// Path of a child key, without descending.
    pub fn child_path(&self, name: &str) -> String {
        let prefix = self.vb.prefix();
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    }

    pub fn dtype(&self) -> DType {
        self.vb.dtype()
    }

    pub fn device(&self) -> &Device {
        self.vb.device()
    }

    pub fn var_builder(&self) -> &VarBuilder<'a> {
        &self.vb
    }

    /// True if the checkpoint holds tensor `name` under this path.
    pub fn contains(&self, name: &str) -> bool {
        self.vb.contains_tensor(name)
    }

    /// The linear layer at sub-path `name`, built by the configured factory.
    pub fn linear(
        &self,
        name: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> Result<Arc<dyn LinearLayer>> {
        let spec = LinearSpec {
            path: self.child_path(name),
            in_dim,
            out_dim,
            bias,
        };
        self.linear_factory.build(&spec, self.vb.pp(name))
    }

    /// A parameter tensor; `init` is used only when the builder creates fresh variables.
    pub fn get<S: Into<Shape>>(&self, shape: S, name: &str, init: Init) -> Result<Tensor> {
        Ok(self.vb.get_with_hints(shape, name, init)?)
    }
}
