//! `verdict predict`: classify images and/or text with a local Qwen3-VL checkpoint directory,
//! either by label scoring (a probability for every label) or as a constrained JSON answer.

use std::path::PathBuf;

use anyhow::{bail, Context};
use verdict_models::qwen3_vl::classify::{Classifier, Query};
use verdict_models::qwen3_vl::processor::load_image;

/// Numeric precision of the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Precision {
    /// bf16 on CUDA, f32 on the CPU.
    Auto,
    F32,
    Bf16,
    F16,
}

impl Precision {
    /// The same choice in the service's terms (one rule for `predict` and `serve`).
    pub fn serving(self) -> verdict_serve::Precision {
        match self {
            Self::Auto => verdict_serve::Precision::Auto,
            Self::F32 => verdict_serve::Precision::F32,
            Self::Bf16 => verdict_serve::Precision::Bf16,
            Self::F16 => verdict_serve::Precision::F16,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Checkpoint directory (config.json, *.safetensors, tokenizer.json, chat template,
    /// preprocessor_config.json), as published or as saved by fine-tuning.
    #[arg(long)]
    pub model: PathBuf,

    /// Comma-separated labels to score, e.g. `--labels safe,unsafe`.
    #[arg(long, value_delimiter = ',', conflicts_with = "task")]
    pub labels: Vec<String>,

    /// Task file whose labels (and label descriptions) are used.
    #[arg(long)]
    pub task: Option<PathBuf>,

    /// Image to classify; repeat for several images of one sample.
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,

    /// Text of the sample (appended to the instruction).
    #[arg(long)]
    pub text: Option<String>,

    /// System prompt.
    #[arg(long)]
    pub system: Option<String>,

    /// Answer as constrained JSON `{"label", "confidence", "reason"}` instead of scoring labels.
    #[arg(long)]
    pub json: bool,

    /// Longest `reason` in the JSON answer, in bytes.
    #[arg(long, default_value_t = 200)]
    pub max_reason_bytes: usize,

    /// Where to run: `cpu`, `cuda` or `cuda:N` (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,

    /// Weight precision; `auto` is bf16 on CUDA and f32 on the CPU.
    #[arg(long, value_enum, default_value = "auto")]
    pub precision: Precision,
}

/// Labels and their descriptions, from `--labels` or `--task`.
fn labels(args: &Args) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    if let Some(path) = &args.task {
        let task = verdict_core::TaskSpec::load(path)
            .with_context(|| format!("reading task {}", path.display()))?;
        if task.labels.is_empty() {
            bail!(
                "task {} has no top-level labels (multi-label tasks: pass --labels for one dimension)",
                path.display()
            );
        }
        let names = task.labels.iter().map(|l| l.name.clone()).collect();
        let descriptions = task.labels.iter().map(|l| l.description.clone()).collect();
        return Ok((names, descriptions));
    }
    let names: Vec<String> = args
        .labels
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if names.is_empty() {
        bail!("give the labels with --labels a,b,c or --task TASK.toml");
    }
    let descriptions = vec![String::new(); names.len()];
    Ok((names, descriptions))
}

/// The instruction: the label set (with descriptions when known), then the sample's text.
fn instruction(
    labels: &[String],
    descriptions: &[String],
    text: Option<&str>,
    json: bool,
) -> String {
    let mut out = String::from("Classify this content. Possible labels:\n");
    for (label, description) in labels.iter().zip(descriptions) {
        if description.is_empty() {
            out.push_str(&format!("- {label}\n"));
        } else {
            out.push_str(&format!("- {label}: {description}\n"));
        }
    }
    if let Some(text) = text {
        out.push_str(&format!("Content: {text}\n"));
    }
    if json {
        out.push_str("Answer with JSON: {\"label\": ..., \"confidence\": ..., \"reason\": ...}.");
    } else {
        out.push_str("Answer with the label only.");
    }
    out
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (labels, descriptions) = labels(&args)?;
    if args.images.is_empty() && args.text.is_none() {
        bail!("nothing to classify: give --image PATH and/or --text TEXT");
    }
    let placement = verdict_serve::Placement::parse(&args.device, args.precision.serving())?;
    let images = args
        .images
        .iter()
        .map(|path| load_image(path).with_context(|| format!("reading image {}", path.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let classifier = Classifier::load(&args.model, placement.dtype(), &placement.device)
        .with_context(|| format!("loading model from {}", args.model.display()))?;
    let query = Query {
        system: args.system.clone(),
        text: instruction(&labels, &descriptions, args.text.as_deref(), args.json),
        images,
    };
    if args.json {
        let answer = classifier
            .answer_json(&query, &labels, args.max_reason_bytes)
            .context("constrained JSON answer")?;
        println!("{}", answer.text);
        return Ok(());
    }
    let scores = classifier.score(&query, &labels).context("label scoring")?;
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| scores.probabilities[b].total_cmp(&scores.probabilities[a]));
    let width = labels.iter().map(String::len).max().unwrap_or(5).max(5);
    println!("{:<width$}  probability  log_prob", "label");
    for i in order {
        println!(
            "{:<width$}  {:>11.6}  {:>8.4}",
            labels[i], scores.probabilities[i], scores.log_probs[i]
        );
    }
    Ok(())
}
