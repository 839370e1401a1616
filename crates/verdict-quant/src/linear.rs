//! Linear layers whose frozen weight is held quantised on the model's device and dequantised
//! on the fly in every forward pass; gradients flow to the input (and to adapters stacked on
//! top), never to the quantised weight.

use candle_core::{DType, Device, Module, Tensor};
use verdict_models::nn::LinearLayer;

use crate::dynamic;
use crate::int8::Int8Rows;
use crate::nf4::{self, Nf4};
use crate::Result;

/// Quantised weight storage on the device.
#[derive(Debug)]
enum Stored {
    Nf4 {
        /// `(blocks * 32,)` u8: two codes per byte, padded to whole blocks.
        packed: Tensor,
        /// `(blocks,)` u8: dynamic-map codes of the centred block maxima.
        scale_codes: Tensor,
        /// `(ceil(blocks / 256),)` f32.
        scale_absmax: Tensor,
        offset: f64,
        /// The 16 NF4 values and the 256 dynamic-map values, `(16,)` / `(256,)` f32.
        code: Tensor,
        dynamic_code: Tensor,
        blocks: usize,
    },
    Int8 {
        /// `(out, in)` u8 holding `q + 128`: candle has no signed 8-bit type.
        shifted: Tensor,
        /// `(out, 1)` f32: row absmax / 127.
        row_scale: Tensor,
    },
}

/// `xs @ dequant(W)^T + bias` with `W` stored as NF4 or row-wise int8.
#[derive(Debug)]
pub struct QuantLinear {
    stored: Stored,
    bias: Option<Tensor>,
    out_dim: usize,
    in_dim: usize,
    dtype: DType,
    bytes: usize,
}

impl QuantLinear {
    /// NF4 layer from a host-side state.
    pub fn from_nf4(
        state: &Nf4,
        out_dim: usize,
        in_dim: usize,
        bias: Option<Tensor>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        state.validate()?;
        let blocks = state.len.div_ceil(nf4::BLOCK);
        let mut packed = state.packed.clone();
        packed.resize(blocks * nf4::BLOCK / 2, 0);
        let stored = Stored::Nf4 {
            packed: Tensor::from_vec(packed, blocks * nf4::BLOCK / 2, device)?,
            scale_codes: Tensor::from_vec(state.scales.codes.clone(), blocks, device)?,
            scale_absmax: Tensor::new(state.scales.absmax.as_slice(), device)?,
            offset: f64::from(state.offset),
            code: Tensor::new(&nf4::CODE, device)?,
            dynamic_code: Tensor::new(&dynamic::dynamic_map(true), device)?,
            blocks,
        };
        Ok(Self {
            stored,
            bias,
            out_dim,
            in_dim,
            dtype,
            bytes: state.storage_bytes(),
        })
    }

    /// Row-wise int8 layer from a host-side state.
    pub fn from_int8(
        state: &Int8Rows,
        bias: Option<Tensor>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let shifted: Vec<u8> = state
            .values
            .iter()
            .map(|q| (i16::from(*q) + 128) as u8)
            .collect();
        let scales: Vec<f32> = state.scales.iter().map(|s| s / 127.0).collect();
        let stored = Stored::Int8 {
            shifted: Tensor::from_vec(shifted, (state.rows, state.cols), device)?,
            row_scale: Tensor::from_vec(scales, (state.rows, 1), device)?,
        };
        Ok(Self {
            stored,
            bias,
            out_dim: state.rows,
            in_dim: state.cols,
            dtype,
            bytes: state.storage_bytes(),
        })
    }

    /// Bytes the quantised weight occupies (without the bias).
    pub fn weight_bytes(&self) -> usize {
        self.bytes
    }

    /// The dequantised weight in the compute dtype.
    ///
    /// # Shapes
    /// -> `(out_dim, in_dim)`.
    pub fn weight(&self) -> Result<Tensor> {
        let len = self.out_dim * self.in_dim;
        let weight = match &self.stored {
            Stored::Nf4 {
                packed,
                scale_codes,
                scale_absmax,
                offset,
                code,
                dynamic_code,
                blocks,
            } => {
                let bytes = packed.to_dtype(DType::F32)?;
                let high = (&bytes / 16.0)?.floor()?;
                let low = (&bytes - (&high * 16.0)?)?;
                let index = Tensor::stack(&[high, low], 1)?
                    .flatten_all()?
                    .to_dtype(DType::U32)?;
                let values = code
                    .index_select(&index, 0)?
                    .reshape((*blocks, nf4::BLOCK))?;
                let groups = scale_absmax.dim(0)?;
                let second = scale_absmax
                    .unsqueeze(1)?
                    .broadcast_as((groups, dynamic::BLOCK))?
                    .flatten_all()?
                    .narrow(0, 0, *blocks)?;
                let centred = dynamic_code.index_select(&scale_codes.to_dtype(DType::U32)?, 0)?;
                let absmax = ((centred * second)? + *offset)?;
                values
                    .broadcast_mul(&absmax.unsqueeze(1)?)?
                    .flatten_all()?
                    .narrow(0, 0, len)?
                    .reshape((self.out_dim, self.in_dim))?
            }
            Stored::Int8 { shifted, row_scale } => {
                let values = (shifted.to_dtype(DType::F32)? - 128.0)?;
                values.broadcast_mul(row_scale)?
            }
        };
        Ok(weight.to_dtype(self.dtype)?)
    }
}

impl LinearLayer for QuantLinear {
    fn forward(&self, xs: &Tensor) -> verdict_models::Result<Tensor> {
        let weight = self.weight()?;
        let layer = candle_nn::Linear::new(weight, self.bias.clone());
        Ok(layer.forward(xs)?)
    }
}
