//! Exact binomial test and Clopper-Pearson interval, written out so the numbers can be checked
//! against `scipy.stats.binomtest` (see `tests/fixtures/stats/make_fixtures.py`).
//!
//! The two-sided p-value follows scipy's definition: the probability, under the null
//! proportion, of every outcome no more likely than the observed one (with the same 1e-7
//! relative slack scipy uses to absorb rounding).

use serde::Serialize;

/// Result of testing `successes` out of `trials` against a null proportion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BinomialTest {
    pub successes: u64,
    pub trials: u64,
    pub null_proportion: f64,
    /// `successes / trials`.
    pub estimate: f64,
    /// Exact two-sided p-value.
    pub p_value: f64,
    pub confidence_level: f64,
    /// Clopper-Pearson ("exact") interval for the proportion.
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Exact two-sided binomial test with a Clopper-Pearson interval; `None` without trials.
pub fn binomial_test(
    successes: u64,
    trials: u64,
    null_proportion: f64,
    confidence_level: f64,
) -> Option<BinomialTest> {
    if trials == 0 || successes > trials || !(0.0..=1.0).contains(&null_proportion) {
        return None;
    }
    let (ci_low, ci_high) = clopper_pearson(successes, trials, confidence_level);
    Some(BinomialTest {
        successes,
        trials,
        null_proportion,
        estimate: successes as f64 / trials as f64,
        p_value: two_sided_p_value(successes, trials, null_proportion),
        confidence_level,
        ci_low,
        ci_high,
    })
}

/// `P(X = k)` for `X ~ Binomial(n, p)`.
pub fn pmf(k: u64, n: u64, p: f64) -> f64 {
    if k > n {
        return 0.0;
    }
    if p == 0.0 {
        return if k == 0 { 1.0 } else { 0.0 };
    }
    if p == 1.0 {
        return if k == n { 1.0 } else { 0.0 };
    }
    let (k_f, n_f) = (k as f64, n as f64);
    let log = ln_gamma(n_f + 1.0) - ln_gamma(k_f + 1.0) - ln_gamma(n_f - k_f + 1.0)
        + k_f * p.ln()
        + (n_f - k_f) * (-p).ln_1p();
    log.exp()
}

/// Sum of the probabilities of all outcomes at most as likely as `k`.
pub fn two_sided_p_value(k: u64, n: u64, p: f64) -> f64 {
    // The most likely outcome itself: every outcome counts (scipy special-cases this too).
    if k as f64 == p * n as f64 {
        return 1.0;
    }
    let observed = pmf(k, n, p);
    let threshold = observed * (1.0 + 1e-7);
    // Summing small terms first keeps the tail sums accurate.
    let mut terms: Vec<f64> = (0..=n)
        .map(|i| pmf(i, n, p))
        .filter(|&q| q <= threshold)
        .collect();
    terms.sort_by(f64::total_cmp);
    terms.iter().sum::<f64>().min(1.0)
}

/// Clopper-Pearson interval: beta quantiles `B(a/2; k, n-k+1)` and `B(1-a/2; k+1, n-k)`.
pub fn clopper_pearson(k: u64, n: u64, confidence_level: f64) -> (f64, f64) {
    let alpha = 1.0 - confidence_level;
    let (k_f, n_f) = (k as f64, n as f64);
    let low = if k == 0 {
        0.0
    } else {
        beta_quantile(alpha / 2.0, k_f, n_f - k_f + 1.0)
    };
    let high = if k == n {
        1.0
    } else {
        beta_quantile(1.0 - alpha / 2.0, k_f + 1.0, n_f - k_f)
    };
    (low, high)
}

/// The `x` with `I_x(a, b) = q`, by bisection (the CDF is monotone, so this cannot diverge;
/// 200 halvings reach the spacing of doubles).
pub fn beta_quantile(q: f64, a: f64, b: f64) -> f64 {
    let (mut low, mut high) = (0.0_f64, 1.0_f64);
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if middle <= low || middle >= high {
            break;
        }
        if regularized_incomplete_beta(middle, a, b) < q {
            low = middle;
        } else {
            high = middle;
        }
    }
    0.5 * (low + high)
}

/// `I_x(a, b)`, the CDF of the Beta(a, b) distribution, by its continued fraction
/// (modified Lentz), using the symmetry `I_x(a, b) = 1 - I_{1-x}(b, a)` where it converges
/// faster.
pub fn regularized_incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let log_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (-x).ln_1p();
    if x < (a + 1.0) / (a + b + 2.0) {
        log_front.exp() * beta_continued_fraction(x, a, b) / a
    } else {
        1.0 - log_front.exp() * beta_continued_fraction(1.0 - x, b, a) / b
    }
}

fn beta_continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPSILON: f64 = 1e-16;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut fraction = d;
    for m in 1..10_000 {
        let m = m as f64;
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        for coefficient in [
            even,
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + coefficient * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + coefficient / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            fraction *= d * c;
        }
        if (d * c - 1.0).abs() < EPSILON {
            break;
        }
    }
    fraction
}

/// `ln Γ(x)` for `x > 0`: Lanczos approximation (g = 7, 9 terms), relative error near 1e-15.
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 - x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, &coefficient) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += coefficient / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut factorial = 1.0_f64;
        for n in 1..30u32 {
            factorial *= n as f64;
            let expected = factorial.ln();
            assert!(
                (ln_gamma(n as f64 + 1.0) - expected).abs() < 1e-12 * expected.max(1.0),
                "{n}"
            );
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-14);
    }

    #[test]
    fn pmf_sums_to_one_and_symmetric_test_is_symmetric() {
        let total: f64 = (0..=40).map(|k| pmf(k, 40, 0.3)).sum();
        assert!((total - 1.0).abs() < 1e-12);
        for k in 0..=20 {
            assert!(
                (two_sided_p_value(k, 20, 0.5) - two_sided_p_value(20 - k, 20, 0.5)).abs() < 1e-15
            );
        }
        assert_eq!(two_sided_p_value(10, 20, 0.5), 1.0);
        assert!(binomial_test(1, 0, 0.5, 0.95).is_none());
    }
}
