//! Scaled dot-product attention with grouped KV heads, causal and padding masks.

use candle_core::{DType, Device, Tensor};

use super::gpu;
use super::ops::softmax_last_dim;
use crate::Result;

/// Builds an additive attention mask (0 where allowed, `-inf` where blocked).
///
/// Query `i` sits at absolute position `past_len + i`; it may see key `j` when `j` is not in
/// the future (if `causal`) and key `j` is not padding. A query always sees itself, so rows of
/// padding queries never become all `-inf` (which would turn softmax into NaN); their outputs
/// are ignored by callers anyway.
///
/// `key_valid[b][j]` marks real tokens of sequence `b` over all `past_len + q_len` keys;
/// `None` means no padding.
///
/// # Shapes
/// Returns `(batch, 1, q_len, past_len + q_len)` in f32, with `batch = 1` when `key_valid` is `None`.
pub fn attention_mask(
    q_len: usize,
    past_len: usize,
    causal: bool,
    key_valid: Option<&[Vec<bool>]>,
    device: &Device,
) -> Result<Tensor> {
    let kv_len = past_len + q_len;
    let rows: Vec<Option<&Vec<bool>>> = match key_valid {
        Some(valid) => valid.iter().map(Some).collect(),
        None => vec![None],
    };
    let mut data = Vec::with_capacity(rows.len() * q_len * kv_len);
    for valid in &rows {
        if let Some(valid) = valid {
            if valid.len() != kv_len {
                return Err(crate::Error::Input(format!(
                    "padding mask covers {} keys, attention has {kv_len}",
                    valid.len()
                )));
            }
        }
        for i in 0..q_len {
            let query_position = past_len + i;
            for j in 0..kv_len {
                let visible =
                    (!causal || j <= query_position) && valid.map(|v| v[j]).unwrap_or(true);
                let allowed = visible || j == query_position;
                data.push(if allowed { 0f32 } else { f32::NEG_INFINITY });
            }
        }
    }
    Ok(Tensor::from_vec(
        data,
        (rows.len(), 1, q_len, kv_len),
        device,
    )?)
}

/// Repeats each KV head `n_rep` times so grouped-query attention can use one matmul.
///
/// # Shapes
/// `xs`: `(batch, kv_heads, seq, head_dim)` -> `(batch, kv_heads * n_rep, seq, head_dim)`.
pub fn repeat_kv(xs: &Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(xs.clone());
    }
    let (b, kv_heads, seq, head_dim) = xs.dims4()?;
    Ok(xs
        .unsqueeze(2)?
        .broadcast_as((b, kv_heads, n_rep, seq, head_dim))?
        .contiguous()?
        .reshape((b, kv_heads * n_rep, seq, head_dim))?)
}

/// `softmax(q k^T * scale + mask) v`, with the softmax in f32 as in the reference eager path.
///
/// # Shapes
/// - `q`: `(batch, heads, q_len, head_dim)`
/// - `k`, `v`: `(batch, kv_heads, kv_len, head_dim)`, `heads` a multiple of `kv_heads`
/// - `mask`: broadcastable to `(batch, heads, q_len, kv_len)`, f32, additive
/// - returns `(batch, heads, q_len, head_dim)`
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let heads = q.dim(1)?;
    let kv_heads = k.dim(1)?;
    if heads % kv_heads != 0 {
        return Err(crate::Error::Config(format!(
            "{heads} attention heads are not a multiple of {kv_heads} key/value heads"
        )));
    }
    let n_rep = heads / kv_heads;
    if let Some(out) = fused_attention(q, k, v, mask, scale, n_rep)? {
        return Ok(out);
    }
    let k = repeat_kv(k, n_rep)?;
    let v = repeat_kv(v, n_rep)?;
    let dtype = q.dtype();
    let half = matches!(dtype, DType::BF16 | DType::F16);
    if half && q.device().is_cuda() && !q.track_op() && !k.track_op() && !v.track_op() {
        // GPU inference in half precision: candle's fused softmax reads the half-precision
        // scores and accumulates in f32, so the two f32 casts of the score tensor (the
        // largest activations of a forward) go away, as in fused attention kernels.
        let scores = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?;
        let scores = match mask {
            Some(mask) => scores.broadcast_add(&mask.to_dtype(dtype)?)?,
            None => scores,
        };
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        return Ok(weights.matmul(&v.contiguous()?)?);
    }
    let products = q.contiguous()?.matmul(&k.t()?.contiguous()?)?;
    if products.track_op() {
        let weights = softmax_with_backward(&products, mask, scale)?;
        return Ok(weights.matmul(&v.contiguous()?)?);
    }
    let scores = (products * scale)?.to_dtype(DType::F32)?;
    let scores = match mask {
        Some(mask) => scores.broadcast_add(mask)?,
        None => scores,
    };
    let weights = softmax_last_dim(&scores)?.to_dtype(dtype)?;
    Ok(weights.matmul(&v.contiguous()?)?)
}

