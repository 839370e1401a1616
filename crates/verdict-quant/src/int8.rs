//! Row-wise absmax int8: each output row of a weight keeps one float scale (its absolute
//! maximum) and 8-bit integers `round(w * 127 / absmax)`, as bitsandbytes'
//! `int8_vectorwise_quant` without outlier decomposition (threshold 0).

/// A row-wise int8 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Rows {
    pub values: Vec<i8>,
    /// Absolute maximum of each row.
    pub scales: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

impl Int8Rows {
    /// # Shapes
    /// `values`: `(rows, cols)` row-major.
    pub fn quantize(values: &[f32], rows: usize, cols: usize) -> Self {
        let mut out = Vec::with_capacity(values.len());
        let mut scales = Vec::with_capacity(rows);
        for row in values.chunks(cols.max(1)).take(rows) {
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            scales.push(max);
            let factor = if max > 0.0 { 127.0 / max } else { 0.0 };
            // torch.round rounds half to even
            out.extend(
                row.iter()
                    .map(|v| (v * factor).round_ties_even().clamp(-127.0, 127.0) as i8),
            );
        }
        Self {
            values: out,
            scales,
            rows,
            cols,
        }
    }

    pub fn dequantize(&self) -> Vec<f32> {
        self.values
            .chunks(self.cols.max(1))
            .zip(&self.scales)
            .flat_map(|(row, s)| row.iter().map(move |q| f32::from(*q) * (s / 127.0)))
            .collect()
    }

    pub fn storage_bytes(&self) -> usize {
        self.values.len() + 4 * self.scales.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_scale_independently_and_zero_rows_stay_zero() {
        let q = Int8Rows::quantize(&[1.0, -0.5, 0.0, 0.0, 100.0, 50.0], 3, 2);
        assert_eq!(q.values, vec![127, -64, 0, 0, 127, 64]);
        assert_eq!(q.dequantize()[3], 0.0);
        assert_eq!(q.dequantize()[4], 100.0);
    }
}
