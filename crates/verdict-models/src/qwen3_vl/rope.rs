//! Rotary position embeddings of Qwen3-VL.
//!
//! - Text: interleaved 3-D multimodal rotary (MRoPE). Every token carries a (temporal, height,
//!   width) position; text tokens use the same value on all three axes, image tokens their grid
//!   coordinates offset by the text position where the image starts. Rotary frequency `j` reads
//!   the height axis when `j % 3 == 1` (and `j < 3 * section[1]`), the width axis when
//!   `j % 3 == 2` (and `j < 3 * section[2]`), and the temporal axis otherwise.
//! - Vision: 2-D axial rotary over (row, column) of each patch, half the frequencies each.
//!
//! Positions are bookkeeping on token ids, so they are computed on the host.

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// `1 / theta^(2i / dim)` for `i in 0..dim/2`, computed in f64 and rounded to f32.
fn inverse_frequencies(theta: f64, dim: usize) -> Vec<f32> {
    (0..dim / 2)
        .map(|i| (1.0 / theta.powf((2 * i) as f64 / dim as f64)) as f32)
        .collect()
}

/// 3-D positions of a batch of token sequences (the reference `get_rope_index`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MropePositions {
    /// `positions[b][s] = [temporal, height, width]`; padding tokens get `[0, 0, 0]`.
    pub positions: Vec<Vec<[u32; 3]>>,
    /// Position of the next generated token per sequence: the largest position plus one.
    pub next_position: Vec<u32>,
}

impl MropePositions {
    /// Bookkeeping for `input_ids` with images; `attention_mask` marks real tokens (padding
    /// is skipped), `image_grid_thw` lists the patch grid of every image in order of appearance
    /// over the whole batch. Each image occupies `t*h*w / merge^2` consecutive image tokens.
    pub fn new(
        input_ids: &[Vec<u32>],
        attention_mask: Option<&[Vec<bool>]>,
        image_grid_thw: &[[usize; 3]],
        image_token_id: u32,
        spatial_merge_size: usize,
    ) -> Result<Self> {
        let mut grids = image_grid_thw.iter();
        let mut positions = Vec::with_capacity(input_ids.len());
        let mut next_position = Vec::with_capacity(input_ids.len());
        for (row, ids) in input_ids.iter().enumerate() {
            let valid: Vec<bool> = match attention_mask {
                Some(mask) => mask[row].clone(),
                None => vec![true; ids.len()],
            };
            let mut row_positions = vec![[0u32; 3]; ids.len()];
            let real: Vec<usize> = (0..ids.len()).filter(|&i| valid[i]).collect();
            let mut current = 0u32;
            let mut k = 0;
            while k < real.len() {
                if ids[real[k]] != image_token_id {
                    row_positions[real[k]] = [current; 3];
                    current += 1;
                    k += 1;
                    continue;
                }
                let &[t, h, w] = grids.next().ok_or_else(|| {
                    Error::Input(format!(
                        "sequence {row} has more image placeholders than the {} image grids given",
                        image_grid_thw.len()
                    ))
                })?;
                let (gh, gw) = (h / spatial_merge_size, w / spatial_merge_size);
                let count = t * gh * gw;
                if k + count > real.len()
                    || real[k..k + count].iter().any(|&i| ids[i] != image_token_id)
                {
                    return Err(Error::Input(format!(
                        "sequence {row}: image with grid {t}x{h}x{w} needs {count} consecutive image tokens"
                    )));
                }
                let mut n = 0;
                for ti in 0..t {
                    for hi in 0..gh {
                        for wi in 0..gw {
                            row_positions[real[k + n]] = [
                                current + ti as u32,
                                current + hi as u32,
                                current + wi as u32,
                            ];
                            n += 1;
                        }
                    }
                }
                current += gh.max(gw) as u32;
                k += count;
            }
            let max = row_positions
                .iter()
                .zip(&valid)
                .filter(|(_, v)| **v)
                .flat_map(|(p, _)| p.iter().copied())
                .max();
            next_position.push(max.map(|m| m + 1).unwrap_or(0));
            positions.push(row_positions);
        }
        if grids.next().is_some() {
            return Err(Error::Input(format!(
                "{} image grids given but fewer images found among the tokens",
                image_grid_thw.len()
            )));
        }
        Ok(Self {
            positions,
            next_position,
        })
    }

    /// Positions `start, start+1, ..` on all axes, for `len` tokens appended after a prefix.
    pub fn continuation(next_position: &[u32], len: usize) -> Self {
        let positions = next_position
            .iter()
            .map(|&start| (0..len as u32).map(|i| [start + i; 3]).collect())
            .collect();
        let next = next_position.iter().map(|&p| p + len as u32).collect();
        Self {
            positions,
            next_position: next,
        }
    }

    /// # Shapes
    /// Returns `(3, batch, seq)` u32, the reference layout of `position_ids`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let batch = self.positions.len();
        let seq = self.positions.first().map(Vec::len).unwrap_or(0);
        let mut data = Vec::with_capacity(3 * batch * seq);
        for axis in 0..3 {
            for row in &self.positions {
                data.extend(row.iter().map(|p| p[axis]));
            }
        }
        Ok(Tensor::from_vec(data, (3, batch, seq), device)?)
    }
}

/// Interleaved multimodal rotary table of the language model.
#[derive(Debug, Clone)]
pub struct TextRotary {
    inv_freq: Vec<f32>,
    /// Which position axis (0 = t, 1 = h, 2 = w) drives each frequency.
    axis: Vec<usize>,
}

