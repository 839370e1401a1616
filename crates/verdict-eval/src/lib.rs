//! Evaluation: metrics, keep/review/demote policy, calibration, slices, comparisons, reports.
//!
//! The entry points are [`evaluate`] (in-memory predictions of one model) and
//! [`evaluate_files`] (several predictions files, the first one the baseline). Both write
//! `report.html`, `metrics.json` and `classification_report.json` into an output folder.
//! Every metric follows scikit-learn's definition and is tested against its values.

pub mod calibration;
pub mod compare;
pub mod error;
pub mod evaluate;
pub mod metadata;
pub mod metrics;
pub mod output;
pub mod package;
pub mod policy;
pub mod prediction;
pub mod report;
pub mod slices;
pub mod spec;

pub use error::{EvalError, Result};
pub use evaluate::{evaluate, evaluate_files, evaluate_sets, EvalSummary, ModelEvaluation};
pub use metadata::{DatasetInfo, Hardware, RunMetadata};
pub use package::{package, PackageSummary};
pub use policy::{CostMatrix, DecisionCosts, PolicyThresholds};
pub use prediction::{Decision, Prediction, PredictionSet};
pub use spec::{EvalSpec, TaskKind};
