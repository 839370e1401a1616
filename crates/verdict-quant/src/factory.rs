//! A [`LinearFactory`] that loads each linear layer's full weight from the checkpoint and keeps
//! it only in quantised form, so a model (and a LoRA factory wrapping this one) runs on
//! quantised base weights without any change to model code.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use verdict_models::nn::{LinearFactory, LinearLayer, LinearSpec};

use crate::int8::Int8Rows;
use crate::linear::QuantLinear;
use crate::memory::MemoryReport;
use crate::nf4::Nf4;

/// Storage of the frozen base weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// 4-bit NormalFloat, blocks of 64, double-quantised scales (QLoRA).
    #[default]
    Nf4,
    /// 8-bit integers with one absmax scale per output row.
    Int8,
}

impl std::str::FromStr for Scheme {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "nf4" => Ok(Scheme::Nf4),
            "int8" => Ok(Scheme::Int8),
            other => Err(format!(
                "unknown quantisation {other:?}; expected nf4 or int8"
            )),
        }
    }
}

/// Builds [`QuantLinear`] layers and tallies their memory.
#[derive(Debug)]
pub struct QuantFactory {
    scheme: Scheme,
    report: Mutex<MemoryReport>,
}

impl QuantFactory {
    pub fn new(scheme: Scheme) -> Arc<Self> {
        Arc::new(Self {
            scheme,
            report: Mutex::new(MemoryReport::default()),
        })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Memory of every layer built so far.
    pub fn report(&self) -> MemoryReport {
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl LinearFactory for QuantFactory {
    fn build(
        &self,
        spec: &LinearSpec,
        vb: VarBuilder,
    ) -> verdict_models::Result<Arc<dyn LinearLayer>> {
        let dtype = vb.dtype();
        let device = vb.device().clone();
        let weight = vb.get((spec.out_dim, spec.in_dim), "weight")?;
        let bias = if spec.bias {
            Some(vb.get(spec.out_dim, "bias")?)
        } else {
            None
        };
        let values = weight
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let layer = match self.scheme {
            Scheme::Nf4 => QuantLinear::from_nf4(
                &Nf4::quantize(&values),
                spec.out_dim,
                spec.in_dim,
                bias,
                dtype,
                &device,
            )?,
            Scheme::Int8 => QuantLinear::from_int8(
                &Int8Rows::quantize(&values, spec.out_dim, spec.in_dim),
                bias,
                dtype,
                &device,
            )?,
        };
        self.report.lock().unwrap_or_else(|e| e.into_inner()).add(
            values.len(),
            dtype.size_in_bytes(),
            layer.weight_bytes(),
        );
        Ok(Arc::new(layer))
    }
}
