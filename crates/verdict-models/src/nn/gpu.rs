//! Fused GPU kernels for half-precision inference (`kernels/inference.cu`) and training
//! (`kernels/training.cu`).
//!
//! A profile of a batched Qwen3-VL-2B forward on an H100 put more time in candle's generic
//! element-wise kernels than in all matrix products: a bias broadcast over rows, the
//! transposes that split and merge attention heads, and the scale, mask and softmax passes
//! over the score tensor each compute a strided index per element. The kernels here do those
//! jobs in one pass each, and also fuse what follows them: the residual add into the next
//! norm, the bias into the GELU, the gate into the SwiGLU product. The training kernels do
//! the same for backward passes (RMSNorm, attention softmax, cross-entropy) and the AdamW
//! update. Every function returns `Ok(None)` when it does not apply (no `cuda` feature, a CPU
//! tensor, a dtype other than the kernel's, bf16 or for the optimiser f32, a tensor that
//! tracks gradients, or a layout the kernel does not take); callers then use the generic candle ops, which compute the same values
//! (the kernels only round once, in f32, where the generic path may round twice).

use candle_core::{DType, Tensor};

use crate::Result;

/// Whether the kernels can take these tensors: bf16 on a CUDA device, no gradients.
fn eligible(tensors: &[&Tensor]) -> bool {
    cfg!(feature = "cuda")
        && tensors
            .iter()
            .all(|t| t.device().is_cuda() && t.dtype() == DType::BF16 && !t.track_op())
}

/// `xs + bias` with `bias` broadcast over the rows.
///
/// # Shapes
/// `xs`: `(.., cols)` contiguous; `bias`: `(cols,)`; `cols % 8 == 0`.
pub fn bias_add(xs: &Tensor, bias: &Tensor) -> Result<Option<Tensor>> {
    let cols = bias.elem_count();
    let fits = eligible(&[xs, bias])
        && xs.is_contiguous()
        && bias.is_contiguous()
        && bias.rank() == 1
        && xs.dim(candle_core::D::Minus1)? == cols
        && cols % 8 == 0
        && aligned(xs)
        && aligned(bias);
    if !fits {
        return Ok(None);
    }
    imp::bias_add(xs, bias)
}

/// Rotary angles for [`gather_heads`]: `cos`/`sin` as f32 `(rows, head_dim / 2)` tables, the
/// row of output element `(i0, _, i2, _)` being `i0 * row_per_i0 + i2 * row_per_i2`.
#[derive(Debug, Clone, Copy)]
pub struct RopeTables<'a> {
    pub cos: &'a Tensor,
    pub sin: &'a Tensor,
    pub row_per_i0: usize,
    pub row_per_i2: usize,
}

/// Copies a strided 4-D view into a contiguous tensor, repeating dimension 1 `rep` times
/// (grouped-query key/value heads), optionally applying rotary embeddings in f32, scaled.
///
/// # Shapes
/// `xs`: `(n0, n1, n2, d)` with unit stride on `d`, `d % 16 == 0`, every other stride a
/// multiple of 8; returns `(n0, n1 * rep, n2, d)` contiguous.
pub fn gather_heads(
    xs: &Tensor,
    rep: usize,
    scale: f32,
    rope: Option<RopeTables<'_>>,
) -> Result<Option<Tensor>> {
    if !eligible(&[xs]) || xs.rank() != 4 || rep == 0 {
        return Ok(None);
    }
    let (_, _, _, d) = xs.dims4()?;
    let (stride, offset) = {
        let layout = xs.layout();
        (layout.stride().to_vec(), layout.start_offset())
    };
    let strides_fit = stride[3] == 1 && stride[..3].iter().all(|s| s % 8 == 0) && offset % 8 == 0;
    if d % 16 != 0 || !strides_fit {
        return Ok(None);
    }
    if let Some(tables) = rope {
        let table_fits = |t: &Tensor| -> Result<bool> {
            Ok(t.device().is_cuda()
                && t.dtype() == DType::F32
                && t.is_contiguous()
                && t.rank() == 2
                && t.dim(1)? == d / 2)
        };
        if !table_fits(tables.cos)?
            || !table_fits(tables.sin)?
            || tables.cos.dims() != tables.sin.dims()
        {
            return Ok(None);
        }
        let (n0, _, n2, _) = xs.dims4()?;
        let last_row = (n0 - 1) * tables.row_per_i0 + (n2 - 1) * tables.row_per_i2;
        if last_row >= tables.cos.dim(0)? {
            return Ok(None);
        }
    }
    imp::gather_heads(xs, rep, scale, rope)
}

