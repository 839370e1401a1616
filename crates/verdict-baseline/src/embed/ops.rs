//! CPU kernels that candle runs slowly for this model: exact-erf GELU (with the bias of the
//! preceding projection folded in) through a rational approximation that the compiler
//! vectorises, and the attention softmax through a vectorisable `exp` (candle calls a scalar
//! `erff` / `expf` per element and needs one more pass for the bias).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel work item.
const CHUNK: usize = 16 * 1024;
/// Independent partial results per reduction (one or two vector registers wide).
const LANES: usize = 8;

/// `erf(x)` for `f32`, within 5e-7 of the exact value: odd/even rational approximation on
/// `[-4, 4]` (beyond it erf is +-1 in single precision). The coefficients are the minimax
/// fit used by Eigen's and XLA's `erf` for `float`. Plain multiply-adds, not `mul_add`:
/// without a target FMA feature that is a library call per operation.
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_6e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_474e-2;
    x * p / q
}

/// `e^x` for `f32`, within 2 ulp: Cephes' `expf` (range reduction by `ln 2`, degree-6
/// polynomial, exponent bits), written so that the compiler vectorises it. Inputs below
/// -87 give `e^-87` ~ 1.6e-38 instead of a denormal, which is zero for every use here.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting rounds to integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `x * (1 + erf(x / sqrt 2)) / 2`, the exact (not tanh) GELU of BERT.
#[inline(always)]
pub fn gelu_erf_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `gelu(x + bias)` with the bias broadcast over rows.
struct BiasGeluErf;

impl CustomOp2 for BiasGeluErf {
    fn name(&self) -> &'static str {
        "verdict-bias-gelu-erf"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(values), CpuStorage::F32(bias)) = (xs, bias) else {
            candle_core::bail!("bias gelu: f32 only");
        };
        let (Some((start, end)), Some((bias_start, bias_end))) = (
            xs_layout.contiguous_offsets(),
            bias_layout.contiguous_offsets(),
        ) else {
            candle_core::bail!("bias gelu: contiguous inputs only");
        };
        let bias = &bias[bias_start..bias_end];
        let width = bias.len();
        let rows_per_chunk = (CHUNK / width.max(1)).max(1);
        let mut out = values[start..end].to_vec();
        out.par_chunks_mut(rows_per_chunk * width)
            .for_each(|chunk| {
                for row in chunk.chunks_mut(width) {
                    row.iter_mut()
                        .zip(bias)
                        .for_each(|(v, b)| *v = gelu_erf_f32(*v + b));
                }
            });
        Ok((CpuStorage::F32(out), xs_layout.shape().clone()))
    }
}

/// Softmax over the last dimension.
struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "verdict-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("softmax: f32 only");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("softmax: contiguous input only");
        };
        let width = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        let rows_per_chunk = (CHUNK / width).max(1);
        let mut out = values[start..end].to_vec();
        out.par_chunks_mut(rows_per_chunk * width)
            .for_each(|chunk| {
                for row in chunk.chunks_mut(width) {
                    // Separate passes with lane-wise partial results, so that each one vectorises
                    // (a single running max or sum is a serial dependency).
                    let mut maxima = [f32::NEG_INFINITY; LANES];
                    let mut lanes = row.chunks_exact(LANES);
                    for block in &mut lanes {
                        for (m, &v) in maxima.iter_mut().zip(block) {
                            *m = if v > *m { v } else { *m };
                        }
                    }
                    let max = lanes
                        .remainder()
                        .iter()
                        .chain(&maxima)
                        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
                    row.iter_mut().for_each(|v| *v = exp_f32(*v - max));
                    let mut sums = [0.0f32; LANES];
                    let mut lanes = row.chunks_exact(LANES);
                    for block in &mut lanes {
                        for (s, &v) in sums.iter_mut().zip(block) {
                            *s += v;
                        }
                    }
                    let sum: f32 = sums.iter().sum::<f32>() + lanes.remainder().iter().sum::<f32>();
                    let inverse = 1.0 / sum;
                    row.iter_mut().for_each(|v| *v *= inverse);
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

fn fast_path(xs: &Tensor) -> bool {
    xs.device().is_cpu() && xs.dtype() == DType::F32 && xs.is_contiguous()
}

/// GELU (erf form) of `xs + bias`, the bias broadcast over the last dimension; the fast
/// kernel for contiguous CPU `f32`, candle's own ops otherwise.
///
/// # Shapes
/// `xs`: `(..., n)`, `bias`: `(n)` -> same as `xs`.
pub fn bias_gelu_erf(xs: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    if fast_path(xs) && fast_path(bias) && xs.dims().last() == Some(&bias.elem_count()) {
        xs.apply_op2_no_bwd(bias, &BiasGeluErf)
    } else {
        xs.broadcast_add(bias)?.gelu_erf()
    }
}

/// Softmax over the last dimension; the fast kernel for contiguous CPU `f32`, candle's
/// otherwise.
///
/// # Shapes
/// Any shape, returned unchanged.
pub fn softmax_last_dim(xs: &Tensor) -> candle_core::Result<Tensor> {
    if fast_path(xs) {
        xs.apply_op1_no_bwd(&SoftmaxLastDim)
    } else {
        candle_nn::ops::softmax_last_dim(xs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_the_exact_function() {
        let mut worst = 0.0f64;
        for i in -60_000..=60_000 {
            let x = i as f64 * 1e-4;
            let exact = libm_erf(x);
            worst = worst.max((f64::from(erf_f32(x as f32)) - exact).abs());
        }
        assert!(worst < 5e-7, "max error {worst}");
    }

    /// erf through its Taylor series (|x| < 3) or continued fraction, in f64.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() < 3.0 {
            let mut term = x;
            let mut sum = x;
            for n in 1..200 {
                term *= -x * x / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc by Lentz's continued fraction.
            let z = x.abs();
            let mut fraction = 0.0;
            for k in (1..60).rev() {
                fraction = (k as f64 / 2.0) / (z + fraction);
            }
            let erfc = (-z * z).exp() / (std::f64::consts::PI.sqrt() * (z + fraction));
            (1.0 - erfc).copysign(x)
        }
    }

    #[test]
    fn exp_matches_the_exact_function() {
        let mut worst = 0.0f64;
        for i in -86_000..=80_000 {
            let x = i as f32 * 1e-3;
            let exact = f64::from(x).exp();
            worst = worst.max(((f64::from(exp_f32(x)) - exact) / exact).abs());
        }
        assert!(worst < 3e-7, "max relative error {worst}");
    }

    #[test]
    fn kernels_match_candle() {
        let device = candle_core::Device::Cpu;
        let values: Vec<f32> = (-800..800).map(|i| i as f32 * 0.01).collect();
        let xs = Tensor::from_vec(values, (16, 100), &device).unwrap();
        let bias = Tensor::arange(0f32, 100., &device)
            .unwrap()
            .affine(0.02, -1.0)
            .unwrap();
        let ours = bias_gelu_erf(&xs, &bias).unwrap();
        let theirs = xs.broadcast_add(&bias).unwrap().gelu_erf().unwrap();
        let difference = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap();
        assert!(difference.to_scalar::<f32>().unwrap() < 4e-6);

        let scores = (xs * 3.0).unwrap();
        let ours = softmax_last_dim(&scores).unwrap();
        let theirs = candle_nn::ops::softmax_last_dim(&scores).unwrap();
        let difference = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap();
        assert!(difference.to_scalar::<f32>().unwrap() < 1e-7);
    }
}
