//! Image preprocessing of CLIP and SigLIP checkpoints as small transforms, configured from the
//! checkpoint's `preprocessor_config.json` (`CLIPImageProcessor`, `SiglipImageProcessor`).
//!
//! The reference processors resize `uint8` images with torchvision's antialiased bicubic
//! kernel, centre-crop (CLIP), then rescale and normalise in one fused f32 step. The resize is
//! the bit-exact port in `verdict_models`; cropping and normalisation below repeat the
//! reference arithmetic (truncated crop offsets, zero padding when the crop is larger, mean and
//! std pre-multiplied by `1 / rescale_factor` in f32), so pixel values match to float rounding.

use std::path::Path;

use candle_core::{Device, Tensor};
use image::RgbImage;
use serde::Deserialize;
use verdict_models::qwen3_vl::resize::resize_bicubic_antialias;

use crate::error::read_json;
use crate::{Error, Result};

/// `size` / `crop_size` entries: either `{shortest_edge}` or `{height, width}`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct SizeSpec {
    #[serde(default)]
    pub shortest_edge: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(default)]
    pub width: Option<u32>,
}

fn yes() -> bool {
    true
}
fn default_rescale() -> f64 {
    1.0 / 255.0
}
fn default_resample() -> u32 {
    3
}

/// The fields of `preprocessor_config.json` both processors use.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageProcessorConfig {
    #[serde(default = "yes")]
    pub do_resize: bool,
    pub size: SizeSpec,
    /// PIL resampling id; only 3 (bicubic), what both model families ship with, is supported.
    #[serde(default = "default_resample")]
    pub resample: u32,
    #[serde(default)]
    pub do_center_crop: bool,
    #[serde(default)]
    pub crop_size: Option<SizeSpec>,
    #[serde(default = "yes")]
    pub do_rescale: bool,
    #[serde(default = "default_rescale")]
    pub rescale_factor: f64,
    #[serde(default = "yes")]
    pub do_normalize: bool,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
}

impl ImageProcessorConfig {
    /// Reads `preprocessor_config.json`, or the `image_processor` entry of
    /// `processor_config.json` (how newer `save_pretrained` writes a processor).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let direct = dir.join("preprocessor_config.json");
        if direct.exists() {
            return read_json(&direct);
        }
        let combined = dir.join("processor_config.json");
        if combined.exists() {
            let value: serde_json::Value = read_json(&combined)?;
            let inner = value.get("image_processor").cloned().ok_or_else(|| {
                Error::Config(format!(
                    "{}: no \"image_processor\" entry",
                    combined.display()
                ))
            })?;
            return serde_json::from_value(inner).map_err(|source| Error::Json {
                path: combined,
                source,
            });
        }
        Err(Error::Config(format!(
            "{} has neither preprocessor_config.json nor processor_config.json",
            dir.display()
        )))
    }
}

/// One step on an 8-bit image.
pub trait Transform: Send + Sync + std::fmt::Debug {
    fn apply(&self, image: RgbImage) -> Result<RgbImage>;
}

/// Resize so the shorter side equals `shortest_edge` (aspect kept, longer side truncated as
/// `int(size * long / short)`), or to an exact `height x width`.
#[derive(Debug, Clone, Copy)]
pub struct Resize {
    pub size: SizeSpec,
}

impl Resize {
    /// Output `(width, height)` for an input of `width x height`.
    pub fn target(&self, width: u32, height: u32) -> Result<(u32, u32)> {
        match (self.size.shortest_edge, self.size.height, self.size.width) {
            (Some(edge), _, _) => {
                let (short, long) = if width <= height {
                    (width, height)
                } else {
                    (height, width)
                };
                if short == 0 {
                    return Err(Error::Input(format!("empty image {width}x{height}")));
                }
                let new_long = (f64::from(edge) * f64::from(long) / f64::from(short)) as u32;
                Ok(if width <= height {
                    (edge, new_long)
                } else {
                    (new_long, edge)
                })
            }
            (None, Some(h), Some(w)) => Ok((w, h)),
            _ => Err(Error::Config(
                "size needs \"shortest_edge\" or both \"height\" and \"width\"".into(),
            )),
        }
    }
}

impl Transform for Resize {
    fn apply(&self, image: RgbImage) -> Result<RgbImage> {
        let (width, height) = self.target(image.width(), image.height())?;
        Ok(resize_bicubic_antialias(&image, width, height))
    }
}

/// Centre crop to `height x width`, zero-padding first when the image is smaller.
#[derive(Debug, Clone, Copy)]
pub struct CenterCrop {
    pub height: u32,
    pub width: u32,
}