/// `softmax(scores * scale + mask)` over the last dimension, f32 inside.
///
/// # Shapes
/// `scores`: `(batch, heads, q_len, k_len)` contiguous; `mask`: additive f32
/// `(batch | 1, 1, q_len, k_len)`; the result has the shape of `scores`.
pub fn scaled_masked_softmax(
    scores: &Tensor,
    mask: Option<&Tensor>,
    scale: f32,
) -> Result<Option<Tensor>> {
    if !eligible(&[scores]) || scores.rank() != 4 || !scores.is_contiguous() {
        return Ok(None);
    }
    let (batch, _, q_len, k_len) = scores.dims4()?;
    let mask = match mask {
        None => None,
        Some(mask) => {
            let dims = mask.dims();
            let fits = mask.device().is_cuda()
                && !mask.track_op()
                && dims.len() == 4
                && (dims[0] == batch || dims[0] == 1)
                && dims[1] == 1
                && dims[2] == q_len
                && dims[3] == k_len;
            if !fits {
                return Ok(None);
            }
            Some(mask.to_dtype(DType::F32)?.contiguous()?)
        }
    };
    imp::scaled_masked_softmax(scores, mask.as_ref(), scale)
}

/// A row norm (RMS, or layer norm when `layer`) of `xs`, or of `xs + residual` when a
/// residual is given, in which case the sum (the new residual stream) is returned too.
///
/// # Shapes
/// `xs`, `residual`: `(.., cols)` contiguous, `cols % 8 == 0`; `params`: the weight `(cols,)`,
/// or `[weight; bias]` `(2 * cols,)` for a layer norm. Returns `(normed, Some(sum) | None)`,
/// both shaped like `xs`.
pub fn norm(
    xs: &Tensor,
    residual: Option<&Tensor>,
    params: &Tensor,
    layer: bool,
    eps: f64,
) -> Result<Option<(Tensor, Option<Tensor>)>> {
    let mut tensors = vec![xs, params];
    tensors.extend(residual);
    let cols = xs.dim(candle_core::D::Minus1)?;
    let fits = eligible(&tensors)
        && tensors.iter().all(|t| t.is_contiguous() && aligned(t))
        && params.rank() == 1
        && params.elem_count() == if layer { 2 * cols } else { cols }
        && residual.is_none_or(|r| r.dims() == xs.dims())
        && cols % 8 == 0;
    if !fits {
        return Ok(None);
    }
    imp::norm(xs, residual, params, layer, eps as f32)
}

/// `silu(gate) * up` (SwiGLU), rounded after the activation like the reference.
///
/// # Shapes
/// `gate`, `up`: the same shape, contiguous, element count a multiple of 8.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Option<Tensor>> {
    if !elementwise_fits(&[gate, up]) || gate.dims() != up.dims() {
        return Ok(None);
    }
    imp::swiglu(gate, up)
}

/// Tanh-approximated GELU.
pub fn gelu_tanh(xs: &Tensor) -> Result<Option<Tensor>> {
    if !elementwise_fits(&[xs]) {
        return Ok(None);
    }
    imp::gelu_tanh(xs)
}

/// Tanh-approximated GELU of `xs + bias` (bias broadcast over rows), rounded after the add
/// like an unfused bias add.
///
/// # Shapes
/// `xs`: `(.., cols)` contiguous; `bias`: `(cols,)`, `cols % 8 == 0`.
pub fn bias_gelu_tanh(xs: &Tensor, bias: &Tensor) -> Result<Option<Tensor>> {
    let cols = bias.elem_count();
    let fits = elementwise_fits(&[xs, bias])
        && bias.rank() == 1
        && xs.dim(candle_core::D::Minus1)? == cols;
    if !fits {
        return Ok(None);
    }
    imp::bias_gelu_tanh(xs, bias)
}

