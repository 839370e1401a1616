//! `--model-card`: a `README.md` for a published model saying what it was trained on, how
//! well it did and what it is (and is not) for. Numbers come from the training run's own
//! files (`summary.json`, `metrics.jsonl`, `train_config.json`) when a run directory is given,
//! so the card never states a metric that no file recorded.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value as Json;

use crate::error::{io_error, read_json};
use crate::Result;

/// The task the model classifies.
#[derive(Debug, Clone, Default)]
pub struct TaskInfo {
    pub name: String,
    pub description: String,
    pub labels: Vec<String>,
}

/// Everything the card is written from.
#[derive(Debug, Clone, Default)]
pub struct CardInputs {
    pub title: String,
    /// Name or path of the base checkpoint.
    pub base_model: String,
    /// `merged`, `peft` or `gguf (q4_k_m)`.
    pub format: String,
    pub task: Option<TaskInfo>,
    /// A `verdict train` output directory.
    pub run_dir: Option<std::path::PathBuf>,
}

/// Renders the card.
pub fn render(inputs: &CardInputs) -> Result<String> {
    let mut card = String::new();
    let library = if inputs.format == "peft" {
        "peft"
    } else {
        "transformers"
    };
    let _ = writeln!(
        card,
        "---\nbase_model: {}\nlibrary_name: {library}",
        yaml(&inputs.base_model)
    );
    let _ = writeln!(
        card,
        "pipeline_tag: image-text-to-text\ntags:\n- verdict\n- content-classification"
    );
    if inputs.format == "peft" {
        let _ = writeln!(card, "- lora");
    }
    let _ = writeln!(card, "---\n\n# {}\n", inputs.title);
    let _ = writeln!(
        card,
        "A content classifier fine-tuned from `{}` with Verdict, published as {}.\n",
        inputs.base_model, inputs.format
    );

    card.push_str("## Intended use\n\n");
    match &inputs.task {
        Some(task) => {
            let _ = writeln!(card, "Task `{}`: {}\n", task.name, task.description.trim());
            if !task.labels.is_empty() {
                let labels: Vec<String> = task.labels.iter().map(|l| format!("`{l}`")).collect();
                let _ = writeln!(
                    card,
                    "The model answers with exactly one label: {}.\n",
                    labels.join(", ")
                );
            }
        }
        None => card
            .push_str("Classification of images and text into the labels it was trained on.\n\n"),
    }
    card.push_str(
        "Use it to sort or triage content for human review at the operating point the metrics \
         below describe. It is not meant for decisions about people without human review, nor for \
         labels or kinds of content absent from its training data; re-validate on your own data \
         before relying on it.\n\n",
    );

    card.push_str("## Training data\n\n");
    let run = inputs.run_dir.as_deref();
    match run.map(data_counts).transpose()? {
        Some(counts) if !counts.is_empty() => {
            for (split, rows) in counts {
                let _ = writeln!(card, "- {split}: {rows} examples");
            }
            card.push('\n');
        }
        _ => card.push_str("No training run was given, so the data is not described here.\n\n"),
    }

    card.push_str("## Evaluation\n\n");
    card.push_str(&metrics_section(run)?);

    if let Some(config) = run
        .map(|r| r.join("train_config.json"))
        .filter(|p| p.exists())
    {
        let config = read_json(&config)?;
        card.push_str("## Training procedure\n\n");
        let lora = config.get("lora");
        for (label, value) in [
            ("epochs", config.get("epochs")),
            ("learning rate", config.get("learning_rate")),
            ("LoRA rank", lora.and_then(|l| l.get("r"))),
            (
                "LoRA alpha",
                lora.and_then(|l| l.get("lora_alpha").or_else(|| l.get("alpha"))),
            ),
            ("precision", config.get("precision")),
            ("seed", config.get("seed")),
        ] {
            if let Some(value) = value {
                let _ = writeln!(card, "- {label}: {}", plain(value));
            }
        }
        card.push_str("\nThe full settings are in `train_config.json` of the training run.\n");
    }
    Ok(card)
}

/// Writes `README.md` into `dir`.
pub fn write(dir: &Path, inputs: &CardInputs) -> Result<std::path::PathBuf> {
    let path = dir.join("README.md");
    let text = render(inputs)?;
    std::fs::write(&path, text).map_err(io_error(&path))?;
    Ok(path)
}

fn data_counts(run: &Path) -> Result<Vec<(String, usize)>> {
    let mut counts = Vec::new();
    for split in ["train", "val", "test"] {
        let path = run.join("data").join(format!("{split}.jsonl"));
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
            counts.push((
                split.to_string(),
                text.lines().filter(|l| !l.trim().is_empty()).count(),
            ));
        }
    }
    Ok(counts)
}

fn metrics_section(run: Option<&Path>) -> Result<String> {
    let mut out = String::new();
    let summary = run.map(|r| r.join("summary.json")).filter(|p| p.exists());
    let Some(summary) = summary else {
        return Ok("No metrics files were found; evaluate the model before use.\n\n".into());
    };
    let summary = read_json(&summary)?;
    out.push_str("| | step | macro-F1 | accuracy | samples |\n|---|---|---|---|---|\n");
    let row = |name: &str, step: Option<&Json>, v: &Json| {
        format!(
            "| {name} | {} | {} | {} | {} |\n",
            step.map_or("-".into(), plain),
            number(v.get("macro_f1")),
            number(v.get("accuracy")),
            v.get("samples").map_or("-".into(), plain)
        )
    };
    if let Some(initial) = summary.get("initial").filter(|v| !v.is_null()) {
        out.push_str(&row("before fine-tuning (validation)", None, initial));
    }
    if let Some(best) = summary.get("best").and_then(Json::as_array) {
        if let (Some(step), Some(v)) = (best.first(), best.get(1)) {
            out.push_str(&row("best checkpoint (validation)", Some(step), v));
        }
    }
    if let Some(path) = run.map(|r| r.join("metrics.jsonl")).filter(|p| p.exists()) {
        let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
        let last_loss = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .filter_map(|v| v.get("loss").and_then(Json::as_f64))
            .next_back();
        if let Some(loss) = last_loss {
            let _ = write!(out, "\nFinal training loss: {loss:.4}.\n");
        }
    }
    out.push('\n');
    Ok(out)
}

fn number(value: Option<&Json>) -> String {
    value
        .and_then(Json::as_f64)
        .map_or("-".into(), |v| format!("{v:.4}"))
}

fn plain(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn yaml(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}
