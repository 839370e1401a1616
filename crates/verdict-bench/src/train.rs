//! LoRA training steps on the benchmark inputs: the language-model loss over every position
//! (as `labels = input_ids` does in transformers), backward, AdamW.

use std::path::Path;
use std::time::Instant;

use std::sync::Arc;

use anyhow::Result;
use candle_core::{DType, Device, Tensor, D};
use verdict_lora::{LoraConfig, LoraFactory, TargetModules};
use verdict_models::nn::ops::{cross_entropy_sum, log_softmax_last_dim};
use verdict_models::nn::{checkpoint, GradSink};
use verdict_models::qwen3_vl::{Batch, Logits, Qwen3VL};
use verdict_train::optim::{AdamW, AdamWConfig};

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
    /// Print the time and device memory after each phase of the warm-up step (waits for the
    /// device after each phase).
    #[arg(long)]
    pub trace: bool,
}

/// Phase timings and memory of one step, printed as JSON lines.
struct Tracer<'a> {
    device: &'a Device,
    on: bool,
    last: Instant,
}

impl Tracer<'_> {
    fn mark(&mut self, phase: &str) -> Result<()> {
        if !self.on {
            return Ok(());
        }
        let in_use = verdict_models::nn::gpu::memory_in_use(self.device)?;
        println!(
            "{}",
            serde_json::json!({
                "kind": "trace",
                "phase": phase,
                "ms": self.last.elapsed().as_secs_f64() * 1e3,
                "device_in_use_gib": in_use.map(|b| b as f64 / (1u64 << 30) as f64),
            })
        );
        self.last = Instant::now();
        Ok(())
    }
}

pub fn run(
    model_dir: &Path,
    inputs: &Inputs,
    dtype: DType,
    device: &Device,
    args: &Args,
) -> Result<()> {
    let config = LoraConfig {
        r: args.rank,
        alpha: 2.0 * args.rank as f64,
        dropout: 0.0,
        target_modules: TargetModules::Pattern(LANGUAGE_LINEARS.to_string()),
        ..LoraConfig::default()
    };
    // f32 adapter masters; the layer casts them to the model's dtype on the fly.
    let factory = LoraFactory::new(config, device, DType::F32)?;
    let model = Arc::new(Qwen3VL::load(
        model_dir,
        dtype,
        device,
        Some(factory.clone()),
    )?);
    factory.set_training(true);
    let vars = factory.trainable_vars();
    // Verdict's trainer optimiser (PyTorch's AdamW defaults; fused launches on CUDA).
    let mut optimiser = AdamW::new(vars.clone(), AdamWConfig::default())?;
    let batch = inputs.batch(args.batch, device)?;
    let targets = next_tokens(&batch, device)?;
    let sink = GradSink::new();
    let mut tracer = Tracer {
        device,
        on: args.trace,
        last: Instant::now(),
    };
    tracer.mark("load")?;
    let mut step = |tracer: &mut Tracer| -> Result<Tensor> {
        let loss = if args.checkpointing {
            recomputed_lm_loss(&model, &batch, &targets, &sink, tracer)?
        } else {
            lm_loss(&model, &batch, &targets)?
        };
        tracer.mark("forward")?;
        let mut grads = loss.backward()?;
        sink.merge_into(&mut grads)?;
        if tracer.on {
            let bytes: usize = grads
                .get_ids()
                .filter_map(|id| grads.get_id(*id))
                .map(|g| g.elem_count() * g.dtype().size_in_bytes())
                .sum();
            println!(
                "{}",
                serde_json::json!({"kind": "trace", "gradients": grads.get_ids().count(),
                    "gradient_gib": bytes as f64 / (1u64 << 30) as f64})
            );
        }
        tracer.mark("backward")?;
        let per_var: Vec<Option<Tensor>> = vars
            .iter()
            .map(|v| grads.get(v.as_tensor()).cloned())
            .collect();
        drop(grads);
        tracer.mark("gradients dropped")?;
        optimiser.step(&per_var, 1e-4)?;
        tracer.mark("optimiser")?;
        Ok(loss)
    };
    let first = step(&mut tracer)?;
    tracer.on = false;
    device.synchronize()?;
    let start = Instant::now();
    let mut last = first.clone();
    for _ in 0..args.steps {
        last = step(&mut tracer)?;
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
            "checkpointing": args.checkpointing,
            "allocated_peak_gib": verdict_models::nn::gpu::memory_peak(device)?
                .map(|b| b as f64 / (1u64 << 30) as f64),
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

/// Rows of the vocabulary projection computed at once by [`recomputed_lm_loss`]: 256 rows of
/// 151,936 f32 logits are 155 MB, and the backward pass holds a few of them.
const LOSS_CHUNK_ROWS: usize = 256;

/// [`lm_loss`] with every decoder layer recomputed in the backward pass and the vocabulary
/// projection + cross-entropy computed (and recomputed) `LOSS_CHUNK_ROWS` rows at a time, so
/// neither the layers' activations nor the `(rows, vocab)` logits are kept.
fn recomputed_lm_loss(
    model: &Arc<Qwen3VL>,
    batch: &Batch,
    targets: &Tensor,
    sink: &GradSink,
    tracer: &mut Tracer,
) -> Result<Tensor> {
    let hidden = model.forward_hidden_with(batch, Some(sink))?;
    tracer.mark("decoder")?;
    let (b, s, h) = hidden.dims3()?;
    let rows = hidden.narrow(1, 0, s - 1)?.reshape((b * (s - 1), h))?;
    let targets = targets.flatten_all()?;
    let n = rows.dim(0)?;
    let mut total: Option<Tensor> = None;
    for start in (0..n).step_by(LOSS_CHUNK_ROWS) {
        let len = LOSS_CHUNK_ROWS.min(n - start);
        let chunk_targets = targets.narrow(0, start, len)?;
        let model = Arc::clone(model);
        let part = checkpoint(
            &rows.narrow(0, start, len)?,
            move |x: &Tensor| cross_entropy_sum(&model.project(x)?, &chunk_targets),
            sink,
        )?;
        total = Some(match total {
            Some(sum) => (sum + part)?,
            None => part,
        });
    }
    let total = total.ok_or_else(|| anyhow::anyhow!("empty batch"))?;
    Ok((total / n as f64)?)
}
