//! Several models on the same samples: uplift over a baseline and a paired bootstrap confidence
//! interval for the macro-F1 difference.
//!
//! The bootstrap resamples sample indices with replacement (seeded ChaCha8) and applies the
//! *same* resample to baseline and candidate, so the interval reflects the paired difference,
//! not two independent uncertainties. The interval is the 2.5th-97.5th percentile of the
//! resampled differences (linear interpolation between order statistics, numpy's default).

use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::metrics::{macro_f1_from_counts, Outcomes};

/// One candidate against the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonEntry {
    pub model_id: String,
    pub source: String,
    pub macro_f1: Option<f64>,
    pub accuracy: Option<f64>,
    /// Candidate minus baseline; `None` for the baseline itself.
    pub macro_f1_uplift: Option<f64>,
    pub accuracy_uplift: Option<f64>,
    /// 95% paired bootstrap interval of the macro-F1 difference.
    pub macro_f1_uplift_interval: Option<(f64, f64)>,
    /// Share of resamples where the candidate beats the baseline.
    pub probability_better: Option<f64>,
}

/// The comparison table.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub baseline: String,
    pub resamples: usize,
    pub seed: u64,
    pub confidence: f64,
    pub entries: Vec<ComparisonEntry>,
}

/// Percentile with linear interpolation between closest ranks (numpy's default method).
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let position = q / 100.0 * (sorted.len() - 1) as f64;
    let lower = position.floor() as usize;
    let upper = position.ceil() as usize;
    let fraction = position - lower as f64;
    Some(sorted[lower] + (sorted[upper] - sorted[lower]) * fraction)
}

/// Paired bootstrap of `macro_f1(candidate) - macro_f1(baseline)`; returns the interval and the
/// share of resamples with a positive difference. Both outcomes must be aligned by sample.
pub fn bootstrap_macro_f1_difference(
    baseline: &Outcomes,
    candidate: &Outcomes,
    resamples: usize,
    seed: u64,
) -> Option<((f64, f64), f64)> {
    let n = baseline.len();
    if n == 0 || candidate.len() != n || resamples == 0 {
        return None;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut differences = Vec::with_capacity(resamples);
    let mut indices = vec![0usize; n];
    for _ in 0..resamples {
        for slot in indices.iter_mut() {
            *slot = rng.random_range(0..n);
        }
        let base =
            macro_f1_from_counts(&baseline.label_counts_at(&indices), baseline.zero_division);
        let cand = macro_f1_from_counts(
            &candidate.label_counts_at(&indices),
            candidate.zero_division,
        );
        let difference = cand - base;
        if !difference.is_nan() {
            differences.push(difference);
        }
    }
    differences.sort_by(f64::total_cmp);
    let lower = percentile(&differences, 2.5)?;
    let upper = percentile(&differences, 97.5)?;
    let better = differences.iter().filter(|&&d| d > 0.0).count() as f64 / differences.len() as f64;
    Some(((lower, upper), better))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4], [2.5, 50, 97.5]) == [1.075, 2.5, 3.925]
        let values = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile(&values, 2.5).unwrap() - 1.075).abs() < 1e-12);
        assert!((percentile(&values, 50.0).unwrap() - 2.5).abs() < 1e-12);
        assert!((percentile(&values, 97.5).unwrap() - 3.925).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_a_clear_uplift() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let truth: Vec<usize> = (0..200).map(|i| i % 2).collect();
        // Baseline right 60% of the time, candidate 90%.
        let base: Vec<usize> = truth
            .iter()
            .enumerate()
            .map(|(i, &t)| if i % 5 < 3 { t } else { 1 - t })
            .collect();
        let cand: Vec<usize> = truth
            .iter()
            .enumerate()
            .map(|(i, &t)| if i % 10 < 9 { t } else { 1 - t })
            .collect();
        let baseline = Outcomes::from_indices(labels.clone(), &truth, &base);
        let candidate = Outcomes::from_indices(labels, &truth, &cand);
        let first = bootstrap_macro_f1_difference(&baseline, &candidate, 300, 7).unwrap();
        let second = bootstrap_macro_f1_difference(&baseline, &candidate, 300, 7).unwrap();
        assert_eq!(first, second);
        let ((lower, upper), better) = first;
        assert!(lower > 0.15 && upper < 0.45, "interval {lower}..{upper}");
        assert_eq!(better, 1.0);
        let identical = bootstrap_macro_f1_difference(&baseline, &baseline, 50, 1).unwrap();
        assert_eq!(identical.0, (0.0, 0.0));
    }
}
