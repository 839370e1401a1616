//! Fused forwards with hand-written backward passes.
//!
//! The inference kernels (`super::gpu`) have no backward, so a training graph used to take
//! the op-by-op versions: a norm or a softmax became a dozen element-wise ops, each keeping
//! its output for the backward pass and adding backward nodes (and, in candle, a zero tensor
//! per gradient edge). [`custom_backward`] attaches a result computed without gradients to
//! its input with an analytic gradient instead: one kernel forward, a few ops backward, and
//! only the input and the result kept.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use crate::Result;

type Backward1 = dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor> + Send + Sync;
type Backward2 =
    dyn Fn(&Tensor, &Tensor, &Tensor, &Tensor) -> Result<(Tensor, Tensor)> + Send + Sync;

/// Returns `out`, computed from `x` without gradients (typically by a fused kernel that has
/// no backward of its own), as a differentiable function of `x` whose gradient is
/// `backward(x, out, grad_out)`. Only `x` and the returned tensor are kept for the backward
/// pass: the fused kernel's one output instead of the intermediates of the op-by-op version.
///
/// # Shapes
/// `out`: any; `backward` returns a tensor shaped like `x`.
pub fn custom_backward<F>(x: &Tensor, out: &Tensor, backward: F) -> Result<Tensor>
where
    F: Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor> + Send + Sync + 'static,
{
    let out = stored(out)?;
    Ok(x.apply_op2(
        &out,
        Attached1 {
            backward: Arc::new(backward),
        },
    )?)
}

/// [`custom_backward`] for a function of two tensors: `backward(a, b, out, grad_out)`
/// returns the gradients of `a` and `b`.
pub fn custom_backward2<F>(a: &Tensor, b: &Tensor, out: &Tensor, backward: F) -> Result<Tensor>
where
    F: Fn(&Tensor, &Tensor, &Tensor, &Tensor) -> Result<(Tensor, Tensor)> + Send + Sync + 'static,
{
    let out = stored(out)?;
    Ok(a.apply_op3(
        b,
        &out,
        Attached2 {
            backward: Arc::new(backward),
        },
    )?)
}

/// `out` as the ops here hand it back: untracked, contiguous from offset 0.
fn stored(out: &Tensor) -> Result<Tensor> {
    let out = out.detach();
    if out.is_contiguous() && out.layout().start_offset() == 0 {
        Ok(out)
    } else {
        Ok(out.force_contiguous()?)
    }
}

fn output_shape(layout: &Layout) -> candle_core::Result<Shape> {
    if !layout.is_contiguous() || layout.start_offset() != 0 {
        candle_core::bail!("the stored output must be contiguous from offset 0")
    }
    Ok(layout.shape().clone())
}

fn copy_cpu(out: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
    use candle_core::backend::BackendStorage;
    Ok((out.try_clone(layout)?, output_shape(layout)?))
}

#[cfg(feature = "cuda")]
fn copy_cuda(
    out: &candle_core::CudaStorage,
    layout: &Layout,
) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
    use candle_core::backend::BackendStorage;
    Ok((out.try_clone(layout)?, output_shape(layout)?))
}

struct Attached1 {
    backward: Arc<Backward1>,
}

impl CustomOp2 for Attached1 {
    fn name(&self) -> &'static str {
        "custom-backward"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        out: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        copy_cpu(out, layout)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        out: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        copy_cuda(out, layout)
    }

    fn bwd(
        &self,
        x: &Tensor,
        out: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_x =
            (self.backward)(&x.detach(), out, &grad.detach()).map_err(candle_core::Error::wrap)?;
        Ok((Some(grad_x), None))
    }
}

struct Attached2 {
    backward: Arc<Backward2>,
}

impl CustomOp3 for Attached2 {
    fn name(&self) -> &'static str {
        "custom-backward2"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        out: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        copy_cpu(out, layout)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        out: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        copy_cuda(out, layout)
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        out: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (grad_a, grad_b) = (self.backward)(&a.detach(), &b.detach(), out, &grad.detach())
            .map_err(candle_core::Error::wrap)?;
        Ok((Some(grad_a), Some(grad_b), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// `x^3` with the gradient `3 x^2` supplied by hand, for one and two inputs.
    #[test]
    fn attached_gradients_reach_the_inputs() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::new(&[1.0f32, -2.0, 0.5], &dev)?)?;
        let cube = x.as_tensor().detach().powf(3.0)?;
        let y = custom_backward(x.as_tensor(), &cube, |x, _, grad| {
            Ok((x.sqr()? * 3.0)?.mul(grad)?)
        })?;
        let grads = y.sum_all()?.backward()?;
        let g = grads
            .get(x.as_tensor())
            .expect("gradient")
            .to_vec1::<f32>()?;
        assert_eq!(g, vec![3.0, 12.0, 0.75]);

        let (a, b) = (Var::new(&[2.0f32], &dev)?, Var::new(&[5.0f32], &dev)?);
        let product = (a.as_tensor().detach() * b.as_tensor().detach())?;
        let z = custom_backward2(a.as_tensor(), b.as_tensor(), &product, |a, b, _, grad| {
            Ok(((b * grad)?, (a * grad)?))
        })?;
        assert_eq!(z.to_vec1::<f32>()?, vec![10.0]);
        let grads = z.sum_all()?.backward()?;
        assert_eq!(
            grads.get(a.as_tensor()).expect("a").to_vec1::<f32>()?,
            vec![5.0]
        );
        assert_eq!(
            grads.get(b.as_tensor()).expect("b").to_vec1::<f32>()?,
            vec![2.0]
        );
        Ok(())
    }
}
