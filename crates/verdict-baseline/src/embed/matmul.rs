//! Single-precision matrix products on strided views of slices, written into a caller's
//! buffer, through the `gemm` crate (the kernels candle uses, AVX2/FMA picked at run time).
//!
//! Calling `gemm` directly rather than through candle tensors lets the encoder (a) write into
//! buffers allocated once per call instead of a fresh zeroed allocation per product,
//! (b) accumulate into the destination, which folds each residual connection into its
//! projection, (c) address one attention head as a strided view of the fused Q/K/V matrix
//! without copying it out, and (d) choose the threading per product: all threads for the
//! large projections, one for the per-head attention products, which run in parallel over
//! texts instead.
//!
//! `gemm` takes raw pointers; this module checks every view against its slice's length so
//! that the one `unsafe` call stays in bounds, and is the only place in the crate with one.

use gemm::Parallelism;

/// A read-only `rows x cols` matrix in `data`: element `(i, j)` is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix, `cols` elements per row.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols)
    }

    /// `rows x cols` starting at `data[0]`, rows `row_stride` apart, columns adjacent.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose, without moving data.
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `dst = lhs x rhs`, or `dst += lhs x rhs` with `accumulate`. `dst` is `lhs.rows x rhs.cols`,
/// row-major with rows `dst_row_stride >= rhs.cols` apart (so no two elements share memory,
/// which parallel writes need). `threads > 1` splits the product over rayon's pool.
///
/// # Panics
/// If the shapes disagree or a view reaches outside its slice: callers build the views from
/// their own buffers, so either is a bug in the caller.
///
/// # Shapes
/// `lhs`: `(m, k)`, `rhs`: `(k, n)`, `dst`: `(m, n)` with row stride `dst_row_stride`.
pub(super) fn matmul(
    dst: &mut [f32],
    dst_row_stride: usize,
    accumulate: bool,
    lhs: View<'_>,
    rhs: View<'_>,
    threads: usize,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "matmul: inner dimensions differ");
    assert!(dst_row_stride >= n, "matmul: destination rows overlap");
    let out = View::strided(dst, m, n, dst_row_stride);
    assert!(
        lhs.in_bounds() && rhs.in_bounds() && out.in_bounds(),
        "matmul: view outside its buffer"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_row_stride).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let stride = |s: usize| s as isize;
    // SAFETY: every element `(i, j)` that gemm reads from `lhs`/`rhs` or writes to `dst` is at
    // `i * row_stride + j * col_stride` within the bounds checked above; `dst` is borrowed
    // mutably, so it aliases neither input, and its elements are distinct (column stride 1,
    // row stride >= n), so gemm's threads write disjoint memory. With `read_dst == false`
    // gemm ignores the destination's old values (alpha is unused).
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride(dst_row_stride),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.data.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(lhs: View<'_>, rhs: View<'_>) -> Vec<f32> {
        let mut out = vec![0f32; lhs.rows * rhs.cols];
        for i in 0..lhs.rows {
            for j in 0..rhs.cols {
                out[i * rhs.cols + j] = (0..lhs.cols)
                    .map(|p| {
                        f64::from(lhs.data[i * lhs.row_stride + p * lhs.col_stride])
                            * f64::from(rhs.data[p * rhs.row_stride + j * rhs.col_stride])
                    })
                    .sum::<f64>() as f32;
            }
        }
        out
    }

    #[test]
    fn strided_views_and_accumulation_match_a_naive_product() {
        let data: Vec<f32> = (0..40 * 30)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        // A column block of a wider matrix times the transpose of another block.
        let lhs = View::strided(&data[3..], 17, 8, 30);
        let rhs = View::strided(&data[300 + 10..], 13, 8, 30).t();
        let expected = naive(lhs, rhs);
        for threads in [1, 2] {
            let mut dst = vec![5f32; 17 * 20];
            matmul(&mut dst, 20, false, lhs, rhs, threads);
            let mut accumulated = vec![1f32; 17 * 20];
            matmul(&mut accumulated, 20, true, lhs, rhs, threads);
            for i in 0..17 {
                for j in 0..13 {
                    let want = expected[i * 13 + j];
                    assert!((dst[i * 20 + j] - want).abs() < 1e-5);
                    assert!((accumulated[i * 20 + j] - (want + 1.0)).abs() < 1e-5);
                }
                // Columns past n are left alone.
                assert!(dst[i * 20 + 13..i * 20 + 20].iter().all(|&v| v == 5.0));
            }
        }
    }

    #[test]
    #[should_panic(expected = "outside its buffer")]
    fn views_past_the_end_are_refused() {
        let data = vec![0f32; 10];
        let mut dst = vec![0f32; 4];
        matmul(
            &mut dst,
            2,
            false,
            View::rows(&data, 2, 6),
            View::rows(&data, 6, 2),
            1,
        );
    }
}
