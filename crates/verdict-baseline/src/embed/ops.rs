//! CPU kernels that candle runs slowly for this model: exact-erf GELU through a rational
//! approximation that the compiler vectorises (candle calls a scalar `erff` per element).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel work item.
const CHUNK: usize = 16 * 1024;

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

/// `x * (1 + erf(x / sqrt 2)) / 2`, the exact (not tanh) GELU of BERT.
#[inline(always)]
pub fn gelu_erf_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "verdict-gelu-erf"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("gelu: f32 only");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("gelu: contiguous input only");
        };
        let mut out = values[start..end].to_vec();
        out.par_chunks_mut(CHUNK)
            .for_each(|chunk| chunk.iter_mut().for_each(|v| *v = gelu_erf_f32(*v)));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// GELU (erf form) of every element; the fast kernel for contiguous CPU `f32`, candle's
/// own op otherwise.
///
/// # Shapes
/// Any shape, returned unchanged.
pub fn gelu_erf(xs: &Tensor) -> candle_core::Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 && xs.is_contiguous() {
        xs.apply_op1_no_bwd(&GeluErf)
    } else {
        xs.gelu_erf()
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
    fn gelu_matches_candle() {
        let values: Vec<f32> = (-800..800).map(|i| i as f32 * 0.01).collect();
        let xs = Tensor::new(values.as_slice(), &candle_core::Device::Cpu).unwrap();
        let ours = gelu_erf(&xs).unwrap().to_vec1::<f32>().unwrap();
        let theirs = xs.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 4e-6, "{a} vs {b}");
        }
    }
}