/// Gradient of an RMSNorm with a frozen `weight` with respect to its input `x`, given the
/// gradient `grad` of its output: one pass per row, f32 inside, rounded once.
///
/// # Shapes
/// `x`, `grad`: `(.., cols)` contiguous, `cols % 8 == 0`; `weight`: `(cols,)`. The result is
/// shaped like `x`.
pub fn rms_norm_backward(
    x: &Tensor,
    weight: &Tensor,
    grad: &Tensor,
    eps: f64,
) -> Result<Option<Tensor>> {
    let cols = x.dim(candle_core::D::Minus1)?;
    let fits = eligible(&[x, weight, grad])
        && [x, weight, grad]
            .iter()
            .all(|t| t.is_contiguous() && aligned(t))
        && weight.rank() == 1
        && weight.elem_count() == cols
        && grad.dims() == x.dims()
        && cols % 8 == 0;
    if !fits {
        return Ok(None);
    }
    imp::rms_norm_backward(x, weight, grad, eps as f32)
}

/// Gradient of `softmax(products * scale + mask)` with respect to `products`, from the
/// softmax output `weights` and the incoming `grad`: `scale * w * (g - sum(g * w))` per row,
/// f32 inside, rounded once.
///
/// # Shapes
/// `weights`, `grad`: the same shape `(.., cols)`, contiguous; the result has that shape.
pub fn softmax_backward(weights: &Tensor, grad: &Tensor, scale: f64) -> Result<Option<Tensor>> {
    let fits = eligible(&[weights, grad])
        && weights.is_contiguous()
        && grad.is_contiguous()
        && weights.dims() == grad.dims()
        && weights.rank() >= 1;
    if !fits {
        return Ok(None);
    }
    imp::softmax_backward(weights, grad, scale as f32)
}

/// Whether the cross-entropy kernels take these operands: bf16 `(rows, cols)` logits with
/// `cols % 8 == 0` and `rows` u32 targets, contiguous on one CUDA device.
fn cross_entropy_fits(logits: &Tensor, targets: &Tensor) -> Result<bool> {
    Ok(eligible(&[logits])
        && logits.rank() == 2
        && logits.is_contiguous()
        && aligned(logits)
        && logits.dim(1)? % 8 == 0
        && targets.device().same_device(logits.device())
        && targets.dtype() == DType::U32
        && targets.is_contiguous()
        && targets.dims() == [logits.dim(0)?])
}

/// Per-row cross-entropy `log(sum(exp(logits[r]))) - logits[r, targets[r]]`, f32, one pass
/// over each row (a target outside the row gives NaN).
///
/// # Shapes
/// `logits`: `(rows, cols)`; `targets`: `(rows,)` u32; returns `(rows,)` f32.
pub fn cross_entropy_rows(logits: &Tensor, targets: &Tensor) -> Result<Option<Tensor>> {
    if !cross_entropy_fits(logits, targets)? {
        return Ok(None);
    }
    imp::cross_entropy_rows(logits, targets)
}

/// Gradient of `scale * sum(cross_entropy_rows(logits, targets))` with respect to the logits:
/// `scale * (softmax(logits[r]) - onehot(targets[r]))`, rounded once to bf16. `scale` stays
/// on the device (no host sync).
///
/// # Shapes
/// `logits`: `(rows, cols)`; `targets`: `(rows,)` u32; `scale`: one f32 element; returns
/// `(rows, cols)` bf16.
pub fn cross_entropy_grad(
    logits: &Tensor,
    targets: &Tensor,
    scale: &Tensor,
) -> Result<Option<Tensor>> {
    let scale_fits = scale.device().same_device(logits.device())
        && scale.dtype() == DType::F32
        && scale.elem_count() == 1
        && !scale.track_op();
    if !scale_fits || !cross_entropy_fits(logits, targets)? {
        return Ok(None);
    }
    imp::cross_entropy_grad(logits, targets, &scale.flatten_all()?.contiguous()?)
}

/// One AdamW step's hyper-parameters (PyTorch's formula with decoupled weight decay);
/// `step` counts from 1 and sets the bias corrections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub lr: f64,
    pub weight_decay: f64,
    pub step: u64,
}

