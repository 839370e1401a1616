//! The benchmark's inputs file, shared with the reference script.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use verdict_models::qwen3_vl::Batch;

/// Equal-length rows (no padding) with one image each, as the script writes them.
pub struct Inputs {
    input_ids: Vec<Vec<u32>>,
    /// `(rows * patches_per_row, patch_dim)` on the host, f32.
    pixel_values: Tensor,
    grid_thw: Vec<[usize; 3]>,
    /// `(labels,)` u32 on the run device.
    pub label_ids: Tensor,
}

impl Inputs {
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .with_context(|| format!("cannot read inputs {}", path.display()))?;
        let get = |name: &str| {
            tensors
                .get(name)
                .with_context(|| format!("{}: no tensor `{name}`", path.display()))
        };
        let ids = get("input_ids")?.to_dtype(DType::I64)?.to_vec2::<i64>()?;
        let grid = get("image_grid_thw")?
            .to_dtype(DType::I64)?
            .to_vec2::<i64>()?;
        if grid.len() != ids.len() {
            bail!(
                "{}: {} rows of input_ids but {} image grids (one image per row expected)",
                path.display(),
                ids.len(),
                grid.len()
            );
        }
        let labels = get("label_ids")?.to_dtype(DType::I64)?.to_vec1::<i64>()?;
        let labels: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        Ok(Self {
            input_ids: ids
                .iter()
                .map(|row| row.iter().map(|&t| t as u32).collect())
                .collect(),
            pixel_values: get("pixel_values")?.to_dtype(DType::F32)?,
            grid_thw: grid
                .iter()
                .map(|g| [g[0] as usize, g[1] as usize, g[2] as usize])
                .collect(),
            label_ids: Tensor::new(labels, device)?,
        })
    }

    pub fn rows(&self) -> usize {
        self.input_ids.len()
    }

    pub fn seq_len(&self) -> usize {
        self.input_ids.first().map(Vec::len).unwrap_or(0)
    }

    /// Patches of one image (all rows use the same grid in the benchmark).
    pub fn patches_per_row(&self) -> usize {
        self.grid_thw
            .first()
            .map(|g| g[0] * g[1] * g[2])
            .unwrap_or(0)
    }

    /// A batch of `size` rows, cycling through the file's rows, with pixels on `device`.
    pub fn batch(&self, size: usize, device: &Device) -> Result<Batch> {
        let patches = self.patches_per_row();
        let mut ids = Vec::with_capacity(size);
        let mut pixels = Vec::with_capacity(size);
        let mut grid = Vec::with_capacity(size);
        for i in 0..size {
            let r = i % self.rows();
            ids.push(self.input_ids[r].clone());
            pixels.push(self.pixel_values.narrow(0, r * patches, patches)?);
            grid.push(self.grid_thw[r]);
        }
        let pixels = Tensor::cat(&pixels, 0)?.to_device(device)?;
        Ok(Batch {
            input_ids: ids,
            attention_mask: None,
            pixel_values: Some(pixels),
            image_grid_thw: grid,
        })
    }
}
