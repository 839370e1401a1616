//! A linear-layer factory that makes selected layers trainable (their checkpoint weights
//! copied into variables) and builds every other layer frozen.
//!
//! Used for the "projection/head" parameter group: the adapter factory wraps this one, so
//! adapters attach to the frozen encoder layers while the projections are tuned directly.

use std::sync::{Arc, Mutex};

use candle_core::Var;
use candle_nn::VarBuilder;
use verdict_models::nn::{Linear, LinearFactory, LinearLayer, LinearSpec};

/// Builds layers whose path ends with one of `paths` with trainable weights.
#[derive(Debug, Default)]
pub struct TrainableLinearFactory {
    paths: Vec<String>,
    vars: Mutex<Vec<(String, Var)>>,
}

impl TrainableLinearFactory {
    pub fn new<S: AsRef<str>>(paths: &[S]) -> Arc<Self> {
        Arc::new(Self {
            paths: paths.iter().map(|p| p.as_ref().to_string()).collect(),
            vars: Mutex::new(Vec::new()),
        })
    }

    fn selects(&self, path: &str) -> bool {
        self.paths
            .iter()
            .any(|p| path == p || path.ends_with(&format!(".{p}")))
    }

    /// `(checkpoint name, variable)` of every trainable tensor, e.g.
    /// `("visual_projection.weight", ..)`, in build order.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.vars.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl LinearFactory for TrainableLinearFactory {
    fn build(
        &self,
        spec: &LinearSpec,
        vb: VarBuilder,
    ) -> verdict_models::Result<Arc<dyn LinearLayer>> {
        let base = Linear::load(spec, &vb)?;
        if !self.selects(&spec.path) {
            return Ok(Arc::new(base));
        }
        let weight = Var::from_tensor(base.weight())?;
        let bias = match base.bias() {
            Some(bias) => Some(Var::from_tensor(bias)?),
            None => None,
        };
        let mut vars = self.vars.lock().unwrap_or_else(|e| e.into_inner());
        vars.push((format!("{}.weight", spec.path), weight.clone()));
        if let Some(bias) = &bias {
            vars.push((format!("{}.bias", spec.path), bias.clone()));
        }
        Ok(Arc::new(Linear::new(
            weight.as_tensor().clone(),
            bias.map(|b| b.as_tensor().clone()),
        )))
    }
}
