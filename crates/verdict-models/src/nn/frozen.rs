//! Products with frozen weights whose backward pass skips the weight's gradient.
//!
//! candle's matmul backward computes the gradient of both operands, whether or not anything
//! asked for it, and keeps every such gradient in the step's gradient store until the step
//! ends. In LoRA training every base weight is frozen: that is a third of the backward
//! pass's arithmetic spent on gradients nobody reads, and a gradient-sized copy of every base
//! weight held in memory. [`matmul_t`] computes the same product with the input's gradient
//! only.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use crate::Result;

/// `x @ w^T`; when `x` tracks gradients and `w` does not, the backward pass computes only
/// `x`'s gradient (`grad @ w`).
///
/// # Shapes
/// `x`: `(m, k)` (contiguous), `w`: `(n, k)` -> `(m, n)`.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.track_op() && !w.track_op() && x.rank() == 2 && w.rank() == 2 && x.is_contiguous() {
        Ok(x.apply_op2(w, FrozenMatmulT)?)
    } else {
        Ok(x.matmul(&w.t()?)?)
    }
}

struct FrozenMatmulT;

impl FrozenMatmulT {
    /// `(b, m, n, k)` of the product and `w^T`'s layout.
    fn dims(x: &Layout, w: &Layout) -> candle_core::Result<((usize, usize, usize, usize), Layout)> {
        let (m, k) = x.shape().dims2()?;
        let (n, k_w) = w.shape().dims2()?;
        if k != k_w {
            candle_core::bail!("frozen matmul: x has {k} columns, w has {k_w}")
        }
        Ok(((1, m, n, k), w.transpose(0, 1)?))
    }
}

impl CustomOp2 for FrozenMatmulT {
    fn name(&self) -> &'static str {
        "frozen-matmul-t"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (bmnk, wt) = Self::dims(x_layout, w_layout)?;
        Ok((
            x.matmul(w, bmnk, x_layout, &wt)?,
            Shape::from((bmnk.1, bmnk.2)),
        ))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        x_layout: &Layout,
        w: &candle_core::CudaStorage,
        w_layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (bmnk, wt) = Self::dims(x_layout, w_layout)?;
        Ok((
            x.matmul(w, bmnk, x_layout, &wt)?,
            Shape::from((bmnk.1, bmnk.2)),
        ))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.matmul(w)?), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::seeded::normal;
    use candle_core::{Device, Var};

    #[test]
    fn same_product_and_input_gradient_without_a_weight_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&normal((5, 3), 1.0, 1, &dev)?)?;
        let w = normal((4, 3), 1.0, 2, &dev)?;
        let ours = matmul_t(x.as_tensor(), &w)?;
        let plain = x.as_tensor().matmul(&w.t()?)?;
        let diff = (&ours - &plain)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "{diff}");
        let ours_grads = ours.sqr()?.sum_all()?.backward()?;
        let plain_grads = plain.sqr()?.sum_all()?.backward()?;
        let gx = (ours_grads.get(x.as_tensor()).expect("x grad")
            - plain_grads.get(x.as_tensor()).expect("x grad"))?;
        assert!(gx.abs()?.max_all()?.to_scalar::<f32>()? < 1e-5);
        // candle's own product also computes (and keeps) a gradient for the frozen weight's
        // transposed view; ours keeps the input's alone.
        assert_eq!(plain_grads.get_ids().count(), 2);
        assert_eq!(ours_grads.get_ids().count(), 1);
        Ok(())
    }
}
