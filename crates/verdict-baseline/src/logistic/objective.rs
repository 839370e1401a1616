//! The penalised logistic objective as scikit-learn's `LinearModelLoss` writes it:
//! `sum_i s_i loss_i / S + ||W||^2 / (2 C S)` with `S = sum_i s_i`; the intercept is not
//! penalised. Same minimiser as `C * sum_i s_i loss_i + ||W||^2 / 2`.
//!
//! One evaluation is one pass over the rows of the CSR matrix: per row, the class scores,
//! the softmax (or sigmoid) and the row's gradient contribution, fused. Rows are split into a
//! fixed set of blocks, each with its own gradient buffer allocated once per fit; the
//! buffers are summed at the end. Feature values are kept as `f32` (half the memory traffic
//! of the hot loop; TF-IDF values need no more digits) while every sum is `f64`.

use std::ops::Range;

use rayon::prelude::*;

use crate::sparse::CsrMatrix;

/// Row blocks per thread: a few, so that a busy core does not hold up the others.
const BLOCKS_PER_THREAD: usize = 4;
/// Fewest rows per block.
const MIN_BLOCK_ROWS: usize = 256;

/// Data and settings of one fit, plus the buffers its evaluations reuse.
///
/// # Shapes
/// - `x`: `n x d`.
/// - `targets`: `n` class indices (`0..n_classes`; binary uses 0/1).
/// - `weights`: `n` sample weights (class weights already folded in).
/// - parameters: `d * k` coefficients, feature-major (`w[j * k + c]`), then `k` intercepts
///   when `fit_intercept`; `k = 1` for binary, `n_classes` for multinomial.
pub struct Objective<'a> {
    x: &'a CsrMatrix,
    values: Vec<f32>,
    targets: &'a [u32],
    /// `s_i / S` per row.
    scales: Vec<f64>,
    outputs: usize,
    fit_intercept: bool,
    l2: f64,
    blocks: Vec<Range<usize>>,
    /// One gradient-sized buffer per block (`d * k + k` each).
    scratch: Vec<f64>,
}

impl<'a> Objective<'a> {
    /// Prepares an objective; `l2` is `1 / (C S)`.
    pub fn new(
        x: &'a CsrMatrix,
        targets: &'a [u32],
        weights: &[f64],
        outputs: usize,
        fit_intercept: bool,
        l2: f64,
    ) -> Self {
        let n = x.n_rows;
        let weight_sum: f64 = weights.iter().sum();
        let threads = rayon::current_num_threads().max(1);
        let block_rows = n.div_ceil(threads * BLOCKS_PER_THREAD).max(MIN_BLOCK_ROWS);
        let blocks: Vec<Range<usize>> = (0..n.div_ceil(block_rows))
            .map(|b| b * block_rows..((b + 1) * block_rows).min(n))
            .collect();
        let width = x.n_cols * outputs + outputs;
        Self {
            x,
            values: x.data.par_iter().map(|&v| v as f32).collect(),
            targets,
            scales: weights.iter().map(|w| w / weight_sum).collect(),
            outputs,
            fit_intercept,
            l2,
            scratch: vec![0.0; blocks.len() * width],
            blocks,
        }
    }

    /// Inverse of the Hessian's diagonal at zero coefficients (each softmax output at
    /// `1 / k`), for [`super::lbfgs::minimize_preconditioned`]: coefficient `(j, c)` gets
    /// `1 / (v sum_i s_i x_ij^2 / S + l2)` with `v = p (1 - p)`, the intercepts `1 / v`.
    pub fn inverse_hessian_diagonal(&self) -> Vec<f64> {
        let k = self.outputs;
        let d = self.x.n_cols;
        let p = if k == 1 { 0.5 } else { 1.0 / k as f64 };
        let v = p * (1.0 - p);
        let mut column_squares = vec![0.0; d];
        for (i, &scale) in self.scales.iter().enumerate() {
            let range = self.x.indptr[i]..self.x.indptr[i + 1];
            for (&j, &value) in self.x.indices[range.clone()]
                .iter()
                .zip(&self.values[range])
            {
                column_squares[j as usize] += scale * f64::from(value) * f64::from(value);
            }
        }
        let mut out = Vec::with_capacity(self.len());
        for squares in column_squares {
            let h = v * squares + self.l2;
            out.extend(std::iter::repeat_n(1.0 / h, k));
        }
        if self.fit_intercept {
            out.extend(std::iter::repeat_n(1.0 / v, k));
        }
        out
    }
}

