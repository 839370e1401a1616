//! One function per report section.

use std::fmt::Write;

use super::gallery::{gallery, Thumbnail};
use super::html::{escape, number, percent, Table};
use super::plots::{
    confusion_heatmap, method_name, precision_recall_steps, reliability_plot, sweep_surface,
    unit_plot, UnitPlot,
};
use crate::compare::Comparison;
use crate::error::Result;
use crate::evaluate::{ModelEvaluation, PolicyEvaluation};
use crate::policy::{OperatingPoint, SweepObjective};
use crate::spec::EvalSpec;

/// Rows of the sweep table besides the chosen and configured points.
const SWEEP_ROWS: usize = 12;

pub fn comparison(comparison: &Comparison) -> String {
    let mut table = Table::new(
        "comparison",
        &[
            "model",
            "macro-F1",
            "accuracy",
            "macro-F1 uplift",
            "95% CI of uplift",
            "P(better)",
        ],
    );
    for entry in &comparison.entries {
        let interval = entry
            .macro_f1_uplift_interval
            .map_or("baseline".to_owned(), |(lo, hi)| {
                format!("[{lo:+.4}, {hi:+.4}]")
            });
        table.row(&[
            escape(&entry.model_id),
            number(entry.macro_f1),
            number(entry.accuracy),
            entry
                .macro_f1_uplift
                .map_or("—".into(), |u| format!("{u:+.4}")),
            interval,
            entry.probability_better.map_or("—".into(), percent),
        ]);
    }
    format!(
        "<section id=\"comparison\"><h2>Comparison with baseline {}</h2>{}<p class=\"note\">Paired bootstrap over samples, {} resamples, seed {}; the interval is the 2.5–97.5 percentile of the macro-F1 difference.</p></section>",
        escape(&comparison.baseline),
        table.finish(),
        comparison.resamples,
        comparison.seed
    )
}

