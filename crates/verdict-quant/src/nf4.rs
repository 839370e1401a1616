//! NF4 ("4-bit NormalFloat", QLoRA, Dettmers et al. 2023) with double-quantised scales.
//!
//! Weights are cut into blocks of 64 (flattened row-major), each normalised by its absolute
//! maximum and stored as the nearest of 16 codes placed at quantiles of a normal
//! distribution, two codes per byte (first in the high nibble). The 32-bit block maxima are
//! themselves quantised ("double quantisation"): their mean is subtracted and the rest stored
//! with the dynamic 8-bit map in blocks of 256, bringing the scale overhead from 0.5 to about
//! 0.127 bits per weight.
//!
//! The layout and arithmetic are bitsandbytes' (`quantize_4bit(quant_type="nf4",
//! compress_statistics=True)`), checked against its numbers, so a state made here is what
//! bitsandbytes would make of the same weights.

use crate::dynamic::{self, Blockwise};
use crate::{Error, Result};

/// Weights per NF4 block.
pub const BLOCK: usize = 64;

/// The NF4 code values (QLoRA, Appendix E; bitsandbytes' table).
pub const CODE: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// An NF4-quantised tensor: packed codes and double-quantised block scales.
#[derive(Debug, Clone, PartialEq)]
pub struct Nf4 {
    /// Two 4-bit codes per byte, `ceil(len / 2)` bytes.
    pub packed: Vec<u8>,
    /// Block maxima minus `offset`, as dynamic-map codes in blocks of 256.
    pub scales: Blockwise,
    /// Mean of the block maxima.
    pub offset: f32,
    /// Number of weights.
    pub len: usize,
}

impl Nf4 {
    pub fn quantize(values: &[f32]) -> Self {
        let midpoints: Vec<f32> = CODE.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
        let len = values.len();
        let full = len - len % BLOCK;
        let mut absmax = Vec::with_capacity(len.div_ceil(BLOCK));
        let mut codes: Vec<u8> = Vec::with_capacity(len + 1);
        for (start, chunk) in (0..).step_by(BLOCK).zip(values.chunks(BLOCK)) {
            let max = chunk.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-38);
            absmax.push(max);
            // bitsandbytes multiplies full blocks by the reciprocal and divides the remainder.
            let inverse = 1.0 / max;
            for v in chunk {
                let scaled = if start < full { v * inverse } else { v / max };
                let scaled = scaled.clamp(-1.0, 1.0);
                // torch.bucketize(right=False): number of midpoints strictly below the value
                codes.push(midpoints.partition_point(|m| *m < scaled) as u8);
            }
        }
        if codes.len() % 2 == 1 {
            codes.push(0);
        }
        let packed = codes.chunks(2).map(|p| (p[0] << 4) | p[1]).collect();
        let offset = mean(&absmax);
        let centred: Vec<f32> = absmax.iter().map(|a| a - offset).collect();
        let scales = Blockwise::quantize(&centred, &dynamic::dynamic_map(true), dynamic::BLOCK);
        Self {
            packed,
            scales,
            offset,
            len,
        }
    }

    /// Checks that the parts fit together (for states read from elsewhere).
    pub fn validate(&self) -> Result<()> {
        let blocks = self.len.div_ceil(BLOCK);
        if self.packed.len() != self.len.div_ceil(2)
            || self.scales.codes.len() != blocks
            || self.scales.absmax.len() != blocks.div_ceil(dynamic::BLOCK)
        {
            return Err(Error::Invalid(format!(
                "NF4 state of {} weights has {} packed bytes, {} scale codes, {} second-level scales",
                self.len,
                self.packed.len(),
                self.scales.codes.len(),
                self.scales.absmax.len()
            )));
        }
        Ok(())
    }

    /// The per-block maxima, after undoing the double quantisation.
    pub fn block_absmax(&self) -> Vec<f32> {
        self.scales
            .dequantize(&dynamic::dynamic_map(true), dynamic::BLOCK)
            .into_iter()
            .map(|a| a + self.offset)
            .collect()
    }

    /// The weights back (float32, as bitsandbytes' `dequantize_4bit`).
    pub fn dequantize(&self) -> Vec<f32> {
        let absmax = self.block_absmax();
        (0..self.len)
            .map(|i| {
                let byte = self.packed[i / 2];
                let code = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
                CODE[code as usize] * absmax[i / BLOCK]
            })
            .collect()
    }

    /// Bytes held: packed codes, scale codes, second-level scales and the offset.
    pub fn storage_bytes(&self) -> usize {
        self.packed.len() + self.scales.codes.len() + 4 * self.scales.absmax.len() + 4
    }
}

/// Mean in float32 with pairwise summation, close to torch's reduction order.
fn mean(values: &[f32]) -> f32 {
    fn sum(values: &[f32]) -> f32 {
        if values.len() <= 8 {
            return values.iter().sum();
        }
        let (a, b) = values.split_at(values.len() / 2);
        sum(a) + sum(b)
    }
    if values.is_empty() {
        0.0
    } else {
        sum(values) / values.len() as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_exactly() {
        // A block made of the code values times 2 comes back exactly (max 2.0 is exact in the
        // dynamic map after centring only when the offset is representable; use one block).
        let values: Vec<f32> = CODE.iter().cycle().take(64).map(|c| c * 2.0).collect();
        let q = Nf4::quantize(&values);
        q.validate().unwrap();
        let codes: Vec<u8> = q.packed.iter().flat_map(|b| [b >> 4, b & 15]).collect();
        let expected: Vec<u8> = (0..16u8).cycle().take(64).collect();
        assert_eq!(codes, expected);
    }

    #[test]
    fn odd_lengths_pad_one_nibble() {
        let q = Nf4::quantize(&[0.5, -1.0, 0.25]);
        assert_eq!(q.packed.len(), 2);
        assert_eq!(q.dequantize().len(), 3);
    }
}
