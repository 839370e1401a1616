//! Row-wise CPU passes of the fused encoder, each one sweep over its rows in place:
//! embedding gather + layer norm, bias + layer norm (the residual is already accumulated by
//! the preceding matrix product), bias + exact GELU, softmax. They run on the calling thread
//! (the encoder parallelises over blocks of tokens; the embedding pass splits itself) and are
//! compiled for AVX2/FMA when the CPU has it (selected at run time through
//! `pulp`; the crate itself is built for baseline x86-64, i.e. SSE2). The arithmetic is the
//! same plain multiply-add sequence on every path (no fused multiply-add is introduced), so
//! results do not depend on which path runs.

use rayon::prelude::*;

use super::ops::{exp_f32, gelu_erf_f32};

/// Elements per parallel work item (whole rows).
const CHUNK: usize = 16 * 1024;
/// Independent partial sums per reduction, so that reductions vectorise.
const LANES: usize = 8;

/// A pass over one row, inlined into the SIMD-dispatched loop of [`for_rows`].
trait RowKernel: Sync {
    fn row(&self, index: usize, row: &mut [f32]);
}

/// The rows of one parallel work item, run through `pulp`'s dispatch: `with_simd` is
/// compiled once per instruction set and inlined (with the kernel) into a function built
/// with that set's target features, selected at run time.
struct Rows<'a, K> {
    kernel: &'a K,
    first: usize,
    chunk: &'a mut [f32],
    width: usize,
}

impl<K: RowKernel> pulp::WithSimd for Rows<'_, K> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (i, row) in self.chunk.chunks_exact_mut(self.width).enumerate() {
            self.kernel.row(self.first + i, row)
        }
    }
}

/// Applies `kernel` to every `width`-wide row of `data` (with the row's index), in
/// parallel over blocks of rows when `parallel`.
fn for_rows<K: RowKernel>(data: &mut [f32], width: usize, kernel: &K, parallel: bool) {
    let width = width.max(1);
    let arch = pulp::Arch::new();
    if !parallel {
        arch.dispatch(Rows {
            kernel,
            first: 0,
            chunk: data,
            width,
        });
        return;
    }
    let rows_per_chunk = (CHUNK / width).max(1);
    data.par_chunks_mut(rows_per_chunk * width)
        .enumerate()
        .for_each(|(index, chunk)| {
            arch.dispatch(Rows {
                kernel,
                first: index * rows_per_chunk,
                chunk,
                width,
            })
        });
}

#[inline(always)]
fn lane_sum(values: &[f32]) -> f32 {
    let mut sums = [0.0f32; LANES];
    let mut blocks = values.chunks_exact(LANES);
    for block in &mut blocks {
        for (s, &v) in sums.iter_mut().zip(block) {
            *s += v;
        }
    }
    sums.iter().sum::<f32>() + blocks.remainder().iter().sum::<f32>()
}

/// In place: `row = (row - mean) / sqrt(var + eps) * gamma + beta` (biased variance, two
/// passes, as torch's `LayerNorm`).
#[inline(always)]
fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = lane_sum(row) / n;
    let mut squares = [0.0f32; LANES];
    let mut blocks = row.chunks_exact(LANES);
    for block in &mut blocks {
        for (s, &v) in squares.iter_mut().zip(block) {
            let d = v - mean;
            *s += d * d;
        }
    }
    let tail: f32 = blocks
        .remainder()
        .iter()
        .map(|&v| (v - mean) * (v - mean))
        .sum();
    let variance = (squares.iter().sum::<f32>() + tail) / n;
    let scale = 1.0 / (variance + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * scale * g + b;
    }
}

/// Layer parameters of a `Linear -> (+ residual) -> LayerNorm` output block.
pub(super) struct NormParams<'a> {
    pub bias: &'a [f32],
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub eps: f32,
}

impl RowKernel for NormParams<'_> {
    #[inline(always)]
    fn row(&self, _index: usize, row: &mut [f32]) {
        for (v, b) in row.iter_mut().zip(self.bias) {
            *v += b;
        }
        layer_norm_row(row, self.gamma, self.beta, self.eps)
    }
}

/// In place on each row: `layer_norm(row + bias)`, on the calling thread.
///
/// # Shapes
/// `data`: `(rows, hidden)` row-major; parameters `(hidden,)`.
pub(super) fn bias_layer_norm(data: &mut [f32], p: &NormParams<'_>) {
    for_rows(data, p.gamma.len(), p, false);
}

struct BiasGelu<'a>(&'a [f32]);

impl RowKernel for BiasGelu<'_> {
    #[inline(always)]
    fn row(&self, _index: usize, row: &mut [f32]) {
        for (v, b) in row.iter_mut().zip(self.0) {
            *v = gelu_erf_f32(*v + b);
        }
    }
}