/// One AdamW update in place, in three launches: `m` and `v` from `grad`, then `param`:
/// `param * (1 - lr * wd) - lr * m_hat / (sqrt(v_hat) + eps)`. Returns `Ok(None)` (and
/// changes nothing) unless all four are contiguous f32 CUDA tensors of one length.
///
/// In place means every tensor sharing a storage with `param`, `m` or `v` sees the update;
/// an optimiser owns its moments, and a variable's storage is meant to change.
pub fn adamw_update(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    step: &AdamWStep,
) -> Result<Option<()>> {
    let n = param.elem_count();
    let fits = cfg!(feature = "cuda")
        && [param, grad, m, v].iter().all(|t| {
            t.device().is_cuda()
                && t.dtype() == DType::F32
                && t.is_contiguous()
                && t.elem_count() == n
        });
    if !fits {
        return Ok(None);
    }
    imp::adamw_update(param, grad, m, v, step)
}

/// Device memory in use, in bytes, once queued work has finished and the stream-ordered
/// allocator has handed its cached free blocks back to the driver: what the process really
/// holds at this point (including the CUDA context). `None` on CPU and without `cuda`.
/// It waits for the device, so it belongs in diagnostics, not in hot loops.
pub fn memory_in_use(device: &candle_core::Device) -> Result<Option<u64>> {
    imp::memory_in_use(device)
}

/// The most device memory the stream-ordered allocator has handed out at once since the
/// process started, in bytes: allocations only, without the CUDA context or cached free
/// blocks (PyTorch's `max_memory_allocated` measures the same). `None` on CPU and without
/// `cuda`. Waits for the device.
pub fn memory_peak(device: &candle_core::Device) -> Result<Option<u64>> {
    imp::memory_peak(device)
}

fn elementwise_fits(tensors: &[&Tensor]) -> bool {
    eligible(tensors)
        && tensors
            .iter()
            .all(|t| t.is_contiguous() && aligned(t) && t.elem_count() % 8 == 0)
}

/// 16-byte alignment of the first element (allocations themselves are 256-byte aligned).
fn aligned(t: &Tensor) -> bool {
    t.layout().start_offset() % 8 == 0
}

#[cfg(not(feature = "cuda"))]
mod imp {
    //! Never reached: `eligible` is false without the feature.
    use super::RopeTables;
    use crate::Result;
    use candle_core::Tensor;

    pub fn bias_add(_: &Tensor, _: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }

    pub fn gather_heads(
        _: &Tensor,
        _: usize,
        _: f32,
        _: Option<RopeTables<'_>>,
    ) -> Result<Option<Tensor>> {
        Ok(None)
    }

    pub fn scaled_masked_softmax(_: &Tensor, _: Option<&Tensor>, _: f32) -> Result<Option<Tensor>> {
        Ok(None)
    }

    pub fn norm(
        _: &Tensor,
        _: Option<&Tensor>,
        _: &Tensor,
        _: bool,
        _: f32,
    ) -> Result<Option<(Tensor, Option<Tensor>)>> {
        Ok(None)
    }

    pub fn swiglu(_: &Tensor, _: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }

    pub fn gelu_tanh(_: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }

    pub fn bias_gelu_tanh(_: &Tensor, _: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }

    pub fn adamw_update(
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        _: &super::AdamWStep,
    ) -> Result<Option<()>> {
        Ok(None)
    }

    pub fn rms_norm_backward(_: &Tensor, _: &Tensor, _: &Tensor, _: f32) -> Result<Option<Tensor>> {
        Ok(None)
    }

    pub fn softmax_backward(_: &Tensor, _: &Tensor, _: f32) -> Result<Option<Tensor>> {
        Ok(None)
    }

    pub fn cross_entropy_rows(_: &Tensor, _: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }

    pub fn cross_entropy_grad(_: &Tensor, _: &Tensor, _: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }

    pub fn memory_peak(_: &candle_core::Device) -> Result<Option<u64>> {
        Ok(None)
    }

    pub fn memory_in_use(_: &candle_core::Device) -> Result<Option<u64>> {
        Ok(None)
    }
}

// Kernel launches and uninitialised output buffers are FFI: unsafe, confined to this module.
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
#[path = "gpu_cuda.rs"]
mod imp;
