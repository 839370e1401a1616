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

/// `sum over rows of -log_softmax(logits)[target]` in f32, for language-model losses over a
/// large vocabulary. With gradients it keeps only `logits` and computes the backward
/// analytically, `softmax(logits) - onehot(target)` (candle's fused softmax, then one
/// scatter), instead of the log-softmax graph's f32 intermediates and their backward nodes.
/// bf16 logits on a GPU take one pass per row each way (`gpu::cross_entropy_rows`).
///
/// # Shapes
/// `logits`: `(rows, vocab)`; `targets`: `(rows,)` u32 -> scalar f32.
pub fn cross_entropy_sum(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if let Some(rows) = super::gpu::cross_entropy_rows(&logits.detach(), targets)? {
        // One pass per row on a GPU, forward and backward (see `gpu::cross_entropy_grad`).
        let loss = rows.sum_all()?;
        if !logits.track_op() {
            return Ok(loss);
        }
        let targets = targets.clone();
        return super::custom_backward::custom_backward(logits, &loss, move |logits, _, grad| {
            let scale = grad.to_dtype(DType::F32)?;
            match super::gpu::cross_entropy_grad(logits, &targets, &scale)? {
                Some(dlogits) => Ok(dlogits),
                None => cross_entropy_grad(logits, &targets, grad),
            }
        });
    }
    let forward = {
        let targets = targets.unsqueeze(1)?;
        move |logits: &Tensor| -> Result<Tensor> {
            let l32 = logits.to_dtype(DType::F32)?;
            let max = l32.max_keepdim(D::Minus1)?;
            let sum = l32.broadcast_sub(&max)?.exp()?.sum_keepdim(D::Minus1)?;
            let log_sum_exp = (sum.log()? + max)?;
            let picked = l32.gather(&targets, D::Minus1)?;
            Ok((log_sum_exp - picked)?.sum_all()?)
        }
    };
    if !logits.track_op() {
        return forward(logits);
    }
    let loss = forward(&logits.detach())?;
    let targets = targets.clone();
    super::custom_backward::custom_backward(logits, &loss, move |logits, _, grad| {
        cross_entropy_grad(logits, &targets, grad)
    })
}

