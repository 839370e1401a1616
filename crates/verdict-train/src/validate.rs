//! Validation by label scoring: every label's tokens are scored as the start of the answer,
//! the most probable label is the prediction, and macro-F1 comes from the evaluation crate so
//! training selects checkpoints by the same number the reports show.

use serde::{Deserialize, Serialize};
use verdict_eval::metrics::{averaged, Average, Outcomes};
use verdict_models::qwen3_vl::generation::score_labels;
use verdict_models::qwen3_vl::inputs::Preprocessor;
use verdict_models::qwen3_vl::Qwen3VL;

use crate::batch::prompt_batch;
use crate::sft::SftRecord;
use crate::{Error, Result};

/// Scores of one validation pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    pub macro_f1: f64,
    pub accuracy: f64,
    /// Mean negative log-probability of the gold label (normalised over the label set).
    pub label_loss: f64,
    pub samples: usize,
}

/// Predicts every record by label scoring and computes macro-F1 and accuracy.
pub fn validate(
    model: &Qwen3VL,
    preprocessor: &Preprocessor,
    records: &[SftRecord],
    labels: &[String],
) -> Result<Validation> {
    if records.is_empty() {
        return Err(Error::Invalid("the validation split is empty".into()));
    }
    let label_ids = preprocessor.label_token_ids(labels)?;
    let mut truth = Vec::with_capacity(records.len());
    let mut predicted = Vec::with_capacity(records.len());
    let mut loss = 0.0;
    for record in records {
        let gold = labels
            .iter()
            .position(|l| *l == record.label)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "validation sample {}: label {:?} is not one of {labels:?}",
                    record.sample_id, record.label
                ))
            })?;
        let batch = prompt_batch(preprocessor, record, model.device())?;
        let scores = score_labels(model, &batch, &label_ids)?;
        let best = (0..labels.len())
            .max_by(|&a, &b| scores.probabilities[a].total_cmp(&scores.probabilities[b]))
            .unwrap_or(0);
        loss -= scores.probabilities[gold].max(1e-12).ln();
        truth.push(gold);
        predicted.push(best);
    }
    let correct = truth.iter().zip(&predicted).filter(|(t, p)| t == p).count();
    let outcomes = Outcomes::from_indices(labels.to_vec(), &truth, &predicted);
    let macro_f1 = averaged(&outcomes, Average::Macro)
        .map(|t| t.f1)
        .unwrap_or(0.0);
    Ok(Validation {
        macro_f1,
        accuracy: correct as f64 / records.len() as f64,
        label_loss: loss / records.len() as f64,
        samples: records.len(),
    })
}
