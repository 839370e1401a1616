//! RMSNorm and LayerNorm from differentiable ops (candle-nn's fused versions have no backward).

use candle_core::{DType, Tensor, D};
use candle_nn::Init;

use super::builder::LayerBuilder;
use super::gpu;
use crate::Result;

/// Whether candle's fused norm kernel computes what the reference does: always in f32; in
/// half precision only on CUDA, whose kernels accumulate and scale in f32 (the CPU kernels
/// round the scale to the half type first, which costs visible accuracy).
fn fused_is_exact(xs: &Tensor, weight: &Tensor) -> bool {
    xs.dtype() == weight.dtype() && (xs.dtype() == DType::F32 || xs.device().is_cuda())
}

/// Root-mean-square norm as in T5/Llama/Qwen: `weight * x / sqrt(mean(x^2) + eps)`,
/// computed in f32 and cast back to the input dtype before the weight multiplies, like the
/// reference implementation.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(size: usize, eps: f64, builder: &LayerBuilder) -> Result<Self> {
        let weight = builder.get(size, "weight", Init::Const(1.0))?;
        Ok(Self { weight, eps })
    }

    pub fn from_weight(weight: Tensor, eps: f64) -> Self {
        Self { weight, eps }
    }

    /// # Shapes
    /// `xs`: `(.., size)`; the result has the same shape.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if let Some((normed, _)) = gpu::norm(xs, None, &self.weight, false, self.eps)? {
            return Ok(normed);
        }
        if !xs.track_op() && !self.weight.track_op() && fused_is_exact(xs, &self.weight) {
            // Inference: the fused kernel also accumulates in f32; it applies the weight before
            // the final cast, which differs from the reference only by one rounding.
            return Ok(candle_nn::ops::rms_norm(
                &xs.contiguous()?,
                &self.weight,
                self.eps as f32,
            )?);
        }
        let dtype = xs.dtype();
        let xs32 = xs.to_dtype(DType::F32)?;
        let variance = xs32.sqr()?.mean_keepdim(D::Minus1)?;
        let inv = (variance + self.eps)?.sqrt()?.recip()?;
        let normed = xs32.broadcast_mul(&inv)?.to_dtype(dtype)?;
        Ok(normed.broadcast_mul(&self.weight)?)
    }

    /// The residual add before a norm: returns `(xs + delta, norm(xs + delta))`, in one
    /// kernel on GPUs.
    ///
    /// # Shapes
    /// `xs`, `delta`: `(.., size)`; both results have the same shape.
    pub fn forward_add(&self, xs: &Tensor, delta: &Tensor) -> Result<(Tensor, Tensor)> {
        if let Some((normed, Some(sum))) =
            gpu::norm(xs, Some(delta), &self.weight, false, self.eps)?
        {
            return Ok((sum, normed));
        }
        let sum = (xs + delta)?;
        let normed = self.forward(&sum)?;
        Ok((sum, normed))
    }
}

