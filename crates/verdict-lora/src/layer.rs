//! The adapted linear layer: `base(x) + scaling * dropout(x) @ A^T @ B^T`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use verdict_models::nn::{custom_backward2, LinearLayer};

/// Position of the dropout random stream, enough to continue it exactly after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    pub seed: u64,
    /// 32-bit words consumed so far (ChaCha8 word position).
    pub word_pos: u128,
}

/// Training switch and random stream shared by every adapter of one factory.
///
/// On CPU, dropout masks are drawn from one seeded stream (candle's CPU random source cannot
/// be seeded), so a run on CPU is reproducible and resumable from an [`RngState`]. On an
/// accelerator the device's generator draws them (reproducible after `Device::set_seed`, but
/// its position is not part of [`RngState`]).
#[derive(Debug)]
pub(crate) struct Shared {
    training: AtomicBool,
    rng: Mutex<(u64, ChaCha8Rng)>,
}

impl Shared {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            training: AtomicBool::new(false),
            rng: Mutex::new((seed, ChaCha8Rng::seed_from_u64(seed))),
        }
    }

    pub(crate) fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::SeqCst);
    }

    pub(crate) fn training(&self) -> bool {
        self.training.load(Ordering::SeqCst)
    }

    pub(crate) fn rng_state(&self) -> RngState {
        let guard = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        RngState {
            seed: guard.0,
            word_pos: guard.1.get_word_pos(),
        }
    }

    pub(crate) fn set_rng_state(&self, state: RngState) {
        let mut rng = ChaCha8Rng::seed_from_u64(state.seed);
        rng.set_word_pos(state.word_pos);
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = (state.seed, rng);
    }

    /// Inverted-dropout mask values: `0` with probability `p`, else `1 / (1 - p)`.
    fn mask(&self, len: usize, p: f64) -> Vec<f32> {
        let keep_scale = (1.0 / (1.0 - p)) as f32;
        let mut guard = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        (0..len)
            .map(|_| {
                if guard.1.random::<f64>() < p {
                    0.0
                } else {
                    keep_scale
                }
            })
            .collect()
    }
}

/// One LoRA adapter: trainable `A` `(r, in)` and `B` `(out, r)` plus its scaling.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub a: Var,
    pub b: Var,
    pub scaling: f64,
}

impl Adapter {
    /// The dense update `scaling * B @ A`, `(out, in)` in the adapter's dtype.
    pub fn delta_weight(&self) -> candle_core::Result<Tensor> {
        self.b.as_tensor().matmul(self.a.as_tensor())? * self.scaling
    }
}

/// A frozen base layer plus an adapter. Base weights are plain tensors, never variables of
/// the optimiser, so training cannot change them.
#[derive(Debug)]
pub struct LoraLinear {
    base: Arc<dyn LinearLayer>,
    adapter: Adapter,
    dropout: f64,
    shared: Arc<Shared>,
    /// Mask of the last gradient-free call, for the recomputation that follows it.
    pending_mask: Mutex<Option<Tensor>>,
}

