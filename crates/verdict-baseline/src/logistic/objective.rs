//! The penalised logistic objective as scikit-learn's `LinearModelLoss` writes it:
//! `sum_i s_i loss_i / S + ||W||^2 / (2 C S)` with `S = sum_i s_i`; the intercept is not
//! penalised. Same minimiser as `C * sum_i s_i loss_i + ||W||^2 / 2`.

use std::ops::Range;

use rayon::prelude::*;

use crate::sparse::CsrMatrix;

/// Fewest rows per parallel work item.
const MIN_ROW_CHUNK: usize = 256;

/// Data and settings of one fit.
///
/// # Shapes
/// - `x`: `n x d`.
/// - `targets`: `n` class indices (`0..n_classes`; binary uses 0/1).
/// - `weights`: `n` sample weights (class weights already folded in).
/// - parameters: `d * k` coefficients, feature-major (`w[j * k + c]`), then `k` intercepts
///   when `fit_intercept`; `k = 1` for binary, `n_classes` for multinomial.
pub struct Objective<'a> {
    pub x: &'a CsrMatrix,
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

    /// Value at `params`; writes the gradient into `gradient`.
    ///
    /// One pass over the rows: each work item accumulates its rows' loss and gradient into
    /// its own buffer (the coefficient-sized buffer stays in cache, unlike a second pass over
    /// the transposed matrix that would read the residuals at random), then buffers are summed.
    pub fn value_and_gradient(&self, params: &[f64], gradient: &mut [f64]) -> f64 {
        let k = self.outputs;
        let d = self.x.n_cols;
        let n = self.x.n_rows;
        let coefficients = &params[..d * k];
        let intercepts = self.fit_intercept.then(|| &params[d * k..]);
        let threads = rayon::current_num_threads().max(1);
        let chunk_rows = (n / (threads * 4)).clamp(MIN_ROW_CHUNK, n.max(MIN_ROW_CHUNK));
        let n_chunks = n.div_ceil(chunk_rows);

        let (loss, summed) = (0..n_chunks)
            .into_par_iter()
            .map(|chunk| {
                let rows = chunk * chunk_rows..((chunk + 1) * chunk_rows).min(n);
                match k {
                    3 => self.multinomial_rows::<3>(coefficients, intercepts, rows),
                    4 => self.multinomial_rows::<4>(coefficients, intercepts, rows),
                    5 => self.multinomial_rows::<5>(coefficients, intercepts, rows),
                    6 => self.multinomial_rows::<6>(coefficients, intercepts, rows),
                    7 => self.multinomial_rows::<7>(coefficients, intercepts, rows),
                    8 => self.multinomial_rows::<8>(coefficients, intercepts, rows),
                    _ => self.rows(coefficients, intercepts, rows),
                }
            })
            .reduce(
                || (0.0, vec![0.0; d * k + k]),
                |(la, mut ga), (lb, gb)| {
                    ga.iter_mut().zip(&gb).for_each(|(a, b)| *a += b);
                    (la + lb, ga)
                },
            );
        let (coefficient_gradient, intercept_gradient) = gradient.split_at_mut(d * k);
        for ((g, s), w) in coefficient_gradient
            .iter_mut()
            .zip(&summed)
            .zip(coefficients)
        {
            *g = s + self.l2 * w;
        }
        if self.fit_intercept {
            intercept_gradient.copy_from_slice(&summed[d * k..]);
        }
        let penalty: f64 = coefficients.iter().map(|w| w * w).sum::<f64>() * 0.5 * self.l2;
        loss + penalty
    }

    /// Loss and gradient sums over `rows`, any number of outputs.
    fn rows(
        &self,
        coefficients: &[f64],
        intercepts: Option<&[f64]>,
        rows: Range<usize>,
    ) -> (f64, Vec<f64>) {
        let k = self.outputs;
        let d = self.x.n_cols;
        let mut g = vec![0.0; d * k + k];
        let mut total = 0.0;
        let mut z = vec![0.0; k];
        let mut r = vec![0.0; k];
        for i in rows {
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
            if scale == 0.0 {
                continue;
            }
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
                for (&j, &v) in row.indices.iter().zip(row.data) {
                    g[j as usize] += v * r[0];
                }
            } else {
                let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                let sum: f64 = z.iter().map(|&v| (v - max).exp()).sum();
                let log_sum = max + sum.ln();
                total += scale * (log_sum - z[target]);
                for (c, rc) in r.iter_mut().enumerate() {
                    let p = (z[c] - log_sum).exp();
                    *rc = scale * (p - if c == target { 1.0 } else { 0.0 });
                }
                for (&j, &v) in row.indices.iter().zip(row.data) {
                    let gj = &mut g[j as usize * k..(j as usize + 1) * k];
                    gj.iter_mut().zip(&r).for_each(|(gc, rc)| *gc += v * rc);
                }
            }
            g[d * k..].iter_mut().zip(&r).for_each(|(gc, rc)| *gc += rc);
        }
        (total, g)
    }

    /// [`Self::rows`] for a multinomial model with `K` classes known at compile time, so the
    /// per-entry class loops are unrolled (the hot loop of multiclass fits).
    fn multinomial_rows<const K: usize>(
        &self,
        coefficients: &[f64],
        intercepts: Option<&[f64]>,
        rows: Range<usize>,
    ) -> (f64, Vec<f64>) {
        let d = self.x.n_cols;
        let mut g = vec![0.0; d * K + K];
        let mut total = 0.0;
        let zero = [0.0; K];
        let b: [f64; K] = intercepts.map_or(zero, |b| b.try_into().unwrap_or(zero));
        for i in rows {
            let mut z = b;
            let row = self.x.row(i);
            for (&j, &v) in row.indices.iter().zip(row.data) {
                let start = j as usize * K;
                let w: &[f64; K] = coefficients[start..start + K].try_into().unwrap_or(&zero);
                for c in 0..K {
                    z[c] += v * w[c];
                }
            }
            let scale = self.weights[i] / self.weight_sum;
            if scale == 0.0 {
                continue;
            }
            let target = self.targets[i] as usize;
            let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let sum: f64 = z.iter().map(|&v| (v - max).exp()).sum();
            let log_sum = max + sum.ln();
            total += scale * (log_sum - z[target]);
            let mut r = [0.0; K];
            for c in 0..K {
                r[c] = scale * ((z[c] - log_sum).exp() - if c == target { 1.0 } else { 0.0 });
            }
            for (&j, &v) in row.indices.iter().zip(row.data) {
                let start = j as usize * K;
                if let Ok(gj) = <&mut [f64; K]>::try_from(&mut g[start..start + K]) {
                    for c in 0..K {
                        gj[c] += v * r[c];
                    }
                }
            }
            for c in 0..K {
                g[d * K + c] += r[c];
            }
        }
        (total, g)
    }
}
