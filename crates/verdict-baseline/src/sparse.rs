//! A minimal compressed-sparse-row matrix: what TF-IDF produces and logistic regression eats.

use rayon::prelude::*;

/// Row-major sparse matrix of `f64` (scipy's `csr_matrix` layout).
///
/// # Shapes
/// `n_rows x n_cols`; row `i` holds `indices[indptr[i]..indptr[i + 1]]` (column ids, strictly
/// increasing within a row) with values `data[..]` at the same positions.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: Vec<f64>,
}

/// One row of a [`CsrMatrix`]: parallel slices of column ids and values.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub indices: &'a [u32],
    pub data: &'a [f64],
}

impl<'a> Row<'a> {
    /// Dot product with a dense vector of length `n_cols`.
    #[inline]
    pub fn dot(&self, dense: &[f64]) -> f64 {
        self.indices
            .iter()
            .zip(self.data)
            .map(|(&j, &v)| v * dense[j as usize])
            .sum()
    }
}

impl CsrMatrix {
    /// An `n_rows x n_cols` matrix with no stored entries.
    pub fn zeros(n_rows: usize, n_cols: usize) -> Self {
        Self {
            n_rows,
            n_cols,
            indptr: vec![0; n_rows + 1],
            indices: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Builds from per-row `(column, value)` lists that are already sorted by column.
    pub fn from_sorted_rows(n_cols: usize, rows: Vec<Vec<(u32, f64)>>) -> Self {
        let nnz = rows.iter().map(Vec::len).sum();
        let mut matrix = Self {
            n_rows: rows.len(),
            n_cols,
            indptr: Vec::with_capacity(rows.len() + 1),
            indices: Vec::with_capacity(nnz),
            data: Vec::with_capacity(nnz),
        };
        matrix.indptr.push(0);
        for row in rows {
            for (column, value) in row {
                matrix.indices.push(column);
                matrix.data.push(value);
            }
            matrix.indptr.push(matrix.indices.len());
        }
        matrix
    }

    /// Stacks row blocks with the same column count (used to join parallel chunks).
    pub fn vstack(n_cols: usize, blocks: Vec<CsrMatrix>) -> Self {
        let n_rows = blocks.iter().map(|b| b.n_rows).sum();
        let nnz = blocks.iter().map(|b| b.indices.len()).sum();
        let mut out = Self {
            n_rows,
            n_cols,
            indptr: Vec::with_capacity(n_rows + 1),
            indices: Vec::with_capacity(nnz),
            data: Vec::with_capacity(nnz),
        };
        out.indptr.push(0);
        for block in blocks {
            let offset = out.indices.len();
            out.indptr
                .extend(block.indptr[1..].iter().map(|&p| p + offset));
            out.indices.extend_from_slice(&block.indices);
            out.data.extend_from_slice(&block.data);
        }
        out
    }

    /// A dense row-major matrix stored as CSR (every entry kept, zeros included), so that
    /// dense features such as sentence embeddings go through the same solver.
    ///
    /// # Shapes
    /// `values`: `n_rows * n_cols`, row-major.
    pub fn from_dense(n_rows: usize, n_cols: usize, values: Vec<f64>) -> Self {
        assert_eq!(values.len(), n_rows * n_cols, "dense buffer size");
        let columns: Vec<u32> = (0..n_cols as u32).collect();
        let mut indices = Vec::with_capacity(values.len());
        for _ in 0..n_rows {
            indices.extend_from_slice(&columns);
        }
        Self {
            n_rows,
            n_cols,
            indptr: (0..=n_rows).map(|i| i * n_cols).collect(),
            indices,
            data: values,
        }
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> Row<'_> {
        let range = self.indptr[i]..self.indptr[i + 1];
        Row {
            indices: &self.indices[range.clone()],
            data: &self.data[range],
        }
    }

    /// The transpose, also in CSR form (i.e. this matrix in CSC form).
    pub fn transpose(&self) -> CsrMatrix {
        let mut counts = vec![0usize; self.n_cols + 1];
        for &j in &self.indices {
            counts[j as usize + 1] += 1;
        }
        for j in 0..self.n_cols {
            counts[j + 1] += counts[j];
        }
        let indptr = counts.clone();
        let mut next = counts;
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f64; self.nnz()];
        for i in 0..self.n_rows {
            let row = self.row(i);
            for (&j, &v) in row.indices.iter().zip(row.data) {
                let slot = next[j as usize];
                indices[slot] = i as u32;
                data[slot] = v;
                next[j as usize] += 1;
            }
        }
        CsrMatrix {
            n_rows: self.n_cols,
            n_cols: self.n_rows,
            indptr,
            indices,
            data,
        }
    }

    /// Dense copy of row `i` (tests and debugging).
    pub fn dense_row(&self, i: usize) -> Vec<f64> {
        let mut out = vec![0.0; self.n_cols];
        let row = self.row(i);
        for (&j, &v) in row.indices.iter().zip(row.data) {
            out[j as usize] = v;
        }
        out
    }

    /// Selects rows (in the given order).
    pub fn select_rows(&self, rows: &[usize]) -> CsrMatrix {
        let picked = rows
            .par_iter()
            .map(|&i| {
                let row = self.row(i);
                row.indices
                    .iter()
                    .copied()
                    .zip(row.data.iter().copied())
                    .collect()
            })
            .collect();
        CsrMatrix::from_sorted_rows(self.n_cols, picked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_round_trips() {
        let m = CsrMatrix::from_sorted_rows(
            3,
            vec![vec![(0, 1.0), (2, 2.0)], vec![], vec![(1, 3.0), (2, 4.0)]],
        );
        let t = m.transpose();
        assert_eq!(t.dense_row(2), vec![2.0, 0.0, 4.0]);
        assert_eq!(t.transpose(), m);
    }

    #[test]
    fn vstack_keeps_rows() {
        let a = CsrMatrix::from_sorted_rows(2, vec![vec![(1, 1.0)]]);
        let b = CsrMatrix::from_sorted_rows(2, vec![vec![], vec![(0, 2.0)]]);
        let m = CsrMatrix::vstack(2, vec![a, b]);
        assert_eq!(m.n_rows, 3);
        assert_eq!(m.dense_row(0), vec![0.0, 1.0]);
        assert_eq!(m.dense_row(2), vec![2.0, 0.0]);
    }
}