/// Training: `softmax(products * scale + mask)` computed without gradients (the fused kernel
/// on GPUs, else in f32 as the reference does), with the analytic backward
/// `scale * w * (g - sum(g * w))`: only the weights are kept, not the f32 score copies.
///
/// # Shapes
/// `products`: `(batch, heads, q_len, kv_len)`; `mask` broadcastable to it.
fn softmax_with_backward(products: &Tensor, mask: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let dtype = products.dtype();
    let detached = products.detach();
    let weights = match gpu::scaled_masked_softmax(&detached, mask, scale as f32)? {
        Some(weights) => weights,
        None => {
            let scores = (detached * scale)?.to_dtype(DType::F32)?;
            let scores = match mask {
                Some(mask) => scores.broadcast_add(&mask.detach())?,
                None => scores,
            };
            softmax_last_dim(&scores)?.to_dtype(dtype)?
        }
    };
    super::custom_backward::custom_backward(products, &weights, move |_, weights, grad| {
        if let Some(ds) = gpu::softmax_backward(weights, &grad.contiguous()?, scale)? {
            return Ok(ds);
        }
        let w = weights.to_dtype(DType::F32)?;
        let g = grad.to_dtype(DType::F32)?;
        let dot = (&g * &w)?.sum_keepdim(candle_core::D::Minus1)?;
        let ds = (g.broadcast_sub(&dot)? * w)?;
        Ok((ds * scale)?.to_dtype(dtype)?)
    })
}

/// GPU inference in bf16 through the kernels of [`super::gpu`]: heads gathered (and key/value
/// heads repeated) in one pass each, the scale and mask applied inside the softmax, no score
/// casts. `None` when those kernels do not apply.
fn fused_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
    n_rep: usize,
) -> Result<Option<Tensor>> {
    let contiguous = |t: &Tensor, rep: usize| -> Result<Option<Tensor>> {
        if rep == 1 && t.is_contiguous() {
            return Ok(Some(t.clone()));
        }
        gpu::gather_heads(t, rep, 1.0, None)
    };
    let (Some(q), Some(k), Some(v)) = (
        contiguous(q, 1)?,
        contiguous(k, n_rep)?,
        contiguous(v, n_rep)?,
    ) else {
        return Ok(None);
    };
    let scores = q.matmul(&k.t()?)?;
    let Some(weights) = gpu::scaled_masked_softmax(&scores, mask, scale as f32)? else {
        return Ok(None);
    };
    Ok(Some(weights.matmul(&v)?))
}

