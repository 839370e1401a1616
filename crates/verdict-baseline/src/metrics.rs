//! The two numbers a baseline report needs, computed as scikit-learn does (`accuracy_score`,
//! `f1_score(average="macro")` with zero for classes that are never predicted nor present).

use std::collections::BTreeSet;

/// Fraction of exact matches.
pub fn accuracy<S: AsRef<str>>(truth: &[S], predicted: &[S]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let hits = truth
        .iter()
        .zip(predicted)
        .filter(|(t, p)| t.as_ref() == p.as_ref())
        .count();
    hits as f64 / truth.len() as f64
}

/// Unweighted mean of per-class F1 over the classes present in `truth` or `predicted`.
pub fn macro_f1<S: AsRef<str>>(truth: &[S], predicted: &[S]) -> f64 {
    let classes: BTreeSet<&str> = truth.iter().chain(predicted).map(|s| s.as_ref()).collect();
    if classes.is_empty() {
        return 0.0;
    }
    let total: f64 = classes
        .iter()
        .map(|&class| {
            let mut tp = 0usize;
            let mut fp = 0usize;
            let mut fn_ = 0usize;
            for (t, p) in truth.iter().zip(predicted) {
                match (t.as_ref() == class, p.as_ref() == class) {
                    (true, true) => tp += 1,
                    (false, true) => fp += 1,
                    (true, false) => fn_ += 1,
                    (false, false) => {}
                }
            }
            binary_f1(tp, fp, fn_)
        })
        .sum();
    total / classes.len() as f64
}

/// `2 tp / (2 tp + fp + fn)`, zero when undefined.
pub fn binary_f1(tp: usize, fp: usize, false_negatives: usize) -> f64 {
    let denominator = 2 * tp + fp + false_negatives;
    if denominator == 0 {
        0.0
    } else {
        2.0 * tp as f64 / denominator as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_values() {
        let truth = ["a", "a", "b", "c"];
        let predicted = ["a", "b", "b", "b"];
        assert_eq!(accuracy(&truth, &predicted), 0.5);
        // a: 2/3, b: 2*1/(2+2+0) = 0.5, c: 0
        let expected = (2.0 / 3.0 + 0.5 + 0.0) / 3.0;
        assert!((macro_f1(&truth, &predicted) - expected).abs() < 1e-12);
    }
}
