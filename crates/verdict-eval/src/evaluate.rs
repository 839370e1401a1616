//! The library entry: predictions in, metrics + report files out.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::calibration::{compare as calibrate, CalibrationReport, ProbabilityTable};
use crate::compare::{bootstrap_macro_f1_difference, Comparison, ComparisonEntry};
use crate::error::{EvalError, Result};
use crate::metrics::{
    average_precision, compute_all, per_label, pr_curve, roc_auc, roc_curve, standard_metrics,
    ConfusionMatrix, CurvePoint, LabelScores, MetricValues, Outcomes,
};
use crate::policy::{evaluate_point, sweep, OperatingPoint, SweepResult};
use crate::prediction::{self, Decision, Prediction, PredictionSet};
use crate::slices::{slice_metrics, SliceReport};
use crate::spec::{EvalSpec, TaskKind};

/// Precision-recall (and ROC) curve of one label, one-vs-rest.
#[derive(Debug, Clone, Serialize)]
pub struct LabelCurves {
    pub label: String,
    pub average_precision: Option<f64>,
    pub roc_auc: Option<f64>,
    pub precision_recall: Vec<CurvePoint>,
    pub roc: Option<Vec<CurvePoint>>,
}

/// Policy results of a binary-policy model.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyEvaluation {
    /// The task's configured thresholds, scored on the test rows.
    pub configured: Option<OperatingPoint>,
    /// Where the sweep ran: "validation file" or "test rows (optimistic)".
    pub swept_on: String,
    pub sweep: SweepResult,
    /// The sweep's best thresholds scored on the test rows.
    pub chosen_on_test: Option<OperatingPoint>,
    /// `counts[truth][decision]` of the file's own `decision` column (negative, positive rows;
    /// keep, review, demote columns), when every row has one.
    pub decisions_in_file: Option<[[usize; 3]; 2]>,
}

/// Everything computed for one predictions file.
#[derive(Debug, Clone, Serialize)]
pub struct ModelEvaluation {
    pub model_id: String,
    pub run_id: String,
    pub source: String,
    pub samples: usize,
    pub metrics: MetricValues,
    pub per_label: Vec<LabelScores>,
    /// One matrix for single-label tasks; one 2x2 matrix per label for multi-label tasks.
    pub confusion: Vec<ConfusionMatrix>,
    pub curves: Vec<LabelCurves>,
    pub policy: Option<PolicyEvaluation>,
    pub calibration: Option<CalibrationReport>,
    pub slices: Vec<SliceReport>,
    #[serde(skip)]
    pub outcomes: Outcomes,
    #[serde(skip)]
    pub rows: Vec<Prediction>,
    #[serde(skip)]
    pub directory: PathBuf,
}

/// What `evaluate` produced and where it wrote it.
#[derive(Debug, Clone, Serialize)]
pub struct EvalSummary {
    pub task: String,
    pub kind: TaskKind,
    pub labels: Vec<String>,
    pub models: Vec<ModelEvaluation>,
    pub comparison: Option<Comparison>,
    #[serde(skip)]
    pub report_path: PathBuf,
    #[serde(skip)]
    pub metrics_path: PathBuf,
    #[serde(skip)]
    pub classification_report_path: PathBuf,
}

/// Evaluates in-memory predictions of one model and writes `report.html`, `metrics.json` and
/// `classification_report.json` into `out_dir`.
pub fn evaluate(
    predictions: &[Prediction],
    spec: &EvalSpec,
    out_dir: &Path,
) -> Result<EvalSummary> {
    let set = PredictionSet::in_memory("predictions", predictions.to_vec());
    evaluate_sets(vec![set], None, spec, out_dir)
}

/// Reads and evaluates predictions files; the first is the baseline of the comparison.
/// `validation` (optional) holds one model's validation predictions: calibration maps and the
/// threshold sweep of the file with the same model id (else the first file) are fitted there.
pub fn evaluate_files(
    paths: &[PathBuf],
    validation: Option<&Path>,
    spec: &EvalSpec,
    out_dir: &Path,
) -> Result<EvalSummary> {
    let sets = paths
        .iter()
        .map(|p| prediction::read(p))
        .collect::<Result<Vec<_>>>()?;
    let validation = validation.map(prediction::read).transpose()?;
    evaluate_sets(sets, validation, spec, out_dir)
}

