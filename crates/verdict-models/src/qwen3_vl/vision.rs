//! Qwen3-VL vision tower: patch embedding, interpolated learned positions, 2-D rotary
//! attention blocks, DeepStack taps and the 2x2 patch merger into the text hidden size.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::Init;

use super::config::VisionConfig;
use super::rope::{vision_patch_positions, VisionRotary};
use crate::nn::ops::{apply_rotary, Activation};
use crate::nn::{
    gpu, merge_heads, scaled_dot_product_attention, LayerBuilder, LayerNorm, LinearLayer,
};
use crate::{Error, Result};

/// Output of the vision tower for a batch of images.
#[derive(Debug, Clone)]
pub struct VisionOutput {
    /// Merged image embeddings, one row per image token, images concatenated in order.
    /// Shape `(tokens, out_hidden_size)`.
    pub embeds: Tensor,
    /// One merged feature map per DeepStack tap, each `(tokens, out_hidden_size)`.
    pub deepstack: Vec<Tensor>,
}

/// `Conv3d` with kernel = stride = (temporal_patch, patch, patch) over pre-cut patches is a
/// plain matrix product with the flattened kernel.
#[derive(Debug, Clone)]
struct PatchEmbed {
    weight: Tensor,
    bias: Tensor,
}

impl PatchEmbed {
    fn new(cfg: &VisionConfig, builder: &LayerBuilder) -> Result<Self> {
        let shape = (
            cfg.hidden_size,
            cfg.in_channels,
            cfg.temporal_patch_size,
            cfg.patch_size,
            cfg.patch_size,
        );
        let bound = 1.0 / (cfg.patch_dim() as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = builder.get(shape, "weight", init)?;
        let bias = builder.get(cfg.hidden_size, "bias", init)?;
        let weight = weight.reshape((cfg.hidden_size, cfg.patch_dim()))?;
        Ok(Self { weight, bias })
    }

    /// # Shapes
    /// `pixels`: `(patches, channels * temporal * patch * patch)` -> `(patches, hidden)`.
    fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let pixels = pixels.to_dtype(self.weight.dtype())?;
        Ok(pixels
            .matmul(&self.weight.t()?)?
            .broadcast_add(&self.bias)?)
    }
}

/// Bilinear (align-corners) taps resampling the square learned position table to an image
/// grid, in the processor's merge-block patch order; mirrors the reference exactly in f32.
///
/// Returns `(indices, weights)` with four taps per patch.
fn interpolation_taps(grid_thw: &[[usize; 3]], side: usize, merge: usize) -> (Vec<u32>, Vec<f32>) {
    let mut indices = Vec::new();
    let mut weights = Vec::new();
    for &[t, h, w] in grid_thw {
        let axis = |index: usize, size: usize| -> ([usize; 2], [f32; 2]) {
            let src = index as f32 * (side - 1) as f32 / (size.max(2) - 1) as f32;
            let floor = src.floor();
            let mut taps = [0usize; 2];
            let mut tap_weights = [0f32; 2];
            for (o, (tap, weight)) in taps.iter_mut().zip(tap_weights.iter_mut()).enumerate() {
                *tap = ((floor as i64 + o as i64).clamp(0, side as i64 - 1)) as usize;
                *weight = (1.0 - (src - floor - o as f32).abs()).max(0.0);
            }
            (taps, tap_weights)
        };
        for [row, col] in vision_patch_positions(&[[t, h, w]], merge) {
            let (row_taps, row_weights) = axis(row, h);
            let (col_taps, col_weights) = axis(col, w);
            for a in 0..2 {
                for b in 0..2 {
                    indices.push((row_taps[a] * side + col_taps[b]) as u32);
                    weights.push(row_weights[a] * col_weights[b]);
                }
            }
        }
    }
    (indices, weights)
}

#[derive(Debug, Clone)]
struct VisionAttention {
    qkv: Arc<dyn LinearLayer>,
    proj: Arc<dyn LinearLayer>,
    num_heads: usize,
    head_dim: usize,
}

impl VisionAttention {
    fn new(cfg: &VisionConfig, builder: &LayerBuilder) -> Result<Self> {
        let dim = cfg.hidden_size;
        Ok(Self {
            qkv: builder.linear("qkv", dim, dim * 3, true)?,
            proj: builder.linear("proj", dim, dim, true)?,
            num_heads: cfg.num_heads,
            head_dim: cfg.head_dim(),
        })
    }

