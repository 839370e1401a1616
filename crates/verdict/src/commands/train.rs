//! `verdict train TASK --base DIR`: LoRA fine-tuning of a Qwen3-VL checkpoint on the task's
//! train split, validated on its val split; writes the SFT data, metrics, checkpoints, the
//! best adapter (PEFT format) and optionally a merged checkpoint.

use std::path::PathBuf;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use verdict_core::manifest::read_manifest_strict;
use verdict_core::workspace::Workspace;
use verdict_lora::{ModuleSwitches, QWEN3_VL_LINEAR_NAMES};
use verdict_train::batch::Objective;
use verdict_train::hints;
use verdict_train::session::Session;
use verdict_train::sft::{build_records, write_jsonl, AnswerFormat};
use verdict_train::trainer::{self, Data, Observer, StepRecord};
use verdict_train::validate::Validation;
use verdict_train::TrainConfig;

use super::data::DataDir;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Task file (TOML); its train and val splits must exist (`verdict data split`).
    pub task: PathBuf,

    /// Base checkpoint directory (config.json, safetensors, tokenizer, processor).
    #[arg(long)]
    pub base: PathBuf,

    /// Output directory [default: <workdir>/train].
    #[arg(long, short)]
    pub out: Option<PathBuf>,

    /// Continue the run in --out from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,

    /// Full settings as JSON (a serialised `TrainConfig`); the flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,

    #[arg(long)]
    pub epochs: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// LoRA rank.
    #[arg(long)]
    pub rank: Option<usize>,
    #[arg(long)]
    pub alpha: Option<f64>,
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Rank-stabilised scaling alpha / sqrt(r).
    #[arg(long)]
    pub rslora: bool,
    /// Leave the vision tower without adapters.
    #[arg(long)]
    pub no_vision: bool,
    /// Leave the language model without adapters.
    #[arg(long)]
    pub no_language: bool,
    /// No adapters on attention projections.
    #[arg(long)]
    pub no_attention: bool,
    /// No adapters on MLP projections.
    #[arg(long)]
    pub no_mlp: bool,
    /// Sequences per forward pass [default: from the memory hint].
    #[arg(long)]
    pub micro_batch: Option<usize>,
    /// Micro-batches per optimiser step [default: from the memory hint].
    #[arg(long)]
    pub grad_accumulation: Option<usize>,
    /// Validate every N steps instead of every epoch.
    #[arg(long)]
    pub validate_every: Option<u64>,
    /// Checkpoint every N steps instead of every epoch.
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Validations without improvement before stopping (0: never).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Use only the first N train and val rows (a quick sanity run).
    #[arg(long)]
    pub max_rows: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train a classification head over the label tokens instead of the whole answer.
    #[arg(long)]
    pub label_objective: bool,
    /// The answer is a JSON object with a reason (from the samples' notes).
    #[arg(long)]
    pub json_answer: bool,
    /// Where to train: `cpu`, `cuda` or `cuda:N` (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Same as `--device cuda:0`.
    #[arg(long, hide = true)]
    pub cuda: bool,
    /// Also write the base model with the best adapter merged into <out>/merged.
    #[arg(long)]
    pub merge: bool,
    /// Keep the frozen base weights quantised under the adapters: nf4 (QLoRA) or int8.
    #[arg(long, value_parser = ["nf4", "int8"])]
    pub quant: Option<String>,
    /// Recompute each decoder layer in the backward pass instead of keeping its activations
    /// (far less memory for about one more forward pass).
    #[arg(long)]
    pub recompute: bool,
    /// Optimiser: adamw, or adamw8bit (block-wise 8-bit moments, about a quarter of the memory).
    #[arg(long, value_parser = ["adamw", "adamw8bit"])]
    pub optim: Option<String>,
    #[command(flatten)]
    pub data: DataDir,
}