impl LoraLinear {
    pub(crate) fn new(
        base: Arc<dyn LinearLayer>,
        adapter: Adapter,
        dropout: f64,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            base,
            adapter,
            dropout,
            shared,
            pending_mask: Mutex::new(None),
        }
    }

    pub fn adapter(&self) -> &Adapter {
        &self.adapter
    }

    /// The dropout mask for `xs`. A recomputed block (see `verdict_models::nn::recompute`)
    /// runs twice, first without gradients: the mask drawn then is kept and handed to the
    /// second, differentiable run, so both see the same mask.
    fn dropout_mask(&self, xs: &Tensor) -> verdict_models::Result<Tensor> {
        let mut pending = self.pending_mask.lock().unwrap_or_else(|e| e.into_inner());
        if verdict_models::nn::grad_enabled() {
            if let Some(mask) = pending.take() {
                if mask.shape() == xs.shape() {
                    return Ok(mask);
                }
            }
        }
        let mask = self.draw_mask(xs)?;
        if !verdict_models::nn::grad_enabled() {
            *pending = Some(mask.clone());
        }
        Ok(mask)
    }

    fn draw_mask(&self, xs: &Tensor) -> verdict_models::Result<Tensor> {
        Ok(if xs.device().is_cpu() {
            let mask = self.shared.mask(xs.elem_count(), self.dropout);
            Tensor::from_vec(mask, xs.shape(), xs.device())?
        } else {
            // Drawing millions of values per layer on the host would stall an accelerator;
            // its own generator (seeded through `Device::set_seed`) draws them instead.
            let keep = Tensor::rand(0f32, 1f32, xs.shape(), xs.device())?
                .ge(self.dropout)?
                .to_dtype(candle_core::DType::F32)?;
            (keep * (1.0 / (1.0 - self.dropout)))?
        })
    }

    /// `(scaling * input @ A^T) @ B^T`, the adapter's share of the output.
    ///
    /// With gradients the two products carry hand-written backward passes
    /// (`custom_backward2`): the adapters' f32 masters are cast inside, so the graph holds
    /// two nodes per adapter instead of seven (two casts, two transposes, two products, the
    /// scaling), each of which costs a zero tensor and an add per gradient edge in candle's
    /// backward. Without gradients the adapters enter as constants, so a recomputed block's
    /// first pass stays untracked and takes the fused inference kernels.
    ///
    /// # Shapes
    /// `input`: `(.., in)` -> `(.., out)`.
    fn delta(&self, input: &Tensor) -> verdict_models::Result<Tensor> {
        let dtype = input.dtype();
        let scaling = self.adapter.scaling;
        let (a, b) = (self.adapter.a.as_tensor(), self.adapter.b.as_tensor());
        let (a_value, b_value) = (a.detach().to_dtype(dtype)?, b.detach().to_dtype(dtype)?);
        // The scaling applies to the rank-wide `down`, not to the output: r columns instead of
        // `out` (exact for the usual power-of-two `alpha / r`).
        let down_value = (input.detach().broadcast_matmul(&a_value.t()?)? * scaling)?;
        let delta_value = down_value.broadcast_matmul(&b_value.t()?)?;
        if !verdict_models::nn::grad_enabled() {
            return Ok(delta_value);
        }
        let down = custom_backward2(input, a, &down_value, move |x, a, _, grad| {
            // down = s x A^T: dx = s g A, dA = s g^T x (summed over every leading dimension).
            let grad = (grad * scaling)?;
            let dx = grad.broadcast_matmul(&a.to_dtype(grad.dtype())?)?;
            Ok((dx, outer(&grad, x)?.to_dtype(a.dtype())?))
        })?;
        custom_backward2(&down, b, &delta_value, |down, b, _, grad| {
            // delta = down B^T: d(down) = g B, dB = g^T down.
            let d_down = grad.broadcast_matmul(&b.to_dtype(grad.dtype())?)?;
            Ok((d_down, outer(grad, down)?.to_dtype(b.dtype())?))
        })
    }

    /// The same product as separate tracked ops (what [`LoraLinear::delta`] replaces); kept
    /// to test the hand-written gradients against candle's.
    #[cfg(test)]
    fn delta_op_by_op(&self, input: &Tensor) -> verdict_models::Result<Tensor> {
        use candle_core::Module;
        let dtype = input.dtype();
        let a = self.adapter.a.as_tensor().to_dtype(dtype)?;
        let b = self.adapter.b.as_tensor().to_dtype(dtype)?;
        let down = candle_nn::Linear::new(a, None).forward(input)?;
        let up = candle_nn::Linear::new(b, None).forward(&down)?;
        Ok((up * self.adapter.scaling)?)
    }
}

/// `g^T x` over all leading dimensions: `(.., m)`, `(.., n)` -> `(m, n)`.
fn outer(g: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
    let (m, n) = (
        g.dim(candle_core::D::Minus1)?,
        x.dim(candle_core::D::Minus1)?,
    );
    let g = g.reshape(((), m))?;
    let x = x.reshape(((), n))?;
    g.t()?.matmul(&x)
}

