//! The fused inference, optimiser and backward kernels against candle's generic ops in f32,
//! on a CUDA device.
//!
//! Built only with `--features cuda` and run on a machine with an NVIDIA GPU:
//! `cargo test -p verdict-models --features cuda --test gpu_kernels`.
#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Tensor, D};
use verdict_models::nn::gpu::{self, RopeTables};
use verdict_models::nn::{merge_heads, scaled_dot_product_attention};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn device() -> Device {
    Device::new_cuda(0).expect("these tests need a CUDA device")
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    let a = a.to_dtype(DType::F32)?;
    let b = b.to_dtype(DType::F32)?;
    Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()?)
}

fn randn(shape: &[usize], device: &Device) -> Result<Tensor> {
    Ok(Tensor::randn(0f32, 1.0, shape, device)?.to_dtype(DType::BF16)?)
}

#[test]
fn bias_add_matches_broadcast_add() -> Result<()> {
    let dev = device();
    let xs = randn(&[3, 37, 64], &dev)?;
    let bias = randn(&[64], &dev)?;
    let fused = gpu::bias_add(&xs, &bias)?.expect("kernel applies");
    let reference = xs
        .to_dtype(DType::F32)?
        .broadcast_add(&bias.to_dtype(DType::F32)?)?;
    // One bf16 rounding of values below 8: at most 2^-5.
    assert!(max_diff(&fused, &reference)? <= 0.032);
    Ok(())
}

#[test]
fn gather_heads_repeats_rotates_and_scales() -> Result<()> {
    let dev = device();
    // (b, s, 3, kv_heads, d) projection output; take the k part as a (b, kv_heads, s, d) view.
    let (b, s, kv, d, rep) = (2, 5, 2, 64, 3);
    let qkv = randn(&[b, s, 3, kv, d], &dev)?;
    let view = qkv.narrow(2, 1, 1)?.squeeze(2)?.transpose(1, 2)?;
    let angles = Tensor::randn(0f32, 2.0, (b * s, d / 2), &dev)?;
    let (cos, sin) = (angles.cos()?, angles.sin()?);
    let rope = RopeTables {
        cos: &cos,
        sin: &sin,
        row_per_i0: s,
        row_per_i2: 1,
    };
    let fused = gpu::gather_heads(&view, rep, 0.5, Some(rope))?.expect("kernel applies");
    assert_eq!(fused.dims(), &[b, kv * rep, s, d]);

    let x = view.to_dtype(DType::F32)?; // (b, kv, s, d)
    let full = |t: &Tensor| -> Result<Tensor> {
        let t = t.reshape((b, 1, s, d / 2))?;
        Ok(Tensor::cat(&[&t, &t], D::Minus1)?)
    };
    let (c, sn) = (full(&cos)?, full(&sin)?);
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    let roped = ((x.broadcast_mul(&c)? + rotated.broadcast_mul(&sn)?)? * 0.5)?;
    let repeated = roped
        .unsqueeze(2)?
        .broadcast_as((b, kv, rep, s, d))?
        .reshape((b, kv * rep, s, d))?;
    assert!(max_diff(&fused, &repeated)? <= 0.032);
    Ok(())
}

#[test]
fn softmax_applies_scale_and_per_sequence_mask() -> Result<()> {
    let dev = device();
    let (b, h, q, k) = (2, 3, 4, 37);
    let scores = randn(&[b, h, q, k], &dev)?;
    let mut mask = vec![0f32; b * q * k];
    for (i, m) in mask.iter_mut().enumerate() {
        if i % 5 == 0 && i % k != 0 {
            *m = f32::NEG_INFINITY;
        }
    }
    let mask = Tensor::from_vec(mask, (b, 1, q, k), &dev)?;
    let fused = gpu::scaled_masked_softmax(&scores, Some(&mask), 0.3)?.expect("kernel applies");
    let logits = (scores.to_dtype(DType::F32)? * 0.3)?.broadcast_add(&mask)?;
    let reference = candle_nn::ops::softmax_last_dim(&logits)?;
    assert!(max_diff(&fused, &reference)? <= 4e-3);
    Ok(())
}

