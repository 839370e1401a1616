//! LoRA training steps on the benchmark inputs: the language-model loss over every position
//! (as `labels = input_ids` does in transformers), backward, AdamW.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use verdict_lora::{LoraConfig, LoraFactory, TargetModules};
use verdict_models::nn::ops::log_softmax_last_dim;
use verdict_models::qwen3_vl::{Batch, Logits, Qwen3VL};

use crate::flops;
use crate::inputs::Inputs;

/// Every attention and MLP linear of the language model (not the vision tower).
pub const LANGUAGE_LINEARS: &str =
    r"model\.language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)";

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 16)]
    pub rank: usize,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Recompute each decoder layer in the backward pass instead of keeping activations.
    #[arg(long)]
    pub checkpointing: bool,
}

pub fn run(
    model_dir: &Path,
    inputs: &Inputs,
    dtype: DType,
    device: &Device,
    args: &Args,
) -> Result<()> {
    if args.checkpointing {
        bail!("per-layer recomputation is not available in this build");
    }
    let config = LoraConfig {
        r: args.rank,
        alpha: 2.0 * args.rank as f64,
        dropout: 0.0,
        target_modules: TargetModules::Pattern(LANGUAGE_LINEARS.to_string()),
        ..LoraConfig::default()
    };
    // f32 adapter masters; the layer casts them to the model's dtype on the fly.
    let factory = LoraFactory::new(config, device, DType::F32)?;
    let model = Qwen3VL::load(model_dir, dtype, device, Some(factory.clone()))?;
    factory.set_training(true);
    let mut optimiser = AdamW::new(
        factory.trainable_vars(),
        ParamsAdamW {
            lr: 1e-4,
            ..ParamsAdamW::default()
        },
    )?;
    let batch = inputs.batch(args.batch, device)?;
    let targets = next_tokens(&batch, device)?;
    let mut step = || -> Result<Tensor> {
        let loss = lm_loss(&model, &batch, &targets)?;
        let grads = loss.backward()?;
        optimiser.step(&grads)?;
        Ok(loss)
    };
    let first = step()?;
    device.synchronize()?;
    let start = Instant::now();
    let mut last = first.clone();
    for _ in 0..args.steps {
        last = step()?;
    }
    device.synchronize()?;
    let seconds = start.elapsed().as_secs_f64();
    let tokens = (args.steps * args.batch * inputs.seq_len()) as f64;
    let per_item = flops::train_flops_per_item(model.config(), inputs)?;
    println!(
        "{}",
        serde_json::json!({
            "kind": "train",
            "batch": args.batch,
            "steps": args.steps,
            "tokens_per_s": tokens / seconds,
            "tflops": (args.steps * args.batch) as f64 * per_item / seconds / 1e12,
            "first_loss": first.to_dtype(DType::F32)?.to_scalar::<f32>()?,
            "loss": last.to_dtype(DType::F32)?.to_scalar::<f32>()?,
            "trainable_parameters": factory.num_trainable_parameters(),
        })
    );
    Ok(())
}

/// Targets for positions `0..seq-1`: the next token of each row.
fn next_tokens(batch: &Batch, device: &Device) -> Result<Tensor> {
    let rows: Vec<u32> = batch
        .input_ids
        .iter()
        .flat_map(|row| row[1..].iter().copied())
        .collect();
    Ok(Tensor::from_vec(
        rows,
        (batch.batch_size(), batch.seq_len() - 1),
        device,
    )?)
}

/// Mean next-token cross-entropy over every position, in f32.
pub fn lm_loss(model: &Qwen3VL, batch: &Batch, targets: &Tensor) -> Result<Tensor> {
    let logits = model.forward(batch, None, Logits::All, false)?.logits;
    let seq = logits.dim(1)?;
    let logits = logits.narrow(1, 0, seq - 1)?.to_dtype(DType::F32)?;
    let log_probs = log_softmax_last_dim(&logits)?;
    let picked = log_probs.gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?;
    Ok(picked.mean_all()?.neg()?)
}
