//! What the evaluator needs to know about a task, independent of how tasks are stored.
//!
//! The binary maps its task file onto [`EvalSpec`]; keeping this crate free of the task
//! format lets the evaluator run on any predictions file given just a label list.

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::metrics::ZeroDivision;
use crate::policy::{CostMatrix, PolicyThresholds, SweepObjective};

/// How labels relate to a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Exactly one label per sample out of several.
    MultiClass,
    /// Exactly one of two labels; one of them is the positive class the keep/review/demote
    /// policy acts on.
    BinaryPolicy,
    /// Any subset of the labels per sample; each label is one dimension scored on its own.
    MultiLabel,
}

/// Everything `evaluate` needs: labels, kind, policy settings and evaluation knobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalSpec {
    /// Task name, shown in the report.
    pub task: String,
    pub kind: TaskKind,
    /// Label names in the order used for tables and confusion matrices.
    pub labels: Vec<String>,
    /// Positive label of a binary-policy task (must be one of `labels`).
    pub positive_label: Option<String>,
    /// Operating point to report as configured (the sweep reports its own best point too).
    pub thresholds: Option<PolicyThresholds>,
    /// Costs of each decision; when present the sweep minimises expected cost.
    pub cost_matrix: Option<CostMatrix>,
    /// What precision/recall/F1 are when their denominator is zero (scikit-learn semantics).
    pub zero_division: ZeroDivision,
    /// Number of equal-width bins for ECE and reliability diagrams.
    pub calibration_bins: usize,
    /// Grid step of the (review, demote) threshold sweep.
    pub sweep_step: f64,
    /// Largest share of samples the macro-F1 objective may send to review.
    pub max_review_fraction: f64,
    /// Bootstrap resamples for the macro-F1 difference confidence interval.
    pub bootstrap_resamples: usize,
    /// Seed of every random choice (bootstrap, calibration folds, gallery).
    pub seed: u64,
    /// Examples per outcome (TP/FP/FN/TN) in the gallery.
    pub gallery_per_outcome: usize,
}

impl EvalSpec {
    /// A spec with default knobs for `labels`.
    pub fn new(task: impl Into<String>, kind: TaskKind, labels: Vec<String>) -> Self {
        EvalSpec {
            task: task.into(),
            kind,
            labels,
            positive_label: None,
            thresholds: None,
            cost_matrix: None,
            zero_division: ZeroDivision::Zero,
            calibration_bins: 15,
            sweep_step: 0.05,
            max_review_fraction: 0.1,
            bootstrap_resamples: 1000,
            seed: 0,
            gallery_per_outcome: 6,
        }
    }

    /// Checks that the spec is self-consistent before any file is read.
    pub fn validate(&self) -> Result<()> {
        if self.labels.is_empty() {
            return Err(EvalError::Invalid("the task has no labels".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for label in &self.labels {
            if label.is_empty() || label.contains('|') {
                return Err(EvalError::Invalid(format!(
                    "label {label:?} is empty or contains '|', which separates labels in files"
                )));
            }
            if !seen.insert(label) {
                return Err(EvalError::Invalid(format!(
                    "label {label:?} is listed twice"
                )));
            }
        }
        if self.kind == TaskKind::BinaryPolicy {
            if self.labels.len() != 2 {
                return Err(EvalError::Invalid(format!(
                    "a binary-policy task needs exactly 2 labels, got {}",
                    self.labels.len()
                )));
            }
            self.positive_index()?;
        }
        if let Some(thresholds) = &self.thresholds {
            thresholds.validate()?;
        }
        if !(self.sweep_step > 0.0 && self.sweep_step <= 0.5) {
            return Err(EvalError::Invalid(format!(
                "sweep step must be in (0, 0.5], got {}",
                self.sweep_step
            )));
        }
        if self.calibration_bins == 0 {
            return Err(EvalError::Invalid(
                "calibration bins must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Index of the positive label of a binary-policy task.
    pub fn positive_index(&self) -> Result<usize> {
        let positive = self.positive_label.as_deref().ok_or_else(|| {
            EvalError::Invalid("a binary-policy task needs a positive label".into())
        })?;
        self.label_index(positive).ok_or_else(|| {
            EvalError::Invalid(format!(
                "positive label {positive:?} is not one of the labels {:?}",
                self.labels
            ))
        })
    }

    /// Position of `label` in `labels`.
    pub fn label_index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    /// The objective the threshold sweep optimises for this spec.
    pub fn sweep_objective(&self) -> SweepObjective {
        match &self.cost_matrix {
            Some(costs) => SweepObjective::ExpectedCost(*costs),
            None => SweepObjective::MacroF1 {
                max_review_fraction: self.max_review_fraction,
            },
        }
    }
}
