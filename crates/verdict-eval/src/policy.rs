//! The keep / review / demote policy of binary-policy tasks and its threshold sweep.
//!
//! A sample with positive-class probability `p` is **demoted** when `p >= demote`, sent to
//! **review** when `review <= p < demote`, and **kept** otherwise.
//!
//! Scoring an operating point assumes a human review resolves a sample correctly: after review,
//! demoted samples count as predicted positive, kept samples as predicted negative, and reviewed
//! samples as their true label. The *macro-F1* of a point is the binary macro-F1 of that final
//! outcome; since reviewing everything would be perfect, the macro-F1 objective only considers
//! points that send at most `max_review_fraction` of samples to review. The *expected cost* is
//! the mean of `cost[truth][decision]` over samples; the cost objective minimises it and needs
//! no review cap because review has its own cost.
//!
//! Both objectives break ties by less review volume, then by the higher demote threshold.

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::prediction::Decision;

/// The two thresholds on the positive-class probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PolicyThresholds {
    pub review: f64,
    pub demote: f64,
}

impl PolicyThresholds {
    /// Requires `0 <= review <= demote <= 1`.
    pub fn validate(&self) -> Result<()> {
        let in_range = |v: f64| (0.0..=1.0).contains(&v);
        if !in_range(self.review) || !in_range(self.demote) || self.review > self.demote {
            return Err(EvalError::Invalid(format!(
                "policy thresholds must satisfy 0 <= review <= demote <= 1, got review {} and demote {}",
                self.review, self.demote
            )));
        }
        Ok(())
    }

    /// The decision for a positive-class probability.
    pub fn decide(&self, probability: f64) -> Decision {
        if probability >= self.demote {
            Decision::Demote
        } else if probability >= self.review {
            Decision::Review
        } else {
            Decision::Keep
        }
    }
}

/// Cost of each decision for one true class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecisionCosts {
    pub keep: f64,
    pub review: f64,
    pub demote: f64,
}

impl DecisionCosts {
    pub fn of(&self, decision: Decision) -> f64 {
        match decision {
            Decision::Keep => self.keep,
            Decision::Review => self.review,
            Decision::Demote => self.demote,
        }
    }
}

/// Cost of every (true class, decision) pair: e.g. keeping a positive is a missed violation,
/// demoting a negative is a wrongly removed item, review costs a moderator's time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostMatrix {
    pub negative: DecisionCosts,
    pub positive: DecisionCosts,
}

impl CostMatrix {
    pub fn cost(&self, is_positive: bool, decision: Decision) -> f64 {
        if is_positive {
            self.positive.of(decision)
        } else {
            self.negative.of(decision)
        }
    }
}

/// What the sweep optimises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepObjective {
    /// Maximise macro-F1 after review with at most this share of samples reviewed.
    MacroF1 { max_review_fraction: f64 },
    /// Minimise the mean cost per sample.
    ExpectedCost(CostMatrix),
}

/// One (review, demote) pair and how it performs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OperatingPoint {
    pub thresholds: PolicyThresholds,
    pub keep: usize,
    pub review: usize,
    pub demote: usize,
    pub review_fraction: f64,
    /// Binary macro-F1 after review (see module docs).
    pub macro_f1: f64,
    /// Share of demoted samples that are truly positive (1 when nothing is demoted).
    pub demote_precision: f64,
    /// Share of positives demoted or sent to review (1 when there are no positives).
    pub positive_recall: f64,
    /// Mean cost per sample, when a cost matrix is given.
    pub expected_cost: Option<f64>,
}

/// Scores one operating point.
pub fn evaluate_point(
    truth: &[bool],
    scores: &[f64],
    thresholds: PolicyThresholds,
    costs: Option<&CostMatrix>,
) -> OperatingPoint {
    let mut counts = [[0usize; 3]; 2];
    for (&is_positive, &score) in truth.iter().zip(scores) {
        counts[is_positive as usize][thresholds.decide(score) as usize] += 1;
    }
    point_from_counts(thresholds, counts, costs)
}

