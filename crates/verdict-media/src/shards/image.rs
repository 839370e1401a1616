//! Resize-and-pad for shard images: fit inside a square, keep the aspect ratio, pad the rest,
//! encode JPEG. Training then reads fixed-size images without per-step resizing.

use std::io::Cursor;

use image::{imageops::FilterType, DynamicImage, GenericImageView, Rgb, RgbImage};

/// Target size and padding of re-encoded shard images.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct ResizeSpec {
    /// Width and height of the output square.
    pub size: u32,
    /// Padding colour.
    pub fill: [u8; 3],
    /// JPEG quality (1-100).
    pub quality: u8,
}

impl Default for ResizeSpec {
    fn default() -> Self {
        ResizeSpec {
            size: 448,
            fill: [0, 0, 0],
            quality: 90,
        }
    }
}

/// Decodes `bytes`, scales the image to fit `spec.size` (up or down, aspect kept, bilinear),
/// centres it on a `size x size` canvas and returns JPEG bytes.
pub fn resize_and_pad(bytes: &[u8], spec: &ResizeSpec) -> Result<Vec<u8>, String> {
    let decoded =
        image::load_from_memory(bytes).map_err(|e| format!("cannot decode image: {e}"))?;
    let (width, height) = decoded.dimensions();
    if width == 0 || height == 0 {
        return Err("image has no pixels".into());
    }
    let size = spec.size.max(1);
    let scale = f64::min(size as f64 / width as f64, size as f64 / height as f64);
    let new_width = ((width as f64 * scale).round() as u32).clamp(1, size);
    let new_height = ((height as f64 * scale).round() as u32).clamp(1, size);
    let resized = DynamicImage::ImageRgb8(decoded.to_rgb8()).resize_exact(
        new_width,
        new_height,
        FilterType::Triangle,
    );
    let mut canvas = RgbImage::from_pixel(size, size, Rgb(spec.fill));
    let left = (size - new_width) / 2;
    let top = (size - new_height) / 2;
    image::imageops::overlay(&mut canvas, &resized.to_rgb8(), left as i64, top as i64);
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(
        Cursor::new(&mut out),
        spec.quality.clamp(1, 100),
    );
    canvas
        .write_with_encoder(encoder)
        .map_err(|e| format!("cannot encode JPEG: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_image_is_letterboxed() {
        let mut png = Vec::new();
        RgbImage::from_pixel(40, 20, Rgb([250, 250, 250]))
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let spec = ResizeSpec {
            size: 32,
            fill: [0, 0, 0],
            quality: 95,
        };
        let out = image::load_from_memory(&resize_and_pad(&png, &spec).unwrap())
            .unwrap()
            .to_rgb8();
        assert_eq!(out.dimensions(), (32, 32));
        // 40x20 -> 32x16, centred: rows 8..24 are image, the rest padding.
        assert!(out.get_pixel(16, 16)[0] > 200);
        assert!(out.get_pixel(16, 2)[0] < 30);
        assert!(out.get_pixel(16, 29)[0] < 30);
        assert!(resize_and_pad(b"not an image", &spec).is_err());
    }
}
