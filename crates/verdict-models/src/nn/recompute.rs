//! Activation recomputation ("gradient checkpointing") for candle graphs.
//!
//! candle's backward pass keeps every intermediate tensor of the forward pass alive until the
//! loss is dropped. For a decoder of 28 layers that is tens of gigabytes at a training batch
//! of eight. [`checkpoint`] runs a block once *without* gradients (so it also takes the fused
//! inference kernels), keeps only the block's input, and recomputes the block with gradients
//! inside the backward pass, one block at a time. Peak memory becomes the block inputs plus
//! one block's intermediates.
//!
//! The recomputed block may use trainable variables (LoRA adapters) that the outer graph
//! never sees. Their gradients are collected in a [`GradSink`]; the caller merges them into
//! the store returned by `loss.backward()` ([`GradSink::merge_into`]).
//!
//! Randomness: a block is recomputed with the same code, so anything random in it must
//! repeat its first draw; layers that draw (adapter dropout) keep what they drew while
//! [`grad_enabled`] is off and reuse it in the recomputation.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use candle_core::backprop::GradStore;
use candle_core::{Tensor, TensorId, Var};

use super::custom_backward::custom_backward;

use crate::{Error, Result};

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether layers should build a differentiable graph for their trainable variables.
/// `false` while [`checkpoint`] runs a block's first, gradient-free forward pass.
pub fn grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Turns [`grad_enabled`] off on this thread until dropped.
pub struct NoGrad {
    previous: bool,
}

impl NoGrad {
    pub fn new() -> Self {
        Self {
            previous: GRAD_ENABLED.with(|g| g.replace(false)),
        }
    }
}

impl Default for NoGrad {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoGrad {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Gradients of variables used only inside recomputed blocks.
#[derive(Debug, Clone, Default)]
pub struct GradSink {
    store: Arc<Mutex<Option<GradStore>>>,
}

impl GradSink {
    pub fn new() -> Self {
        Self::default()
    }

    fn absorb(&self, grads: GradStore) -> candle_core::Result<()> {
        let mut guard = self.store.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(store) => store.extend(grads),
            None => {
                *guard = Some(grads);
                Ok(())
            }
        }
    }

    /// Adds the collected gradients to `grads` (summing where both have one) and empties the
    /// sink for the next step.
    pub fn merge_into(&self, grads: &mut GradStore) -> Result<()> {
        let taken = self.store.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(collected) = taken {
            grads.extend(collected)?;
        }
        Ok(())
    }
}

/// Runs `block(x)` without gradients and returns its result attached to `x`, so the backward
/// pass recomputes `block` with gradients instead of keeping its intermediates.
///
/// `x` must track gradients (a variable or the result of tracked ops); when it does not,
/// there is nothing to recompute for and `block(x)` is returned as it is.
///
/// # Shapes
/// Any: the result has the shape of `block(x)`.
pub fn checkpoint<F>(x: &Tensor, block: F, sink: &GradSink) -> Result<Tensor>
where
    F: Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static,
{
    if !x.track_op() {
        return block(x);
    }
    let out = {
        let _no_grad = NoGrad::new();
        block(&x.detach())?
    };
    if out.track_op() {
        return Err(Error::Input(
            "a recomputed block used a tracked tensor that is not its input; \
             pass it through the block's input or detach it"
                .into(),
        ));
    }
    let sink = sink.clone();
    custom_backward(x, &out, move |x, _, grad| recompute(&block, x, grad, &sink))
}

/// The gradient of `block` at `x` for the incoming `grad`, from a differentiable rerun of the
/// block; gradients of the block's own variables go to `sink`.
fn recompute(
    block: &dyn Fn(&Tensor) -> Result<Tensor>,
    x: &Tensor,
    grad: &Tensor,
    sink: &GradSink,
) -> Result<Tensor> {
    let input = Var::from_tensor(x)?;
    let y = block(input.as_tensor())?;
    // d(sum(y * g))/dy = g: one backward from a scalar seeds the block with `grad`.
    let seed = (y * grad)?.sum_all()?;
    let variables: HashSet<TensorId> = seed
        .sorted_nodes()
        .iter()
        .filter(|t| t.is_variable())
        .map(|t| t.id())
        .collect();
    let mut grads = seed.backward()?;
    let grad_x = match grads.remove(input.as_tensor()) {
        Some(grad_x) => grad_x,
        None => x.zeros_like()?,
    };
    // candle also leaves gradients for the block's constant operands (masks, rotary
    // tables, the seed); keep the variables' only.
    let mut kept = GradStore::default();
    for id in variables {
        if let Some(grad) = grads.get_id(id) {
            kept.insert_id(id, grad.clone());
        }
    }
    drop(grads);
    sink.absorb(kept)?;
    Ok(grad_x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::seeded::normal;
    use candle_core::{DType, Device};

    /// A block with an inner variable: `tanh(x @ w) * x`, recomputed or not, gives the same
    /// gradients for `x` (through the outer graph) and `w` (through the sink).
    #[test]
    fn recomputed_gradients_match_the_kept_graph() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::from_tensor(&normal((4, 4), 0.5, 1, &dev)?)?;
        let x0 = Var::from_tensor(&normal((3, 4), 1.0, 2, &dev)?)?;
        let block = {
            let w = w.clone();
            move |x: &Tensor| -> Result<Tensor> {
                let w = if grad_enabled() {
                    w.as_tensor().clone()
                } else {
                    w.as_tensor().detach()
                };
                Ok((x.matmul(&w)?.tanh()? * x)?)
            }
        };
        let plain = block(&block(x0.as_tensor())?)?.sqr()?.sum_all()?;
        let plain_grads = plain.backward()?;

        let sink = GradSink::new();
        let h = checkpoint(x0.as_tensor(), block.clone(), &sink)?;
        let h = checkpoint(&h, block, &sink)?;
        let loss = h.sqr()?.sum_all()?;
        assert!(
            (loss.to_scalar::<f32>()? - plain.to_scalar::<f32>()?).abs() < 1e-5,
            "forward values differ"
        );
        let mut grads = loss.backward()?;
        assert!(
            grads.get(w.as_tensor()).is_none(),
            "w is outside the outer graph"
        );
        sink.merge_into(&mut grads)?;
        for var in [&w, &x0] {
            let a = plain_grads.get(var.as_tensor()).expect("plain grad");
            let b = grads.get(var.as_tensor()).expect("recomputed grad");
            let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "gradients differ by {diff}");
        }
        // The sink is emptied by a merge.
        let mut again = loss.backward()?;
        sink.merge_into(&mut again)?;
        let twice = again.get(w.as_tensor()).expect("second step");
        let once = plain_grads.get(w.as_tensor()).expect("plain grad");
        assert!(((twice - once)?.abs()?.max_all()?.to_scalar::<f32>()?) < 1e-5);
        Ok(())
    }

    #[test]
    fn untracked_input_runs_the_block_directly() -> Result<()> {
        let x = Tensor::ones((2, 2), DType::F32, &Device::Cpu)?;
        let y = checkpoint(&x, |x: &Tensor| Ok((x * 3.0)?), &GradSink::new())?;
        assert!(!y.track_op());
        assert_eq!(y.sum_all()?.to_scalar::<f32>()?, 12.0);
        Ok(())
    }

    #[test]
    fn no_grad_guard_restores_the_previous_state() {
        assert!(grad_enabled());
        {
            let _outer = NoGrad::new();
            assert!(!grad_enabled());
            {
                let _inner = NoGrad::new();
                assert!(!grad_enabled());
            }
            assert!(!grad_enabled());
        }
        assert!(grad_enabled());
    }
}