#[test]
fn attention_and_head_merge_match_the_cpu_path() -> Result<()> {
    let dev = device();
    let (b, s, heads, kv, d) = (2, 9, 4, 2, 64);
    let q = Tensor::randn(0f32, 1.0, (b, s, heads, d), &Device::Cpu)?;
    let k = Tensor::randn(0f32, 1.0, (b, s, kv, d), &Device::Cpu)?;
    let v = Tensor::randn(0f32, 1.0, (b, s, kv, d), &Device::Cpu)?;
    let mask = verdict_models::nn::attention_mask(s, 0, true, None, &Device::Cpu)?;
    let cpu = scaled_dot_product_attention(
        &q.transpose(1, 2)?,
        &k.transpose(1, 2)?,
        &v.transpose(1, 2)?,
        Some(&mask),
        0.125,
    )?;
    let cpu = merge_heads(&cpu)?;
    let gpu = |t: &Tensor| -> Result<Tensor> {
        Ok(t.to_device(&dev)?.to_dtype(DType::BF16)?.transpose(1, 2)?)
    };
    let out = scaled_dot_product_attention(
        &gpu(&q)?,
        &gpu(&k)?,
        &gpu(&v)?,
        Some(&mask.to_device(&dev)?),
        0.125,
    )?;
    let out = merge_heads(&out)?;
    assert_eq!(out.dims(), &[b, s, heads * d]);
    assert!(max_diff(&out.to_device(&Device::Cpu)?, &cpu)? <= 0.05);
    Ok(())
}

#[test]
fn fused_residual_norms_match_the_generic_path() -> Result<()> {
    let dev = device();
    let (rows, cols) = (13, 256);
    let xs = randn(&[rows, cols], &dev)?;
    let delta = randn(&[rows, cols], &dev)?;
    let weight = randn(&[cols], &dev)?;
    let bias = randn(&[cols], &dev)?;
    let sum = (&xs + &delta)?;
    let sum32 = sum.to_dtype(DType::F32)?;

    let (normed, fused_sum) =
        gpu::norm(&xs, Some(&delta), &weight, false, 1e-6)?.expect("kernel applies");
    assert_eq!(max_diff(&fused_sum.expect("sum returned"), &sum)?, 0.0);
    let inv = (sum32.sqr()?.mean_keepdim(D::Minus1)? + 1e-6)?
        .sqrt()?
        .recip()?;
    let rms = sum32
        .broadcast_mul(&inv)?
        .broadcast_mul(&weight.to_dtype(DType::F32)?)?;
    assert!(max_diff(&normed, &rms)? <= 0.1);

    let (normed, _) = gpu::norm(&sum, None, &Tensor::cat(&[&weight, &bias], 0)?, true, 1e-6)?
        .expect("kernel applies");
    let mean = sum32.mean_keepdim(D::Minus1)?;
    let centred = sum32.broadcast_sub(&mean)?;
    let inv = (centred.sqr()?.mean_keepdim(D::Minus1)? + 1e-6)?
        .sqrt()?
        .recip()?;
    let layer = centred
        .broadcast_mul(&inv)?
        .broadcast_mul(&weight.to_dtype(DType::F32)?)?
        .broadcast_add(&bias.to_dtype(DType::F32)?)?;
    assert!(max_diff(&normed, &layer)? <= 0.1);
    Ok(())
}

