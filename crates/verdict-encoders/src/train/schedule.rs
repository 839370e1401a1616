//! Learning-rate schedule: linear warmup from 0 to the peak, then cosine decay to 0.

/// Multiplier of the peak learning rate at optimiser step `step` (0-based) of `total`.
pub fn warmup_cosine(step: usize, warmup: usize, total: usize) -> f64 {
    if total == 0 {
        return 1.0;
    }
    if step < warmup {
        return (step + 1) as f64 / warmup as f64;
    }
    let decay_steps = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / decay_steps as f64).min(1.0);
    0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_to_zero() {
        assert!((warmup_cosine(0, 4, 20) - 0.25).abs() < 1e-12);
        assert!((warmup_cosine(3, 4, 20) - 1.0).abs() < 1e-12);
        assert!((warmup_cosine(4, 4, 20) - 1.0).abs() < 1e-12);
        assert!((warmup_cosine(12, 4, 20) - 0.5).abs() < 1e-12);
        assert!(warmup_cosine(20, 4, 20).abs() < 1e-12);
        let values: Vec<f64> = (4..20).map(|s| warmup_cosine(s, 4, 20)).collect();
        assert!(values.windows(2).all(|w| w[1] <= w[0]));
    }
}
