//! Writing result files: atomically, and `classification_report.json` in scikit-learn's shape.

use std::path::Path;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::{EvalError, Result};
use crate::evaluate::EvalSummary;
use crate::metrics::{averaged, subset_accuracy, Average};

/// Writes through a temporary file in the same folder and renames, so a reader never sees a
/// half-written file and a failed write leaves the old file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = directory.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes).map_err(|e| EvalError::io(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| EvalError::io(path, e))
}

/// Pretty JSON (NaN becomes null), written atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| EvalError::file(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

fn scores(precision: f64, recall: f64, f1: f64, support: u64) -> Value {
    let number = |v: f64| if v.is_nan() { Value::Null } else { json!(v) };
    json!({ "precision": number(precision), "recall": number(recall), "f1-score": number(f1), "support": support })
}

/// One object per model id, each shaped like scikit-learn's
/// `classification_report(output_dict=True)`: a key per label, then `accuracy` (single-label
/// tasks) or `micro avg`, then `macro avg`, `weighted avg` and, for multi-label, `samples avg`.
pub fn classification_report(summary: &EvalSummary) -> Value {
    let mut all = Map::new();
    for model in &summary.models {
        let outcomes = &model.outcomes;
        let mut report = Map::new();
        let mut total = 0;
        for label in &model.per_label {
            total += label.support;
            report.insert(
                label.label.clone(),
                scores(label.precision, label.recall, label.f1, label.support),
            );
        }
        let mut averages = vec![];
        if outcomes.multi_label {
            averages.push(("micro avg", Average::Micro));
        } else if let Some(accuracy) = subset_accuracy(outcomes) {
            report.insert("accuracy".into(), json!(accuracy));
        }
        averages.push(("macro avg", Average::Macro));
        averages.push(("weighted avg", Average::Weighted));
        if outcomes.multi_label {
            averages.push(("samples avg", Average::Samples));
        }
        for (name, average) in averages {
            if let Some(triple) = averaged(outcomes, average) {
                report.insert(
                    name.into(),
                    scores(triple.precision, triple.recall, triple.f1, total),
                );
            }
        }
        all.insert(model.model_id.clone(), Value::Object(report));
    }
    Value::Object(all)
}