/// Layer norm with affine weight and bias: `(x - mean) / sqrt(var + eps) * weight + bias`.
/// Statistics are computed in f32 (torch does the same for half-precision inputs).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    /// `[weight; bias]` in one tensor, as the GPU kernel takes them (built once, not per call).
    stacked: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn new(size: usize, eps: f64, builder: &LayerBuilder) -> Result<Self> {
        let weight = builder.get(size, "weight", Init::Const(1.0))?;
        let bias = builder.get(size, "bias", Init::Const(0.0))?;
        Self::from_weights(weight, bias, eps)
    }

    pub fn from_weights(weight: Tensor, bias: Tensor, eps: f64) -> Result<Self> {
        let stacked = Tensor::cat(&[&weight, &bias], 0)?;
        Ok(Self {
            weight,
            bias,
            stacked,
            eps,
        })
    }

    /// # Shapes
    /// `xs`: `(.., size)`; the result has the same shape.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if let Some((normed, _)) = gpu::norm(xs, None, &self.stacked, true, self.eps)? {
            return Ok(normed);
        }
        if !xs.track_op()
            && !self.weight.track_op()
            && !self.bias.track_op()
            && fused_is_exact(xs, &self.weight)
        {
            // Inference: one fused kernel (f32 statistics) instead of nine passes.
            return Ok(candle_nn::ops::layer_norm(
                &xs.contiguous()?,
                &self.weight,
                &self.bias,
                self.eps as f32,
            )?);
        }
        let dtype = xs.dtype();
        let xs32 = xs.to_dtype(DType::F32)?;
        let mean = xs32.mean_keepdim(D::Minus1)?;
        let centred = xs32.broadcast_sub(&mean)?;
        let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let inv = (variance + self.eps)?.sqrt()?.recip()?;
        let normed = centred.broadcast_mul(&inv)?;
        let weight = self.weight.to_dtype(DType::F32)?;
        let bias = self.bias.to_dtype(DType::F32)?;
        Ok(normed
            .broadcast_mul(&weight)?
            .broadcast_add(&bias)?
            .to_dtype(dtype)?)
    }

    /// The residual add before a norm: returns `(xs + delta, norm(xs + delta))`, in one
    /// kernel on GPUs.
    ///
    /// # Shapes
    /// `xs`, `delta`: `(.., size)`; both results have the same shape.
    pub fn forward_add(&self, xs: &Tensor, delta: &Tensor) -> Result<(Tensor, Tensor)> {
        if let Some((normed, Some(sum))) =
            gpu::norm(xs, Some(delta), &self.stacked, true, self.eps)?
        {
            return Ok((sum, normed));
        }
        let sum = (xs + delta)?;
        let normed = self.forward(&sum)?;
        Ok((sum, normed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use candle_nn::{VarBuilder, VarMap};

    #[test]
    fn rms_norm_matches_fused_kernel_and_backpropagates() -> Result<()> {
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let builder = LayerBuilder::new(VarBuilder::from_varmap(&varmap, DType::F32, &device));
        let norm = RmsNorm::new(4, 1e-6, &builder)?;
        let xs = Var::from_vec(
            vec![1.0f32, -2.0, 3.0, 0.5, 0.1, 0.2, 0.3, 0.4],
            (2, 4),
            &device,
        )?;
        let ours = norm.forward(xs.as_tensor())?;
        let fused =
            candle_nn::ops::rms_norm(xs.as_tensor(), &Tensor::ones(4, DType::F32, &device)?, 1e-6)?;
        let diff = (ours.clone() - fused)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-5, "rms norm differs by {diff}");
        let grads = ours
            .broadcast_mul(&Tensor::new(&[1.0f32, 2.0, 3.0, 4.0], &device)?.unsqueeze(0)?)?
            .sum_all()?
            .backward()?;
        for var in varmap.all_vars() {
            assert!(grads.get(var.as_tensor()).is_some());
        }
        Ok(())
    }

    #[test]
    fn inference_fast_paths_match_the_differentiable_ones() -> Result<()> {
        let device = Device::Cpu;
        let xs = Tensor::new(&[[1.0f32, 5.0, -2.0], [0.0, 0.1, 0.2]], &device)?;
        let weight = Tensor::new(&[0.5f32, 2.0, -1.0], &device)?;
        let bias = Tensor::new(&[0.1f32, 0.0, 0.3], &device)?;
        // A variable input forces the differentiable path; the plain one takes the fused kernel.
        let tracked = Var::from_tensor(&xs)?;
        let rms = RmsNorm::from_weight(weight.clone(), 1e-6);
        let layer = LayerNorm::from_weights(weight, bias, 1e-6)?;
        for (fast, slow) in [
            (rms.forward(&xs)?, rms.forward(tracked.as_tensor())?),
            (layer.forward(&xs)?, layer.forward(tracked.as_tensor())?),
        ] {
            let diff = (fast - slow)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(
                diff < 1e-5,
                "fused and differentiable paths differ by {diff}"
            );
        }
        Ok(())
    }

    #[test]
    fn layer_norm_matches_fused_kernel() -> Result<()> {
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let builder = LayerBuilder::new(VarBuilder::from_varmap(&varmap, DType::F32, &device));
        let norm = LayerNorm::new(3, 1e-6, &builder)?;
        let xs = Tensor::new(&[[1.0f32, 5.0, -2.0], [0.0, 0.1, 0.2]], &device)?;
        let fused = candle_nn::ops::layer_norm(
            &xs,
            &Tensor::ones(3, DType::F32, &device)?,
            &Tensor::zeros(3, DType::F32, &device)?,
            1e-6,
        )?;
        let diff = (norm.forward(&xs)? - fused)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-5, "layer norm differs by {diff}");
        Ok(())
    }
}
