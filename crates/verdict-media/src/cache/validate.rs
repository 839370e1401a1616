//! Is this body an image? Content type and magic bytes, plus a cheap completeness check.
//!
//! Servers happily answer an image URL with an HTML error page (status 200) or cut a body
//! short; neither may enter the cache, where it would poison every later run.

/// Formats the cache accepts, recognised by their leading bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Gif,
    Webp,
    Bmp,
}

/// Why a body is not accepted as an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageProblem {
    /// The server said it is not an image (e.g. `text/html`).
    NotImageContentType(String),
    /// The bytes are not any known image format.
    NotImage(String),
    /// A known format whose end marker is missing: the body was cut short.
    Truncated(ImageFormat),
}

impl std::fmt::Display for ImageProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageProblem::NotImageContentType(content_type) => {
                write!(f, "served as `{content_type}`, not an image")
            }
            ImageProblem::NotImage(what) => write!(f, "body is not an image: {what}"),
            ImageProblem::Truncated(format) => {
                write!(f, "truncated {format:?} (end marker missing)")
            }
        }
    }
}

/// The image format of `bytes`, from its magic number.
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::Webp)
    } else if bytes.starts_with(b"BM") && bytes.len() >= 26 {
        Some(ImageFormat::Bmp)
    } else {
        None
    }
}

/// Content types that can carry an image: `image/*`, or the generic binary types some CDNs
/// use. Anything else (HTML, JSON, plain text) is refused before looking at the bytes.
fn content_type_allows_image(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.is_empty()
        || essence.starts_with("image/")
        || essence == "application/octet-stream"
        || essence == "binary/octet-stream"
}

/// Accepts `bytes` as a complete image, or says why not.
pub fn check_image(bytes: &[u8], content_type: Option<&str>) -> Result<ImageFormat, ImageProblem> {
    if let Some(content_type) = content_type {
        if !content_type_allows_image(content_type) {
            return Err(ImageProblem::NotImageContentType(content_type.to_string()));
        }
    }
    let Some(format) = sniff(bytes) else {
        return Err(ImageProblem::NotImage(describe(bytes)));
    };
    if !complete(format, bytes) {
        return Err(ImageProblem::Truncated(format));
    }
    Ok(format)
}

/// JPEG ends with EOI (`FF D9`) and PNG with its `IEND` chunk; encoders may append a few
/// padding bytes, so the marker is searched in the tail rather than at the very end.
fn complete(format: ImageFormat, bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    match format {
        ImageFormat::Jpeg => tail.windows(2).any(|w| w == [0xFF, 0xD9]),
        ImageFormat::Png => tail.windows(4).any(|w| w == b"IEND"),
        ImageFormat::Webp => {
            // RIFF size field + 8 header bytes is the file length.
            let declared = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
            bytes.len() >= declared.saturating_add(8)
        }
        ImageFormat::Gif => tail.contains(&0x3B),
        ImageFormat::Bmp => {
            let declared = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
            bytes.len() >= declared
        }
    }
}

fn describe(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(64)];
    let text = String::from_utf8_lossy(head);
    let trimmed = text.trim_start().to_ascii_lowercase();
    if bytes.is_empty() {
        "empty body".to_string()
    } else if trimmed.starts_with("<!doctype html") || trimmed.starts_with("<html") {
        "an HTML page".to_string()
    } else if trimmed.starts_with('<') || trimmed.starts_with('{') {
        "markup or JSON text".to_string()
    } else {
        format!(
            "unknown format (first bytes {})",
            hex::encode(&head[..head.len().min(8)])
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes() -> Vec<u8> {
        let mut out = Vec::new();
        let img = image::RgbImage::from_pixel(4, 3, image::Rgb([10, 20, 30]));
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    fn jpeg_bytes() -> Vec<u8> {
        let mut out = Vec::new();
        let img = image::RgbImage::from_pixel(8, 8, image::Rgb([200, 20, 30]));
        img.write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        out
    }

    #[test]
    fn real_images_pass() {
        assert_eq!(
            check_image(&png_bytes(), Some("image/png")),
            Ok(ImageFormat::Png)
        );
        assert_eq!(check_image(&jpeg_bytes(), None), Ok(ImageFormat::Jpeg));
        assert_eq!(
            check_image(&jpeg_bytes(), Some("application/octet-stream")),
            Ok(ImageFormat::Jpeg)
        );
    }

    #[test]
    fn html_is_refused_by_type_and_by_bytes() {
        let html = b"<!DOCTYPE html><html><body>Not found</body></html>";
        assert_eq!(
            check_image(html, Some("text/html; charset=utf-8")),
            Err(ImageProblem::NotImageContentType(
                "text/html; charset=utf-8".into()
            ))
        );
        let err = check_image(html, Some("image/jpeg")).unwrap_err();
        assert_eq!(err.to_string(), "body is not an image: an HTML page");
        assert!(check_image(b"", None).is_err());
    }

    #[test]
    fn cut_bodies_are_truncated() {
        let jpeg = jpeg_bytes();
        assert_eq!(
            check_image(&jpeg[..jpeg.len() / 2], None),
            Err(ImageProblem::Truncated(ImageFormat::Jpeg))
        );
        let png = png_bytes();
        assert_eq!(
            check_image(&png[..png.len() - 20], None),
            Err(ImageProblem::Truncated(ImageFormat::Png))
        );
    }
}