#[test]
fn gated_and_gelu_activations_match_candle() -> Result<()> {
    let dev = device();
    let gate = randn(&[7, 48], &dev)?;
    let up = randn(&[7, 48], &dev)?;
    let fused = gpu::swiglu(&gate, &up)?.expect("kernel applies");
    let reference = (gate.to_dtype(DType::F32)?.silu()? * up.to_dtype(DType::F32)?)?;
    assert!(max_diff(&fused, &reference)? <= 0.05);
    let fused = gpu::gelu_tanh(&gate)?.expect("kernel applies");
    let reference = gate.to_dtype(DType::F32)?.gelu()?;
    assert!(max_diff(&fused, &reference)? <= 0.02);
    let bias = randn(&[48], &dev)?;
    let fused = gpu::bias_gelu_tanh(&gate, &bias)?.expect("kernel applies");
    let reference = gate.broadcast_add(&bias)?.to_dtype(DType::F32)?.gelu()?;
    // Sums reach 8, where one bf16 step is 2^-5: compare relative to the magnitude.
    let relative = ((fused.to_dtype(DType::F32)? - &reference)?.abs()?
        / (reference.abs()? + 1.0)?)?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(relative <= 1e-2, "bias + GELU: {relative}");
    Ok(())
}

/// Three AdamW steps in place against the same formula written with candle's ops (the
/// formula of the trainer's optimiser), on f32 tensors of an odd length.
#[test]
fn fused_adamw_matches_the_tensor_formula() -> Result<()> {
    let dev = device();
    let n = 1237;
    let start = Tensor::randn(0f32, 1.0, n, &dev)?;
    let param = start.copy()?;
    let (m, v) = (
        Tensor::zeros(n, DType::F32, &dev)?,
        Tensor::zeros(n, DType::F32, &dev)?,
    );
    let (mut theta, mut rm, mut rv) = (start.copy()?, m.copy()?, v.copy()?);
    let (beta1, beta2, eps, lr, wd) = (0.9, 0.999, 1e-8, 1e-2, 0.01);
    for t in 1..=3u64 {
        let grad = Tensor::randn(0f32, 1.0, n, &dev)?;
        let step = gpu::AdamWStep {
            beta1,
            beta2,
            eps,
            lr,
            weight_decay: wd,
            step: t,
        };
        gpu::adamw_update(&param, &grad, &m, &v, &step)?.expect("kernel applies");
        rm = ((&rm * beta1)? + (&grad * (1.0 - beta1))?)?;
        rv = ((&rv * beta2)? + (grad.sqr()? * (1.0 - beta2))?)?;
        let (b1, b2) = (1.0 - beta1.powi(t as i32), 1.0 - beta2.powi(t as i32));
        let update = ((&rm / b1)? / ((&rv / b2)?.sqrt()? + eps)?)?;
        theta = ((theta * (1.0 - lr * wd))? - (update * lr)?)?;
    }
    assert!(max_diff(&m, &rm)? < 1e-6);
    assert!(max_diff(&v, &rv)? < 1e-6);
    assert!(max_diff(&param, &theta)? < 1e-6);
    assert!(max_diff(&param, &start)? > 1e-3, "the parameter moved");
    // Not applicable to bf16 or CPU tensors: nothing changes, the caller takes its own path.
    let cpu = Tensor::zeros(4, DType::F32, &Device::Cpu)?;
    let step = gpu::AdamWStep {
        beta1,
        beta2,
        eps,
        lr,
        weight_decay: wd,
        step: 1,
    };
    assert!(gpu::adamw_update(&cpu, &cpu, &cpu, &cpu, &step)?.is_none());
    Ok(())
}

#[test]
fn rms_norm_backward_matches_the_f32_formula() -> Result<()> {
    let dev = device();
    let eps = 1e-6;
    for cols in [128, 2048] {
        let x = randn(&[7, 3, cols], &dev)?;
        let weight = randn(&[cols], &dev)?;
        let grad = randn(&[7, 3, cols], &dev)?;
        let fused = gpu::rms_norm_backward(&x, &weight, &grad, eps)?.expect("kernel applies");
        assert_eq!(fused.dtype(), DType::BF16);
        // r * (g w - x r^2 mean(g w x)), r = 1 / sqrt(mean(x^2) + eps), in f32.
        let (x32, g32, w32) = (
            x.to_dtype(DType::F32)?,
            grad.to_dtype(DType::F32)?,
            weight.to_dtype(DType::F32)?,
        );
        let gw = g32.broadcast_mul(&w32)?;
        let r = (x32.sqr()?.mean_keepdim(D::Minus1)? + eps)?
            .sqrt()?
            .recip()?;
        let dot = (&gw * &x32)?.mean_keepdim(D::Minus1)?;
        let coefficient = (dot * r.sqr()?)?;
        let reference = (gw - x32.broadcast_mul(&coefficient)?)?.broadcast_mul(&r)?;
        let scale = reference.abs()?.max_all()?.to_scalar::<f32>()?;
        // One bf16 rounding of the result (relative 2^-8) plus f32 summation order.
        let diff = max_diff(&fused, &reference)?;
        assert!(diff <= scale / 128.0, "cols {cols}: {diff} against {scale}");
    }
    Ok(())
}