impl Objective<'_> {
    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.x.n_cols * self.outputs + if self.fit_intercept { self.outputs } else { 0 }
    }

    /// Value at `params`; writes the gradient into `gradient`.
    ///
    /// Each block accumulates its rows' loss and gradient into its own buffer (the
    /// coefficient-sized buffer stays in cache, unlike a second pass over the transposed
    /// matrix that would read the residuals at random); the buffers are then summed.
    pub fn value_and_gradient(&mut self, params: &[f64], gradient: &mut [f64]) -> f64 {
        let k = self.outputs;
        let d = self.x.n_cols;
        let width = d * k + k;
        let coefficients = &params[..d * k];
        let intercepts = self.fit_intercept.then(|| &params[d * k..]);
        let mut scratch = std::mem::take(&mut self.scratch);
        let this = &*self;
        let loss: f64 = scratch
            .par_chunks_mut(width)
            .zip(&this.blocks)
            .map(|(buffer, rows)| {
                buffer.fill(0.0);
                let rows = rows.clone();
                match k {
                    3 => this.multinomial_rows::<3>(coefficients, intercepts, rows, buffer),
                    4 => this.multinomial_rows::<4>(coefficients, intercepts, rows, buffer),
                    5 => this.multinomial_rows::<5>(coefficients, intercepts, rows, buffer),
                    6 => this.multinomial_rows::<6>(coefficients, intercepts, rows, buffer),
                    7 => this.multinomial_rows::<7>(coefficients, intercepts, rows, buffer),
                    8 => this.multinomial_rows::<8>(coefficients, intercepts, rows, buffer),
                    _ => this.rows(coefficients, intercepts, rows, buffer),
                }
            })
            .sum();
        // Sum the block buffers, a slice of parameters per task.
        let blocks = this.blocks.len();
        let summed = &scratch;
        let l2 = this.l2;
        let fit_intercept = this.fit_intercept;
        gradient
            .par_chunks_mut(4096)
            .enumerate()
            .for_each(|(part, out)| {
                let start = part * 4096;
                for (offset, g) in out.iter_mut().enumerate() {
                    let p = start + offset;
                    let mut total = 0.0;
                    for b in 0..blocks {
                        total += summed[b * width + p];
                    }
                    *g = if p < d * k {
                        total + l2 * coefficients[p]
                    } else if fit_intercept {
                        total
                    } else {
                        0.0
                    };
                }
            });
        self.scratch = scratch;
        let penalty: f64 = coefficients.iter().map(|w| w * w).sum::<f64>() * 0.5 * self.l2;
        loss + penalty
    }

    /// Loss and gradient sums over `rows` into `g` (`d * k + k`), any number of outputs.
    fn rows(
        &self,
        coefficients: &[f64],
        intercepts: Option<&[f64]>,
        rows: Range<usize>,
        g: &mut [f64],
    ) -> f64 {
        let k = self.outputs;
        let d = self.x.n_cols;
        let mut total = 0.0;
        let mut z = vec![0.0; k];
        let mut r = vec![0.0; k];
        for i in rows {
            let scale = self.scales[i];
            if scale == 0.0 {
                continue;
            }
            match intercepts {
                Some(b) => z.copy_from_slice(b),
                None => z.fill(0.0),
            }
            let range = self.x.indptr[i]..self.x.indptr[i + 1];
            let indices = &self.x.indices[range.clone()];
            let values = &self.values[range];
            for (&j, &v) in indices.iter().zip(values) {
                let w = &coefficients[j as usize * k..(j as usize + 1) * k];
                let v = f64::from(v);
                z.iter_mut().zip(w).for_each(|(zc, wc)| *zc += v * wc);
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
            for (&j, &v) in indices.iter().zip(values) {
                let gj = &mut g[j as usize * k..(j as usize + 1) * k];
                let v = f64::from(v);
                gj.iter_mut().zip(&r).for_each(|(gc, rc)| *gc += v * rc);
            }
            g[d * k..].iter_mut().zip(&r).for_each(|(gc, rc)| *gc += rc);
        }
        total
    }

    /// [`Self::rows`] for a multinomial model with `K` classes known at compile time, so the
    /// per-entry class loops are unrolled (the hot loop of multiclass fits).
    fn multinomial_rows<const K: usize>(
        &self,
        coefficients: &[f64],
        intercepts: Option<&[f64]>,
        rows: Range<usize>,
        g: &mut [f64],
    ) -> f64 {
        let d = self.x.n_cols;
        let mut total = 0.0;
        let zero = [0.0; K];
        let b: [f64; K] = intercepts.map_or(zero, |b| b.try_into().unwrap_or(zero));
        let (g, g_intercept) = g.split_at_mut(d * K);
        for i in rows {
            let scale = self.scales[i];
            if scale == 0.0 {
                continue;
            }
            let range = self.x.indptr[i]..self.x.indptr[i + 1];
            let indices = &self.x.indices[range.clone()];
            let values = &self.values[range];
            let mut z = b;
            for (&j, &v) in indices.iter().zip(values) {
                let start = j as usize * K;
                let w: &[f64; K] = coefficients[start..start + K].try_into().unwrap_or(&zero);
                let v = f64::from(v);
                for c in 0..K {
                    z[c] += v * w[c];
                }
            }
            let target = self.targets[i] as usize;
            let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let sum: f64 = z.iter().map(|&v| (v - max).exp()).sum();
            let log_sum = max + sum.ln();
            total += scale * (log_sum - z[target]);
            let mut r = [0.0; K];
            for c in 0..K {
                r[c] = scale * (z[c] - log_sum).exp();
            }
            r[target] -= scale;
            for (&j, &v) in indices.iter().zip(values) {
                let start = j as usize * K;
                if let Ok(gj) = <&mut [f64; K]>::try_from(&mut g[start..start + K]) {
                    let v = f64::from(v);
                    for c in 0..K {
                        gj[c] += v * r[c];
                    }
                }
            }
            for c in 0..K {
                g_intercept[c] += r[c];
            }
        }
        total
    }
}
