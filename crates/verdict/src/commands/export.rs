//! `verdict export --format merged|peft|gguf`: publishes a base checkpoint with its fine-tuned
//! adapter as a Hugging Face directory, the adapter alone (PEFT layout), or a GGUF file for
//! llama.cpp; `--model-card` adds a README.md with data, metrics and intended use.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use verdict_core::task::TaskSpec;
use verdict_export::card::{CardInputs, TaskInfo};
use verdict_export::gguf::quant::Preset;
use verdict_export::{card, gguf, merged, peft};

use super::progress::Stage;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Hugging Face checkpoint directory with the adapter merged in (transformers, vLLM).
    Merged,
    /// The adapter alone, as PEFT saves it.
    Peft,
    /// GGUF file of the language model for llama.cpp.
    Gguf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Quant {
    F16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_k_m")]
    Q4KM,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, value_enum)]
    pub format: Format,

    /// Base checkpoint directory (config.json, safetensors, tokenizer); needed by merged and gguf.
    #[arg(long)]
    pub base: Option<PathBuf>,

    /// Adapter directory (PEFT layout) [default: <run>/adapter when --run is given].
    #[arg(long)]
    pub adapter: Option<PathBuf>,

    /// A `verdict train` output directory: its adapter, data counts and metrics.
    #[arg(long)]
    pub run: Option<PathBuf>,

    /// Output directory (replaced as a whole when the export succeeds).
    #[arg(long, short)]
    pub out: PathBuf,

    /// GGUF tensor types: f16, q8_0, or q4_k_m (llama.cpp's Q4_K/Q6_K mix).
    #[arg(long, value_enum, default_value = "f16")]
    pub quant: Quant,

    /// Largest safetensors shard of a merged export, in megabytes.
    #[arg(long, default_value_t = 5000)]
    pub max_shard_mb: u64,

    /// Write README.md with data, metrics and intended use.
    #[arg(long)]
    pub model_card: bool,

    /// Task file (TOML) whose name, description and labels the model card states.
    #[arg(long)]
    pub task: Option<PathBuf>,

    /// Model name (GGUF `general.name`, model card title) [default: the output folder's name].
    #[arg(long)]
    pub name: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let adapter = args
        .adapter
        .clone()
        .or_else(|| args.run.as_ref().map(|r| r.join("adapter")));
    if let Some(adapter) = &adapter {
        if !adapter.is_dir() {
            bail!("adapter directory {} does not exist", adapter.display());
        }
    }
    let name = args.name.clone().unwrap_or_else(|| {
        args.out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    });
    let base = || {
        args.base.as_deref().context(
            "--base is required for this format (the checkpoint the adapter was trained on)",
        )
    };
    let stage = Stage::start(&format!("exporting {}", args.out.display()));
    let summary = match args.format {
        Format::Merged => {
            let max = args.max_shard_mb.max(1) * 1_000_000;
            let report = merged::export(base()?, adapter.as_deref(), &args.out, max)
                .with_context(|| format!("merged export to {}", args.out.display()))?;
            format!(
                "{} tensors in {} shard(s), {} layers merged",
                report.tensors,
                report.shards.len(),
                report.merged_layers
            )
        }
        Format::Peft => {
            let adapter = adapter
                .as_deref()
                .context("--format peft needs --adapter or --run")?;
            let report = peft::export(adapter, &args.out)
                .with_context(|| format!("PEFT export of {}", adapter.display()))?;
            format!("{} adapted layers, rank {}", report.layers, report.rank)
        }
        Format::Gguf => {
            let preset = match args.quant {
                Quant::F16 => Preset::F16,
                Quant::Q8_0 => Preset::Q8_0,
                Quant::Q4KM => Preset::Q4KM,
            };
            export_gguf(base()?, adapter.as_deref(), &args.out, preset, &name)?
        }
    };
    if args.model_card {
        let inputs = card_inputs(&args, &name)?;
        let path = card::write(&args.out, &inputs).context("writing the model card")?;
        tracing::info!(path = %path.display(), "wrote model card");
    }
    stage.done(&format!("exported {} ({summary})", args.out.display()));
    Ok(())
}

/// Writes `<out>/<name>-<quant>.gguf`, merging the adapter into a scratch copy first.
fn export_gguf(
    base: &Path,
    adapter: Option<&Path>,
    out: &Path,
    preset: Preset,
    name: &str,
) -> anyhow::Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let scratch = Scratch(out.join(format!(".merge-{}", std::process::id())));
    let model_dir = match adapter {
        Some(adapter) => {
            verdict_lora::merge_into_checkpoint(base, adapter, &scratch.0).with_context(|| {
                format!("merging {} into {}", adapter.display(), base.display())
            })?;
            scratch.0.clone()
        }
        None => base.to_path_buf(),
    };
    let file = out.join(format!("{name}-{}.gguf", preset.name()));
    let report = gguf::export(&model_dir, &file, preset, name)
        .with_context(|| format!("GGUF export to {}", file.display()))?;
    let mut summary = format!(
        "{}: {} tensors, {:.1} MB",
        file.display(),
        report.tensors.len(),
        report.bytes as f64 / 1e6
    );
    if report.vision_tensors_skipped > 0 {
        summary.push_str(&format!(
            "; language model only, {} vision tensors belong in a separate mmproj file",
            report.vision_tensors_skipped
        ));
    }
    Ok(summary)
}

/// A scratch folder removed when dropped, whether the export succeeded or not.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn card_inputs(args: &Args, name: &str) -> anyhow::Result<CardInputs> {
    let task = match &args.task {
        Some(path) => {
            let spec =
                TaskSpec::load(path).with_context(|| format!("reading task {}", path.display()))?;
            Some(TaskInfo {
                labels: spec.label_names().into_iter().map(str::to_string).collect(),
                name: spec.name,
                description: spec.description,
            })
        }
        None => None,
    };
    let base_model = match &args.base {
        Some(base) => base_model_name(base),
        None => args
            .adapter
            .as_ref()
            .or(args.run.as_ref())
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    };
    let format = match args.format {
        Format::Merged => "merged".to_string(),
        Format::Peft => "peft".to_string(),
        Format::Gguf => format!("gguf ({})", args.quant.to_possible_value_name()),
    };
    Ok(CardInputs {
        title: name.to_string(),
        base_model,
        format,
        task,
        run_dir: args.run.clone(),
    })
}

/// The checkpoint's `_name_or_path` when it records one, else its folder.
fn base_model_name(base: &Path) -> String {
    std::fs::read_to_string(base.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|c| {
            c.get("_name_or_path")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| base.display().to_string())
}

impl Quant {
    fn to_possible_value_name(self) -> &'static str {
        match self {
            Quant::F16 => "f16",
            Quant::Q8_0 => "q8_0",
            Quant::Q4KM => "q4_k_m",
        }
    }
}