fn settings(args: &Args) -> anyhow::Result<TrainConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str::<TrainConfig>(&text)
                .with_context(|| format!("parsing {} as training settings", path.display()))?
        }
        None => TrainConfig::default(),
    };
    macro_rules! set {
        ($flag:expr => $($field:tt)+) => {
            if let Some(value) = $flag {
                config.$($field)+ = value;
            }
        };
    }
    if let Some(scheme) = &args.quant {
        config.quant = Some(scheme.parse().map_err(anyhow::Error::msg)?);
    }
    if args.recompute {
        config.recompute = true;
    }
    if let Some(optim) = &args.optim {
        config.optimizer.eight_bit = optim == "adamw8bit";
    }
    set!(args.epochs => epochs);
    set!(args.lr => learning_rate);
    set!(args.rank => lora.r);
    set!(args.alpha => lora.alpha);
    set!(args.dropout => lora.dropout);
    set!(args.patience => patience);
    set!(args.seed => seed);
    if args.rslora {
        config.lora.use_rslora = true;
    }
    if args.no_vision || args.no_language || args.no_attention || args.no_mlp {
        let switches = ModuleSwitches {
            finetune_vision_layers: !args.no_vision,
            finetune_language_layers: !args.no_language,
            finetune_attention_modules: !args.no_attention,
            finetune_mlp_modules: !args.no_mlp,
        };
        config.lora.target_modules = switches.target_modules(&QWEN3_VL_LINEAR_NAMES)?;
    }
    if args.validate_every.is_some() {
        config.validate_every_steps = args.validate_every;
    }
    if args.checkpoint_every.is_some() {
        config.checkpoint_every_steps = args.checkpoint_every;
    }
    if args.max_rows.is_some() {
        config.max_rows = args.max_rows;
    }
    if args.label_objective {
        config.objective = Objective::LabelTokens;
    }
    if args.json_answer {
        config.answer_format = AnswerFormat::Json;
    }
    config.validate()?;
    Ok(config)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = settings(&args)?;
    let workspace = Workspace::open(&args.task, &args.data.resolve())
        .with_context(|| format!("opening task {}", args.task.display()))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| workspace.root.join("train"));
    let mut records = Vec::new();
    for split in ["train", "val"] {
        let path = workspace.split_path(split);
        if !path.exists() {
            bail!(
                "{} does not exist; run `verdict data split {}` first",
                path.display(),
                args.task.display()
            );
        }
        let mut samples = read_manifest_strict(&path)?;
        super::candidates::localise_images(&workspace, &mut samples);
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        let built = build_records(&workspace.task, &samples, base, config.answer_format)?;
        write_jsonl(&out.join("data").join(format!("{split}.jsonl")), &built)?;
        records.push(built);
    }
    let val = records.pop().unwrap_or_default();
    let train = records.pop().unwrap_or_default();
    let labels: Vec<String> = workspace
        .task
        .label_names()
        .iter()
        .map(|l| l.to_string())
        .collect();
    let device = if args.cuda {
        verdict_models::parse_device("cuda:0")?
    } else {
        verdict_models::parse_device(&args.device)?
    };
    let dtype = config.precision.dtype(&device);
    let session = Session::load_quantised(
        &args.base,
        &config.lora,
        &device,
        dtype,
        config.seed,
        config.quant,
    )
    .with_context(|| format!("loading base checkpoint {}", args.base.display()))?;
    if args.resume {
        // The batch layout is part of the run; take the one the run started with.
        let saved = out.join("train_config.json");
        if let Ok(text) = std::fs::read_to_string(&saved) {
            let json: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", saved.display()))?;
            let layout = |key: &str| json["config"][key].as_u64().map(|v| v as usize);
            set_if(&mut config.micro_batch_size, layout("micro_batch_size"));
            set_if(&mut config.grad_accumulation, layout("grad_accumulation"));
        }
    } else if args.micro_batch.is_none() && args.grad_accumulation.is_none() {
        let effective = config.micro_batch_size * config.grad_accumulation;
        let longest = train
            .iter()
            .take(64)
            .map(|r| {
                verdict_train::batch::encode(&session.preprocessor, r, &labels)
                    .map(|e| e.prompt.len() + e.answer.len())
            })
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .max()
            .unwrap_or(256);
        let hint = hints::plan(
            session.model.config(),
            &device,
            dtype,
            longest,
            effective,
            config.recompute,
        );
        eprintln!("run plan: {hint} (sequences up to {longest} tokens)");
        config.micro_batch_size = hint.micro_batch_size;
        config.grad_accumulation = hint.grad_accumulation;
    }
    set_if(&mut config.micro_batch_size, args.micro_batch);
    set_if(&mut config.grad_accumulation, args.grad_accumulation);
    eprintln!(
        "fine-tuning {} adapters ({} parameters) on {} train / {} val samples, {} x {} per step",
        session.factory.adapted_paths().len(),
        session.factory.num_trainable_parameters(),
        train.len(),
        val.len(),
        config.micro_batch_size,
        config.grad_accumulation
    );
    let data = Data { train, val, labels };
    let mut progress = Progress::default();
    let outcome = trainer::run(&session, &data, &config, &out, args.resume, &mut progress)?;
    progress.finish();
    if let Some(initial) = outcome.initial {
        eprintln!(
            "before fine-tuning: macro-F1 {:.4}, accuracy {:.4}",
            initial.macro_f1, initial.accuracy
        );
    }
    if let Some((step, best)) = outcome.best {
        eprintln!(
            "best (step {step}): macro-F1 {:.4}, accuracy {:.4}",
            best.macro_f1, best.accuracy
        );
    }
    eprintln!(
        "{:?} after {} of {} steps; adapter in {}",
        outcome.finish,
        outcome.steps,
        outcome.total_steps,
        out.join("adapter").display()
    );
    if args.merge {
        let merged = out.join("merged");
        let layers =
            verdict_lora::merge_into_checkpoint(&args.base, &out.join("adapter"), &merged)?;
        eprintln!("merged {layers} layers into {}", merged.display());
    }
    Ok(())
}

fn set_if(slot: &mut usize, value: Option<usize>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// Bar over optimiser steps with loss, learning rate, throughput and ETA.
#[derive(Default)]
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn on_start(&mut self, first_step: u64, total_steps: u64) {
        let bar = ProgressBar::new(total_steps);
        bar.set_style(
            ProgressStyle::with_template("train [{bar:30}] {pos}/{len} {msg} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_position(first_step);
        self.bar = Some(bar);
    }

    fn on_step(&mut self, record: &StepRecord) {
        if let Some(bar) = &self.bar {
            bar.set_position(record.step);
            bar.set_message(format!(
                "loss {:.4} lr {:.2e} {:.1} samples/s",
                record.loss, record.lr, record.samples_per_second
            ));
        }
    }

    fn on_validation(&mut self, step: u64, v: &Validation) {
        let line = format!(
            "step {step}: val macro-F1 {:.4}, accuracy {:.4}",
            v.macro_f1, v.accuracy
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}
