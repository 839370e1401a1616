//! The model stages of `verdict run`: the text baseline, its predictions on every split, and
//! the evaluation report over every model the run produced.
//!
//! Outputs (under the task's workdir):
//! ```text
//! runs/baseline/                       baseline_metrics.json, model/
//! runs/baseline/predictions_<split>.parquet
//! report/                              report.html, metrics.json, classification_report.json
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use verdict_baseline::logistic::{ClassWeight, LogisticConfig};
use verdict_baseline::tfidf::{StopWords, TfidfConfig};
use verdict_baseline::{Baseline, BaselineConfig, FeatureConfig};
use verdict_core::manifest::{LabelValue, Sample, Split};
use verdict_core::task::{Modality, TaskKind, TaskSpec};
use verdict_core::workspace::Workspace;
use verdict_eval::Prediction;

use super::progress::Stage;

/// Headline numbers of the evaluation stage, kept in `report/summary.json` so a cached run can
/// still print them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelSummary {
    /// Validation macro-F1 of the text baseline, when the task has one.
    #[serde(default)]
    pub baseline_val_macro_f1: Option<f64>,
    /// (model run, split, samples, accuracy, macro-F1)
    pub rows: Vec<(String, String, usize, f64, f64)>,
    pub report: PathBuf,
    /// The run the model selection chose (or the fine-tuned one).
    #[serde(default)]
    pub chosen: Option<String>,
}

/// Run folder and name of the text baseline among the compared models.
pub const BASELINE_RUN: &str = "baseline";

/// Where the baseline stage writes.
pub fn baseline_dir(workspace: &Workspace) -> PathBuf {
    workspace.root.join("runs").join(BASELINE_RUN)
}

/// Where the evaluation stage writes.
pub fn report_dir(workspace: &Workspace) -> PathBuf {
    workspace.root.join("report")
}

fn summary_path(workspace: &Workspace) -> PathBuf {
    report_dir(workspace).join("summary.json")
}

/// The summary the last evaluation stage left, if any.
pub fn load_summary(workspace: &Workspace) -> Option<ModelSummary> {
    verdict_core::fsio::read_json(&summary_path(workspace)).ok()
}

/// True when the task has a stage for the text baseline (text input, one label per sample).
pub fn has_model_stages(task: &TaskSpec) -> bool {
    task.baseline.enabled
        && task.inputs.contains(&Modality::Text)
        && task.kind != TaskKind::MultiLabel
}

pub fn baseline_config(task: &TaskSpec) -> BaselineConfig {
    let spec = &task.baseline;
    BaselineConfig {
        features: FeatureConfig::Tfidf(TfidfConfig {
            stop_words: StopWords::English,
            max_features: Some(spec.max_features),
            sublinear_tf: spec.sublinear_tf,
            ngram_range: (spec.ngram_range[0], spec.ngram_range[1]),
            ..TfidfConfig::default()
        }),
        logistic: LogisticConfig {
            c: spec.c,
            class_weight: if spec.class_weight_balanced {
                ClassWeight::Balanced
            } else {
                ClassWeight::None
            },
            ..LogisticConfig::default()
        },
    }
}

fn text_of(sample: &Sample) -> &str {
    sample.text.as_deref().unwrap_or("")
}

fn single_label(sample: &Sample) -> anyhow::Result<&str> {
    sample
        .label
        .as_ref()
        .and_then(LabelValue::as_single)
        .with_context(|| format!("sample `{}` has no single label", sample.sample_id))
}

