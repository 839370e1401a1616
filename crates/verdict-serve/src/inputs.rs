//! Turning request payloads into model inputs under hard limits: base64 and URL images (size
//! and pixel caps checked before decoding), and mesh uploads rendered to views (triangle cap).

use std::io::Cursor;
use std::time::Duration;

use base64::Engine as _;
use image::{ImageReader, RgbImage};
use verdict_render::{LoadLimits, RenderSettings, ViewSpec};

use crate::error::AppError;

/// Decodes PNG / JPEG / WebP bytes into RGB, refusing images over `max_pixels` from their
/// header, before any pixel buffer is allocated.
pub fn decode_image(bytes: &[u8], max_pixels: u64, what: &str) -> Result<RgbImage, AppError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| AppError::bad_request("invalid_image", format!("{what}: {e}")))?;
    if reader.format().is_none() {
        return Err(AppError::bad_request(
            "invalid_image",
            format!("{what}: not a PNG, JPEG or WebP image"),
        ));
    }
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| AppError::bad_request("invalid_image", format!("{what}: {e}")))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(AppError::too_large(
            "image_too_large",
            format!("{what}: {width}x{height} = {pixels} pixels, the limit is {max_pixels}"),
        ));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| AppError::bad_request("invalid_image", format!("{what}: {e}")))?;
    // The header check above is the real cap; the decoder limit is a second line against
    // formats whose header lies about the size.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(pixels.saturating_mul(8).max(1 << 20));
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|e| AppError::bad_request("invalid_image", format!("{what}: {e}")))?;
    Ok(image.to_rgb8())
}

/// Base64 bytes, with or without a `data:<mime>;base64,` prefix.
pub fn decode_base64(text: &str, what: &str) -> Result<Vec<u8>, AppError> {
    let payload = match text.strip_prefix("data:") {
        Some(rest) => rest
            .split_once(";base64,")
            .map(|(_, data)| data)
            .ok_or_else(|| {
                AppError::bad_request(
                    "invalid_image",
                    format!("{what}: a data URL must be `data:<type>;base64,<data>`"),
                )
            })?,
        None => text,
    };
    let cleaned: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|e| AppError::bad_request("invalid_base64", format!("{what}: {e}")))
}

/// Downloads `url` (http or https only) within `timeout`, refusing bodies over `max_bytes`
/// (by `Content-Length` when given, and while streaming otherwise).
pub async fn fetch_url(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    max_bytes: u64,
) -> Result<Vec<u8>, AppError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| AppError::bad_request("invalid_url", format!("{url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(AppError::bad_request(
            "invalid_url",
            format!("{url:?}: only http and https URLs are fetched"),
        ));
    }
    let download = async {
        let mut response = client
            .get(parsed)
            .send()
            .await
            .map_err(|e| AppError::bad_request("url_fetch_failed", format!("{url}: {e}")))?;
        if !response.status().is_success() {
            return Err(AppError::bad_request(
                "url_fetch_failed",
                format!("{url}: the server answered {}", response.status()),
            ));
        }
        let too_large = || {
            AppError::too_large(
                "url_too_large",
                format!("{url}: larger than the limit of {max_bytes} bytes"),
            )
        };
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| AppError::bad_request("url_fetch_failed", format!("{url}: {e}")))?
        {
            if (body.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, download).await.map_err(|_| {
        AppError::bad_request(
            "url_timeout",
            format!(
                "{url}: no complete answer within {:.1} s",
                timeout.as_secs_f64()
            ),
        )
    })?
}

/// How uploaded meshes become images.
#[derive(Debug, Clone)]
pub struct MeshViews {
    pub views: Vec<ViewSpec>,
    pub settings: RenderSettings,
}

impl MeshViews {
    /// `views` by name (see `ViewSpec::parse_list`), `size` pixels square, at most
    /// `max_triangles` per upload.
    pub fn new(views: &[String], size: u32, max_triangles: u64) -> Result<Self, String> {
        let views = ViewSpec::parse_list(&views.join(",")).map_err(|e| e.to_string())?;
        let settings = RenderSettings {
            size,
            limits: LoadLimits {
                max_triangles,
                ..LoadLimits::default()
            },
            ..RenderSettings::default()
        };
        settings.validate().map_err(|e| e.to_string())?;
        Ok(Self { views, settings })
    }

    /// Renders an uploaded STL / OBJ / 3MF file (`file_name` gives the format) into one image
    /// per view. Blocking: call it off the async runtime.
    pub fn render(&self, file_name: &str, bytes: &[u8]) -> Result<Vec<RgbImage>, AppError> {
        let extension = std::path::Path::new(file_name)
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if !matches!(extension.as_str(), "stl" | "obj" | "3mf") {
            return Err(AppError::bad_request(
                "unsupported_mesh",
                format!("{file_name:?}: meshes must be .stl, .obj or .3mf files"),
            ));
        }
        let internal = |e: std::io::Error| AppError::internal(format!("mesh scratch space: {e}"));
        let scratch = tempfile::tempdir().map_err(internal)?;
        let input = scratch.path().join(format!("upload.{extension}"));
        std::fs::write(&input, bytes).map_err(internal)?;
        let out_dir = scratch.path().join("views");
        let output = verdict_render::render_sample(&[input], &self.views, &self.settings, &out_dir)
            .map_err(|e| mesh_error(file_name, e))?;
        output
            .views
            .iter()
            .map(|view| {
                let bytes = std::fs::read(&view.path).map_err(internal)?;
                decode_image(&bytes, u64::MAX, "rendered view")
            })
            .collect()
    }
}

fn mesh_error(file_name: &str, error: verdict_render::RenderError) -> AppError {
    // Render errors name the scratch path; callers know their file by its upload name.
    let message = format!("{file_name}: {error}");
    if matches!(
        error,
        verdict_render::RenderError::TooManyTriangles { .. }
            | verdict_render::RenderError::TooLarge { .. }
    ) {
        AppError::too_large("mesh_too_large", message)
    } else {
        AppError::bad_request("invalid_mesh", message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        image::DynamicImage::ImageRgb8(RgbImage::new(width, height))
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .unwrap();
        bytes
    }

    #[test]
    fn pixel_cap_is_checked_before_decoding() {
        let bytes = png(64, 64);
        assert_eq!(decode_image(&bytes, 4096, "x").unwrap().width(), 64);
        let error = decode_image(&bytes, 4095, "x").unwrap_err();
        assert_eq!(error.code, "image_too_large");
    }

    #[test]
    fn garbage_is_not_an_image() {
        assert_eq!(
            decode_image(b"hello", 100, "x").unwrap_err().code,
            "invalid_image"
        );
    }

    #[test]
    fn data_urls_and_plain_base64_decode() {
        assert_eq!(decode_base64("aGk=", "x").unwrap(), b"hi");
        assert_eq!(
            decode_base64("data:image/png;base64,aGk=", "x").unwrap(),
            b"hi"
        );
        assert_eq!(decode_base64("@@", "x").unwrap_err().code, "invalid_base64");
    }
}
