//! Train-on-train, evaluate-on-validation entry points for the pipeline and the CLI:
//! fit a [`Baseline`], score the validation texts, write `baseline_metrics.json` and the
//! model directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::baseline::{argmax_labels, Baseline, BaselineConfig, FitReport, Targets};
use crate::error::{BaselineError, Result};
use crate::metrics::{accuracy, binary_f1, macro_f1};

/// Probability above which a multi-label prediction counts as positive in the report.
pub const MULTI_LABEL_THRESHOLD: f64 = 0.5;

/// What `baseline_metrics.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineReport {
    /// `"single_label"` or `"multi_label"`.
    pub task: String,
    /// `"tfidf"` or `"embedding"`.
    pub features: String,
    pub n_train: usize,
    pub n_val: usize,
    /// Classes (single-label) or labels (multi-label), in column order.
    pub columns: Vec<String>,
    /// Single-label: fraction of correct argmax predictions. Multi-label: fraction of texts
    /// whose predicted label set (at 0.5) is exactly right.
    pub accuracy: f64,
    /// Single-label: mean per-class F1 of argmax predictions. Multi-label: mean per-label F1
    /// at 0.5.
    pub macro_f1: f64,
    pub fit: FitReport,
    pub predict_seconds: f64,
    /// Where the fitted model was written.
    pub model_dir: PathBuf,
}

fn feature_kind(config: &BaselineConfig) -> &'static str {
    match config.features {
        crate::FeatureConfig::Tfidf(_) => "tfidf",
        crate::FeatureConfig::Embedding { .. } => "embedding",
    }
}

fn finish(baseline: &Baseline, report: BaselineReport, out_dir: &Path) -> Result<BaselineReport> {
    baseline.save(&report.model_dir)?;
    let json =
        serde_json::to_vec_pretty(&report).map_err(|e| BaselineError::Data(e.to_string()))?;
    let path = out_dir.join("baseline_metrics.json");
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, json).map_err(|e| BaselineError::io("writing", &temporary, e))?;
    std::fs::rename(&temporary, &path).map_err(|e| BaselineError::io("renaming into", &path, e))?;
    Ok(report)
}

/// Fits a single-label baseline on `train` (`(text, label, weight)`), evaluates on `val`
/// (`(text, label)`), writes `out_dir/baseline_metrics.json` and the model to
/// `out_dir/model/`.
pub fn train_text_baseline(
    train: &[(String, String, f32)],
    val: &[(String, String)],
    config: &BaselineConfig,
    out_dir: &Path,
) -> Result<BaselineReport> {
    std::fs::create_dir_all(out_dir).map_err(|e| BaselineError::io("creating", out_dir, e))?;
    let texts: Vec<&str> = train.iter().map(|(t, _, _)| t.as_str()).collect();
    let labels: Vec<String> = train.iter().map(|(_, l, _)| l.clone()).collect();
    let weights: Vec<f64> = train.iter().map(|(_, _, w)| f64::from(*w)).collect();
    let uniform = weights.iter().all(|&w| w == 1.0);
    let (baseline, fit) = Baseline::fit(
        &texts,
        &Targets::SingleLabel(labels),
        (!uniform).then_some(weights.as_slice()),
        config,
    )?;
    let started = Instant::now();
    let val_texts: Vec<&str> = val.iter().map(|(t, _)| t.as_str()).collect();
    let probabilities = baseline.predict_proba(&val_texts)?;
    let predict_seconds = started.elapsed().as_secs_f64();
    let predicted = argmax_labels(&probabilities);
    let truth: Vec<String> = val.iter().map(|(_, l)| l.clone()).collect();
    let report = BaselineReport {
        task: "single_label".into(),
        features: feature_kind(config).into(),
        n_train: train.len(),
        n_val: val.len(),
        columns: probabilities.columns.clone(),
        accuracy: accuracy(&truth, &predicted),
        macro_f1: macro_f1(&truth, &predicted),
        fit,
        predict_seconds,
        model_dir: out_dir.join("model"),
    };
    finish(&baseline, report, out_dir)
}

/// Multi-label version of [`train_text_baseline`]: one-vs-rest logistic regression per
/// label; `train` is `(text, labels, weight)`, `val` is `(text, labels)`.
pub fn train_multilabel_baseline(
    train: &[(String, Vec<String>, f32)],
    val: &[(String, Vec<String>)],
    config: &BaselineConfig,
    out_dir: &Path,
) -> Result<BaselineReport> {
    std::fs::create_dir_all(out_dir).map_err(|e| BaselineError::io("creating", out_dir, e))?;
    let texts: Vec<&str> = train.iter().map(|(t, _, _)| t.as_str()).collect();
    let sets: Vec<Vec<String>> = train.iter().map(|(_, l, _)| l.clone()).collect();
    let weights: Vec<f64> = train.iter().map(|(_, _, w)| f64::from(*w)).collect();
    let uniform = weights.iter().all(|&w| w == 1.0);
    let (baseline, fit) = Baseline::fit(
        &texts,
        &Targets::MultiLabel(sets),
        (!uniform).then_some(weights.as_slice()),
        config,
    )?;
    let started = Instant::now();
    let val_texts: Vec<&str> = val.iter().map(|(t, _)| t.as_str()).collect();
    let probabilities = baseline.predict_proba(&val_texts)?;
    let predict_seconds = started.elapsed().as_secs_f64();
    let labels = &probabilities.columns;
    let mut exact = 0usize;
    let mut counts = vec![(0usize, 0usize, 0usize); labels.len()];
    for (i, (_, truth)) in val.iter().enumerate() {
        let mut all_right = true;
        for (c, label) in labels.iter().enumerate() {
            let predicted = probabilities.row(i)[c] >= MULTI_LABEL_THRESHOLD;
            let actual = truth.contains(label);
            match (actual, predicted) {
                (true, true) => counts[c].0 += 1,
                (false, true) => counts[c].1 += 1,
                (true, false) => counts[c].2 += 1,
                (false, false) => {}
            }
            all_right &= actual == predicted;
        }
        // Labels never seen in training cannot be predicted.
        all_right &= truth.iter().all(|l| labels.contains(l));
        exact += usize::from(all_right);
    }
    let macro_f1 = if counts.is_empty() {
        0.0
    } else {
        counts
            .iter()
            .map(|&(tp, fp, fn_)| binary_f1(tp, fp, fn_))
            .sum::<f64>()
            / counts.len() as f64
    };
    let report = BaselineReport {
        task: "multi_label".into(),
        features: feature_kind(config).into(),
        n_train: train.len(),
        n_val: val.len(),
        columns: labels.clone(),
        accuracy: if val.is_empty() {
            0.0
        } else {
            exact as f64 / val.len() as f64
        },
        macro_f1,
        fit,
        predict_seconds,
        model_dir: out_dir.join("model"),
    };
    finish(&baseline, report, out_dir)
}