/// Joins attention heads back into one hidden vector per position.
///
/// # Shapes
/// `xs`: `(batch, heads, seq, head_dim)` -> `(batch, seq, heads * head_dim)`.
pub fn merge_heads(xs: &Tensor) -> Result<Tensor> {
    let (b, heads, s, d) = xs.dims4()?;
    let bshd = xs.transpose(1, 2)?;
    let merged = match gpu::gather_heads(&bshd, 1, 1.0, None)? {
        Some(merged) => merged,
        None => bshd,
    };
    Ok(merged.reshape((b, s, heads * d))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::seeded::normal;

    #[test]
    fn causal_mask_with_padding_blocks_future_and_pad_keys() -> Result<()> {
        let valid = vec![vec![false, true, true]];
        let mask = attention_mask(3, 0, true, Some(&valid), &Device::Cpu)?;
        let rows = mask.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?;
        let inf = f32::NEG_INFINITY;
        assert_eq!(rows[0], vec![0.0, inf, inf]);
        assert_eq!(rows[1], vec![inf, 0.0, inf]);
        assert_eq!(rows[2], vec![inf, 0.0, 0.0]);
        Ok(())
    }

    #[test]
    fn mask_with_past_sees_the_whole_prefix() -> Result<()> {
        let mask = attention_mask(2, 3, true, None, &Device::Cpu)?;
        let rows = mask.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?;
        assert_eq!(rows[0], vec![0.0, 0.0, 0.0, 0.0, f32::NEG_INFINITY]);
        assert_eq!(rows[1], vec![0.0; 5]);
        Ok(())
    }

    /// Training attention (softmax with the analytic backward) against autograd of the plain
    /// formula, with a causal mask.
    #[test]
    fn training_attention_gradients_match_autograd() -> Result<()> {
        use candle_core::Var;
        let device = Device::Cpu;
        let var = |shape: (usize, usize, usize, usize), seed: u64| -> Result<Var> {
            Ok(Var::from_tensor(&normal(shape, 1.0, seed, &device)?)?)
        };
        let (q, k, v) = (
            var((2, 4, 5, 8), 1)?,
            var((2, 2, 5, 8), 2)?,
            var((2, 2, 5, 8), 3)?,
        );
        let mask = attention_mask(5, 0, true, None, &device)?;
        let seed = normal((2, 4, 5, 8), 1.0, 4, &device)?;
        let ours = scaled_dot_product_attention(
            q.as_tensor(),
            k.as_tensor(),
            v.as_tensor(),
            Some(&mask),
            0.35,
        )?;
        let plain = {
            let (k, v) = (repeat_kv(k.as_tensor(), 2)?, repeat_kv(v.as_tensor(), 2)?);
            let scores = (q.as_tensor().matmul(&k.t()?)? * 0.35)?.broadcast_add(&mask)?;
            let max = scores.max_keepdim(candle_core::D::Minus1)?.detach();
            let exp = scores.broadcast_sub(&max)?.exp()?;
            let weights = exp.broadcast_div(&exp.sum_keepdim(candle_core::D::Minus1)?)?;
            weights.matmul(&v)?
        };
        assert!((&ours - &plain)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-5);
        let g_ours = (ours * &seed)?.sum_all()?.backward()?;
        let g_plain = (plain * &seed)?.sum_all()?.backward()?;
        for var in [&q, &k, &v] {
            let (a, b) = (
                g_ours.get(var.as_tensor()).expect("gradient"),
                g_plain.get(var.as_tensor()).expect("gradient"),
            );
            let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "gradients differ by {diff}");
        }
        Ok(())
    }

    #[test]
    fn grouped_heads_equal_explicitly_repeated_heads() -> Result<()> {
        let device = Device::Cpu;
        let q = normal((1, 4, 3, 8), 1.0, 5, &device)?;
        let k = normal((1, 2, 3, 8), 1.0, 6, &device)?;
        let v = normal((1, 2, 3, 8), 1.0, 7, &device)?;
        let grouped = scaled_dot_product_attention(&q, &k, &v, None, 0.3)?;
        let full =
            scaled_dot_product_attention(&q, &repeat_kv(&k, 2)?, &repeat_kv(&v, 2)?, None, 0.3)?;
        let diff = (grouped - full)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6);
        Ok(())
    }
}
