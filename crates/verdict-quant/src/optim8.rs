//! 8-bit optimiser states (Dettmers et al., "8-bit Optimizers via Block-wise Quantization"):
//! Adam's first moment stored with the signed dynamic map, the second with the unsigned one,
//! both in blocks of 256 with one f32 absolute maximum per block, so each moment costs about
//! 1.016 bytes per parameter instead of 4.
//!
//! The update dequantises the state, applies the usual AdamW arithmetic in f32 and quantises
//! the new moments again, as bitsandbytes' `optimizer_update_8bit_blockwise` does (its CPU
//! path; the CUDA kernel fuses the same steps). [`adamw_step`] is the host-side reference used
//! to check that sequence against bitsandbytes' trajectory; [`QuantisedMoments`] keeps the
//! codes on the variable's device for training, quantising on the host (a device round trip
//! per step instead of a fused kernel).

use candle_core::{DType, Device, Tensor};

use crate::dynamic::{self, Blockwise, BLOCK};
use crate::{Error, Result};

/// bitsandbytes keeps 32-bit states for tensors smaller than this (`min_8bit_size`).
pub const MIN_8BIT_SIZE: usize = 4096;

/// Adam(W) hyper-parameters of one step.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// 1-based step number.
    pub step: u64,
}

/// Both moments of one tensor, block-wise 8-bit, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments8 {
    pub first: Blockwise,
    pub second: Blockwise,
}

impl Moments8 {
    /// The state before the first step: every code 0 with a zero scale, i.e. all zeros.
    pub fn zeros(len: usize) -> Self {
        let blocks = len.div_ceil(BLOCK);
        let empty = Blockwise {
            codes: vec![0; len],
            absmax: vec![0.0; blocks],
        };
        Self {
            first: empty.clone(),
            second: empty,
        }
    }
}

/// One AdamW step on host slices with 8-bit moments, in bitsandbytes' order of operations.
pub fn adamw_step(
    param: &mut [f32],
    grad: &[f32],
    state: &mut Moments8,
    hp: AdamStep,
) -> Result<()> {
    if param.len() != grad.len() || state.first.codes.len() != param.len() {
        return Err(Error::Invalid(format!(
            "{} parameters, {} gradients, {} state codes",
            param.len(),
            grad.len(),
            state.first.codes.len()
        )));
    }
    let signed = dynamic::dynamic_map(true);
    let unsigned = dynamic::dynamic_map(false);
    let mut m = state.first.dequantize(&signed, BLOCK);
    let mut v = state.second.dequantize(&unsigned, BLOCK);
    let (beta1, beta2) = (hp.beta1 as f32, hp.beta2 as f32);
    let correction1 = 1.0 - hp.beta1.powi(hp.step as i32);
    let correction2 = (1.0 - hp.beta2.powi(hp.step as i32)).sqrt();
    let inverse_correction2 = (1.0 / correction2) as f32;
    let decay = (1.0 - hp.lr * hp.weight_decay) as f32;
    let step_size = (-hp.lr / correction1) as f32;
    for i in 0..param.len() {
        let g = grad[i];
        m[i] = m[i] * beta1 + (1.0 - beta1) * g;
        v[i] = v[i] * beta2 + (1.0 - beta2) * g * g;
        let denom = v[i].sqrt() * inverse_correction2 + hp.eps as f32;
        if hp.weight_decay > 0.0 {
            param[i] *= decay;
        }
        param[i] += step_size * m[i] / denom;
    }
    state.first = Blockwise::quantize(&m, &signed, BLOCK);
    state.second = Blockwise::quantize(&v, &unsigned, BLOCK);
    Ok(())
}

/// Both moments of one variable as 8-bit codes on its device.
#[derive(Debug, Clone)]
pub struct QuantisedMoments {
    /// `(len,)` u8 codes and `(blocks,)` f32 block maxima of each moment.
    pub first_codes: Tensor,
    pub first_absmax: Tensor,
    pub second_codes: Tensor,
    pub second_absmax: Tensor,
    len: usize,
}

impl QuantisedMoments {
    pub fn zeros(len: usize, device: &Device) -> Result<Self> {
        let blocks = len.div_ceil(BLOCK);
        Ok(Self {
            first_codes: Tensor::zeros(len, DType::U8, device)?,
            first_absmax: Tensor::zeros(blocks, DType::F32, device)?,
            second_codes: Tensor::zeros(len, DType::U8, device)?,
            second_absmax: Tensor::zeros(blocks, DType::F32, device)?,
            len,
        })
    }

    /// Rebuilds the state from saved tensors, checking their sizes.
    pub fn from_parts(
        first_codes: Tensor,
        first_absmax: Tensor,
        second_codes: Tensor,
        second_absmax: Tensor,
    ) -> Result<Self> {
        let len = first_codes.elem_count();
        let blocks = len.div_ceil(BLOCK);
        if second_codes.elem_count() != len
            || first_absmax.elem_count() != blocks
            || second_absmax.elem_count() != blocks
        {
            return Err(Error::Invalid(format!(
                "8-bit moments of {len} values need {blocks} block maxima each"
            )));
        }
        Ok(Self {
            first_codes,
            first_absmax,
            second_codes,
            second_absmax,
            len,
        })
    }

    /// Bytes held on the device.
    pub fn bytes(&self) -> usize {
        2 * self.len + 8 * self.len.div_ceil(BLOCK)
    }

    /// The moments in f32, flattened.
    ///
    /// # Shapes
    /// -> `(len,)`, `(len,)`.
    pub fn dequantize(&self) -> Result<(Tensor, Tensor)> {
        let device = self.first_codes.device();
        let first = expand(
            &self.first_codes,
            &self.first_absmax,
            &dynamic::dynamic_map(true),
            self.len,
            device,
        )?;
        let second = expand(
            &self.second_codes,
            &self.second_absmax,
            &dynamic::dynamic_map(false),
            self.len,
            device,
        )?;
        Ok((first, second))
    }

    /// Quantises new moments (any shape, `len` values each) into the state.
    pub fn store(&mut self, first: &Tensor, second: &Tensor) -> Result<()> {
        let device = self.first_codes.device().clone();
        let host = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(t.to_dtype(DType::F32)?
                .flatten_all()?
                .to_device(&Device::Cpu)?
                .to_vec1::<f32>()?)
        };
        let m = Blockwise::quantize(&host(first)?, &dynamic::dynamic_map(true), BLOCK);
        let v = Blockwise::quantize(&host(second)?, &dynamic::dynamic_map(false), BLOCK);
        let blocks = m.absmax.len();
        self.first_codes = Tensor::from_vec(m.codes, self.len, &device)?;
        self.first_absmax = Tensor::from_vec(m.absmax, blocks, &device)?;
        self.second_codes = Tensor::from_vec(v.codes, self.len, &device)?;
        self.second_absmax = Tensor::from_vec(v.absmax, blocks, &device)?;
        Ok(())
    }
}

/// `code[q] * absmax[block]` on the device.
fn expand(
    codes: &Tensor,
    absmax: &Tensor,
    code: &[f32; 256],
    len: usize,
    device: &Device,
) -> Result<Tensor> {
    let table = Tensor::new(code, device)?;
    let values = table.index_select(&codes.to_dtype(DType::U32)?, 0)?;
    let blocks = absmax.dim(0)?;
    let scales = absmax
        .unsqueeze(1)?
        .broadcast_as((blocks, BLOCK))?
        .flatten_all()?
        .narrow(0, 0, len)?;
    Ok((values * scales)?)
}
