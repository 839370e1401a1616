//! Qwen3-VL image preprocessing: decode, "smart resize", rescale + normalise, patchify.
//!
//! Reproduces the reference image processor of Qwen2-VL / Qwen2.5-VL / Qwen3-VL checkpoints
//! (`Qwen2VLImageProcessor` with its default torchvision backend) so that `pixel_values` and
//! `image_grid_thw` are identical to what the reference produces for the same image file:
//!
//! 1. decode and convert to RGB (transparency composited onto white),
//! 2. [`smart_resize`] to a multiple of `patch_size * merge_size` within `[min_pixels, max_pixels]`,
//!    resampled with [`resize_bicubic_antialias`],
//! 3. `(x - 255 * mean) / (255 * std)` in `f32` (the reference fuses rescale and normalise),
//! 4. each still image repeated `temporal_patch_size` times and cut into patches ordered by
//!    `merge_size x merge_size` blocks, so the vision tower's patch merger sees neighbours next
//!    to each other.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use image::{DynamicImage, RgbImage};
use serde::Deserialize;

use super::resize::resize_bicubic_antialias;
use crate::{Error, Result};

/// Aspect ratios beyond this are rejected, as the reference does.
pub const MAX_ASPECT_RATIO: f64 = 200.0;

/// `size` as written in `preprocessor_config.json`: pixel-count bounds of the resized image.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SizeBounds {
    /// Minimum number of pixels (`min_pixels`).
    pub shortest_edge: u64,
    /// Maximum number of pixels (`max_pixels`).
    pub longest_edge: u64,
}

/// The image part of a checkpoint's `preprocessor_config.json`.
///
/// Field defaults are those of the reference `Qwen2VLImageProcessor` class, used when a key is
/// absent. Older checkpoints write `min_pixels` / `max_pixels` at the top level; these take
/// precedence over `size`, as in the reference constructor.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct ImageProcessorConfig {
    pub size: SizeBounds,
    pub min_pixels: Option<u64>,
    pub max_pixels: Option<u64>,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub merge_size: usize,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    pub do_resize: bool,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub do_convert_rgb: bool,
    /// PIL resampling id; only 3 (bicubic) is supported.
    pub resample: u32,
}

impl Default for ImageProcessorConfig {
    fn default() -> Self {
        Self {
            size: SizeBounds {
                shortest_edge: 56 * 56,
                longest_edge: 28 * 28 * 1280,
            },
            min_pixels: None,
            max_pixels: None,
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            image_mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
            image_std: [0.268_629_54, 0.261_302_6, 0.275_777_1],
            do_resize: true,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            do_convert_rgb: true,
            resample: 3,
        }
    }
}

impl ImageProcessorConfig {
    /// Reads `preprocessor_config.json` from a checkpoint directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_file(&dir.join("preprocessor_config.json"))
    }

    /// Reads and validates a `preprocessor_config.json` file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Self = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        config
            .validate()
            .map_err(|err| Error::Config(format!("{}: {err}", path.display())))?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.patch_size == 0 || self.merge_size == 0 || self.temporal_patch_size == 0 {
            return Err("patch_size, merge_size and temporal_patch_size must be positive".into());
        }
        if self.image_std.contains(&0.0) {
            return Err("image_std must not contain 0".into());
        }
        if self.do_resize && self.resample != 3 {
            return Err(format!(
                "resample {} is not supported (only 3 = bicubic)",
                self.resample
            ));
        }
        if self.min_pixels() > self.max_pixels() {
            return Err(format!(
                "min_pixels {} > max_pixels {}",
                self.min_pixels(),
                self.max_pixels()
            ));
        }
        Ok(())
    }

    pub fn min_pixels(&self) -> u64 {
        self.min_pixels.unwrap_or(self.size.shortest_edge)
    }

    pub fn max_pixels(&self) -> u64 {
        self.max_pixels.unwrap_or(self.size.longest_edge)
    }

    /// Side multiple of resized images: one merged vision token covers `factor x factor` pixels.
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// Length of one flattened patch: `3 * temporal_patch_size * patch_size^2`.
    pub fn patch_dim(&self) -> usize {
        3 * self.temporal_patch_size * self.patch_size * self.patch_size
    }
}