    /// Attention stays within each frame of each image (`chunks` = patches per frame).
    ///
    /// # Shapes
    /// `xs`: `(patches, hidden)`; `cos`, `sin`: `(patches, 1, head_dim)` f32.
    fn forward(&self, xs: &Tensor, cos: &Tensor, sin: &Tensor, chunks: &[usize]) -> Result<Tensor> {
        let patches = xs.dim(0)?;
        let dtype = xs.dtype();
        let qkv = self
            .qkv
            .forward(xs)?
            .reshape((patches, 3, self.num_heads, self.head_dim))?;
        if let Some(out) = self.fused_frames(&qkv, cos, sin, chunks)? {
            return self.proj.forward(&out);
        }
        let rotate = |i: usize| -> Result<Tensor> {
            let part = qkv.narrow(1, i, 1)?.squeeze(1)?.to_dtype(DType::F32)?;
            Ok(apply_rotary(&part, cos, sin)?.to_dtype(dtype)?)
        };
        let q = rotate(0)?;
        let k = rotate(1)?;
        let v = qkv.narrow(1, 2, 1)?.squeeze(1)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        if let Some(&len) = chunks.first() {
            if chunks.len() > 1 && chunks.iter().all(|&c| c == len) && len * chunks.len() == patches
            {
                // Same-sized frames (a batch of equally sized images): one batched attention
                // call instead of one per frame.
                let frames = chunks.len();
                let split = |t: &Tensor| -> Result<Tensor> {
                    Ok(t.reshape((frames, len, self.num_heads, self.head_dim))?
                        .transpose(1, 2)?)
                };
                let out = scaled_dot_product_attention(
                    &split(&q)?,
                    &split(&k)?,
                    &split(&v)?,
                    None,
                    scale,
                )?;
                let out = out.transpose(1, 2)?.reshape((patches, ()))?;
                return self.proj.forward(&out);
            }
        }
        let mut outputs = Vec::with_capacity(chunks.len());
        let mut start = 0;
        for &len in chunks {
            // (len, heads, head_dim) -> (1, heads, len, head_dim)
            let take = |t: &Tensor| -> Result<Tensor> {
                Ok(t.narrow(0, start, len)?.transpose(0, 1)?.unsqueeze(0)?)
            };
            let out =
                scaled_dot_product_attention(&take(&q)?, &take(&k)?, &take(&v)?, None, scale)?;
            outputs.push(out.squeeze(0)?.transpose(0, 1)?.reshape((len, ()))?);
            start += len;
        }
        let out = Tensor::cat(&outputs, 0)?;
        self.proj.forward(&out)
    }
}

impl VisionAttention {
    /// Same-sized frames on a GPU in bf16: rotary, head split and the f32 rounding of the
    /// reference done by one gather kernel per q/k/v, the softmax by one kernel, heads merged by
    /// one more. `None` when the kernels do not apply (CPU, f32, frames of different sizes).
    ///
    /// # Shapes
    /// `qkv`: `(patches, 3, heads, head_dim)`; `cos`, `sin`: `(patches, 1, head_dim)` f32;
    /// returns `(patches, hidden)`.
    fn fused_frames(
        &self,
        qkv: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        chunks: &[usize],
    ) -> Result<Option<Tensor>> {
        if !qkv.device().is_cuda() || qkv.dtype() != DType::BF16 {
            return Ok(None);
        }
        let patches = qkv.dim(0)?;
        let Some(&len) = chunks.first() else {
            return Ok(None);
        };
        if !chunks.iter().all(|&c| c == len) || len * chunks.len() != patches {
            return Ok(None);
        }
        let frames = chunks.len();
        let (heads, d) = (self.num_heads, self.head_dim);
        let half =
            |t: &Tensor| -> Result<Tensor> { Ok(t.squeeze(1)?.narrow(1, 0, d / 2)?.contiguous()?) };
        let (cos, sin) = (half(cos)?, half(sin)?);
        let rope = gpu::RopeTables {
            cos: &cos,
            sin: &sin,
            row_per_i0: len,
            row_per_i2: 1,
        };
        let grouped = qkv.reshape((frames, len, 3, heads, d))?;
        // (frames, heads, len, d) views of q, k and v inside the projection output.
        let part = |i: usize| -> Result<Tensor> {
            Ok(grouped.narrow(2, i, 1)?.squeeze(2)?.transpose(1, 2)?)
        };
        let (Some(q), Some(k), Some(v)) = (
            gpu::gather_heads(&part(0)?, 1, 1.0, Some(rope))?,
            gpu::gather_heads(&part(1)?, 1, 1.0, Some(rope))?,
            gpu::gather_heads(&part(2)?, 1, 1.0, None)?,
        ) else {
            return Ok(None);
        };
        let scale = 1.0 / (d as f32).sqrt();
        let scores = q.matmul(&k.t()?)?;
        let Some(weights) = gpu::scaled_masked_softmax(&scores, None, scale)? else {
            return Ok(None);
        };
        let out = merge_heads(&weights.matmul(&v)?)?;
        Ok(Some(out.reshape((patches, heads * d))?))
    }
}

