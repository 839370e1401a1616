//! RMSNorm and LayerNorm from differentiable ops (candle-nn's fused versions have no backward).

use candle_core::{DType, Tensor, D};
use candle_nn::Init;

use super::builder::LayerBuilder;
use super::custom_backward::custom_backward;
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
        if xs.track_op() && !self.weight.track_op() {
            // Training through a frozen norm: the fused kernel's forward, the analytic backward.
            let detached = xs.detach();
            let normed = match gpu::norm(&detached, None, &self.weight, false, self.eps)? {
                Some((normed, _)) => Some(normed),
                None if fused_is_exact(xs, &self.weight) => Some(candle_nn::ops::rms_norm(
                    &detached.contiguous()?,
                    &self.weight,
                    self.eps as f32,
                )?),
                None => None,
            };
            if let Some(normed) = normed {
                return self.with_backward(xs, &normed);
            }
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

    /// `normed` (this norm of `xs`, computed without gradients) as a function of `xs`, with
    /// the analytic gradient for a frozen weight.
    fn with_backward(&self, xs: &Tensor, normed: &Tensor) -> Result<Tensor> {
        let (weight, eps) = (self.weight.clone(), self.eps);
        custom_backward(xs, normed, move |x, _, grad| {
            rms_norm_backward(x, &weight, eps, grad)
        })
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

/// Gradient of `w * x / sqrt(mean(x^2) + eps)` with respect to `x` (frozen `w`), in f32:
/// `r * (g w - x r^2 mean(g w x))` with `r = 1 / sqrt(mean(x^2) + eps)`.
///
/// # Shapes
/// `x`, `grad`: `(.., size)`; `weight`: `(size,)`; the result has `x`'s shape and dtype.
fn rms_norm_backward(x: &Tensor, weight: &Tensor, eps: f64, grad: &Tensor) -> Result<Tensor> {
    if let Some(dx) = gpu::rms_norm_backward(x, weight, grad, eps)? {
        return Ok(dx);
    }
    let x32 = x.to_dtype(DType::F32)?;
    let gw = grad
        .to_dtype(DType::F32)?
        .broadcast_mul(&weight.to_dtype(DType::F32)?)?;
    let r = (x32.sqr()?.mean_keepdim(D::Minus1)? + eps)?
        .sqrt()?
        .recip()?;
    let dot = (&gw * &x32)?.mean_keepdim(D::Minus1)?;
    let coefficient = (dot * r.sqr()?)?;
    let dx = (gw - x32.broadcast_mul(&coefficient)?)?.broadcast_mul(&r)?;
    Ok(dx.to_dtype(x.dtype())?)
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
    use crate::nn::seeded::normal;
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

    /// The analytic backward of the fused forward against autograd of the op-by-op path.
    #[test]
    fn rms_norm_analytic_backward_matches_autograd() -> Result<()> {
        let device = Device::Cpu;
        let weight = normal(16, 1.0, 1, &device)?;
        let norm = RmsNorm::from_weight(weight, 1e-6);
        let xs = Var::from_tensor(&normal((3, 5, 16), 2.0, 2, &device)?)?;
        let seed = normal((3, 5, 16), 1.0, 3, &device)?;
        // `forward` on a tracked f32 input takes the fused forward + analytic backward.
        let fast = norm.forward(xs.as_tensor())?;
        let slow = {
            let x32 = xs.as_tensor().clone();
            let inv = (x32.sqr()?.mean_keepdim(D::Minus1)? + 1e-6)?
                .sqrt()?
                .recip()?;
            x32.broadcast_mul(&inv)?.broadcast_mul(&norm.weight)?
        };
        let diff = (&fast - &slow)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "forward differs by {diff}");
        let g_fast = (fast * &seed)?.sum_all()?.backward()?;
        let g_slow = (slow * &seed)?.sum_all()?.backward()?;
        let (a, b) = (
            g_fast.get(xs.as_tensor()).expect("gradient"),
            g_slow.get(xs.as_tensor()).expect("gradient"),
        );
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "gradients differ by {diff}");
        Ok(())
    }

    #[test]
    fn inference_fast_paths_match_the_differentiable_ones() -> Result<()> {
        let device = Device::Cpu;
        let xs = Tensor::new(&[[1.0f32, 5.0, -2.0], [0.0, 0.1, 0.2]], &device)?;
        let weight = Tensor::new(&[0.5f32, 2.0, -1.0], &device)?;
        let bias = Tensor::new(&[0.1f32, 0.0, 0.3], &device)?;
        // A variable input forces the differentiable path (for RMSNorm, a trainable weight
        // too: with a frozen one it takes the fused forward with the analytic backward, tested
        // above); the plain one takes the fused kernel.
        let tracked = Var::from_tensor(&xs)?;
        let rms = RmsNorm::from_weight(weight.clone(), 1e-6);
        let rms_trainable = RmsNorm::from_weight(Var::from_tensor(&weight)?.into_inner(), 1e-6);
        let layer = LayerNorm::from_weights(weight, bias, 1e-6)?;
        for (fast, slow) in [
            (
                rms.forward(&xs)?,
                rms_trainable.forward(tracked.as_tensor())?,
            ),
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