pub fn model(index: usize, model: &ModelEvaluation, spec: &EvalSpec) -> Result<String> {
    let mut out = String::new();
    let _ = write!(
        out,
        "<section id=\"model-{index}\"><h2>Model {}</h2><p class=\"note\">run {} · {} samples · from {}</p>",
        escape(&model.model_id),
        escape(if model.run_id.is_empty() { "(none)" } else { &model.run_id }),
        model.samples,
        escape(&model.source)
    );
    out.push_str("<h3>Metrics</h3>");
    let mut metrics = Table::new("metrics", &["metric", "value"]);
    for (name, value) in &model.metrics.0 {
        metrics.row(&[escape(name), number(*value)]);
    }
    out.push_str(&metrics.finish());

    out.push_str("<h3>Per label</h3>");
    let mut labels = Table::new(
        "per-label",
        &["label", "precision", "recall", "F1", "support"],
    );
    for label in &model.per_label {
        labels.row(&[
            escape(&label.label),
            number(Some(label.precision)),
            number(Some(label.recall)),
            number(Some(label.f1)),
            label.support.to_string(),
        ]);
    }
    out.push_str(&labels.finish());

    out.push_str("<h3>Confusion</h3><div class=\"figures\">");
    for matrix in &model.confusion {
        let title = if model.outcomes.multi_label {
            matrix.labels[1].clone()
        } else {
            "confusion matrix".to_owned()
        };
        let _ = write!(
            out,
            "<figure>{}</figure>",
            confusion_heatmap(matrix, &title)?
        );
    }
    out.push_str("</div>");

    if !model.curves.is_empty() {
        out.push_str("<h3>Precision-recall and ROC curves</h3><div class=\"figures\">");
        let pr = model
            .curves
            .iter()
            .map(|c| {
                (
                    format!("{} (AP {})", c.label, number(c.average_precision)),
                    precision_recall_steps(&c.precision_recall),
                )
            })
            .collect();
        let _ = write!(
            out,
            "<figure>{}</figure>",
            unit_plot(&UnitPlot {
                title: "precision-recall",
                x_description: "recall",
                y_description: "precision",
                series: pr,
                diagonal: false,
                markers: false
            })?
        );
        let roc = model
            .curves
            .iter()
            .filter_map(|c| {
                Some((
                    format!("{} (AUC {})", c.label, number(c.roc_auc)),
                    c.roc.as_ref()?.iter().map(|p| (p.x, p.y)).collect(),
                ))
            })
            .collect();
        let _ = write!(
            out,
            "<figure>{}</figure>",
            unit_plot(&UnitPlot {
                title: "ROC",
                x_description: "false positive rate",
                y_description: "true positive rate",
                series: roc,
                diagonal: true,
                markers: false
            })?
        );
        out.push_str("</div>");
    }
    if let Some(policy) = &model.policy {
        out.push_str(&policy_section(policy, spec)?);
    }
    if let Some(calibration) = &model.calibration {
        let _ = write!(
            out,
            "<h3>Calibration</h3><p class=\"note\">Fitted on the {}; {} equal-width bins; ECE = Σ bin share × |observed frequency − mean probability|.</p>",
            escape(&calibration.fitted_on),
            spec.calibration_bins
        );
        let mut table = Table::new(
            "calibration",
            &["method", "temperature", "NLL", "Brier", "ECE", "accuracy"],
        );
        for method in &calibration.methods {
            table.row(&[
                method_name(method).to_owned(),
                method.temperature.map_or("—".into(), |t| format!("{t:.4}")),
                number(Some(method.negative_log_likelihood)),
                number(Some(method.brier_score)),
                number(Some(method.expected_calibration_error)),
                number(Some(method.accuracy)),
            ]);
        }
        out.push_str(&table.finish());
        let _ = write!(
            out,
            "<div class=\"figures\"><figure>{}</figure></div>",
            reliability_plot(&calibration.methods, "reliability diagram")?
        );
    }
    for slice in &model.slices {
        let _ = write!(out, "<h3>Slice: {}</h3>", escape(&slice.attribute));
        // Precision/recall averages stay in metrics.json; the table keeps the headline scores.
        let shown = |name: &str| !name.contains("precision") && !name.contains("recall");
        let names: Vec<String> = slice
            .values
            .first()
            .map(|v| {
                v.metrics
                    .0
                    .iter()
                    .map(|(n, _)| n.clone())
                    .filter(|n| shown(n))
                    .collect()
            })
            .unwrap_or_default();
        let mut header = vec!["value".to_owned(), "count".to_owned()];
        header.extend(names.iter().cloned());
        header.push(format!("support ({})", model.outcomes.labels.join(" / ")));
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut table = Table::new("slices", &header);
        for value in &slice.values {
            let mut cells = vec![escape(&value.value), value.count.to_string()];
            cells.extend(
                value
                    .metrics
                    .0
                    .iter()
                    .filter(|(n, _)| shown(n))
                    .map(|(_, v)| number(*v)),
            );
            cells.push(
                value
                    .support
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" / "),
            );
            table.row(&cells);
        }
        out.push_str(&table.finish());
    }
    out.push_str(&gallery_section(model, spec.gallery_per_outcome));
    out.push_str("</section>");
    Ok(out)
}

fn point_cells(label: &str, point: &OperatingPoint) -> Vec<String> {
    vec![
        escape(label),
        format!("{:.2}", point.thresholds.review),
        format!("{:.2}", point.thresholds.demote),
        point.keep.to_string(),
        format!("{} ({})", point.review, percent(point.review_fraction)),
        point.demote.to_string(),
        number(Some(point.macro_f1)),
        number(Some(point.demote_precision)),
        number(Some(point.positive_recall)),
        number(point.expected_cost),
    ]
}

const POINT_HEADER: [&str; 10] = [
    "point",
    "review ≥",
    "demote ≥",
    "keep",
    "review",
    "demote",
    "macro-F1 after review",
    "demote precision",
    "positives flagged",
    "expected cost",
];

