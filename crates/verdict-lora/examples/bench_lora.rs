//! LoRA training-step benchmark: Verdict's adapters on a Qwen3-VL checkpoint, forward +
//! backward + AdamW on the adapters, for a text batch of random tokens.
//!
//! ```sh
//! cargo run --release --features cuda -p verdict-lora --example bench_lora -- DIR --cuda
//! ```
//! Prints one JSON line (`ms_per_step`, `tokens_per_second`, adapter parameter count).
//! `crates/verdict-lora/bench/bench_peft.py` measures transformers + PEFT on the same
//! checkpoint with the same settings, and `crates/verdict-lora/bench/run.sh` runs both and
//! prints the comparison table.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::{Rng, SeedableRng};
use verdict_lora::{LoraConfig, LoraFactory, ModuleSwitches, QWEN3_VL_LINEAR_NAMES};
use verdict_models::nn::ops::log_softmax_last_dim;
use verdict_models::qwen3_vl::{Batch, Qwen3VL};

struct Options {
    dir: PathBuf,
    steps: usize,
    warmup: usize,
    batch: usize,
    seq: usize,
    cuda: bool,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        dir: PathBuf::new(),
        steps: 10,
        warmup: 3,
        batch: 4,
        seq: 512,
        cuda: false,
    };
    let mut dir = None;
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--steps" => options.steps = number("--steps")?,
            "--warmup" => options.warmup = number("--warmup")?,
            "--batch" => options.batch = number("--batch")?,
            "--seq" => options.seq = number("--seq")?,
            "--cuda" => options.cuda = true,
            other if dir.is_none() => dir = Some(PathBuf::from(other)),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    options.dir = dir.ok_or("usage: bench_lora DIR [--cuda] [--steps N] [--batch B] [--seq L]")?;
    Ok(options)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = options()?;
    let device = if options.cuda {
        Device::new_cuda(0)?
    } else {
        Device::Cpu
    };
    let dtype = if options.cuda {
        DType::BF16
    } else {
        DType::F32
    };
    let config = LoraConfig {
        target_modules: ModuleSwitches::default().target_modules(&QWEN3_VL_LINEAR_NAMES)?,
        ..LoraConfig::default()
    };
    let factory = LoraFactory::new(config, &device, DType::F32)?;
    let load_started = Instant::now();
    let model = Qwen3VL::load(&options.dir, dtype, &device, Some(factory.clone()))?;
    let load_seconds = load_started.elapsed().as_secs_f64();
    factory.set_training(true);
    // Ordinary tokens only: ids from the vision specials on would ask for image inputs.
    let vocab =
        (model.config().text_config.vocab_size as u32).min(model.config().vision_start_token_id);
    let mut optimiser = AdamW::new(
        factory.trainable_vars(),
        ParamsAdamW {
            lr: 1e-4,
            weight_decay: 0.01,
            ..ParamsAdamW::default()
        },
    )?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let (b, s) = (options.batch, options.seq);
    let mut timings = Vec::new();
    for step in 0..options.warmup + options.steps {
        let ids: Vec<Vec<u32>> = (0..b)
            .map(|_| (0..s).map(|_| rng.random_range(0..vocab)).collect())
            .collect();
        let targets: Vec<u32> = ids.iter().flat_map(|r| r[1..].to_vec()).collect();
        let batch = Batch {
            input_ids: ids,
            attention_mask: None,
            pixel_values: None,
            image_grid_thw: Vec::new(),
        };
        device.synchronize()?;
        let started = Instant::now();
        let hidden = model.forward_hidden(&batch)?.narrow(1, 0, s - 1)?;
        let logits = model.project(&hidden)?.to_dtype(DType::F32)?;
        let targets = Tensor::from_vec(targets, (b, s - 1, 1), &device)?;
        let loss = log_softmax_last_dim(&logits)?
            .gather(&targets, D::Minus1)?
            .mean_all()?
            .neg()?;
        optimiser.backward_step(&loss)?;
        device.synchronize()?;
        if step >= options.warmup {
            timings.push(started.elapsed().as_secs_f64());
        }
    }
    let mean = timings.iter().sum::<f64>() / timings.len().max(1) as f64;
    println!(
        "{}",
        serde_json::json!({
            "impl": "verdict",
            "device": if options.cuda { "cuda" } else { "cpu" },
            "dtype": format!("{dtype:?}").to_lowercase(),
            "batch": b,
            "seq": s,
            "steps": timings.len(),
            "ms_per_step": mean * 1e3,
            "tokens_per_second": (b * s) as f64 / mean,
            "adapted_layers": factory.adapted_paths().len(),
            "trainable_parameters": factory.num_trainable_parameters(),
            "load_seconds": load_seconds,
        })
    );
    Ok(())
}
