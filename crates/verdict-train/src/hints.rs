//! Run-plan hints: how much memory the device has and what micro-batch and accumulation fit.
//!
//! The estimate is deliberately rough (weights + activations kept for the backward pass of
//! every decoder layer, the dominant terms without gradient checkpointing); it gives a
//! starting point and says how it was computed, rather than a promise.

use serde::Serialize;
use verdict_models::qwen3_vl::Config;
use verdict_models::{DType, Device};

/// A suggested batch layout for one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hint {
    pub device: String,
    /// Free memory found, in bytes (`None`: could not be read).
    pub free_bytes: Option<u64>,
    pub weight_bytes: u64,
    /// Activation memory of one sequence of `seq_len` tokens.
    pub bytes_per_sequence: u64,
    pub micro_batch_size: usize,
    pub grad_accumulation: usize,
}

impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        write!(
            f,
            "{}: {} free, weights {:.2} GiB, ~{:.2} GiB per sequence -> micro-batch {} x accumulation {}",
            self.device,
            self.free_bytes
                .map(|b| format!("{:.1} GiB", gib(b)))
                .unwrap_or_else(|| "unknown memory".into()),
            gib(self.weight_bytes),
            gib(self.bytes_per_sequence),
            self.micro_batch_size,
            self.grad_accumulation
        )
    }
}

/// Free memory of `device`: `MemAvailable` of `/proc/meminfo` on CPU, `nvidia-smi` on CUDA.
pub fn free_memory(device: &Device) -> Option<u64> {
    if device.is_cuda() {
        let output = std::process::Command::new("nvidia-smi")
            .args(["--query-gpu=memory.free", "--format=csv,noheader,nounits"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let mib: u64 = text.lines().next()?.trim().parse().ok()?;
        return Some(mib << 20);
    }
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

/// Suggests micro-batch and accumulation so that `effective_batch` sequences of `seq_len`
/// tokens make one optimiser step within half of the free memory.
pub fn plan(
    config: &Config,
    device: &Device,
    dtype: DType,
    seq_len: usize,
    effective_batch: usize,
    recompute: bool,
) -> Hint {
    let text = &config.text_config;
    let bytes = dtype.size_in_bytes() as u64;
    let (h, i, layers) = (
        text.hidden_size as u64,
        text.intermediate_size as u64,
        text.num_hidden_layers as u64,
    );
    let heads = text.num_attention_heads as u64;
    let per_layer_params = 4 * h * h + 3 * h * i;
    let weight_bytes = (layers * per_layer_params + text.vocab_size as u64 * h) * bytes;
    let s = seq_len as u64;
    // Per layer: ~10 hidden-sized and 4 intermediate-sized activations per token, plus the
    // attention probabilities (heads x s x s), all kept for the backward pass.
    let per_layer = s * (10 * h + 4 * i) * bytes + heads * s * s * 4;
    // Recomputing layers keeps each layer's input and output, and one layer's activations.
    let kept_layers = if recompute {
        layers * 2 * s * h * bytes + per_layer
    } else {
        layers * per_layer
    };
    let bytes_per_sequence = kept_layers + s * h * 4;
    let free_bytes = free_memory(device);
    let micro = match free_bytes {
        Some(free) => {
            let budget = (free / 2).saturating_sub(weight_bytes);
            (budget / bytes_per_sequence.max(1)).clamp(1, 16) as usize
        }
        None => 1,
    };
    let micro = micro.min(effective_batch.max(1));
    Hint {
        device: if device.is_cuda() { "cuda" } else { "cpu" }.into(),
        free_bytes,
        weight_bytes,
        bytes_per_sequence,
        micro_batch_size: micro,
        grad_accumulation: effective_batch.max(1).div_ceil(micro),
    }
}
