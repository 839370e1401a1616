//! The penalised logistic objective as scikit-learn's `LinearModelLoss` writes it:
//! `sum_i s_i loss_i / S + ||W||^2 / (2 C S)` with `S = sum_i s_i`; the intercept is not
//! penalised. Same minimiser as `C * sum_i s_i loss_i + ||W||^2 / 2`.

use rayon::prelude::*;

use crate::sparse::CsrMatrix;

/// Rows per parallel work item.
const ROW_CHUNK: usize = 1024;

/// Data and settings of one fit.
///
/// # Shapes
/// - `x`: `n x d`, `x_t`: its transpose `d x n`.
/// - `targets`: `n` class indices (`0..n_classes`; binary uses 0/1).
/// - `weights`: `n` sample weights (class weights already folded in).
/// - parameters: `d * k` coefficients, feature-major (`w[j * k + c]`), then `k` intercepts
///   when `fit_intercept`; `k = 1` for binary, `n_classes` for multinomial.
pub struct Objective<'a> {
    pub x: &'a CsrMatrix,
    pub x_t: &'a CsrMatrix,
    pub targets: &'a [u32],
    pub weights: &'a [f64],
    pub weight_sum: f64,
    pub outputs: usize,
    pub fit_intercept: bool,
    pub l2: f64,
}

impl Objective<'_> {
    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.x.n_cols * self.outputs + if self.fit_intercept { self.outputs } else { 0 }
    }

    /// Value at `params`; writes the gradient into `gradient`. `residual` is scratch
    /// (`n * k`), reused between calls.
    pub fn value_and_gradient(
        &self,
        params: &[f64],
        gradient: &mut [f64],
        residual: &mut [f64],
    ) -> f64 {
        let k = self.outputs;
        let d = self.x.n_cols;
        let coefficients = &params[..d * k];
        let intercepts = self.fit_intercept.then(|| &params[d * k..]);

        // Pass over rows: loss and residual r_i = s_i (p_i - y_i) / S.
        let loss: f64 = residual
            .par_chunks_mut(ROW_CHUNK * k)
            .enumerate()
            .map(|(chunk, out)| {
                let start = chunk * ROW_CHUNK;
                let mut total = 0.0;
                let mut z = vec![0.0; k];
                for (offset, r) in out.chunks_mut(k).enumerate() {
                    let i = start + offset;
                    match intercepts {
                        Some(b) => z.copy_from_slice(b),
                        None => z.fill(0.0),
                    }
                    let row = self.x.row(i);
                    if k == 1 {
                        z[0] += row.dot(coefficients);
                    } else {
                        for (&j, &v) in row.indices.iter().zip(row.data) {
                            let w = &coefficients[j as usize * k..(j as usize + 1) * k];
                            z.iter_mut().zip(w).for_each(|(zc, wc)| *zc += v * wc);
                        }
                    }
                    let scale = self.weights[i] / self.weight_sum;
                    let target = self.targets[i] as usize;
                    if k == 1 {
                        let y = target as f64;
                        let zi = z[0];
                        // log(1 + e^z) - y z, and sigmoid(z), without overflow.
                        let (softplus, p) = if zi > 0.0 {
                            let e = (-zi).exp();
                            (zi + e.ln_1p(), 1.0 / (1.0 + e))
                        } else {
                            let e = zi.exp();
                            (e.ln_1p(), e / (1.0 + e))
                        };
                        total += scale * (softplus - y * zi);
                        r[0] = scale * (p - y);
                    } else {
                        let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                        let sum: f64 = z.iter().map(|&v| (v - max).exp()).sum();
                        let log_sum = max + sum.ln();
                        total += scale * (log_sum - z[target]);
                        for (c, rc) in r.iter_mut().enumerate() {
                            let p = (z[c] - log_sum).exp();
                            *rc = scale * (p - if c == target { 1.0 } else { 0.0 });
                        }
                    }
                }
                total
            })
            .sum();

        // Pass over features: gradient_j = sum_i x_ij r_i + l2 w_j.
        let residual: &[f64] = residual;
        let (coefficient_gradient, intercept_gradient) = gradient.split_at_mut(d * k);
        coefficient_gradient
            .par_chunks_mut(k * 64)
            .enumerate()
            .for_each(|(chunk, out)| {
                for (offset, g) in out.chunks_mut(k).enumerate() {
                    let j = chunk * 64 + offset;
                    let column = self.x_t.row(j);
                    g.fill(0.0);
                    for (&i, &v) in column.indices.iter().zip(column.data) {
                        let r = &residual[i as usize * k..(i as usize + 1) * k];
                        g.iter_mut().zip(r).for_each(|(gc, rc)| *gc += v * rc);
                    }
                    let w = &coefficients[j * k..(j + 1) * k];
                    g.iter_mut().zip(w).for_each(|(gc, wc)| *gc += self.l2 * wc);
                }
            });
        if self.fit_intercept {
            intercept_gradient.fill(0.0);
            for r in residual.chunks(k) {
                intercept_gradient
                    .iter_mut()
                    .zip(r)
                    .for_each(|(g, rc)| *g += rc);
            }
        }
        let penalty: f64 = coefficients.par_iter().map(|w| w * w).sum::<f64>() * 0.5 * self.l2;
        loss + penalty
    }
}
