//! Isotonic regression (increasing), as scikit-learn's `IsotonicRegression(out_of_bounds="clip")`.
//!
//! Fitting: sort by x, merge equal x into one point (weighted mean of y, summed weight), run
//! pool-adjacent-violators. Prediction: linear interpolation between the fitted points, inputs
//! clipped to the fitted x range.

use serde::Serialize;

/// scikit-learn merges x values closer than float64 resolution.
const SAME_X: f64 = 1e-15;

/// A fitted monotone map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IsotonicRegression {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

impl IsotonicRegression {
    /// Fits on (x, y) pairs with unit weights; `None` without data.
    pub fn fit(x: &[f64], y: &[f64]) -> Option<IsotonicRegression> {
        if x.is_empty() || x.len() != y.len() {
            return None;
        }
        let mut order: Vec<usize> = (0..x.len()).collect();
        order.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(y[a].total_cmp(&y[b])));
        // Merge ties in x.
        let mut points: Vec<(f64, f64, f64)> = Vec::new(); // (x, weighted y sum, weight)
        for &i in &order {
            match points.last_mut() {
                Some(last) if x[i] - last.0 < SAME_X => {
                    last.1 += y[i];
                    last.2 += 1.0;
                }
                _ => points.push((x[i], y[i], 1.0)),
            }
        }
        let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
        let means: Vec<f64> = points.iter().map(|p| p.1 / p.2).collect();
        let weights: Vec<f64> = points.iter().map(|p| p.2).collect();
        let ys = pool_adjacent_violators(&means, &weights);
        Some(IsotonicRegression { x: xs, y: ys })
    }

    /// The fitted value at `value`, clipped to the fitted range.
    pub fn predict(&self, value: f64) -> f64 {
        let last = self.x.len() - 1;
        if value.is_nan() {
            return f64::NAN;
        }
        if last == 0 || value <= self.x[0] {
            return self.y[0];
        }
        if value >= self.x[last] {
            return self.y[last];
        }
        let upper = self.x.partition_point(|&x| x <= value);
        let lower = upper - 1;
        let (x0, x1, y0, y1) = (self.x[lower], self.x[upper], self.y[lower], self.y[upper]);
        y0 + (value - x0) * (y1 - y0) / (x1 - x0)
    }
}

/// Weighted least-squares increasing fit of `values` (one output per input).
fn pool_adjacent_violators(values: &[f64], weights: &[f64]) -> Vec<f64> {
    // Blocks of (mean, weight, length).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(values.len());
    for (&v, &w) in values.iter().zip(weights) {
        blocks.push((v, w, 1));
        while blocks.len() > 1 {
            let (mean, weight, length) = blocks[blocks.len() - 1];
            let previous = blocks[blocks.len() - 2];
            if previous.0 <= mean {
                break;
            }
            let total = previous.1 + weight;
            let merged = (
                (previous.0 * previous.1 + mean * weight) / total,
                total,
                previous.2 + length,
            );
            blocks.pop();
            if let Some(last) = blocks.last_mut() {
                *last = merged;
            }
        }
    }
    blocks
        .into_iter()
        .flat_map(|(mean, _, length)| std::iter::repeat_n(mean, length))
        .collect()
}
