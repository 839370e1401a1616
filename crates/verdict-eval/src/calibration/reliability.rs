//! Reliability diagram and expected calibration error (ECE).
//!
//! Bins are `n` equal-width intervals of [0, 1]; a value on an inner edge goes to the lower
//! bin, so the bins are `[0, 1/n], (1/n, 2/n], ..., ((n-1)/n, 1]` with edges computed like
//! numpy's `linspace`. This is scikit-learn's `calibration_curve(strategy="uniform")` binning, so
//! the per-bin numbers equal its `prob_true` / `prob_pred` on the non-empty bins.
//!
//! ECE = sum over non-empty bins of `count / total * |accuracy - mean confidence|`
//! (Guo et al. 2017; 15 bins by default). What "confidence" and "correct" mean is the caller's
//! choice: the positive-class probability and "is positive" for binary tasks, the top-label
//! probability and "top label is right" for multi-class tasks.

use serde::Serialize;

/// One bin of the diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    /// Mean predicted probability in the bin (scikit-learn's `prob_pred`).
    pub mean_confidence: f64,
    /// Observed frequency of the event in the bin (scikit-learn's `prob_true`).
    pub frequency: f64,
}

/// Non-empty bins plus the ECE they add up to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReliabilityDiagram {
    pub bins: Vec<ReliabilityBin>,
    pub expected_calibration_error: f64,
    pub bin_count: usize,
}

/// Bins `confidence` values (each in [0, 1]) against whether the event happened.
pub fn reliability(event: &[bool], confidence: &[f64], bin_count: usize) -> ReliabilityDiagram {
    let bin_count = bin_count.max(1);
    let step = 1.0 / bin_count as f64;
    let edge = |k: usize| if k == bin_count { 1.0 } else { k as f64 * step };
    let inner: Vec<f64> = (1..bin_count).map(edge).collect();
    let mut sums = vec![0.0; bin_count];
    let mut hits = vec![0.0; bin_count];
    let mut counts = vec![0usize; bin_count];
    for (&happened, &p) in event.iter().zip(confidence) {
        // numpy.searchsorted(side="left"): number of inner edges strictly below p.
        let bin = inner.partition_point(|&e| e < p);
        sums[bin] += p;
        hits[bin] += happened as u8 as f64;
        counts[bin] += 1;
    }
    let total = event.len().max(1) as f64;
    let mut bins = Vec::new();
    let mut ece = 0.0;
    for k in 0..bin_count {
        if counts[k] == 0 {
            continue;
        }
        let n = counts[k] as f64;
        let bin = ReliabilityBin {
            lower: edge(k),
            upper: edge(k + 1),
            count: counts[k],
            mean_confidence: sums[k] / n,
            frequency: hits[k] / n,
        };
        ece += n / total * (bin.frequency - bin.mean_confidence).abs();
        bins.push(bin);
    }
    ReliabilityDiagram {
        bins,
        expected_calibration_error: ece,
        bin_count,
    }
}