fn policy_section(policy: &PolicyEvaluation, spec: &EvalSpec) -> Result<String> {
    let objective = match &policy.sweep.objective {
        SweepObjective::MacroF1 {
            max_review_fraction,
        } => format!(
            "maximise macro-F1 after review with at most {} of samples reviewed",
            percent(*max_review_fraction)
        ),
        SweepObjective::ExpectedCost(_) => "minimise expected cost per sample".to_owned(),
    };
    let mut out = format!(
        "<h3>Keep / review / demote policy</h3><p class=\"note\">demote if p({positive}) ≥ demote, review if ≥ review, else keep. Reviewed samples are assumed resolved correctly. Sweep: grid step {step}, objective: {objective}; chosen on the {on}.</p>",
        positive = escape(spec.positive_label.as_deref().unwrap_or("positive")),
        step = policy.sweep.step,
        objective = escape(&objective),
        on = escape(&policy.swept_on),
    );
    let mut table = Table::new("policy", &POINT_HEADER);
    if let Some(point) = &policy.chosen_on_test {
        table.row_with_class("best", &point_cells("chosen (on test)", point));
    }
    if let Some(point) = &policy.configured {
        table.row(&point_cells("configured", point));
    }
    // Sweep rows are scored where the sweep ran; the first two rows are always test rows.
    let rows_of_sweep = if policy.swept_on.starts_with("validation") {
        "validation"
    } else {
        "test"
    };
    let mut ranked: Vec<&OperatingPoint> = policy.sweep.points.iter().collect();
    match &policy.sweep.objective {
        SweepObjective::MacroF1 {
            max_review_fraction,
        } => {
            ranked.retain(|p| p.review_fraction <= *max_review_fraction + 1e-12);
            ranked.sort_by(|a, b| {
                b.macro_f1
                    .total_cmp(&a.macro_f1)
                    .then(a.review.cmp(&b.review))
            });
        }
        SweepObjective::ExpectedCost(_) => {
            ranked.sort_by(|a, b| {
                a.expected_cost
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.expected_cost.unwrap_or(f64::INFINITY))
                    .then(a.review.cmp(&b.review))
            });
        }
    }
    for (rank, point) in ranked.iter().take(SWEEP_ROWS).enumerate() {
        table.row(&point_cells(
            &format!("sweep #{} ({rows_of_sweep})", rank + 1),
            point,
        ));
    }
    out.push_str(&table.finish());
    let _ = write!(
        out,
        "<div class=\"figures\"><figure>{}</figure></div>",
        sweep_surface(&policy.sweep)?
    );
    if let Some(counts) = &policy.decisions_in_file {
        let mut table = Table::new("decisions", &["true class", "keep", "review", "demote"]);
        for (name, row) in ["negative", "positive"].iter().zip(counts) {
            table.row(&[
                name.to_string(),
                row[0].to_string(),
                row[1].to_string(),
                row[2].to_string(),
            ]);
        }
        out.push_str("<p class=\"note\">Decisions recorded in the predictions file:</p>");
        out.push_str(&table.finish());
    }
    Ok(out)
}

fn gallery_section(model: &ModelEvaluation, per_group: usize) -> String {
    let mut out = String::from("<h3>Examples</h3>");
    for group in gallery(model, per_group) {
        let _ = write!(out, "<h4>{} <span class=\"note\">({} samples, most confident first)</span></h4><div class=\"cards\">", escape(&group.title), group.total);
        for item in group.items {
            let row = item.row;
            out.push_str("<div class=\"card\">");
            match &item.thumbnail {
                Some(Thumbnail::Embedded(uri)) => {
                    let _ = write!(
                        out,
                        "<img src=\"{uri}\" alt=\"{}\">",
                        escape(&row.sample_id)
                    );
                }
                Some(Thumbnail::Unavailable(reason)) => {
                    let _ = write!(
                        out,
                        "<div class=\"missing\">image unavailable: {}</div>",
                        escape(reason)
                    );
                }
                None => {}
            }
            let _ = write!(out, "<div class=\"id\">{}</div>", escape(&row.sample_id));
            if let Some(text) = &row.input_text {
                let _ = write!(out, "<div class=\"text\">{}</div>", escape(text));
            }
            let _ = write!(
                out,
                "<div>true: <b>{}</b> · predicted: <b>{}</b></div>",
                escape(&label_list(&row.true_labels)),
                escape(&label_list(&row.predicted_labels))
            );
            if let Some(confidence) = item.confidence {
                let _ = write!(out, "<div>confidence in prediction: {confidence:.3}</div>");
            }
            if let Some(decision) = row.decision {
                let _ = write!(
                    out,
                    "<div>decision: <span class=\"badge {0}\">{0}</span></div>",
                    decision.as_str()
                );
            }
            if let Some(reason) = &row.reason {
                let _ = write!(out, "<div class=\"text\">reason: {}</div>", escape(reason));
            }
            out.push_str("</div>");
        }
        out.push_str("</div>");
    }
    out
}

fn label_list(labels: &[String]) -> String {
    if labels.is_empty() {
        "(none)".to_owned()
    } else {
        labels.join(", ")
    }
}
