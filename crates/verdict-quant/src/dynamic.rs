//! bitsandbytes' dynamic 8-bit data type and block-wise 8-bit quantisation.
//!
//! The dynamic map (Dettmers, "8-Bit Approximations for Parallelism in Deep Learning") spends
//! its 256 codes on a dynamic exponent (10^-6 .. 10^0) and a shrinking fraction, so small
//! magnitudes keep relative precision. Values are normalised by their block's absolute maximum
//! and stored as the index of the nearest code. QLoRA uses it (block 256) to store the NF4
//! block scales ("double quantisation"); 8-bit optimisers use it for their moment states.
//!
//! The arithmetic follows bitsandbytes 0.50's CPU path (float32 throughout, nearest code with
//! ties to the lower one) so the codes match it bit for bit (tested against its numbers).

/// Block size of bitsandbytes' block-wise 8-bit quantisation.
pub const BLOCK: usize = 256;

/// `torch.linspace(start, end, steps, dtype=float32)` as torch's CPU kernel computes it.
fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            }
        })
        .collect()
}

/// bitsandbytes' dynamic map: 256 sorted codes in [-1, 1] (signed) or [0, 1] (unsigned).
///
/// The values are bitsandbytes' own float32 table (`dynamic_table.rs`), because its last bits
/// depend on the rounding of torch's vectorised `linspace`; [`derive_dynamic_map`] shows how
/// the table is built and is tested to agree with it to float32 rounding.
pub fn dynamic_map(signed: bool) -> [f32; 256] {
    let bits = if signed {
        &crate::dynamic_table::SIGNED_BITS
    } else {
        &crate::dynamic_table::UNSIGNED_BITS
    };
    bits.map(f32::from_bits)
}

/// `bitsandbytes.functional.create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)`
/// computed here: per exponent 10^-6 .. 10^0 the midpoints of a linear grid on [0.1, 1]
/// (2^i intervals signed, 2^(i+1) unsigned), their negatives when signed, then 0 and 1.
pub fn derive_dynamic_map(signed: bool) -> [f32; 256] {
    const MAX_EXPONENT_BITS: i32 = 7;
    let mut data: Vec<f32> = Vec::with_capacity(256);
    for i in 0..MAX_EXPONENT_BITS {
        let fraction_items = if signed {
            (1usize << i) + 1
        } else {
            (1usize << (i + 1)) + 1
        };
        let bounds = linspace_f32(0.1, 1.0, fraction_items);
        let scale = 10f64.powi(-(MAX_EXPONENT_BITS - 1) + i) as f32;
        for pair in bounds.windows(2) {
            let mean = (pair[0] + pair[1]) / 2.0;
            data.push(scale * mean);
            if signed {
                data.push(-scale * mean);
            }
        }
    }
    data.push(0.0);
    data.push(1.0);
    data.resize(256, 0.0);
    data.sort_by(f32::total_cmp);
    let mut map = [0f32; 256];
    map.copy_from_slice(&data);
    map
}

/// Index of the code nearest to `x` in the sorted `code`; ties go to the lower index.
pub fn nearest(code: &[f32], x: f32) -> u8 {
    // last index whose code is <= x (0 when x is below every code)
    let upper = code.partition_point(|c| *c <= x);
    let left = upper.saturating_sub(1);
    if left + 1 < code.len() && (x - code[left + 1]).abs() < (x - code[left]).abs() {
        (left + 1) as u8
    } else {
        left as u8
    }
}

/// Block-wise 8-bit codes and per-block absolute maxima of `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Blockwise {
    pub codes: Vec<u8>,
    pub absmax: Vec<f32>,
}

impl Blockwise {
    /// Quantises `values` in blocks of `block` (the last block may be shorter).
    pub fn quantize(values: &[f32], code: &[f32; 256], block: usize) -> Self {
        let mut codes = Vec::with_capacity(values.len());
        let mut absmax = Vec::with_capacity(values.len().div_ceil(block));
        for chunk in values.chunks(block) {
            let max = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
            absmax.push(max);
            // An all-zero block has no scale; its values are exactly code 0 of the map's zero.
            let zero = nearest(code, 0.0);
            codes.extend(chunk.iter().map(|v| {
                if max > 0.0 {
                    nearest(code, v / max)
                } else {
                    zero
                }
            }));
        }
        Self { codes, absmax }
    }

    /// The values back: `code[q] * absmax` of each element's block.
    pub fn dequantize(&self, code: &[f32; 256], block: usize) -> Vec<f32> {
        self.codes
            .chunks(block)
            .zip(&self.absmax)
            .flat_map(|(chunk, max)| chunk.iter().map(move |q| code[*q as usize] * max))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_maps_agree_with_the_table_to_rounding() {
        for signed in [true, false] {
            let (table, derived) = (dynamic_map(signed), derive_dynamic_map(signed));
            for (a, b) in table.iter().zip(&derived) {
                assert!((a - b).abs() <= 2.0 * f32::EPSILON * a.abs(), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn maps_are_sorted_and_span_the_range() {
        let signed = dynamic_map(true);
        assert_eq!(signed[255], 1.0);
        assert!(signed[0] < -0.99 && signed[0] > -1.0);
        assert!(signed.windows(2).all(|w| w[0] < w[1]));
        let unsigned = dynamic_map(false);
        assert_eq!(unsigned[0], 0.0);
        assert!(unsigned.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn nearest_breaks_ties_downwards() {
        let code = [-1.0, 0.0, 0.5, 1.0];
        assert_eq!(nearest(&code, 0.25), 1);
        assert_eq!(nearest(&code, 0.26), 2);
        assert_eq!(nearest(&code, -3.0), 0);
        assert_eq!(nearest(&code, 3.0), 3);
    }
}