#[derive(Debug, Clone)]
struct VisionBlock {
    norm1: LayerNorm,
    norm2: LayerNorm,
    attn: VisionAttention,
    fc1: Arc<dyn LinearLayer>,
    fc2: Arc<dyn LinearLayer>,
    act: Activation,
}

impl VisionBlock {
    fn new(cfg: &VisionConfig, builder: &LayerBuilder) -> Result<Self> {
        let mlp = builder.pp("mlp");
        Ok(Self {
            norm1: LayerNorm::new(cfg.hidden_size, 1e-6, &builder.pp("norm1"))?,
            norm2: LayerNorm::new(cfg.hidden_size, 1e-6, &builder.pp("norm2"))?,
            attn: VisionAttention::new(cfg, &builder.pp("attn"))?,
            fc1: mlp.linear("linear_fc1", cfg.hidden_size, cfg.intermediate_size, true)?,
            fc2: mlp.linear("linear_fc2", cfg.intermediate_size, cfg.hidden_size, true)?,
            act: Activation::from_name(&cfg.hidden_act)?,
        })
    }

    /// Runs the block on `xs + pending` and returns its output as `(residual, mlp)`, unadded:
    /// each residual add then happens inside the following norm's kernel on GPUs (one pass
    /// over the hidden states instead of two). `pending` is the previous block's `mlp`.
    ///
    /// # Shapes
    /// `xs`, `pending`: `(patches, hidden)`; both results have that shape.
    fn forward_deferred(
        &self,
        xs: &Tensor,
        pending: Option<&Tensor>,
        cos: &Tensor,
        sin: &Tensor,
        chunks: &[usize],
    ) -> Result<(Tensor, Tensor)> {
        let (xs, normed) = match pending {
            Some(delta) => self.norm1.forward_add(xs, delta)?,
            None => (xs.clone(), self.norm1.forward(xs)?),
        };
        let attn = self.attn.forward(&normed, cos, sin, chunks)?;
        let (xs, normed) = self.norm2.forward_add(&xs, &attn)?;
        let hidden = self.fc1.forward_act(&normed, self.act)?;
        Ok((xs, self.fc2.forward(&hidden)?))
    }
}

/// Concatenates each `merge x merge` block of patches and projects it to the text width.
/// The main merger normalises patches before concatenation, DeepStack mergers after.
#[derive(Debug, Clone)]
struct PatchMerger {
    norm: LayerNorm,
    fc1: Arc<dyn LinearLayer>,
    fc2: Arc<dyn LinearLayer>,
    merged_size: usize,
    postshuffle_norm: bool,
}

impl PatchMerger {
    fn new(cfg: &VisionConfig, postshuffle_norm: bool, builder: &LayerBuilder) -> Result<Self> {
        let merged_size = cfg.hidden_size * cfg.spatial_merge_size * cfg.spatial_merge_size;
        let norm_size = if postshuffle_norm {
            merged_size
        } else {
            cfg.hidden_size
        };
        Ok(Self {
            norm: LayerNorm::new(norm_size, 1e-6, &builder.pp("norm"))?,
            fc1: builder.linear("linear_fc1", merged_size, merged_size, true)?,
            fc2: builder.linear("linear_fc2", merged_size, cfg.out_hidden_size, true)?,
            merged_size,
            postshuffle_norm,
        })
    }

    /// # Shapes
    /// `xs`: `(patches, hidden)` -> `(patches / merge^2, out_hidden)`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = if self.postshuffle_norm {
            self.norm.forward(&xs.reshape(((), self.merged_size))?)?
        } else {
            self.norm.forward(xs)?.reshape(((), self.merged_size))?
        };
        let hidden = self.fc1.forward(&xs)?.gelu_erf()?;
        self.fc2.forward(&hidden)
    }
}

/// The vision tower (`model.visual`).
#[derive(Debug, Clone)]
pub struct VisionModel {
    cfg: VisionConfig,
    patch_embed: PatchEmbed,
    pos_embed: Tensor,
    rotary: VisionRotary,
    blocks: Vec<VisionBlock>,
    merger: PatchMerger,
    deepstack_mergers: Vec<PatchMerger>,
}

