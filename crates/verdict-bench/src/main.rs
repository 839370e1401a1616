//! `verdict-gpu-bench`: the Verdict side of the side-by-side accelerator benchmark.
//!
//! `scripts/gpu/bench_qwen3_vl.py` makes a random-init checkpoint and synthetic inputs with
//! `transformers`, runs the reference, then calls this binary on the same files and prints
//! one table. Every subcommand prints one JSON object per measurement on stdout so that the
//! script never parses free text.

mod flops;
mod inputs;
mod train;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Tensor};
use clap::{Parser, Subcommand, ValueEnum};
use verdict_models::qwen3_vl::model::{Logits, Qwen3VL};

/// Measures Verdict's Qwen3-VL code on a checkpoint and an inputs file written by the
/// benchmark script.
#[derive(Parser)]
#[command(name = "verdict-gpu-bench", version, about)]
struct Cli {
    /// Checkpoint directory (`config.json` + safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Inputs file: `input_ids` (B, S) i64, `pixel_values` (patches, dim), `image_grid_thw`
    /// (B, 3) i64 and `label_ids` (L,) i64.
    #[arg(long)]
    inputs: PathBuf,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, value_enum, default_value_t = Precision::Bf16)]
    dtype: Precision,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Precision {
    F32,
    Bf16,
}

impl Precision {
    fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Last-position logits of every input row, saved (f32) for the parity check.
    Logits {
        #[arg(long)]
        out: PathBuf,
    },
    /// Label-scoring throughput (forward, last-position log-softmax over the label tokens).
    Score {
        /// Comma-separated batch sizes.
        #[arg(long, default_value = "8,32,64", value_delimiter = ',')]
        batch_sizes: Vec<usize>,
        /// Timed items per batch size (rounded up to whole batches).
        #[arg(long, default_value_t = 256)]
        items: usize,
    },
    /// LoRA training steps: forward, language-model loss, backward, AdamW.
    Train(train::Args),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let device = verdict_models::parse_device(&cli.device)?;
    let dtype = cli.dtype.dtype();
    let data = inputs::Inputs::load(&cli.inputs, &device)?;
    match cli.command {
        Command::Train(args) => return train::run(&cli.model, &data, dtype, &device, &args),
        Command::Logits { out } => {
            let model = Qwen3VL::load(&cli.model, dtype, &device, None)?;
            let batch = data.batch(data.rows(), &device)?;
            let output = model.forward(&batch, None, Logits::Last, false)?;
            let logits = output.logits.squeeze(1)?.to_dtype(DType::F32)?;
            let label_log_probs = label_log_probs(&logits, &data.label_ids)?;
            let tensors: std::collections::HashMap<&str, Tensor> =
                [("logits", logits), ("label_log_probs", label_log_probs)]
                    .into_iter()
                    .collect();
            candle_core::safetensors::save(&tensors, &out)?;
            println!(
                "{}",
                serde_json::json!({"kind": "logits", "rows": data.rows(), "out": out})
            );
        }
        Command::Score { batch_sizes, items } => {
            let model = Qwen3VL::load(&cli.model, dtype, &device, None)?;
            let per_item = flops::forward_flops_per_item(model.config(), &data)?;
            for &bs in &batch_sizes {
                let batch = data.batch(bs, &device)?;
                let score = |batch| -> Result<()> {
                    let out = model.forward(batch, None, Logits::Last, false)?;
                    let logits = out.logits.squeeze(1)?.to_dtype(DType::F32)?;
                    // Keep the result on the device; no host sync inside the loop.
                    label_log_probs(&logits, &data.label_ids)?;
                    Ok(())
                };
                // Warm-up: kernel loading, allocator growth.
                for _ in 0..2 {
                    score(&batch)?;
                }
                device.synchronize()?;
                let steps = items.div_ceil(bs).max(1);
                let start = Instant::now();
                for _ in 0..steps {
                    score(&batch)?;
                }
                device.synchronize()?;
                let seconds = start.elapsed().as_secs_f64();
                let items_per_s = (steps * bs) as f64 / seconds;
                println!(
                    "{}",
                    serde_json::json!({
                        "kind": "score",
                        "batch": bs,
                        "items_per_s": items_per_s,
                        "tflops": items_per_s * per_item / 1e12,
                        "seq_len": data.seq_len(),
                    })
                );
            }
        }
    }
    Ok(())
}

/// `log_softmax(logits)[:, label_ids]`, computed on the device.
///
/// # Shapes
/// `logits`: `(batch, vocab)` f32 -> `(batch, labels)`.
fn label_log_probs(logits: &Tensor, label_ids: &Tensor) -> Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(logits, candle_core::D::Minus1)?;
    Ok(log_probs.index_select(label_ids, 1)?)
}
