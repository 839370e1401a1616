//! Classification metrics with scikit-learn's definitions, behind a small [`Metric`] trait.
//!
//! All metrics read one [`Outcomes`]: per-sample indicator rows over the task's labels (one-hot for
//! single-label tasks), plus optional scores. Per-label counts from indicators equal the
//! multi-class confusion counts, so one representation serves multi-class, binary and multi-label
//! tasks exactly as scikit-learn's `precision_recall_fscore_support(labels=...)` does.

mod averages;
mod confusion;
mod multilabel;
mod outcomes;
mod ranking;

use serde::{Deserialize, Serialize};

pub use averages::{averaged, macro_f1_from_counts, per_label, Average, LabelScores, ScoreTriple};
pub use confusion::ConfusionMatrix;
pub use multilabel::{hamming_loss, subset_accuracy};
pub use outcomes::{LabelCounts, Outcomes};
pub use ranking::{average_precision, pr_curve, roc_auc, roc_curve, CurvePoint};

/// Value of precision, recall or F1 when its denominator is zero, as scikit-learn's
/// `zero_division` (its `"warn"` behaves as `Zero`). Averages skip `Nan` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ZeroDivision {
    #[default]
    Zero,
    One,
    Nan,
}

impl ZeroDivision {
    pub fn value(self) -> f64 {
        match self {
            ZeroDivision::Zero => 0.0,
            ZeroDivision::One => 1.0,
            ZeroDivision::Nan => f64::NAN,
        }
    }

    pub(crate) fn divide(self, numerator: f64, denominator: f64) -> f64 {
        if denominator == 0.0 {
            self.value()
        } else {
            numerator / denominator
        }
    }
}

/// One scalar metric. `None` means undefined for these outcomes (e.g. ROC-AUC with one class
/// present, or a ranking metric without scores), which the report shows as "n/a".
pub trait Metric: Send + Sync {
    /// Stable key used in `metrics.json` and tables.
    fn name(&self) -> &'static str;
    fn compute(&self, outcomes: &Outcomes) -> Option<f64>;
}

/// Share of samples whose predicted label set equals the true set (plain accuracy for
/// single-label tasks, subset accuracy for multi-label ones).
pub struct Accuracy;

impl Metric for Accuracy {
    fn name(&self) -> &'static str {
        "accuracy"
    }
    fn compute(&self, outcomes: &Outcomes) -> Option<f64> {
        subset_accuracy(outcomes)
    }
}

/// Share of samples whose whole predicted label set is right (multi-label tasks).
pub struct SubsetAccuracy;

impl Metric for SubsetAccuracy {
    fn name(&self) -> &'static str {
        "subset_accuracy"
    }
    fn compute(&self, outcomes: &Outcomes) -> Option<f64> {
        subset_accuracy(outcomes)
    }
}

/// Share of wrong (sample, label) cells; multi-label tasks only.
pub struct HammingLoss;

impl Metric for HammingLoss {
    fn name(&self) -> &'static str {
        "hamming_loss"
    }
    fn compute(&self, outcomes: &Outcomes) -> Option<f64> {
        hamming_loss(outcomes)
    }
}

/// F1 / precision / recall under one averaging scheme.
pub struct Averaged {
    pub average: Average,
    pub score: Score,
}

/// Which of the three scores an [`Averaged`] metric reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Score {
    Precision,
    Recall,
    F1,
}

impl Metric for Averaged {
    fn name(&self) -> &'static str {
        use Average::*;
        use Score::*;
        match (self.average, self.score) {
            (Macro, F1) => "macro_f1",
            (Micro, F1) => "micro_f1",
            (Weighted, F1) => "weighted_f1",
            (Samples, F1) => "samples_f1",
            (Macro, Precision) => "macro_precision",
            (Micro, Precision) => "micro_precision",
            (Weighted, Precision) => "weighted_precision",
            (Samples, Precision) => "samples_precision",
            (Macro, Recall) => "macro_recall",
            (Micro, Recall) => "micro_recall",
            (Weighted, Recall) => "weighted_recall",
            (Samples, Recall) => "samples_recall",
        }
    }
    fn compute(&self, outcomes: &Outcomes) -> Option<f64> {
        let triple = averaged(outcomes, self.average)?;
        let value = match self.score {
            Score::Precision => triple.precision,
            Score::Recall => triple.recall,
            Score::F1 => triple.f1,
        };
        Some(value)
    }
}

/// Area under the precision-recall curve of the positive label (scikit-learn's step-wise
/// `average_precision_score`, no interpolation).
pub struct AveragePrecision;

impl Metric for AveragePrecision {
    fn name(&self) -> &'static str {
        "average_precision"
    }
    fn compute(&self, outcomes: &Outcomes) -> Option<f64> {
        let (truth, scores) = outcomes.positive_scores()?;
        average_precision(&truth, &scores)
    }
}

/// Area under the ROC curve of the positive label; undefined with one class present.
pub struct RocAuc;

impl Metric for RocAuc {
    fn name(&self) -> &'static str {
        "roc_auc"
    }
    fn compute(&self, outcomes: &Outcomes) -> Option<f64> {
        let (truth, scores) = outcomes.positive_scores()?;
        roc_auc(&truth, &scores)
    }
}

/// The metrics reported for a task: single-label tasks get accuracy and macro/micro/weighted
/// scores (plus AUPRC and ROC-AUC when there is a positive label), multi-label tasks add
/// samples-F1 and Hamming loss.
pub fn standard_metrics(multi_label: bool, has_positive: bool) -> Vec<Box<dyn Metric>> {
    let mut metrics: Vec<Box<dyn Metric>> = if multi_label {
        vec![Box::new(SubsetAccuracy)]
    } else {
        vec![Box::new(Accuracy)]
    };
    let averages: &[Average] = if multi_label {
        &[
            Average::Macro,
            Average::Micro,
            Average::Weighted,
            Average::Samples,
        ]
    } else {
        &[Average::Macro, Average::Micro, Average::Weighted]
    };
    for &average in averages {
        for score in [Score::F1, Score::Precision, Score::Recall] {
            metrics.push(Box::new(Averaged { average, score }));
        }
    }
    if multi_label {
        metrics.push(Box::new(HammingLoss));
    }
    if has_positive {
        metrics.push(Box::new(AveragePrecision));
        metrics.push(Box::new(RocAuc));
    }
    metrics
}

/// Computes `metrics` in order; NaN and undefined values become `None`.
pub fn compute_all(metrics: &[Box<dyn Metric>], outcomes: &Outcomes) -> MetricValues {
    MetricValues(
        metrics
            .iter()
            .map(|metric| {
                let value = metric.compute(outcomes).filter(|v| !v.is_nan());
                (metric.name().to_owned(), value)
            })
            .collect(),
    )
}

/// Metric name -> value in declaration order; serialises as a JSON object (null = undefined).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricValues(pub Vec<(String, Option<f64>)>);

impl MetricValues {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).and_then(|(_, v)| *v)
    }
}

impl Serialize for MetricValues {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}
