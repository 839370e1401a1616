//! Training examples (an image, its caption, optionally a label) and a synthetic image-text
//! task for tests and smoke runs.

use std::path::PathBuf;

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::preprocess::load_image;
use crate::Result;

/// Where an example's image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    Path(PathBuf),
    Pixels(RgbImage),
}

impl ImageSource {
    pub fn load(&self) -> Result<RgbImage> {
        match self {
            Self::Path(path) => load_image(path),
            Self::Pixels(image) => Ok(image.clone()),
        }
    }
}

/// One image-text pair.
#[derive(Debug, Clone)]
pub struct PairExample {
    pub id: String,
    pub image: ImageSource,
    pub caption: String,
    pub label: Option<String>,
}

/// Colours of the synthetic task, which are also its labels.
pub const SYNTHETIC_COLOURS: [(&str, [u8; 3]); 4] = [
    ("red", [220, 40, 40]),
    ("green", [40, 200, 60]),
    ("blue", [50, 70, 230]),
    ("yellow", [235, 220, 50]),
];

/// Shapes of the synthetic task.
pub const SYNTHETIC_SHAPES: [&str; 3] = ["square", "circle", "triangle"];

/// `n` pictures of one coloured shape on a noisy grey background, captioned
/// "a {colour} {shape}" and labelled with the colour. Position, size, colour and background
/// vary with `seed`.
pub fn synthetic_shapes(n: usize, size: u32, seed: u64) -> Vec<PairExample> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let (colour, rgb) = SYNTHETIC_COLOURS[i % SYNTHETIC_COLOURS.len()];
            let shape =
                SYNTHETIC_SHAPES[(i / SYNTHETIC_COLOURS.len() + rng.random_range(0..3)) % 3];
            let image = draw_shape(shape, rgb, size, &mut rng);
            PairExample {
                id: format!("synthetic-{seed}-{i:05}"),
                image: ImageSource::Pixels(image),
                caption: format!("a {colour} {shape}"),
                label: Some(colour.to_string()),
            }
        })
        .collect()
}

fn draw_shape(shape: &str, rgb: [u8; 3], size: u32, rng: &mut ChaCha8Rng) -> RgbImage {
    let grey: u8 = rng.random_range(60..140);
    let mut image = RgbImage::from_fn(size, size, |_, _| {
        let noise: i16 = rng.random_range(-20..=20);
        let v = (i16::from(grey) + noise).clamp(0, 255) as u8;
        Rgb([v, v, v])
    });
    let s = size as f32;
    let radius = rng.random_range(0.2 * s..0.35 * s);
    let cx = rng.random_range(radius..s - radius);
    let cy = rng.random_range(radius..s - radius);
    let jitter = |c: u8, rng: &mut ChaCha8Rng| {
        (i16::from(c) + rng.random_range(-25i16..=25)).clamp(0, 255) as u8
    };
    let colour = Rgb([
        jitter(rgb[0], rng),
        jitter(rgb[1], rng),
        jitter(rgb[2], rng),
    ]);
    for y in 0..size {
        for x in 0..size {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let inside = match shape {
                "square" => dx.abs() <= radius && dy.abs() <= radius,
                "circle" => dx * dx + dy * dy <= radius * radius,
                // apex up: below the apex, inside the two slanted edges
                _ => dy <= radius && dy >= -radius && dx.abs() <= (dy + radius) * 0.5,
            };
            if inside {
                image.put_pixel(x, y, colour);
            }
        }
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_examples_are_deterministic_and_balanced() {
        let a = synthetic_shapes(8, 24, 3);
        let b = synthetic_shapes(8, 24, 3);
        let labels: Vec<_> = a.iter().map(|e| e.label.clone().unwrap()).collect();
        assert_eq!(labels[..4], ["red", "green", "blue", "yellow"]);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.caption, y.caption);
            let (ImageSource::Pixels(p), ImageSource::Pixels(q)) = (&x.image, &y.image) else {
                panic!("synthetic images are in memory");
            };
            assert_eq!(p, q);
        }
        assert!(a[0].caption.starts_with("a red "));
    }
}