/// The reference "smart resize": the `(height, width)` closest to the input that are multiples
/// of `factor` and hold between `min_pixels` and `max_pixels` pixels.
///
/// Reproduces the reference arithmetic exactly, including Python's round-half-to-even in the
/// first step (a side of 2.5 factors rounds to 2) and the error for aspect ratios above 200.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: u64,
    max_pixels: u64,
) -> Result<(usize, usize)> {
    if height == 0 || width == 0 || factor == 0 {
        return Err(Error::Preprocess(format!(
            "cannot resize a {width}x{height} image with factor {factor}"
        )));
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    let ratio = h.max(w) / h.min(w);
    if ratio > MAX_ASPECT_RATIO {
        return Err(Error::Preprocess(format!(
            "absolute aspect ratio must be smaller than {MAX_ASPECT_RATIO}, got {ratio} ({width}x{height})"
        )));
    }
    let mut h_bar = (h / f).round_ties_even() * f;
    let mut w_bar = (w / f).round_ties_even() * f;
    if h_bar * w_bar > max_pixels as f64 {
        let beta = ((h * w) / max_pixels as f64).sqrt();
        h_bar = f.max((h / beta / f).floor() * f);
        w_bar = f.max((w / beta / f).floor() * f);
    } else if h_bar * w_bar < min_pixels as f64 {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    if h_bar < 1.0 || w_bar < 1.0 {
        return Err(Error::Preprocess(format!(
            "a {width}x{height} image resizes to nothing (factor {factor}, min_pixels {min_pixels})"
        )));
    }
    Ok((h_bar as usize, w_bar as usize))
}

/// Preprocessed images of one batch, laid out like the reference `pixel_values`.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelValues {
    /// Row-major `[n_patches, patch_dim]`, images one after another.
    pub values: Vec<f32>,
    /// Length of one patch row: `C * T * P * P`.
    pub patch_dim: usize,
    /// `(t, h, w)` patch grid of every image, in order.
    pub grid_thw: Vec<[usize; 3]>,
}

impl PixelValues {
    pub fn n_patches(&self) -> usize {
        self.grid_thw.iter().map(|g| g[0] * g[1] * g[2]).sum()
    }

    /// The pixel values as a tensor.
    ///
    /// # Shapes
    /// Returns `(n_patches, patch_dim)`, `f32`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.values,
            (self.n_patches(), self.patch_dim),
            device,
        )?)
    }

    /// The pixel values in `dtype`, converted on the host (rounding to nearest even, as
    /// the device's conversion does) so that a GPU gets one narrow copy.
    ///
    /// # Shapes
    /// Returns `(n_patches, patch_dim)`.
    pub fn to_tensor_as(&self, dtype: DType, device: &Device) -> Result<Tensor> {
        let shape = (self.n_patches(), self.patch_dim);
        Ok(match dtype {
            DType::BF16 => self.converted(half::bf16::from_f32, shape, device)?,
            DType::F16 => self.converted(half::f16::from_f32, shape, device)?,
            _ => Tensor::from_slice(&self.values, shape, device)?.to_dtype(dtype)?,
        })
    }

    /// The values converted one by one on the host, as one tensor of `shape`.
    fn converted<T: candle_core::WithDType>(
        &self,
        convert: fn(f32) -> T,
        shape: (usize, usize),
        device: &Device,
    ) -> Result<Tensor> {
        let values: Vec<T> = self.values.iter().map(|&v| convert(v)).collect();
        Ok(Tensor::from_vec(values, shape, device)?)
    }
}

/// Loads an image file and converts it to RGB the way the reference processor does.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let image = image::open(path).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(to_rgb(image))
}

/// RGB conversion; images with an alpha channel are composited onto opaque white with
/// Pillow's integer `alpha_composite` arithmetic (the reference `convert_to_rgb`).
pub fn to_rgb(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    let mut out = RgbImage::new(width, height);
    for (x, y, pixel) in rgba.enumerate_pixels() {
        let [r, g, b, a] = pixel.0;
        let blend = |c: u8| -> u8 {
            // Pillow: PRECISION_BITS = 7, coef1 = a * 128, coef2 = (255 - a) * 128 over a white
            // opaque background, then a rounded division by 255 done with shifts.
            let a = u32::from(a);
            let tmp = u32::from(c) * a * 128 + 255 * (255 - a) * 128 + (0x80 << 7);
            let div255 = ((tmp >> 8) + tmp) >> 8;
            (div255 >> 7).min(255) as u8
        };
        out.put_pixel(x, y, image::Rgb([blend(r), blend(g), blend(b)]));
    }
    out
}