/// Fits the TF-IDF baseline on train (validated on val) and writes its predictions on val,
/// test and benchmark. Returns the files written.
pub fn baseline_stage(workspace: &Workspace) -> anyhow::Result<Vec<PathBuf>> {
    let task = &workspace.task;
    let samples = workspace.current_samples()?;
    let of = |split: Split| samples.iter().filter(move |s| s.split == Some(split));
    let train: Vec<(String, String, f32)> = of(Split::Train)
        .map(|s| {
            let weight = if task.baseline.weight_by_confidence {
                s.weight.unwrap_or(1.0)
            } else {
                1.0
            };
            Ok((
                text_of(s).to_string(),
                single_label(s)?.to_string(),
                weight as f32,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let val: Vec<(String, String)> = of(Split::Val)
        .map(|s| Ok((text_of(s).to_string(), single_label(s)?.to_string())))
        .collect::<anyhow::Result<_>>()?;
    if train.is_empty() || val.is_empty() {
        bail!("the baseline needs non-empty train and val splits (check [split] in the task)");
    }

    let out = baseline_dir(workspace);
    let stage = Stage::start(&format!(
        "fitting the TF-IDF baseline on {} samples",
        train.len()
    ));
    let config = baseline_config(task);
    let report = verdict_baseline::train_text_baseline(&train, &val, &config, &out)
        .context("fitting the baseline")?;
    stage.done(&format!(
        "baseline: val macro-F1 {:.4}, accuracy {:.4} -> {}",
        report.macro_f1,
        report.accuracy,
        out.join("baseline_metrics.json").display()
    ));

    let stage = Stage::start("predicting val, test and benchmark with the baseline");
    let model = Baseline::load(&report.model_dir).context("loading the fitted baseline")?;
    let labels = task
        .label_names()
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
    // Predictions of an earlier run must not linger when a split became empty.
    for split in [Split::Val, Split::Test, Split::Benchmark] {
        let _ = std::fs::remove_file(predictions_path(workspace, split));
    }
    let mut written = vec![out.join("baseline_metrics.json"), report.model_dir.clone()];
    for split in [Split::Val, Split::Test, Split::Benchmark] {
        let members: Vec<&Sample> = of(split).collect();
        if members.is_empty() {
            continue;
        }
        let rows = predict(&model, &members, task, split)?;
        let path = predictions_path(workspace, split);
        verdict_eval::prediction::write(&path, &rows, &labels)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    stage.done(&format!("predictions written to {}", out.display()));
    Ok(written)
}

/// The baseline's predictions file for `split`.
pub fn predictions_path(workspace: &Workspace, split: Split) -> PathBuf {
    super::candidates::predictions_path(workspace, BASELINE_RUN, split)
}

/// The evaluation settings of the task (labels, policy, seed).
pub fn eval_spec(task: &TaskSpec) -> anyhow::Result<verdict_eval::EvalSpec> {
    let (_, mut spec) = super::eval::task_eval_specs(task)
        .into_iter()
        .next()
        .context("the task has no evaluation spec")?;
    spec.seed = task.seed;
    Ok(spec)
}

/// Evaluates every model's predictions (baseline, candidates, fine-tuned) on test and
/// benchmark, the chosen model's thresholds tuned on its val predictions, and writes the
/// report and `summary.json`.
pub fn evaluate_stage(workspace: &Workspace) -> anyhow::Result<Vec<PathBuf>> {
    let task = &workspace.task;
    let runs = super::candidates::compared_runs(workspace, true);
    let baseline_val_macro_f1 = verdict_core::fsio::read_json::<serde_json::Value>(
        &baseline_dir(workspace).join("baseline_metrics.json"),
    )
    .ok()
    .filter(|_| has_model_stages(task))
    .and_then(|m| m.get("macro_f1").and_then(serde_json::Value::as_f64));
    let finetuned = super::candidates::FINETUNED;
    let chosen = if super::candidates::predictions_path(workspace, finetuned, Split::Val).is_file()
    {
        Some(finetuned.to_string())
    } else {
        super::candidates::load_selection(workspace).map(|s| s.chosen)
    };
    let validation = match &chosen {
        Some(run) => {
            let path = super::candidates::predictions_path(workspace, run, Split::Val);
            if path.is_file() {
                Some(
                    verdict_eval::prediction::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?,
                )
            } else {
                None
            }
        }
        None => None,
    };
    let stage = Stage::start("evaluating and writing the report");
    let spec = eval_spec(task)?;
    let mut rows = Vec::new();
    let mut report_path = PathBuf::new();
    let mut written = vec![summary_path(workspace)];
    // A task without test and benchmark splits is reported on val (thresholds then are not
    // tuned on separate data, which the report's calibration section makes visible).
    let held_out = [Split::Test, Split::Benchmark].into_iter().any(|split| {
        runs.iter()
            .any(|run| super::candidates::predictions_path(workspace, run, split).is_file())
    });
    let (splits, validation) = if held_out {
        (vec![Split::Test, Split::Benchmark], validation)
    } else {
        (vec![Split::Val], None)
    };
    for split in splits {
        let sets = super::candidates::read_sets(workspace, &runs, split)?;
        if sets.is_empty() {
            continue;
        }
        let names: Vec<String> = sets.iter().map(|(run, _)| run.clone()).collect();
        let dir = report_dir(workspace).join(split.name());
        written.push(dir.join("report.html"));
        let summary = verdict_eval::evaluate_sets(
            sets.into_iter().map(|(_, set)| set).collect(),
            validation.clone(),
            &spec,
            &dir,
        )
        .with_context(|| format!("evaluating the {} split", split.name()))?;
        for (run, model) in names.iter().zip(&summary.models) {
            rows.push((
                run.clone(),
                split.name().to_string(),
                model.samples,
                model.metrics.get("accuracy").unwrap_or(f64::NAN),
                model.metrics.get("macro_f1").unwrap_or(f64::NAN),
            ));
        }
        report_path = summary.report_path.clone();
    }
    if rows.is_empty() {
        bail!("no model has predictions on the val, test or benchmark split");
    }
    stage.done("report written");
    let summary = ModelSummary {
        baseline_val_macro_f1,
        rows,
        report: report_path,
        chosen,
    };
    verdict_core::fsio::write_json(&summary_path(workspace), &summary)?;
    Ok(written)
}

fn predict(
    model: &Baseline,
    members: &[&Sample],
    task: &TaskSpec,
    split: Split,
) -> anyhow::Result<Vec<Prediction>> {
    let texts: Vec<&str> = members.iter().map(|s| text_of(s)).collect();
    let probabilities = model.predict_proba(&texts)?;
    let mut rows = Vec::with_capacity(members.len());
    for (index, sample) in members.iter().enumerate() {
        let scores: std::collections::BTreeMap<String, f64> = probabilities
            .columns
            .iter()
            .cloned()
            .zip(probabilities.row(index).iter().copied())
            .collect();
        let predicted = scores
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(label, _)| label.clone())
            .unwrap_or_default();
        let mut slices = std::collections::BTreeMap::new();
        slices.insert(
            "image".to_string(),
            if sample.images.is_empty() {
                "missing"
            } else {
                "present"
            }
            .to_string(),
        );
        if let Some(source) = &sample.source {
            slices.insert("source".to_string(), source.clone());
        }
        let text = text_of(sample);
        rows.push(Prediction {
            sample_id: sample.sample_id.clone(),
            true_labels: vec![single_label(sample)?.to_string()],
            predicted_labels: vec![predicted],
            probabilities: scores,
            reason: None,
            decision: None,
            slices,
            model_id: "tfidf-logreg".into(),
            run_id: format!("{}-{}", task.name, split.name()),
            input_text: Some(text.chars().take(600).collect()),
            image_path: sample
                .images
                .first()
                .filter(|i| !verdict_core::manifest::is_url(i))
                .cloned(),
        });
    }
    Ok(rows)
}

/// Prints the closing table.
pub fn print_summary(summary: &ModelSummary, root: &Path) {
    println!(
        "\n{:<22} {:<10} {:>7} {:>9} {:>9}",
        "model", "split", "samples", "accuracy", "macro-F1"
    );
    for (model, split, samples, accuracy, macro_f1) in &summary.rows {
        println!("{model:<22} {split:<10} {samples:>7} {accuracy:>9.4} {macro_f1:>9.4}");
    }
    if let Some(f1) = summary.baseline_val_macro_f1 {
        println!("\nbaseline val macro-F1: {f1:.4}");
    }
    if let Some(chosen) = &summary.chosen {
        println!("chosen model: {chosen}");
    }
    println!("report: {}", summary.report.display());
    println!("outputs: {}", root.display());
}