/// `counts[truth][decision]` with decisions in `Decision::ALL` order.
fn point_from_counts(
    thresholds: PolicyThresholds,
    counts: [[usize; 3]; 2],
    costs: Option<&CostMatrix>,
) -> OperatingPoint {
    let [negative, positive] = counts.map(|row| row.map(|c| c as f64));
    let total = negative.iter().sum::<f64>() + positive.iter().sum::<f64>();
    let (keep, review, demote) = (0, 1, 2);
    // After review: reviewed samples take their true label.
    let tp = positive[demote] + positive[review];
    let false_pos = negative[demote];
    let false_neg = positive[keep];
    let tn = negative[keep] + negative[review];
    let f1 = |tp: f64, fp: f64, fn_: f64| {
        if tp + fp + fn_ == 0.0 {
            0.0
        } else {
            2.0 * tp / (2.0 * tp + fp + fn_)
        }
    };
    let macro_f1 = (f1(tp, false_pos, false_neg) + f1(tn, false_neg, false_pos)) / 2.0;
    let demoted = positive[demote] + negative[demote];
    let positives: f64 = positive.iter().sum();
    let expected_cost = costs.map(|c| {
        let mut sum = 0.0;
        for decision in Decision::ALL {
            sum += negative[decision as usize] * c.negative.of(decision);
            sum += positive[decision as usize] * c.positive.of(decision);
        }
        if total == 0.0 {
            0.0
        } else {
            sum / total
        }
    });
    OperatingPoint {
        thresholds,
        keep: counts[0][keep] + counts[1][keep],
        review: counts[0][review] + counts[1][review],
        demote: counts[0][demote] + counts[1][demote],
        review_fraction: if total == 0.0 {
            0.0
        } else {
            (negative[review] + positive[review]) / total
        },
        macro_f1,
        demote_precision: if demoted == 0.0 {
            1.0
        } else {
            positive[demote] / demoted
        },
        positive_recall: if positives == 0.0 {
            1.0
        } else {
            (positive[demote] + positive[review]) / positives
        },
        expected_cost,
    }
}

/// Every grid point and the best one.
#[derive(Debug, Clone, Serialize)]
pub struct SweepResult {
    pub objective: SweepObjective,
    pub step: f64,
    pub points: Vec<OperatingPoint>,
    /// `None` when no point satisfies the review cap.
    pub best: Option<OperatingPoint>,
}

/// The grid `0, step, 2 step, ..., 1` (rounded to 9 decimals so 0.3 prints as 0.3).
pub fn grid(step: f64) -> Vec<f64> {
    let steps = (1.0 / step).round().max(1.0) as usize;
    let mut values: Vec<f64> = (0..=steps)
        .map(|k| ((k as f64 * step).min(1.0) * 1e9).round() / 1e9)
        .collect();
    values.dedup();
    values
}

