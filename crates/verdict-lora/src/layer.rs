//! The adapted linear layer: `base(x) + scaling * dropout(x) @ A^T @ B^T`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{Module, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use verdict_models::nn::LinearLayer;

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
}

impl LinearLayer for LoraLinear {
    /// # Shapes
    /// `xs`: `(.., in)` -> `(.., out)`.
    fn forward(&self, xs: &Tensor) -> verdict_models::Result<Tensor> {
        let base = self.base.forward(xs)?;
        let dtype = xs.dtype();
        let input = if self.dropout > 0.0 && self.shared.training() {
            let mask = self.dropout_mask(xs)?;
            (xs * mask.to_dtype(dtype)?)?
        } else {
            xs.clone()
        };
        // Adapter variables may be kept in f32 while the model runs in bf16; the cast is cheap
        // (r rows) and carries gradients back to the f32 masters.
        // Without gradients (the first pass of a recomputed block) the adapters enter as
        // constants, so the whole block stays untracked and takes the fused kernels.
        let (a, b) = if verdict_models::nn::grad_enabled() {
            (
                self.adapter.a.as_tensor().clone(),
                self.adapter.b.as_tensor().clone(),
            )
        } else {
            (
                self.adapter.a.as_tensor().detach(),
                self.adapter.b.as_tensor().detach(),
            )
        };
        let a = a.to_dtype(dtype)?;
        let b = b.to_dtype(dtype)?;
        let down = candle_nn::Linear::new(a, None).forward(&input)?;
        let up = candle_nn::Linear::new(b, None).forward(&down)?;
        Ok((base + (up * self.adapter.scaling)?)?)
    }
}