impl TextRotary {
    pub fn new(head_dim: usize, theta: f64, mrope_section: &[usize]) -> Self {
        let inv_freq = inverse_frequencies(theta, head_dim);
        let axis = (0..inv_freq.len())
            .map(|j| match j % 3 {
                1 if j < 3 * mrope_section[1] => 1,
                2 if j < 3 * mrope_section[2] => 2,
                _ => 0,
            })
            .collect();
        Self { inv_freq, axis }
    }

    /// Cosine and sine tables for the given positions, cast to `dtype` like the reference.
    ///
    /// # Shapes
    /// Returns two `(batch, 1, seq, head_dim)` tensors (broadcast over heads).
    pub fn cos_sin(
        &self,
        positions: &MropePositions,
        dtype: DType,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let batch = positions.positions.len();
        let seq = positions.positions.first().map(Vec::len).unwrap_or(0);
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(batch * seq * half * 2);
        let mut sin = Vec::with_capacity(batch * seq * half * 2);
        for row in &positions.positions {
            for position in row {
                let angles: Vec<f32> = (0..half)
                    .map(|j| position[self.axis[j]] as f32 * self.inv_freq[j])
                    .collect();
                for _ in 0..2 {
                    cos.extend(angles.iter().map(|a| a.cos()));
                    sin.extend(angles.iter().map(|a| a.sin()));
                }
            }
        }
        let shape = (batch, 1, seq, half * 2);
        let cos = Tensor::from_vec(cos, shape, device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, shape, device)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }
}

/// Row/column of every patch in the order the processor emits them: merge blocks of
/// `merge x merge` patches, row-major over blocks, row-major inside a block; frames repeat.
pub fn vision_patch_positions(grid_thw: &[[usize; 3]], merge: usize) -> Vec<[usize; 2]> {
    let mut out = Vec::new();
    for &[t, h, w] in grid_thw {
        for _ in 0..t {
            for block_row in 0..h / merge {
                for block_col in 0..w / merge {
                    for in_row in 0..merge {
                        for in_col in 0..merge {
                            out.push([block_row * merge + in_row, block_col * merge + in_col]);
                        }
                    }
                }
            }
        }
    }
    out
}

/// 2-D axial rotary of the vision tower.
#[derive(Debug, Clone)]
pub struct VisionRotary {
    inv_freq: Vec<f32>,
}

impl VisionRotary {
    pub fn new(head_dim: usize, theta: f64) -> Self {
        Self {
            inv_freq: inverse_frequencies(theta, head_dim / 2),
        }
    }

    /// Tables in f32 (the reference applies vision rotary in f32).
    ///
    /// # Shapes
    /// Returns two `(patches, 1, head_dim)` tensors: `[row freqs, col freqs]` repeated twice.
    pub fn cos_sin(&self, positions: &[[usize; 2]], device: &Device) -> Result<(Tensor, Tensor)> {
        let quarter = self.inv_freq.len();
        let mut cos = Vec::with_capacity(positions.len() * quarter * 4);
        let mut sin = Vec::with_capacity(positions.len() * quarter * 4);
        for &[row, col] in positions {
            let angles: Vec<f32> = self
                .inv_freq
                .iter()
                .map(|f| row as f32 * f)
                .chain(self.inv_freq.iter().map(|f| col as f32 * f))
                .collect();
            for _ in 0..2 {
                cos.extend(angles.iter().map(|a| a.cos()));
                sin.extend(angles.iter().map(|a| a.sin()));
            }
        }
        let shape = (positions.len(), 1, quarter * 4);
        Ok((
            Tensor::from_vec(cos, shape, device)?,
            Tensor::from_vec(sin, shape, device)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_then_image_then_text_positions() -> Result<()> {
        // 2 text tokens, a 1x4x4 grid merged 2x2 into 4 image tokens, 1 text token.
        let ids = vec![vec![1, 2, 9, 9, 9, 9, 3]];
        let positions = MropePositions::new(&ids, None, &[[1, 4, 4]], 9, 2)?;
        let row = &positions.positions[0];
        assert_eq!(row[0], [0, 0, 0]);
        assert_eq!(row[1], [1, 1, 1]);
        assert_eq!(&row[2..6], &[[2, 2, 2], [2, 2, 3], [2, 3, 2], [2, 3, 3]]);
        assert_eq!(row[6], [4, 4, 4]);
        assert_eq!(positions.next_position, vec![5]);
        Ok(())
    }

    #[test]
    fn left_padding_is_skipped() -> Result<()> {
        let ids = vec![vec![0, 0, 5, 6]];
        let mask = vec![vec![false, false, true, true]];
        let positions = MropePositions::new(&ids, Some(&mask), &[], 9, 2)?;
        assert_eq!(positions.positions[0], vec![[0; 3], [0; 3], [0; 3], [1; 3]]);
        assert_eq!(positions.next_position, vec![2]);
        Ok(())
    }

    #[test]
    fn interleaved_axes() {
        let rotary = TextRotary::new(16, 10_000.0, &[2, 1, 1]);
        assert_eq!(rotary.axis, vec![0, 1, 2, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn patch_order_follows_merge_blocks() {
        let order = vision_patch_positions(&[[1, 2, 4]], 2);
        assert_eq!(
            order,
            vec![
                [0, 0],
                [0, 1],
                [1, 0],
                [1, 1],
                [0, 2],
                [0, 3],
                [1, 2],
                [1, 3]
            ]
        );
    }
}
