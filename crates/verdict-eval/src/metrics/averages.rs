//! Precision, recall and F1 per label and averaged, as scikit-learn's
//! `precision_recall_fscore_support`.
//!
//! F1 is computed from counts, `2 tp / (2 tp + fp + fn)`, so a label with no true and no
//! predicted samples gets the `zero_division` value, like scikit-learn >= 1.3. Macro, weighted
//! and samples averages skip NaN entries (`zero_division = nan`); weighted falls back to a plain
//! mean when every support is zero.

use serde::Serialize;

use super::outcomes::{LabelCounts, Outcomes};
use super::ZeroDivision;

/// Averaging scheme over labels (or over samples).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Average {
    /// Unweighted mean over labels: every label counts the same, rare or not.
    Macro,
    /// Counts pooled over labels first (equals accuracy for single-label tasks).
    Micro,
    /// Mean over labels weighted by support.
    Weighted,
    /// Mean over samples of each sample's score (multi-label only).
    Samples,
}

/// Precision, recall and F1 together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoreTriple {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl ScoreTriple {
    fn from_counts(counts: LabelCounts, zero_division: ZeroDivision) -> ScoreTriple {
        let tp = counts.true_positives as f64;
        let predicted = counts.predicted() as f64;
        let support = counts.support() as f64;
        ScoreTriple {
            precision: zero_division.divide(tp, predicted),
            recall: zero_division.divide(tp, support),
            f1: zero_division.divide(2.0 * tp, support + predicted),
        }
    }
}

/// Scores of one label plus its support.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelScores {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// Precision, recall, F1 and support of every label, in label order.
pub fn per_label(outcomes: &Outcomes) -> Vec<LabelScores> {
    outcomes
        .label_counts()
        .into_iter()
        .zip(&outcomes.labels)
        .map(|(counts, label)| {
            let triple = ScoreTriple::from_counts(counts, outcomes.zero_division);
            LabelScores {
                label: label.clone(),
                precision: triple.precision,
                recall: triple.recall,
                f1: triple.f1,
                support: counts.support(),
            }
        })
        .collect()
}

/// Averaged precision, recall and F1; `None` for an empty input or for `Samples` on a
/// single-label task (scikit-learn refuses that too).
pub fn averaged(outcomes: &Outcomes, average: Average) -> Option<ScoreTriple> {
    if outcomes.is_empty() || (average == Average::Samples && !outcomes.multi_label) {
        return None;
    }
    let zero_division = outcomes.zero_division;
    let triple = match average {
        Average::Micro => {
            let mut pooled = LabelCounts::default();
            for counts in outcomes.label_counts() {
                pooled.true_positives += counts.true_positives;
                pooled.false_positives += counts.false_positives;
                pooled.false_negatives += counts.false_negatives;
            }
            ScoreTriple::from_counts(pooled, zero_division)
        }
        Average::Macro | Average::Weighted => {
            let counts = outcomes.label_counts();
            let triples: Vec<ScoreTriple> = counts
                .iter()
                .map(|&c| ScoreTriple::from_counts(c, zero_division))
                .collect();
            let weights: Vec<f64> = match average {
                Average::Weighted => counts.iter().map(|c| c.support() as f64).collect(),
                _ => vec![1.0; counts.len()],
            };
            mean_of(&triples, &weights)
        }
        Average::Samples => {
            let triples: Vec<ScoreTriple> = outcomes
                .truth
                .iter()
                .zip(&outcomes.predicted)
                .map(|(truth, predicted)| {
                    let mut counts = LabelCounts::default();
                    for (&t, &p) in truth.iter().zip(predicted) {
                        match (t, p) {
                            (true, true) => counts.true_positives += 1,
                            (false, true) => counts.false_positives += 1,
                            (true, false) => counts.false_negatives += 1,
                            (false, false) => {}
                        }
                    }
                    ScoreTriple::from_counts(counts, zero_division)
                })
                .collect();
            mean_of(&triples, &vec![1.0; triples.len()])
        }
    };
    Some(triple)
}

fn mean_of(triples: &[ScoreTriple], weights: &[f64]) -> ScoreTriple {
    let pick = |f: fn(&ScoreTriple) -> f64| {
        let values: Vec<f64> = triples.iter().map(f).collect();
        nan_average(&values, weights)
    };
    ScoreTriple {
        precision: pick(|t| t.precision),
        recall: pick(|t| t.recall),
        f1: pick(|t| t.f1),
    }
}

/// Weighted mean ignoring NaN entries; a plain mean when the kept weights sum to zero;
/// NaN when every entry is NaN (scikit-learn's `_nanaverage`).
fn nan_average(values: &[f64], weights: &[f64]) -> f64 {
    let kept: Vec<(f64, f64)> = values
        .iter()
        .zip(weights)
        .filter(|(v, _)| !v.is_nan())
        .map(|(&v, &w)| (v, w))
        .collect();
    if kept.is_empty() {
        return f64::NAN;
    }
    let total_weight: f64 = kept.iter().map(|(_, w)| w).sum();
    if total_weight == 0.0 {
        return kept.iter().map(|(v, _)| v).sum::<f64>() / kept.len() as f64;
    }
    kept.iter().map(|(v, w)| v * w).sum::<f64>() / total_weight
}

/// Macro-F1 from per-label counts (the bootstrap's fast path; same rules as [`averaged`]).
pub fn macro_f1_from_counts(counts: &[LabelCounts], zero_division: ZeroDivision) -> f64 {
    let f1: Vec<f64> = counts
        .iter()
        .map(|&c| ScoreTriple::from_counts(c, zero_division).f1)
        .collect();
    nan_average(&f1, &vec![1.0; f1.len()])
}