impl Transform for CenterCrop {
    fn apply(&self, image: RgbImage) -> Result<RgbImage> {
        let (mut w, mut h) = image.dimensions();
        let (cw, ch) = (self.width, self.height);
        let mut image = image;
        if cw > w || ch > h {
            let left = if cw > w { (cw - w) / 2 } else { 0 };
            let top = if ch > h { (ch - h) / 2 } else { 0 };
            let (pw, ph) = (w.max(cw), h.max(ch));
            let mut padded = RgbImage::new(pw, ph);
            image::imageops::replace(&mut padded, &image, i64::from(left), i64::from(top));
            image = padded;
            (w, h) = (pw, ph);
        }
        let top = ((h - ch) as f64 / 2.0) as u32;
        let left = ((w - cw) as f64 / 2.0) as u32;
        Ok(image::imageops::crop_imm(&image, left, top, cw, ch).to_image())
    }
}

/// Resize, crop, rescale and normalise, in the reference order.
#[derive(Debug)]
pub struct ImageProcessor {
    steps: Vec<Box<dyn Transform>>,
    /// Per-channel `(mean, std)` in 0..255 units after fusing the rescale factor.
    normalize: [(f32, f32); 3],
    rescale_only: Option<f32>,
}

impl ImageProcessor {
    pub fn new(config: &ImageProcessorConfig) -> Result<Self> {
        if config.do_resize && config.resample != 3 {
            return Err(Error::Config(format!(
                "resample {} is not supported (only 3, bicubic)",
                config.resample
            )));
        }
        let mut steps: Vec<Box<dyn Transform>> = Vec::new();
        if config.do_resize {
            steps.push(Box::new(Resize { size: config.size }));
        }
        if config.do_center_crop {
            let crop = config.crop_size.ok_or_else(|| {
                Error::Config("do_center_crop is set but crop_size is missing".into())
            })?;
            match (crop.height, crop.width) {
                (Some(height), Some(width)) => steps.push(Box::new(CenterCrop { height, width })),
                _ => {
                    return Err(Error::Config(
                        "crop_size needs \"height\" and \"width\"".into(),
                    ))
                }
            }
        }
        // The reference fuses rescale into normalisation: mean and std are multiplied by
        // `1 / rescale_factor` as f32 tensors, then `(x - mean) / std` runs in f32.
        let inverse = (1.0 / config.rescale_factor) as f32;
        let mut normalize = [(0.0, 1.0); 3];
        let mut rescale_only = None;
        for (c, slot) in normalize.iter_mut().enumerate() {
            *slot = match (config.do_normalize, config.do_rescale) {
                (true, true) => (
                    config.image_mean[c] * inverse,
                    config.image_std[c] * inverse,
                ),
                (true, false) => (config.image_mean[c], config.image_std[c]),
                (false, _) => (0.0, 1.0),
            };
        }
        if !config.do_normalize && config.do_rescale {
            rescale_only = Some(config.rescale_factor as f32);
        }
        Ok(Self {
            steps,
            normalize,
            rescale_only,
        })
    }

    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::new(&ImageProcessorConfig::from_dir(dir)?)
    }

    /// The 8-bit image after resizing and cropping.
    pub fn transform(&self, image: RgbImage) -> Result<RgbImage> {
        self.steps
            .iter()
            .try_fold(image, |image, step| step.apply(image))
    }

    /// Channel-first f32 values of one image.
    ///
    /// # Shapes
    /// Returns `3 * height * width` values in `(channel, row, column)` order.
    pub fn pixel_values(&self, image: RgbImage) -> Result<(Vec<f32>, u32, u32)> {
        let image = self.transform(image)?;
        let (w, h) = image.dimensions();
        let plane = (w * h) as usize;
        let mut out = vec![0f32; 3 * plane];
        for (i, pixel) in image.pixels().enumerate() {
            for c in 0..3 {
                let x = f32::from(pixel.0[c]);
                out[c * plane + i] = match self.rescale_only {
                    Some(factor) => x * factor,
                    None => (x - self.normalize[c].0) / self.normalize[c].1,
                };
            }
        }
        Ok((out, w, h))
    }

    /// A batch of images as one tensor; every image must come out at the same size.
    ///
    /// # Shapes
    /// Returns `(images.len(), 3, height, width)` f32.
    pub fn preprocess(&self, images: &[RgbImage], device: &Device) -> Result<Tensor> {
        if images.is_empty() {
            return Err(Error::Input("no images to preprocess".into()));
        }
        let mut data = Vec::new();
        let mut size = None;
        for image in images {
            let (values, w, h) = self.pixel_values(image.clone())?;
            if *size.get_or_insert((w, h)) != (w, h) {
                return Err(Error::Input(format!(
                    "preprocessed images differ in size ({w}x{h} vs {:?}); the config has no fixed output size",
                    size
                )));
            }
            data.extend(values);
        }
        let (w, h) = size.unwrap_or((0, 0));
        Ok(Tensor::from_vec(
            data,
            (images.len(), 3, h as usize, w as usize),
            device,
        )?)
    }
}

/// Opens an image file as RGB (alpha composited onto white, as the reference `convert_rgb`).
pub fn load_image(path: &Path) -> Result<RgbImage> {
    Ok(verdict_models::qwen3_vl::processor::load_image(path)?)
}
