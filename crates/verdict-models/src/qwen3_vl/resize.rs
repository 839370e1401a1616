//! Antialiased bicubic resize of 8-bit images, bit-exact with PyTorch's CPU kernel.
//!
//! The reference image processor resizes `uint8` tensors with torchvision's
//! `resize(..., BICUBIC, antialias=True)`, which on CPU runs PyTorch's native `uint8` separable
//! kernel (`_upsample_bicubic2d_aa`): a Keys cubic filter with `a = -0.5` stretched by the scale
//! when shrinking (as in Pillow), weights normalised in `f64`, then quantised to `i16` with a
//! per-axis precision so the sums run in integers. The width pass runs first and is rounded to
//! `u8` before the height pass. Doing exactly the same integer arithmetic here makes our pixels
//! identical to the reference instead of "close": a one-level difference in one pixel would
//! otherwise propagate into every patch embedding.

use image::RgbImage;

/// Keys cubic convolution kernel, written as PyTorch's `aa_filter` (`a = -0.5`, the Pillow
/// value used when antialiasing).
fn cubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    } else {
        0.0
    }
}

/// Integer filter taps of one axis: for every output index, the first input index and the
/// `i16` weights of the inputs it reads.
#[derive(Debug, Clone)]
struct AxisTaps {
    starts: Vec<usize>,
    weights: Vec<Vec<i16>>,
    precision: u32,
}

impl AxisTaps {
    /// Mirrors `_compute_index_ranges_int16_weights` with `antialias = true`,
    /// `align_corners = false` and no explicit scale factor.
    fn new(input_size: usize, output_size: usize) -> Self {
        let scale = input_size as f64 / output_size as f64;
        // interp_size 4 for cubic: support 2 input pixels, stretched when downsampling.
        let support = if scale >= 1.0 { 2.0 * scale } else { 2.0 };
        let max_taps = (support.ceil() as usize) * 2 + 1;
        let inv_scale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };

        let mut starts = Vec::with_capacity(output_size);
        let mut float_weights = Vec::with_capacity(output_size);
        let mut weight_max = 0.0f64;
        for i in 0..output_size {
            let center = scale * (i as f64 + 0.5);
            // `static_cast<int64_t>` truncates toward zero.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(input_size as i64);
            let xsize = (xmax - xmin).clamp(0, max_taps as i64) as usize;
            let mut w: Vec<f64> = (0..xsize)
                .map(|j| cubic_filter((j as f64 + xmin as f64 - center + 0.5) * inv_scale))
                .collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                for v in &mut w {
                    *v /= total;
                    weight_max = weight_max.max(*v);
                }
            }
            starts.push(xmin as usize);
            float_weights.push(w);
        }

        // The largest precision (< 22 bits) at which the biggest weight still fits in i16.
        let mut precision = 0u32;
        while precision < 22 {
            let next = (0.5 + weight_max * f64::from(1u32 << (precision + 1))) as i32;
            if next >= (1 << 15) {
                break;
            }
            precision += 1;
        }
        let unit = f64::from(1u32 << precision);
        let weights = float_weights
            .into_iter()
            .map(|w| {
                w.into_iter()
                    .map(|v| {
                        let v = v * unit;
                        // C++ `(int)(x)` truncation after the +-0.5, then narrowed to int16.
                        (if v < 0.0 {
                            (-0.5 + v) as i32
                        } else {
                            (0.5 + v) as i32
                        }) as i16
                    })
                    .collect()
            })
            .collect();
        Self {
            starts,
            weights,
            precision,
        }
    }

    /// One output sample from `len` inputs reachable through `read(index)`.
    #[inline]
    fn apply(&self, out_index: usize, read: impl Fn(usize) -> u8) -> u8 {
        let start = self.starts[out_index];
        let mut acc: i32 = 1 << (self.precision - 1);
        for (j, &w) in self.weights[out_index].iter().enumerate() {
            acc += i32::from(read(start + j)) * i32::from(w);
        }
        (acc >> self.precision).clamp(0, 255) as u8
    }
}

/// Resizes an RGB image to `width` x `height` exactly like torchvision's antialiased bicubic
/// resize of a `uint8` tensor on CPU. Returns the input unchanged when the size already matches.
pub fn resize_bicubic_antialias(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = image.dimensions();
    if (in_w, in_h) == (width, height) || width == 0 || height == 0 {
        return image.clone();
    }
    // Horizontal pass first (PyTorch resizes the contiguous dimension first), rounded to u8.
    let horizontal = if in_w != width {
        let taps = AxisTaps::new(in_w as usize, width as usize);
        let mut out = RgbImage::new(width, in_h);
        for y in 0..in_h {
            for x in 0..width {
                let mut pixel = [0u8; 3];
                for (c, value) in pixel.iter_mut().enumerate() {
                    *value = taps.apply(x as usize, |i| image.get_pixel(i as u32, y).0[c]);
                }
                out.put_pixel(x, y, image::Rgb(pixel));
            }
        }
        out
    } else {
        image.clone()
    };
    if in_h == height {
        return horizontal;
    }
    let taps = AxisTaps::new(in_h as usize, height as usize);
    let mut out = RgbImage::new(width, height);
    for y in 0..height {
        for x in 0..width {
            let mut pixel = [0u8; 3];
            for (c, value) in pixel.iter_mut().enumerate() {
                *value = taps.apply(y as usize, |i| horizontal.get_pixel(x, i as u32).0[c]);
            }
            out.put_pixel(x, y, image::Rgb(pixel));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_is_interpolating() {
        assert_eq!(cubic_filter(0.0), 1.0);
        assert_eq!(cubic_filter(1.0), 0.0);
        assert_eq!(cubic_filter(2.0), 0.0);
        assert!(cubic_filter(0.5) > 0.5);
        assert!(cubic_filter(1.5) < 0.0);
    }

    #[test]
    fn taps_sum_to_one_in_fixed_point() {
        for (input, output) in [(48, 64), (72, 64), (40, 32), (7, 3), (3, 50), (1000, 17)] {
            let taps = AxisTaps::new(input, output);
            let unit = 1i32 << taps.precision;
            for (i, w) in taps.weights.iter().enumerate() {
                let sum: i32 = w.iter().map(|&v| i32::from(v)).sum();
                assert!(
                    (sum - unit).abs() <= w.len() as i32,
                    "{input}->{output} tap {i}: {sum} vs {unit}"
                );
                assert!(taps.starts[i] + w.len() <= input);
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let image = RgbImage::from_pixel(37, 23, image::Rgb([200, 17, 90]));
        for (w, h) in [(64, 64), (16, 48), (37, 5), (100, 23)] {
            let out = resize_bicubic_antialias(&image, w, h);
            assert_eq!(out.dimensions(), (w, h));
            assert!(out.pixels().all(|p| p.0 == [200, 17, 90]), "{w}x{h}");
        }
    }
}