/// Evaluates already-read sets (see [`evaluate_files`]).
pub fn evaluate_sets(
    mut sets: Vec<PredictionSet>,
    validation: Option<PredictionSet>,
    spec: &EvalSpec,
    out_dir: &Path,
) -> Result<EvalSummary> {
    spec.validate()?;
    if sets.is_empty() {
        return Err(EvalError::Invalid("no predictions to evaluate".into()));
    }
    for set in &sets {
        prediction::validate(set, spec)?;
    }
    if let Some(validation) = &validation {
        prediction::validate(validation, spec)?;
    }
    prediction::align(&mut sets)?;
    // Validation rows come from one model: they calibrate the set with the same model id, or
    // the first set when none matches. Other sets are cross-fitted on their own rows.
    let validated = validation.as_ref().map(|v| {
        let id = v.model_id();
        sets.iter().position(|s| s.model_id() == id).unwrap_or(0)
    });
    let models = sets
        .iter()
        .enumerate()
        .map(|(index, set)| {
            let own = validation.as_ref().filter(|_| validated == Some(index));
            evaluate_model(set, own, spec)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut models = models;
    unique_model_ids(&mut models);
    let comparison = (models.len() > 1).then(|| compare_models(&models, spec));
    let summary = EvalSummary {
        task: spec.task.clone(),
        kind: spec.kind,
        labels: spec.labels.clone(),
        models,
        comparison,
        report_path: out_dir.join("report.html"),
        metrics_path: out_dir.join("metrics.json"),
        classification_report_path: out_dir.join("classification_report.json"),
    };
    std::fs::create_dir_all(out_dir).map_err(|e| EvalError::io(out_dir, e))?;
    crate::output::write_json(&summary.metrics_path, &summary)?;
    crate::output::write_json(
        &summary.classification_report_path,
        &crate::output::classification_report(&summary),
    )?;
    let html = crate::report::render(&summary, spec)?;
    crate::output::write_atomic(&summary.report_path, html.as_bytes())?;
    Ok(summary)
}

/// Files from the same model would collide in the report and JSON keys: later ones get the
/// file name appended.
fn unique_model_ids(models: &mut [ModelEvaluation]) {
    let mut seen = std::collections::BTreeSet::new();
    for model in models.iter_mut() {
        if !seen.insert(model.model_id.clone()) {
            let file = Path::new(&model.source)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut candidate = format!("{} ({file})", model.model_id);
            let mut counter = 2;
            while seen.contains(&candidate) {
                candidate = format!("{} ({file} #{counter})", model.model_id);
                counter += 1;
            }
            seen.insert(candidate.clone());
            model.model_id = candidate;
        }
    }
}

/// Indicator rows and scores of a set, in the spec's label order.
pub fn outcomes_of(rows: &[Prediction], spec: &EvalSpec) -> Outcomes {
    let indicator = |labels: &[String]| -> Vec<bool> {
        spec.labels.iter().map(|l| labels.contains(l)).collect()
    };
    let with_scores = rows.iter().all(|r| !r.probabilities.is_empty());
    let scores = with_scores.then(|| {
        rows.iter()
            .map(|r| {
                spec.labels
                    .iter()
                    .map(|l| r.probabilities.get(l).copied().unwrap_or(0.0))
                    .collect()
            })
            .collect()
    });
    Outcomes {
        labels: spec.labels.clone(),
        truth: rows.iter().map(|r| indicator(&r.true_labels)).collect(),
        predicted: rows
            .iter()
            .map(|r| indicator(&r.predicted_labels))
            .collect(),
        scores,
        positive: if spec.kind == TaskKind::BinaryPolicy {
            spec.positive_index().ok()
        } else {
            None
        },
        zero_division: spec.zero_division,
        multi_label: spec.kind == TaskKind::MultiLabel,
    }
}

fn probability_table(outcomes: &Outcomes) -> Option<ProbabilityTable> {
    let scores = outcomes.scores.as_ref()?;
    if outcomes.multi_label {
        // Each (sample, label) cell is a binary event with probabilities [1 - p, p].
        let mut table = ProbabilityTable {
            event_label: Some(1),
            ..Default::default()
        };
        for (row, truth) in scores.iter().zip(&outcomes.truth) {
            for (&p, &t) in row.iter().zip(truth) {
                table.probabilities.push(vec![1.0 - p, p]);
                table.truth.push(t as usize);
            }
        }
        return Some(table);
    }
    Some(ProbabilityTable {
        probabilities: scores.clone(),
        truth: outcomes.true_indices(),
        event_label: outcomes.positive,
    })
}

fn evaluate_model(
    set: &PredictionSet,
    validation: Option<&PredictionSet>,
    spec: &EvalSpec,
) -> Result<ModelEvaluation> {
    let outcomes = outcomes_of(&set.rows, spec);
    let validation_outcomes = validation.map(|v| outcomes_of(&v.rows, spec));
    let metrics = standard_metrics(outcomes.multi_label, outcomes.positive.is_some());
    let confusion = if outcomes.multi_label {
        ConfusionMatrix::per_label(&outcomes)
    } else {
        vec![ConfusionMatrix::from_outcomes(&outcomes)]
    };
    let curves = curves_of(&outcomes);
    let policy = policy_of(&outcomes, validation_outcomes.as_ref(), &set.rows, spec)?;
    let calibration = probability_table(&outcomes).map(|test| {
        let fit_table = validation_outcomes.as_ref().and_then(probability_table);
        calibrate(fit_table.as_ref(), &test, spec.calibration_bins, spec.seed)
    });
    let first = set.rows.first();
    Ok(ModelEvaluation {
        model_id: set.model_id(),
        run_id: first.map(|r| r.run_id.clone()).unwrap_or_default(),
        source: set.path.display().to_string(),
        samples: set.rows.len(),
        metrics: compute_all(&metrics, &outcomes),
        per_label: per_label(&outcomes),
        confusion,
        curves,
        policy,
        calibration,
        slices: slice_metrics(&set.rows, &outcomes, &metrics),
        outcomes,
        rows: set.rows.clone(),
        directory: set.path.parent().map(Path::to_path_buf).unwrap_or_default(),
    })
}

fn curves_of(outcomes: &Outcomes) -> Vec<LabelCurves> {
    let Some(scores) = &outcomes.scores else {
        return Vec::new();
    };
    let labels: Vec<usize> = match outcomes.positive {
        Some(positive) => vec![positive],
        None => (0..outcomes.labels.len()).collect(),
    };
    labels
        .into_iter()
        .map(|label| {
            let truth: Vec<bool> = outcomes.truth.iter().map(|row| row[label]).collect();
            let score: Vec<f64> = scores.iter().map(|row| row[label]).collect();
            LabelCurves {
                label: outcomes.labels[label].clone(),
                average_precision: average_precision(&truth, &score),
                roc_auc: roc_auc(&truth, &score),
                precision_recall: thin(pr_curve(&truth, &score)),
                roc: roc_curve(&truth, &score).map(thin),
            }
        })
        .collect()
}

/// Most points a stored or plotted curve keeps; AP and AUC are computed on the full curve.
const CURVE_POINTS: usize = 1000;

/// Keeps every k-th point (and the last) of a long curve so reports stay small.
fn thin(points: Vec<CurvePoint>) -> Vec<CurvePoint> {
    if points.len() <= CURVE_POINTS {
        return points;
    }
    let stride = points.len().div_ceil(CURVE_POINTS);
    let last = points.len() - 1;
    points
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % stride == 0 || *i == last)
        .map(|(_, p)| p)
        .collect()
}

fn policy_of(
    outcomes: &Outcomes,
    validation: Option<&Outcomes>,
    rows: &[Prediction],
    spec: &EvalSpec,
) -> Result<Option<PolicyEvaluation>> {
    if spec.kind != TaskKind::BinaryPolicy {
        return Ok(None);
    }
    let Some((truth, scores)) = outcomes.positive_scores() else {
        return Ok(None);
    };
    let objective = spec.sweep_objective();
    let costs = spec.cost_matrix.as_ref();
    let configured = spec
        .thresholds
        .map(|t| evaluate_point(&truth, &scores, t, costs));
    let (swept_on, result) = match validation.and_then(Outcomes::positive_scores) {
        Some((v_truth, v_scores)) => (
            "validation file".to_owned(),
            sweep(&v_truth, &v_scores, spec.sweep_step, &objective)?,
        ),
        None => (
            "test rows (optimistic: chosen and scored on the same rows)".to_owned(),
            sweep(&truth, &scores, spec.sweep_step, &objective)?,
        ),
    };
    let chosen_on_test = result
        .best
        .map(|best| evaluate_point(&truth, &scores, best.thresholds, costs));
    let decisions_in_file = rows.iter().all(|r| r.decision.is_some()).then(|| {
        let mut counts = [[0usize; 3]; 2];
        for (row, &is_positive) in rows.iter().zip(&truth) {
            let decision = row.decision.unwrap_or(Decision::Keep);
            counts[is_positive as usize][decision as usize] += 1;
        }
        counts
    });
    Ok(Some(PolicyEvaluation {
        configured,
        swept_on,
        sweep: result,
        chosen_on_test,
        decisions_in_file,
    }))
}

fn compare_models(models: &[ModelEvaluation], spec: &EvalSpec) -> Comparison {
    let baseline = &models[0];
    let base_f1 = baseline.metrics.get("macro_f1");
    let base_accuracy = baseline
        .metrics
        .get("accuracy")
        .or(baseline.metrics.get("subset_accuracy"));
    let entries = models
        .iter()
        .enumerate()
        .map(|(index, model)| {
            let macro_f1 = model.metrics.get("macro_f1");
            let accuracy = model
                .metrics
                .get("accuracy")
                .or(model.metrics.get("subset_accuracy"));
            let is_baseline = index == 0;
            let bootstrap = (!is_baseline)
                .then(|| {
                    bootstrap_macro_f1_difference(
                        &baseline.outcomes,
                        &model.outcomes,
                        spec.bootstrap_resamples,
                        spec.seed,
                    )
                })
                .flatten();
            ComparisonEntry {
                model_id: model.model_id.clone(),
                source: model.source.clone(),
                macro_f1,
                accuracy,
                macro_f1_uplift: (!is_baseline).then(|| Some(macro_f1? - base_f1?)).flatten(),
                accuracy_uplift: (!is_baseline)
                    .then(|| Some(accuracy? - base_accuracy?))
                    .flatten(),
                macro_f1_uplift_interval: bootstrap.map(|b| b.0),
                probability_better: bootstrap.map(|b| b.1),
            }
        })
        .collect();
    Comparison {
        baseline: baseline.model_id.clone(),
        resamples: spec.bootstrap_resamples,
        seed: spec.seed,
        confidence: 0.95,
        entries,
    }
}
