//! One score per sample from several images of it (rendered views of a mesh, or a contact
//! sheet of them).
//!
//! A sample is what gets a label, so its views are pooled: the mean of p(nsfw) and the mean of
//! the 1024-d features over the images that decode. Averaging probabilities rather than
//! taking the maximum keeps one odd view from deciding alone; a task that wants the worst view
//! can train a head on the features instead. An image that cannot be read is skipped and
//! reported, so one broken file does not lose the whole sample.

use std::path::{Path, PathBuf};

use image::DynamicImage;

use crate::error::{OnnxError, Result};
use crate::nsfw::{NsfwModel, FEATURE_DIM};

/// File name the renderer gives a sample's grid of all views.
pub const CONTACT_SHEET: &str = "contact_sheet.png";

/// Pooled scores of one sample's images.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleScore {
    /// Mean p(nsfw) over the images used.
    pub p_nsfw: f32,
    /// Mean of the images' 1024-d penultimate features.
    pub features: Vec<f32>,
    /// Images that were scored.
    pub used: Vec<PathBuf>,
    /// Images that could not be read, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// The images that represent a sample: its contact sheet when it has one (one forward pass
/// instead of one per view), else every local image. URLs are left out: they are scored once
/// the image cache has downloaded them to files.
pub fn representative_images(images: &[String]) -> Vec<PathBuf> {
    let local: Vec<PathBuf> = images
        .iter()
        .filter(|reference| !reference.contains("://"))
        .map(PathBuf::from)
        .collect();
    match local
        .iter()
        .find(|path| path.file_name().is_some_and(|name| name == CONTACT_SHEET))
    {
        Some(sheet) => vec![sheet.clone()],
        None => local,
    }
}

/// Decodes an image file (format from its content, not its extension).
pub fn open_image(path: &Path) -> Result<DynamicImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| OnnxError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| OnnxError::io(path, e))?;
    reader.decode().map_err(|error| OnnxError::Image {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}

/// Scores `paths` one image per forward pass and pools them; `None` when no image could be
/// read (the caller decides what a sample without a usable image gets).
pub fn score_images(model: &NsfwModel, paths: &[PathBuf]) -> Result<Option<SampleScore>> {
    let mut p_sum = 0.0f64;
    let mut feature_sum = vec![0.0f64; FEATURE_DIM];
    let mut used = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        let image = match open_image(path) {
            Ok(image) => image,
            Err(error) => {
                skipped.push((path.clone(), error.to_string()));
                continue;
            }
        };
        let output = model.run(std::slice::from_ref(&image))?;
        p_sum += f64::from(output.probabilities[0][1]);
        for (sum, value) in feature_sum.iter_mut().zip(&output.features[0]) {
            *sum += f64::from(*value);
        }
        used.push(path.clone());
    }
    if used.is_empty() {
        return Ok(None);
    }
    let count = used.len() as f64;
    Ok(Some(SampleScore {
        p_nsfw: (p_sum / count) as f32,
        features: feature_sum.iter().map(|sum| (sum / count) as f32).collect(),
        used,
        skipped,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_sheet_stands_for_the_views_and_urls_are_left_out() {
        let images = [
            "/r/s1/front.png".to_string(),
            "https://example.invalid/a.png".to_string(),
            "/r/s1/contact_sheet.png".to_string(),
        ];
        assert_eq!(
            representative_images(&images),
            [PathBuf::from("/r/s1/contact_sheet.png")]
        );
        assert_eq!(
            representative_images(&images[..2]),
            [PathBuf::from("/r/s1/front.png")]
        );
        assert!(representative_images(&images[1..2]).is_empty());
    }

    #[test]
    fn unreadable_image_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("view.png");
        std::fs::write(&path, b"not a png").unwrap();
        let error = open_image(&path).unwrap_err().to_string();
        assert!(error.contains("view.png"), "{error}");
    }
}
