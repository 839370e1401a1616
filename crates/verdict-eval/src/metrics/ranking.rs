//! Threshold-free metrics of a binary score: precision-recall and ROC curves, AUPRC, ROC-AUC.
//!
//! Thresholds are the distinct scores; tied scores move together (no interpolation inside a
//! tie), exactly as scikit-learn's `precision_recall_curve` and `roc_curve`.

use serde::Serialize;

/// One point of a curve, at the decision rule `score >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    pub threshold: f64,
    /// Recall (PR) or false positive rate (ROC).
    pub x: f64,
    /// Precision (PR) or true positive rate (ROC).
    pub y: f64,
}

/// Cumulative (true positives, false positives, threshold) at each distinct score, highest first.
fn cumulative_counts(truth: &[bool], scores: &[f64]) -> Vec<(f64, f64, f64)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = Vec::new();
    let (mut tp, mut fp) = (0.0, 0.0);
    for (position, &index) in order.iter().enumerate() {
        if truth[index] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_tie = order
            .get(position + 1)
            .is_none_or(|&next| scores[next] != scores[index]);
        if last_of_tie {
            points.push((tp, fp, scores[index]));
        }
    }
    points
}

/// Precision-recall points, highest threshold first. With no positive sample recall is taken as
/// 1 everywhere, as scikit-learn does.
pub fn pr_curve(truth: &[bool], scores: &[f64]) -> Vec<CurvePoint> {
    let counts = cumulative_counts(truth, scores);
    let positives = counts.last().map(|c| c.0).unwrap_or(0.0);
    counts
        .into_iter()
        .map(|(tp, fp, threshold)| CurvePoint {
            threshold,
            x: if positives == 0.0 {
                1.0
            } else {
                tp / positives
            },
            y: tp / (tp + fp),
        })
        .collect()
}

/// ROC points from (0, 0), highest threshold first.
pub fn roc_curve(truth: &[bool], scores: &[f64]) -> Option<Vec<CurvePoint>> {
    let counts = cumulative_counts(truth, scores);
    let &(positives, negatives, _) = counts.last()?;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let mut points = vec![CurvePoint {
        threshold: f64::INFINITY,
        x: 0.0,
        y: 0.0,
    }];
    points.extend(counts.into_iter().map(|(tp, fp, threshold)| CurvePoint {
        threshold,
        x: fp / negatives,
        y: tp / positives,
    }));
    Some(points)
}

/// `sum_k (R_k - R_{k-1}) P_k` over the PR points (step-wise, no trapezoid). `None` without
/// samples.
pub fn average_precision(truth: &[bool], scores: &[f64]) -> Option<f64> {
    if truth.is_empty() {
        return None;
    }
    let mut previous_recall = 0.0;
    let mut area = 0.0;
    for point in pr_curve(truth, scores) {
        area += (point.x - previous_recall) * point.y;
        previous_recall = point.x;
    }
    Some(area)
}

/// Trapezoidal area under the ROC curve; `None` when only one class is present.
pub fn roc_auc(truth: &[bool], scores: &[f64]) -> Option<f64> {
    let points = roc_curve(truth, scores)?;
    let area = points
        .windows(2)
        .map(|pair| (pair[1].x - pair[0].x) * (pair[1].y + pair[0].y) / 2.0)
        .sum();
    Some(area)
}
