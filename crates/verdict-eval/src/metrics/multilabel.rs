//! Set-level metrics: subset accuracy and Hamming loss.

use super::outcomes::Outcomes;

/// Share of samples whose predicted set equals the true set; plain accuracy for one-hot rows.
pub fn subset_accuracy(outcomes: &Outcomes) -> Option<f64> {
    if outcomes.is_empty() {
        return None;
    }
    let exact = outcomes
        .truth
        .iter()
        .zip(&outcomes.predicted)
        .filter(|(t, p)| t == p)
        .count();
    Some(exact as f64 / outcomes.len() as f64)
}

/// Share of wrong (sample, label) cells; only defined here for multi-label tasks (for
/// single-label tasks scikit-learn's value is just `1 - accuracy`).
pub fn hamming_loss(outcomes: &Outcomes) -> Option<f64> {
    if outcomes.is_empty() || !outcomes.multi_label || outcomes.labels.is_empty() {
        return None;
    }
    let wrong: usize = outcomes
        .truth
        .iter()
        .zip(&outcomes.predicted)
        .map(|(t, p)| t.iter().zip(p).filter(|(a, b)| a != b).count())
        .sum();
    Some(wrong as f64 / (outcomes.len() * outcomes.labels.len()) as f64)
}
