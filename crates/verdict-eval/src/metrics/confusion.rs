//! Confusion matrix of a single-label task (scikit-learn's `confusion_matrix(labels=...)`).

use serde::Serialize;

use super::outcomes::Outcomes;

/// `counts[true][predicted]`, rows and columns in label order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    pub labels: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// From single-label outcomes (multi-label tasks get one 2x2 matrix per label instead, see
    /// [`ConfusionMatrix::per_label`]).
    pub fn from_outcomes(outcomes: &Outcomes) -> ConfusionMatrix {
        let size = outcomes.labels.len();
        let mut counts = vec![vec![0u64; size]; size];
        for (t, p) in outcomes
            .true_indices()
            .into_iter()
            .zip(outcomes.predicted_indices())
        {
            counts[t][p] += 1;
        }
        ConfusionMatrix {
            labels: outcomes.labels.clone(),
            counts,
        }
    }

    /// One `[[tn, fp], [fn, tp]]` matrix per label (scikit-learn's `multilabel_confusion_matrix`),
    /// labelled `not <label>` / `<label>`.
    pub fn per_label(outcomes: &Outcomes) -> Vec<ConfusionMatrix> {
        let total = outcomes.len() as u64;
        outcomes
            .label_counts()
            .into_iter()
            .zip(&outcomes.labels)
            .map(|(c, label)| {
                let tn = total - c.true_positives - c.false_positives - c.false_negatives;
                ConfusionMatrix {
                    labels: vec![format!("not {label}"), label.clone()],
                    counts: vec![
                        vec![tn, c.false_positives],
                        vec![c.false_negatives, c.true_positives],
                    ],
                }
            })
            .collect()
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }
}
