//! Temperature scaling: `p_k <- softmax(log p_k / T)`, one `T` for all classes.
//!
//! Working on probabilities (not logits) is enough because `log p` equals the logits up to a
//! per-row constant, which softmax ignores. The NLL is convex in `1/T`, hence unimodal in `T`,
//! so a golden-section search on a bracket finds the global minimum.

/// Probabilities are clipped here before the log so that a hard 0 does not give -inf.
const FLOOR: f64 = 1e-12;
const BRACKET: (f64, f64) = (0.05, 20.0);

/// Rescales one probability row by temperature `t`.
///
/// # Shapes
/// - `row`: `[labels]` -> `[labels]`
pub fn scale(row: &[f64], t: f64) -> Vec<f64> {
    let logits: Vec<f64> = row.iter().map(|&p| p.max(FLOOR).ln() / t).collect();
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|&z| (z - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Mean negative log-likelihood of the true labels after scaling by `t`.
///
/// # Shapes
/// - `probabilities`: `[samples][labels]`, `truth`: `[samples]`
pub fn negative_log_likelihood(probabilities: &[Vec<f64>], truth: &[usize], t: f64) -> f64 {
    let total: f64 = probabilities
        .iter()
        .zip(truth)
        .map(|(row, &label)| {
            let logits: Vec<f64> = row.iter().map(|&p| p.max(FLOOR).ln() / t).collect();
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = logits.iter().map(|&z| (z - max).exp()).sum::<f64>().ln() + max;
            log_sum - logits[label]
        })
        .sum();
    total / probabilities.len().max(1) as f64
}

/// The temperature in [0.05, 20] minimising validation NLL (golden-section search to 1e-10).
pub fn fit_temperature(probabilities: &[Vec<f64>], truth: &[usize]) -> f64 {
    let objective = |t: f64| negative_log_likelihood(probabilities, truth, t);
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = BRACKET;
    let mut c = b - ratio * (b - a);
    let mut d = a + ratio * (b - a);
    let (mut fc, mut fd) = (objective(c), objective(d));
    while (b - a).abs() > 1e-10 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - ratio * (b - a);
            fc = objective(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + ratio * (b - a);
            fd = objective(d);
        }
    }
    (a + b) / 2.0
}
