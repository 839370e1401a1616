//! How often raters agree: pairwise percent agreement, Cohen's kappa, and each rater's
//! agreement with the majority of the others.
//!
//! Only judgements count (A better, B better, tie); skips say nothing about the methods.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::store::Verdict;

/// Agreement of two raters on the queries both judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairAgreement {
    pub raters: [String; 2],
    /// Queries both judged.
    pub shared: usize,
    pub agreed: usize,
    /// `agreed / shared`; `None` without shared queries.
    pub agreement: Option<f64>,
    /// Cohen's kappa over {A, B, tie}; `None` when undefined (no shared queries, or both raters
    /// always gave the same single answer, so chance agreement is 1).
    pub cohen_kappa: Option<f64>,
}

/// Cohen's kappa of two equally long label sequences (scikit-learn's `cohen_kappa_score`
/// without weights); `None` when empty or when expected agreement is 1.
pub fn cohen_kappa<T: Eq + std::hash::Hash>(first: &[T], second: &[T]) -> Option<f64> {
    if first.is_empty() || first.len() != second.len() {
        return None;
    }
    let n = first.len() as f64;
    let mut counts_first: HashMap<&T, f64> = HashMap::new();
    let mut counts_second: HashMap<&T, f64> = HashMap::new();
    let mut agreed = 0.0;
    for (x, y) in first.iter().zip(second) {
        *counts_first.entry(x).or_default() += 1.0;
        *counts_second.entry(y).or_default() += 1.0;
        if x == y {
            agreed += 1.0;
        }
    }
    let observed = agreed / n;
    let expected: f64 = counts_first
        .iter()
        .map(|(label, count)| count / n * counts_second.get(label).copied().unwrap_or(0.0) / n)
        .sum();
    if (1.0 - expected).abs() < 1e-15 {
        return None;
    }
    Some((observed - expected) / (1.0 - expected))
}

/// Judgements by rater, then query.
pub type Judgements = BTreeMap<String, BTreeMap<String, Verdict>>;

/// Agreement of every pair of raters (in name order).
pub fn pairwise(judgements: &Judgements) -> Vec<PairAgreement> {
    let raters: Vec<&String> = judgements.keys().collect();
    let mut pairs = Vec::new();
    for (i, first) in raters.iter().enumerate() {
        for second in &raters[i + 1..] {
            let (mut xs, mut ys) = (Vec::new(), Vec::new());
            for (query, verdict) in &judgements[*first] {
                if let Some(other) = judgements[*second].get(query) {
                    xs.push(*verdict);
                    ys.push(*other);
                }
            }
            let agreed = xs.iter().zip(&ys).filter(|(x, y)| x == y).count();
            pairs.push(PairAgreement {
                raters: [(*first).clone(), (*second).clone()],
                shared: xs.len(),
                agreed,
                agreement: (!xs.is_empty()).then(|| agreed as f64 / xs.len() as f64),
                cohen_kappa: cohen_kappa(&xs, &ys),
            });
        }
    }
    pairs
}

/// For `rater`: on how many judged queries the other raters had a clear majority, and how
/// often the rater's answer was that majority.
pub fn agreement_with_majority(judgements: &Judgements, rater: &str) -> (usize, usize) {
    let Some(own) = judgements.get(rater) else {
        return (0, 0);
    };
    let (mut compared, mut agreed) = (0, 0);
    for (query, verdict) in own {
        let mut tally: BTreeMap<Verdict, usize> = BTreeMap::new();
        for (other, theirs) in judgements {
            if other != rater {
                if let Some(v) = theirs.get(query) {
                    *tally.entry(*v).or_default() += 1;
                }
            }
        }
        let Some(&top) = tally.values().max() else {
            continue;
        };
        let leaders: Vec<Verdict> = tally
            .iter()
            .filter(|(_, &c)| c == top)
            .map(|(v, _)| *v)
            .collect();
        if let [majority] = leaders.as_slice() {
            compared += 1;
            if majority == verdict {
                agreed += 1;
            }
        }
    }
    (compared, agreed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kappa_edge_cases() {
        assert_eq!(cohen_kappa::<u8>(&[], &[]), None);
        assert_eq!(cohen_kappa(&[1, 1], &[1, 1]), None);
        assert_eq!(cohen_kappa(&[1, 2], &[1, 2]), Some(1.0));
        // Perfect disagreement on two balanced labels: po = 0, pe = 0.5.
        assert_eq!(cohen_kappa(&[1, 2], &[2, 1]), Some(-1.0));
    }
}