/// In place on each row: `gelu_erf(row + bias)`, on the calling thread.
///
/// # Shapes
/// `data`: `(rows, n)` row-major; `bias`: `(n,)`.
pub(super) fn bias_gelu(data: &mut [f32], bias: &[f32]) {
    for_rows(data, bias.len(), &BiasGelu(bias), false);
}

struct Fill<'a>(&'a [f32]);

impl RowKernel for Fill<'_> {
    #[inline(always)]
    fn row(&self, _index: usize, row: &mut [f32]) {
        row.copy_from_slice(self.0)
    }
}

/// Copies `bias` into every row (the starting value that a matrix product accumulates onto),
/// on the calling thread.
///
/// # Shapes
/// `data`: `(rows, n)` row-major; `bias`: `(n,)`.
pub(super) fn fill_rows(data: &mut [f32], bias: &[f32]) {
    for_rows(data, bias.len(), &Fill(bias), false);
}

/// Unnormalised softmax of each row: `exp(row - max(row))` in place, `1 / sum` per row out.
struct Softmax<'a> {
    data: &'a mut [f32],
    width: usize,
    inverse_sums: &'a mut [f32],
}

impl pulp::WithSimd for Softmax<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let rows = self.data.chunks_exact_mut(self.width);
        for (row, inverse) in rows.zip(self.inverse_sums.iter_mut()) {
            let mut maxima = [f32::NEG_INFINITY; LANES];
            let mut blocks = row.chunks_exact(LANES);
            for block in &mut blocks {
                for (m, &v) in maxima.iter_mut().zip(block) {
                    *m = if v > *m { v } else { *m };
                }
            }
            let max = blocks
                .remainder()
                .iter()
                .chain(&maxima)
                .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
            // Exponentials and their sum in one pass.
            let mut sums = [0.0f32; LANES];
            let mut blocks = row.chunks_exact_mut(LANES);
            for block in &mut blocks {
                for (s, v) in sums.iter_mut().zip(block) {
                    *v = exp_f32(*v - max);
                    *s += *v;
                }
            }
            let mut tail = 0.0f32;
            for v in blocks.into_remainder() {
                *v = exp_f32(*v - max);
                tail += *v;
            }
            *inverse = 1.0 / (sums.iter().sum::<f32>() + tail);
        }
    }
}

/// Softmax of each `width`-wide row without its final division, on the calling thread:
/// `data` becomes `exp(row - max(row))` and `inverse_sums[r]` the `1 / sum` that normalises
/// row `r`. The attention applies it to the `head_dim`-wide product `P V` instead of the
/// `width`-wide `P`, saving a pass.
///
/// # Shapes
/// `data`: `(rows, width)` row-major; `inverse_sums`: `(rows,)`.
pub(super) fn softmax_unnormalised(data: &mut [f32], width: usize, inverse_sums: &mut [f32]) {
    pulp::Arch::new().dispatch(Softmax {
        data,
        width: width.max(1),
        inverse_sums,
    });
}

/// Embedding tables and the layer norm that follows them.
pub(super) struct EmbeddingTables<'a> {
    pub words: &'a [f32],
    pub positions: &'a [f32],
    pub token_types: &'a [f32],
    pub norm: NormParams<'a>,
}

struct Embed<'a> {
    ids: &'a [u32],
    types: &'a [u32],
    positions: &'a [u32],
    tables: &'a EmbeddingTables<'a>,
}

impl RowKernel for Embed<'_> {
    #[inline(always)]
    fn row(&self, t: usize, row: &mut [f32]) {
        let hidden = row.len();
        let word = table_row(self.tables.words, self.ids[t], hidden);
        let position = table_row(self.tables.positions, self.positions[t], hidden);
        let token_type = table_row(self.tables.token_types, self.types[t], hidden);
        for (((v, w), p), y) in row.iter_mut().zip(word).zip(position).zip(token_type) {
            *v = (w + p) + y;
        }
        let norm = &self.tables.norm;
        layer_norm_row(row, norm.gamma, norm.beta, norm.eps);
    }
}

/// `layer_norm(words[id] + positions[position] + token_types[type])` for every token, where
/// `positions` restart at 0 for each sequence. Ids are checked by the caller.
///
/// # Shapes
/// `out`: `(tokens, hidden)`; `ids`, `types`, `positions`: `(tokens,)`.
pub(super) fn embed(
    out: &mut [f32],
    ids: &[u32],
    types: &[u32],
    positions: &[u32],
    tables: &EmbeddingTables<'_>,
) {
    let kernel = Embed {
        ids,
        types,
        positions,
        tables,
    };
    for_rows(out, tables.norm.gamma.len(), &kernel, true);
}

#[inline(always)]
fn table_row(table: &[f32], index: u32, width: usize) -> &[f32] {
    let start = index as usize * width;
    &table[start..start + width]
}