/// `grad * (softmax(logits) - onehot(targets))` in f32, in the logits' dtype.
fn cross_entropy_grad(logits: &Tensor, targets: &Tensor, grad: &Tensor) -> Result<Tensor> {
    let probs = candle_nn::ops::softmax_last_dim(&logits.to_dtype(DType::F32)?.contiguous()?)?;
    let minus_one = Tensor::full(-1f32, (logits.dim(0)?, 1), logits.device())?;
    let dlogits = probs.scatter_add(&targets.unsqueeze(1)?, &minus_one, D::Minus1)?;
    let scale = grad.to_dtype(DType::F32)?.reshape((1, 1))?;
    Ok(dlogits.broadcast_mul(&scale)?.to_dtype(logits.dtype())?)
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
/// `xs`: `(.., seq, d)`; `cos`, `sin`: broadcastable to `xs`, in the rotate-half convention
/// (both halves of the last dimension hold the same angles).
pub fn apply_rotary(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !cos.track_op() && !sin.track_op() && xs.dtype() == cos.dtype() {
        if let Some(out) = fused_rotary(&xs.detach(), cos, sin)? {
            if !xs.track_op() {
                return Ok(out);
            }
            // Training: a rotation's gradient is the inverse rotation of the incoming
            // gradient (the rotate-half matrix R has R^T = -R and commutes with the angle
            // tables, whose halves are equal), i.e. the same kernel with `-sin`.
            let (cos, neg_sin) = (cos.clone(), sin.neg()?);
            return super::custom_backward::custom_backward(xs, &out, move |_, _, grad| {
                match fused_rotary(grad, &cos, &neg_sin)? {
                    Some(rotated) => Ok(rotated),
                    None => unfused_rotary(grad, &cos, &neg_sin),
                }
            });
        }
    }
    unfused_rotary(xs, cos, sin)
}

fn unfused_rotary(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let rotated = rotate_half(xs)?;
    Ok((xs.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
}

/// Inference: candle's fused rotary kernel, one launch instead of eight (the broadcast
/// multiplies alone dominated a GPU forward), for the two layouts the models use:
/// - `xs` `(b, heads, seq, d)` with `cos`, `sin` `(b or 1, 1, seq, d)` (text decoders);
/// - `xs` `(seq, heads, d)` with `cos`, `sin` `(seq, 1, d)` (vision towers).
///
/// The kernel takes the angles once (`d / 2`), hence the rotate-half convention. `None` for
/// any other layout.
fn fused_rotary(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Option<Tensor>> {
    let d = xs.dim(D::Minus1)?;
    if d % 2 != 0 || cos.dims() != sin.dims() {
        return Ok(None);
    }
    let angles = |t: &Tensor| -> Result<Tensor> {
        Ok(t.squeeze(1)?.narrow(D::Minus1, 0, d / 2)?.contiguous()?)
    };
    match (xs.dims(), cos.dims()) {
        (&[b, _, seq, _], &[cb, 1, cs, cd]) if cs == seq && cd == d && (cb == b || cb == 1) => {
            let squeeze = |t: Tensor| -> Result<Tensor> {
                Ok(if cb == 1 && b != 1 { t.squeeze(0)? } else { t })
            };
            let (c, s) = (squeeze(angles(cos)?)?, squeeze(angles(sin)?)?);
            // Heads split from a (b, seq, heads * d) projection are contiguous as (b, seq,
            // heads, d): rotate them in place of a transposing copy.
            let bshd = xs.transpose(1, 2)?;
            let out = if bshd.is_contiguous() {
                candle_nn::rotary_emb::rope_thd(&bshd, &c, &s)?.transpose(1, 2)?
            } else {
                candle_nn::rotary_emb::rope(&xs.contiguous()?, &c, &s)?
            };
            Ok(Some(out))
        }
        (&[seq, _, _], &[cs, 1, cd]) if cs == seq && cd == d => {
            let (c, s) = (angles(cos)?, angles(sin)?);
            let out = candle_nn::rotary_emb::rope_thd(&xs.contiguous()?.unsqueeze(0)?, &c, &s)?;
            Ok(Some(out.squeeze(0)?))
        }
        _ => Ok(None),
    }
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
        if self == Self::GeluTanh {
            if let Some(out) = super::gpu::gelu_tanh(xs)? {
                return Ok(out);
            }
        }
        Ok(match self {
            Self::Silu => xs.silu()?,
            Self::GeluErf => xs.gelu_erf()?,
            Self::GeluTanh => xs.gelu()?,
            Self::Relu => xs.relu()?,
        })
    }

    /// `act(gate) * up`, the gated MLP of Llama-style decoders (one kernel for SiLU on GPUs).
    ///
    /// # Shapes
    /// `gate`, `up`: the same shape; the result has it too.
    pub fn forward_gated(self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        if self == Self::Silu {
            if let Some(out) = super::gpu::swiglu(gate, up)? {
                return Ok(out);
            }
        }
        Ok((self.forward(gate)? * up)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::seeded::normal;

    /// The unfused formula, forced by a gradient-tracking input.
    fn reference_rotary(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let rotated = rotate_half(xs)?;
        Ok((xs.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
    }

    fn halves(shape: &[usize], device: &candle_core::Device) -> Result<(Tensor, Tensor)> {
        let mut half_shape = shape.to_vec();
        let last = half_shape.len() - 1;
        half_shape[last] /= 2;
        let angles = normal(half_shape, 2.0, 1, device)?;
        let full = Tensor::cat(&[&angles, &angles], D::Minus1)?;
        Ok((full.cos()?, full.sin()?))
    }

    #[test]
    fn cross_entropy_matches_log_softmax_and_its_gradient() -> Result<()> {
        let device = candle_core::Device::Cpu;
        let logits = candle_core::Var::from_tensor(&(normal((6, 50), 3.0, 2, &device)?))?;
        let targets = Tensor::new(&[3u32, 0, 49, 7, 7, 21], &device)?;
        let ours = cross_entropy_sum(logits.as_tensor(), &targets)?;
        let reference = log_softmax_last_dim(logits.as_tensor())?
            .gather(&targets.unsqueeze(1)?, D::Minus1)?
            .sum_all()?
            .neg()?;
        let (a, b) = (ours.to_scalar::<f32>()?, reference.to_scalar::<f32>()?);
        assert!((a - b).abs() < 1e-4, "loss {a} vs {b}");
        let g_ours = (ours * 0.25)?.backward()?;
        let g_ref = (reference * 0.25)?.backward()?;
        let diff = (g_ours.get(logits.as_tensor()).expect("gradient")
            - g_ref.get(logits.as_tensor()).expect("gradient"))?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
        assert!(diff < 1e-6, "gradients differ by {diff}");
        Ok(())
    }

    /// Training through the fused rotary (inverse rotation as the backward) gives autograd's
    /// gradient of the unfused formula, for the transposed-view layout of the text decoder.
    #[test]
    fn rotary_backward_is_the_inverse_rotation() -> Result<()> {
        let device = candle_core::Device::Cpu;
        let (cos, sin) = halves(&[2, 1, 5, 8], &device)?;
        let base = candle_core::Var::from_tensor(&normal((2, 5, 3, 8), 1.0, 3, &device)?)?;
        let seed = normal((2, 3, 5, 8), 1.0, 4, &device)?;
        let xs = base.as_tensor().transpose(1, 2)?;
        let fast = apply_rotary(&xs, &cos, &sin)?;
        let slow = reference_rotary(&xs, &cos, &sin)?;
        assert!((&fast - &slow)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-5);
        let g_fast = (fast * &seed)?.sum_all()?.backward()?;
        let g_slow = (slow * &seed)?.sum_all()?.backward()?;
        let (a, b) = (
            g_fast.get(base.as_tensor()).expect("gradient"),
            g_slow.get(base.as_tensor()).expect("gradient"),
        );
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "gradients differ by {diff}");
        Ok(())
    }

    #[test]
    fn fused_rotary_matches_rotate_half_in_every_layout() -> Result<()> {
        let device = candle_core::Device::Cpu;
        // Text: heads split from a projection (transposed view), and a contiguous tensor,
        // with per-sequence and shared angles.
        let bshd = normal((2, 5, 3, 8), 1.0, 5, &device)?;
        let bhsd = bshd.transpose(1, 2)?;
        for cos_batch in [2, 1] {
            let (cos, sin) = halves(&[cos_batch, 1, 5, 8], &device)?;
            for xs in [bhsd.clone(), bhsd.contiguous()?] {
                let fused = apply_rotary(&xs, &cos, &sin)?;
                let reference = reference_rotary(&xs, &cos, &sin)?;
                let diff = (fused - reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(diff < 1e-5, "text layout, cos batch {cos_batch}: {diff}");
            }
        }
        // Vision: (patches, heads, d) with (patches, 1, d) angles.
        let xs = normal((7, 4, 8), 1.0, 6, &device)?;
        let (cos, sin) = halves(&[7, 1, 8], &device)?;
        let diff = (apply_rotary(&xs, &cos, &sin)? - reference_rotary(&xs, &cos, &sin)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-5, "vision layout: {diff}");
        Ok(())
    }
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