/// Scores every `(review, demote)` pair of the grid with `review <= demote` and picks the best
/// for `objective`.
pub fn sweep(
    truth: &[bool],
    scores: &[f64],
    step: f64,
    objective: &SweepObjective,
) -> Result<SweepResult> {
    if truth.len() != scores.len() || truth.is_empty() {
        return Err(EvalError::Invalid(
            "the sweep needs as many scores as labels, and at least one".into(),
        ));
    }
    // Sorted scores per class make each point a pair of binary searches.
    let sorted = |want: bool| {
        let mut values: Vec<f64> = truth
            .iter()
            .zip(scores)
            .filter(|(t, _)| **t == want)
            .map(|(_, s)| *s)
            .collect();
        values.sort_by(f64::total_cmp);
        values
    };
    let classes = [sorted(false), sorted(true)];
    let at_least = |values: &Vec<f64>, threshold: f64| {
        values.len() - values.partition_point(|&s| s < threshold)
    };
    let costs = match objective {
        SweepObjective::ExpectedCost(c) => Some(c),
        SweepObjective::MacroF1 { .. } => None,
    };
    let values = grid(step);
    let mut points = Vec::new();
    for (i, &review) in values.iter().enumerate() {
        for &demote in &values[i..] {
            let counts = [0, 1].map(|class| {
                let class_values = &classes[class];
                let demoted = at_least(class_values, demote);
                let flagged = at_least(class_values, review);
                [class_values.len() - flagged, flagged - demoted, demoted]
            });
            points.push(point_from_counts(
                PolicyThresholds { review, demote },
                counts,
                costs,
            ));
        }
    }
    let better = |a: &OperatingPoint, b: &OperatingPoint| -> bool {
        let primary = match objective {
            SweepObjective::MacroF1 { .. } => a.macro_f1.total_cmp(&b.macro_f1),
            SweepObjective::ExpectedCost(_) => b
                .expected_cost
                .unwrap_or(f64::INFINITY)
                .total_cmp(&a.expected_cost.unwrap_or(f64::INFINITY)),
        };
        primary
            .then(b.review.cmp(&a.review))
            .then(a.thresholds.demote.total_cmp(&b.thresholds.demote))
            .is_gt()
    };
    let feasible = |p: &OperatingPoint| match objective {
        SweepObjective::MacroF1 {
            max_review_fraction,
        } => p.review_fraction <= *max_review_fraction + 1e-12,
        SweepObjective::ExpectedCost(_) => true,
    };
    let mut best: Option<OperatingPoint> = None;
    for point in points.iter().filter(|p| feasible(p)) {
        if best.as_ref().is_none_or(|b| better(point, b)) {
            best = Some(*point);
        }
    }
    Ok(SweepResult {
        objective: objective.clone(),
        step,
        points,
        best,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn costs() -> CostMatrix {
        CostMatrix {
            negative: DecisionCosts {
                keep: 0.0,
                review: 1.0,
                demote: 5.0,
            },
            positive: DecisionCosts {
                keep: 10.0,
                review: 1.0,
                demote: 0.0,
            },
        }
    }

    #[test]
    fn decisions_follow_thresholds_inclusively() {
        let t = PolicyThresholds {
            review: 0.4,
            demote: 0.8,
        };
        assert_eq!(t.decide(0.39), Decision::Keep);
        assert_eq!(t.decide(0.4), Decision::Review);
        assert_eq!(t.decide(0.79), Decision::Review);
        assert_eq!(t.decide(0.8), Decision::Demote);
        assert!(PolicyThresholds {
            review: 0.9,
            demote: 0.8
        }
        .validate()
        .is_err());
    }

    #[test]
    fn sweep_counts_equal_direct_evaluation_including_ties_on_grid_values() {
        let truth = [false, false, true, true, false, true, true, false];
        let scores = [0.1, 0.4, 0.4, 0.85, 0.5, 0.5, 1.0, 0.05];
        let objective = SweepObjective::ExpectedCost(costs());
        let result = sweep(&truth, &scores, 0.05, &objective).unwrap();
        assert_eq!(result.points.len(), 21 * 22 / 2);
        for point in &result.points {
            let direct = evaluate_point(&truth, &scores, point.thresholds, Some(&costs()));
            assert_eq!(&direct, point);
        }
    }

    #[test]
    fn cost_objective_picks_the_cheapest_point_by_brute_force() {
        let truth = [
            false, false, true, true, false, true, true, false, false, true,
        ];
        let scores = [0.1, 0.45, 0.4, 0.85, 0.55, 0.5, 0.95, 0.05, 0.7, 0.3];
        let result = sweep(
            &truth,
            &scores,
            0.05,
            &SweepObjective::ExpectedCost(costs()),
        )
        .unwrap();
        let best = result.best.unwrap();
        let minimum = result
            .points
            .iter()
            .map(|p| p.expected_cost.unwrap())
            .fold(f64::INFINITY, f64::min);
        assert_eq!(best.expected_cost.unwrap(), minimum);
        // Hand check of that cost: decisions at the chosen point, summed by hand.
        let by_hand: f64 = truth
            .iter()
            .zip(&scores)
            .map(|(&t, &s)| costs().cost(t, best.thresholds.decide(s)))
            .sum::<f64>()
            / truth.len() as f64;
        assert!((by_hand - minimum).abs() < 1e-12);
    }

    #[test]
    fn macro_f1_objective_respects_the_review_cap() {
        let truth = [false, true, false, true, false, true];
        let scores = [0.2, 0.3, 0.6, 0.7, 0.45, 0.9];
        let objective = SweepObjective::MacroF1 {
            max_review_fraction: 0.0,
        };
        let best = sweep(&truth, &scores, 0.05, &objective)
            .unwrap()
            .best
            .unwrap();
        assert_eq!(best.review, 0);
        // Without review the best split puts 0.3 and 0.45 on either side: 2 errors minimum.
        let point = evaluate_point(&truth, &scores, best.thresholds, None);
        assert_eq!(point.macro_f1, best.macro_f1);
        let uncapped = SweepObjective::MacroF1 {
            max_review_fraction: 1.0,
        };
        let best_uncapped = sweep(&truth, &scores, 0.05, &uncapped)
            .unwrap()
            .best
            .unwrap();
        assert_eq!(best_uncapped.macro_f1, 1.0);
    }
}