#[test]
fn cross_entropy_rows_and_gradient_match_log_softmax() -> Result<()> {
    let dev = device();
    let (rows, cols) = (5, 151_936);
    let logits = Tensor::randn(0f32, 3.0, (rows, cols), &dev)?.to_dtype(DType::BF16)?;
    let targets = Tensor::new(&[0u32, 17, 151_935, 4_096, 99_999], &dev)?;
    let losses = gpu::cross_entropy_rows(&logits, &targets)?.expect("kernel applies");
    let log_probs = verdict_models::nn::ops::log_softmax_last_dim(&logits.to_dtype(DType::F32)?)?;
    let reference = log_probs
        .gather(&targets.unsqueeze(1)?, D::Minus1)?
        .squeeze(1)?
        .neg()?;
    let diff = max_diff(&losses, &reference)?;
    assert!(diff < 1e-3, "loss rows differ by {diff}");

    let scale = Tensor::new(&[0.25f32], &dev)?;
    let grad = gpu::cross_entropy_grad(&logits, &targets, &scale)?.expect("kernel applies");
    let onehot = Tensor::zeros((rows, cols), DType::F32, &dev)?.scatter_add(
        &targets.unsqueeze(1)?,
        &Tensor::ones((rows, 1), DType::F32, &dev)?,
        D::Minus1,
    )?;
    let expected = ((log_probs.exp()? - onehot)? * 0.25)?;
    // Probabilities near 1/151936 and the targets' -0.25, each after one bf16 rounding.
    let diff = max_diff(&grad, &expected)?;
    assert!(diff < 2e-3, "gradients differ by {diff}");

    // The loss's own forward and backward take the kernels.
    let var = candle_core::Var::from_tensor(&logits)?;
    let loss = verdict_models::nn::ops::cross_entropy_sum(var.as_tensor(), &targets)?;
    let expected_sum = reference.sum_all()?.to_scalar::<f32>()?;
    assert!((loss.to_scalar::<f32>()? - expected_sum).abs() < 5e-3);
    let grads = (loss * 0.25)?.backward()?;
    let through = grads.get(var.as_tensor()).expect("gradient");
    assert_eq!(max_diff(through, &grad)?, 0.0);
    Ok(())
}

#[test]
fn softmax_backward_matches_the_f32_formula() -> Result<()> {
    let dev = device();
    // 262 keys: rows that are not a multiple of 8 wide.
    let scores = Tensor::randn(0f32, 2.0, (2, 3, 5, 262), &dev)?;
    let weights = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(DType::BF16)?;
    let grad = randn(&[2, 3, 5, 262], &dev)?;
    let scale = 0.125;
    let fused = gpu::softmax_backward(&weights, &grad, scale)?.expect("kernel applies");
    let (w, g) = (weights.to_dtype(DType::F32)?, grad.to_dtype(DType::F32)?);
    let dot = (&g * &w)?.sum_keepdim(D::Minus1)?;
    let reference = ((g.broadcast_sub(&dot)? * w)? * scale)?;
    let largest = reference.abs()?.max_all()?.to_scalar::<f32>()?;
    let diff = max_diff(&fused, &reference)?;
    assert!(diff <= largest / 128.0, "{diff} against {largest}");
    Ok(())
}