/// The reference image processor of Qwen3-VL checkpoints.
#[derive(Debug, Clone)]
pub struct ImageProcessor {
    config: ImageProcessorConfig,
}

impl ImageProcessor {
    pub fn new(config: ImageProcessorConfig) -> Self {
        Self { config }
    }

    /// Reads `preprocessor_config.json` from a checkpoint directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Ok(Self::new(ImageProcessorConfig::from_dir(dir)?))
    }

    pub fn config(&self) -> &ImageProcessorConfig {
        &self.config
    }

    /// Number of `<|image_pad|>` tokens an image of this patch grid takes in the prompt.
    pub fn num_image_tokens(&self, grid_thw: [usize; 3]) -> usize {
        grid_thw[0] * grid_thw[1] * grid_thw[2] / (self.config.merge_size * self.config.merge_size)
    }

    /// Size (height, width) an image of the given size is resized to.
    pub fn target_size(&self, height: usize, width: usize) -> Result<(usize, usize)> {
        if !self.config.do_resize {
            return Ok((height, width));
        }
        smart_resize(
            height,
            width,
            self.config.factor(),
            self.config.min_pixels(),
            self.config.max_pixels(),
        )
    }

    /// Preprocesses several images into one `pixel_values` block (the reference concatenates
    /// the images of a batch in order). An empty slice gives zero patches.
    pub fn preprocess(&self, images: &[RgbImage]) -> Result<PixelValues> {
        let patch_dim = self.config.patch_dim();
        let mut values = Vec::new();
        let mut grid_thw = Vec::with_capacity(images.len());
        for (index, image) in images.iter().enumerate() {
            let grid = self
                .preprocess_one(image, &mut values)
                .map_err(|err| Error::Preprocess(format!("image {index}: {err}")))?;
            grid_thw.push(grid);
        }
        Ok(PixelValues {
            values,
            patch_dim,
            grid_thw,
        })
    }

    /// Appends the patches of one image to `out` and returns its `(t, h, w)` grid.
    fn preprocess_one(&self, image: &RgbImage, out: &mut Vec<f32>) -> Result<[usize; 3]> {
        let cfg = &self.config;
        let (width, height) = image.dimensions();
        let (new_h, new_w) = self.target_size(height as usize, width as usize)?;
        let (patch, merge) = (cfg.patch_size, cfg.merge_size);
        if new_h % (patch * merge) != 0 || new_w % (patch * merge) != 0 {
            return Err(Error::Preprocess(format!(
                "{new_w}x{new_h} is not a multiple of patch_size * merge_size = {}",
                patch * merge
            )));
        }
        let resized;
        let image = if (new_w as u32, new_h as u32) == (width, height) {
            image
        } else {
            resized = resize_bicubic_antialias(image, new_w as u32, new_h as u32);
            &resized
        };
        let plane = self.normalise(image);
        let (grid_h, grid_w) = (new_h / patch, new_w / patch);
        let temporal = cfg.temporal_patch_size;
        out.reserve(grid_h * grid_w * cfg.patch_dim());
        // Row order: merge blocks in raster order, then the patches inside a block; column
        // order: channel, temporal copy, row in patch, column in patch.
        for block_y in 0..grid_h / merge {
            for block_x in 0..grid_w / merge {
                for inner_y in 0..merge {
                    for inner_x in 0..merge {
                        let y0 = (block_y * merge + inner_y) * patch;
                        let x0 = (block_x * merge + inner_x) * patch;
                        for channel in &plane {
                            for _ in 0..temporal {
                                for py in 0..patch {
                                    let row = (y0 + py) * new_w + x0;
                                    out.extend_from_slice(&channel[row..row + patch]);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok([1, grid_h, grid_w])
    }

    /// Channel planes after rescale + normalise, in the reference's fused `f32` form:
    /// `(x - mean * (1 / rescale_factor)) / (std * (1 / rescale_factor))`.
    fn normalise(&self, image: &RgbImage) -> [Vec<f32>; 3] {
        let cfg = &self.config;
        let inverse_rescale = (1.0 / cfg.rescale_factor) as f32;
        let (mean, std, scale) = match (cfg.do_rescale, cfg.do_normalize) {
            (true, true) => (
                cfg.image_mean.map(|m| m * inverse_rescale),
                cfg.image_std.map(|s| s * inverse_rescale),
                1.0,
            ),
            (false, true) => (cfg.image_mean, cfg.image_std, 1.0),
            (true, false) => ([0.0; 3], [1.0; 3], cfg.rescale_factor as f32),
            (false, false) => ([0.0; 3], [1.0; 3], 1.0),
        };
        let mut planes: [Vec<f32>; 3] = Default::default();
        for (c, plane) in planes.iter_mut().enumerate() {
            *plane = image
                .pixels()
                .map(|p| {
                    let x = f32::from(p.0[c]);
                    if cfg.do_normalize {
                        (x - mean[c]) / std[c]
                    } else {
                        x * scale
                    }
                })
                .collect();
        }
        planes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_half_to_even_like_python() {
        // 72 / 16 = 4.5 -> 4, 40 / 16 = 2.5 -> 2 (Python's round), not 5 and 3.
        assert_eq!(smart_resize(72, 40, 16, 2048, 4096).unwrap(), (64, 32));
        // 48 / 32 = 1.5 -> 2.
        assert_eq!(smart_resize(48, 64, 32, 2048, 4096).unwrap(), (64, 64));
    }

    #[test]
    fn branches() {
        // Too many pixels: scaled down, floored to the factor.
        assert_eq!(
            smart_resize(4000, 3000, 32, 65536, 1_048_576).unwrap(),
            (1152, 864)
        );
        // Too few pixels: scaled up, ceiled to the factor.
        assert_eq!(
            smart_resize(10, 10, 32, 65536, 16_777_216).unwrap(),
            (256, 256)
        );
    }

    #[test]
    fn extreme_aspect_ratio_is_an_error() {
        let err = smart_resize(1, 201, 28, 3136, 1_003_520).unwrap_err();
        assert!(
            err.to_string()
                .contains("aspect ratio must be smaller than 200"),
            "{err}"
        );
        assert!(smart_resize(1, 200, 28, 3136, 1_003_520).is_ok());
        assert!(smart_resize(0, 10, 28, 3136, 1_003_520).is_err());
    }

    #[test]
    fn host_conversion_rounds_like_the_tensor_conversion() {
        // Values between representable bf16/f16 numbers, ties included.
        let values: Vec<f32> = (0..64)
            .map(|i| (i as f32 - 31.5) * 0.013_7 + f32::from_bits(0x3f80_8000 + i))
            .collect();
        let pixels = PixelValues {
            values,
            patch_dim: 8,
            grid_thw: vec![[1, 2, 4]],
        };
        let f32_tensor = pixels.to_tensor(&Device::Cpu).unwrap();
        for dtype in [DType::BF16, DType::F16, DType::F32] {
            let host = pixels.to_tensor_as(dtype, &Device::Cpu).unwrap();
            assert_eq!(host.dtype(), dtype);
            assert_eq!(host.dims(), &[8, 8]);
            let expected = f32_tensor.to_dtype(dtype).unwrap();
            let as_f32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
            assert_eq!(
                as_f32(&host).to_vec1::<f32>().unwrap(),
                as_f32(&expected).to_vec1::<f32>().unwrap(),
                "{dtype:?}"
            );
        }
    }

    #[test]
    fn patch_layout_groups_merge_blocks() {
        // A 4x4-patch image with patch 1 and merge 2: rows must walk 2x2 blocks.
        let config = ImageProcessorConfig {
            patch_size: 1,
            merge_size: 2,
            temporal_patch_size: 2,
            do_resize: false,
            do_normalize: false,
            do_rescale: false,
            ..Default::default()
        };
        let mut image = RgbImage::new(4, 4);
        for (x, y, p) in image.enumerate_pixels_mut() {
            *p = image::Rgb([(y * 4 + x) as u8, 100, 200]);
        }
        let out = ImageProcessor::new(config).preprocess(&[image]).unwrap();
        assert_eq!(out.grid_thw, vec![[1, 4, 4]]);
        assert_eq!(out.patch_dim, 6);
        let red: Vec<f32> = out.values.chunks(6).map(|row| row[0]).collect();
        assert_eq!(
            red,
            vec![0., 1., 4., 5., 2., 3., 6., 7., 8., 9., 12., 13., 10., 11., 14., 15.]
        );
        // Channel-major columns, temporal copies adjacent: [r, r, g, g, b, b].
        assert_eq!(&out.values[..6], &[0., 0., 100., 100., 200., 200.]);
    }
}