impl LinearLayer for LoraLinear {
    /// # Shapes
    /// `xs`: `(.., in)` -> `(.., out)`.
    fn forward(&self, xs: &Tensor) -> verdict_models::Result<Tensor> {
        let base = self.base.forward(xs)?;
        let input = if self.dropout > 0.0 && self.shared.training() {
            let mask = self.dropout_mask(xs)?;
            (xs * mask.to_dtype(xs.dtype())?)?
        } else {
            xs.clone()
        };
        Ok((base + self.delta(&input)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use verdict_models::nn::seeded::normal;
    use verdict_models::nn::Linear;

    /// An adapted layer with f32 adapter masters on a frozen base of `dtype`.
    fn layer(dtype: DType) -> candle_core::Result<LoraLinear> {
        let dev = Device::Cpu;
        let weight = normal((6, 5), 0.5, 1, &dev)?.to_dtype(dtype)?;
        let adapter = Adapter {
            a: Var::from_tensor(&normal((3, 5), 0.5, 2, &dev)?)?,
            b: Var::from_tensor(&normal((6, 3), 0.5, 3, &dev)?)?,
            scaling: 2.5,
        };
        Ok(LoraLinear::new(
            Arc::new(Linear::new(weight, None)),
            adapter,
            0.0,
            Arc::new(Shared::new(0)),
        ))
    }

    /// The fused adapter against the op-by-op graph: outputs and all three gradients.
    ///
    /// Both paths round differently in bf16 (the fused one scales the rank-wide intermediate,
    /// the other the output), so each comparison is relative to the largest entry: bf16 keeps
    /// 8 significant bits (relative step 2^-8 = 0.4%), and a few roundings in a row stay
    /// within 2%.
    #[test]
    fn hand_written_gradients_match_the_op_by_op_graph() -> verdict_models::Result<()> {
        for (dtype, tolerance) in [(DType::F32, 1e-5), (DType::BF16, 2e-2)] {
            let layer = layer(dtype)?;
            let x = Var::from_tensor(&normal((2, 4, 5), 1.0, 4, &Device::Cpu)?.to_dtype(dtype)?)?;
            // A weighting that differs per output element, so every gradient entry matters.
            let weights = normal((2, 4, 6), 1.0, 5, &Device::Cpu)?;
            let close = |a: &Tensor, b: &Tensor, what: &str| -> candle_core::Result<()> {
                let (a, b) = (a.to_dtype(DType::F32)?, b.to_dtype(DType::F32)?);
                let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-3);
                let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(
                    diff <= tolerance * scale,
                    "{dtype:?} {what}: {diff} (largest {scale})"
                );
                Ok(())
            };
            let fused = layer.delta(x.as_tensor())?;
            let reference = layer.delta_op_by_op(x.as_tensor())?;
            close(&fused, &reference, "output")?;
            let loss = |delta: Tensor| (delta.to_dtype(DType::F32)? * &weights)?.sum_all();
            let (g_fused, g_reference) = (loss(fused)?.backward()?, loss(reference)?.backward()?);
            for (tensor, what) in [
                (x.as_tensor(), "input"),
                (layer.adapter.a.as_tensor(), "A"),
                (layer.adapter.b.as_tensor(), "B"),
            ] {
                let ours = g_fused.get(tensor).expect("gradient");
                let theirs = g_reference.get(tensor).expect("gradient");
                assert_eq!(ours.dtype(), tensor.dtype(), "{what}");
                close(ours, theirs, what)?;
            }
        }
        Ok(())
    }

    #[test]
    fn without_gradients_the_adapter_is_a_constant() -> verdict_models::Result<()> {
        let layer = layer(DType::F32)?;
        let x = normal((2, 4, 5), 1.0, 6, &Device::Cpu)?;
        let tracked = layer.forward(&x)?;
        assert!(
            tracked.track_op(),
            "the adapters' variables are in the graph"
        );
        let untracked = {
            let _no_grad = verdict_models::nn::NoGrad::new();
            layer.forward(&x)?
        };
        // Nothing downstream sees a tracked tensor, so inference takes the fused kernels.
        assert!(!untracked.track_op());
        let diff = (tracked - untracked)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(diff, 0.0);
        Ok(())
    }
}