impl VisionModel {
    pub fn new(cfg: &VisionConfig, builder: &LayerBuilder) -> Result<Self> {
        let pos_embed = builder.pp("pos_embed").get(
            (cfg.num_position_embeddings, cfg.hidden_size),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let blocks = (0..cfg.depth)
            .map(|i| VisionBlock::new(cfg, &builder.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let deepstack_mergers = (0..cfg.deepstack_visual_indexes.len())
            .map(|i| PatchMerger::new(cfg, true, &builder.pp(format!("deepstack_merger_list.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            patch_embed: PatchEmbed::new(cfg, &builder.pp("patch_embed.proj"))?,
            pos_embed,
            rotary: VisionRotary::new(cfg.head_dim(), cfg.rope_theta()),
            blocks,
            merger: PatchMerger::new(cfg, false, &builder.pp("merger"))?,
            deepstack_mergers,
        })
    }

    pub fn config(&self) -> &VisionConfig {
        &self.cfg
    }

    /// Interpolated learned position embeddings for every patch.
    ///
    /// # Shapes
    /// Returns `(patches, hidden)` in f32.
    fn position_embeddings(&self, grid_thw: &[[usize; 3]], device: &Device) -> Result<Tensor> {
        let side = (self.cfg.num_position_embeddings as f64).sqrt() as usize;
        let (indices, weights) = interpolation_taps(grid_thw, side, self.cfg.spatial_merge_size);
        let patches = indices.len() / 4;
        let indices = Tensor::from_vec(indices, patches * 4, device)?;
        let weights = Tensor::from_vec(weights, (patches, 4, 1), device)?;
        let table = self.pos_embed.to_dtype(DType::F32)?;
        let gathered = table.index_select(&indices, 0)?.reshape((patches, 4, ()))?;
        Ok(gathered.broadcast_mul(&weights)?.sum(1)?)
    }

    /// Precision the tower converts pixel values to before its first product: pixels stored
    /// in it ahead of time (cheaper to copy to a GPU) give the same result as `f32` ones.
    pub fn pixel_dtype(&self) -> DType {
        self.patch_embed.weight.dtype()
    }

    /// Runs the tower on processor output.
    ///
    /// # Shapes
    /// `pixel_values`: `(patches, channels * temporal * patch * patch)`, patches of all images
    /// concatenated in merge-block order; `grid_thw[i]` is image `i`'s (t, h, w) patch grid.
    pub fn forward(&self, pixel_values: &Tensor, grid_thw: &[[usize; 3]]) -> Result<VisionOutput> {
        let merge = self.cfg.spatial_merge_size;
        let expected: usize = grid_thw.iter().map(|[t, h, w]| t * h * w).sum();
        let (patches, dim) = pixel_values.dims2()?;
        if patches != expected || dim != self.cfg.patch_dim() {
            return Err(Error::Input(format!(
                "pixel_values has shape ({patches}, {dim}) but the image grids need ({expected}, {})",
                self.cfg.patch_dim()
            )));
        }
        if let Some(bad) = grid_thw
            .iter()
            .find(|[_, h, w]| h % merge != 0 || w % merge != 0)
        {
            return Err(Error::Input(format!(
                "image grid {bad:?} is not a multiple of the merge size {merge}"
            )));
        }
        let device = pixel_values.device();
        let xs = self.patch_embed.forward(pixel_values)?;
        let positions = self.position_embeddings(grid_thw, device)?;
        let mut xs = (&xs + positions.to_dtype(xs.dtype())?)?;
        let (cos, sin) = self
            .rotary
            .cos_sin(&vision_patch_positions(grid_thw, merge), device)?;
        let chunks: Vec<usize> = grid_thw
            .iter()
            .flat_map(|&[t, h, w]| std::iter::repeat_n(h * w, t))
            .collect();
        let mut deepstack = Vec::with_capacity(self.deepstack_mergers.len());
        let mut pending: Option<Tensor> = None;
        let last = self.blocks.len().saturating_sub(1);
        for (layer, block) in self.blocks.iter().enumerate() {
            let (residual, mlp) =
                block.forward_deferred(&xs, pending.as_ref(), &cos, &sin, &chunks)?;
            let tap = self
                .cfg
                .deepstack_visual_indexes
                .iter()
                .position(|&i| i == layer);
            if tap.is_some() || layer == last {
                xs = (residual + mlp)?;
                pending = None;
            } else {
                xs = residual;
                pending = Some(mlp);
            }
            if let Some(tap) = tap {
                deepstack.push(self.deepstack_mergers[tap].forward(&xs)?);
            }
        }
        let embeds = self.merger.forward(&xs)?;
        Ok(VisionOutput { embeds, deepstack })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_weights_sum_to_one_and_hit_corners() {
        let (indices, weights) = interpolation_taps(&[[1, 4, 6]], 8, 2);
        for patch in weights.chunks(4) {
            assert!((patch.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        // First patch is the top-left corner of the table, exactly.
        assert_eq!(indices[0], 0);
        assert!((weights[0] - 1.0).abs() < 1e-6);
    }
}
