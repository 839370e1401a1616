//! Differentiable elementary ops that candle-nn only offers as fused kernels without backward.

use candle_core::{DType, Tensor, D};

use crate::Result;

/// Softmax over the last dimension, built from `exp`/`sum` so it backpropagates.
///
/// The row maximum is subtracted for stability; it is detached because softmax is invariant
/// to it, so its gradient would be zero anyway.
///
/// # Shapes
/// `xs`: any shape; the result has the same shape.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    if !xs.track_op() && (xs.dtype() == DType::F32 || xs.device().is_cuda()) {
        // Nothing upstream needs a gradient (inference): the fused kernel is exact enough and
        // one launch instead of five on accelerators.
        return Ok(candle_nn::ops::softmax_last_dim(&xs.contiguous()?)?);
    }
    let max = xs.max_keepdim(D::Minus1)?.detach();
    let exp = xs.broadcast_sub(&max)?.exp()?;
    let sum = exp.sum_keepdim(D::Minus1)?;
    Ok(exp.broadcast_div(&sum)?)
}

/// Log-softmax over the last dimension (differentiable, numerically stable).
///
/// # Shapes
/// `xs`: any shape; the result has the same shape.
pub fn log_softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    let max = xs.max_keepdim(D::Minus1)?.detach();
    let shifted = xs.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&log_sum)?)
}

/// Swaps the two halves of the last dimension and negates the new first half:
/// `[x1, x2] -> [-x2, x1]`, the rotation used by rotary position embeddings.
///
/// # Shapes
/// `xs`: `(.., d)` with even `d`; the result has the same shape.
pub fn rotate_half(xs: &Tensor) -> Result<Tensor> {
    let half = xs.dim(D::Minus1)? / 2;
    let x1 = xs.narrow(D::Minus1, 0, half)?;
    let x2 = xs.narrow(D::Minus1, half, half)?;
    Ok(Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?)
}

/// Applies rotary embeddings: `xs * cos + rotate_half(xs) * sin`.
///
/// # Shapes
/// `xs`: `(.., seq, d)`; `cos`, `sin`: broadcastable to `xs`.
pub fn apply_rotary(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let rotated = rotate_half(xs)?;
    Ok((xs.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
}

/// Runs `f` in f32 and casts back, for precision-sensitive steps of half-precision models.
pub fn in_f32(xs: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let dtype = xs.dtype();
    if dtype == DType::F32 {
        return f(xs);
    }
    Ok(f(&xs.to_dtype(DType::F32)?)?.to_dtype(dtype)?)
}

/// Activation functions by their checkpoint names (`hidden_act`); all have a backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// Exact GELU (erf form), `nn.GELU()` / `"gelu"`.
    GeluErf,
    /// Tanh-approximated GELU, `"gelu_pytorch_tanh"` / `"gelu_new"`.
    GeluTanh,
    Relu,
}

impl Activation {
    /// Parses a `hidden_act` value.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "silu" | "swish" => Ok(Self::Silu),
            "gelu" => Ok(Self::GeluErf),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            other => Err(crate::Error::Config(format!(
                "unsupported activation {other:?} (hidden_act)"
            ))),
        }
    }

    pub fn forward(self, xs: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Silu => xs.silu()?,
            Self::GeluErf => xs.gelu_erf()?,
            Self::GeluTanh => xs.gelu()?,
            Self::Relu => xs.relu()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn softmax_matches_fused_kernel_and_has_gradient() -> Result<()> {
        let device = Device::Cpu;
        let xs = Var::from_vec(vec![1.0f32, 2.0, -3.0, 0.5, 4.0, 4.0], (2, 3), &device)?;
        let ours = softmax_last_dim(xs.as_tensor())?;
        let fused = candle_nn::ops::softmax_last_dim(xs.as_tensor())?;
        let diff = (ours.clone() - fused)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-6, "softmax differs by {diff}");
        let weights = Tensor::new(&[[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0]], &device)?;
        let grads = (ours * weights)?.sum_all()?.backward()?;
        let grad = grads
            .get(xs.as_tensor())
            .expect("softmax input gets a gradient");
        assert!(grad.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        Ok(())
    }

    #[test]
    fn log_softmax_is_log_of_softmax() -> Result<()> {
        let xs = Tensor::new(&[[0.3f32, -1.0, 2.5, 7.0]], &Device::Cpu)?;
        let a = log_softmax_last_dim(&xs)?;
        let b = softmax_last_dim(&xs)?.log()?;
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5);
        Ok(())
    }

    #[test]
    fn rotate_half_swaps_and_negates() -> Result<()> {
        let xs = Tensor::new(&[1.0f32, 2.0, 3.0, 4.0], &Device::Cpu)?;
        assert_eq!(
            rotate_half(&xs)?.to_vec1::<f32>()?,
            vec![-3.0, -4.0, 1.0, 2.0]
        );
        Ok(())
    }
}
