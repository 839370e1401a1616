//! Cache file names: `sha1(url)` in hex plus the URL path's extension, `.jpg` when it has none.
//!
//! Names depend only on the URL, so two machines (or the older Python tooling, which uses the
//! same rule) agree on where an image lives without a lookup table.

use sha1::{Digest, Sha1};

/// The extension of the URL's path (without the dot), if it is a plausible file extension:
/// 1 to 5 ASCII letters or digits. Query strings and fragments are ignored.
pub fn url_extension(url: &str) -> Option<String> {
    let path = match url::Url::parse(url) {
        Ok(parsed) => parsed.path().to_string(),
        Err(_) => url.split(['?', '#']).next().unwrap_or(url).to_string(),
    };
    let last = path.rsplit('/').next()?;
    let (stem, extension) = last.rsplit_once('.')?;
    let plausible = !stem.is_empty()
        && (1..=5).contains(&extension.len())
        && extension.chars().all(|c| c.is_ascii_alphanumeric());
    plausible.then(|| extension.to_string())
}

/// `sha1(url)` + `.` + extension (fallback `jpg`).
pub fn cache_file_name(url: &str) -> String {
    let digest = hex::encode(Sha1::digest(url.as_bytes()));
    let extension = url_extension(url).unwrap_or_else(|| "jpg".to_string());
    format!("{digest}.{extension}")
}

/// Whether `name` looks like a cache file name (used to refuse foreign zip entries).
pub(crate) fn is_cache_file_name(name: &str) -> bool {
    match name.split_once('.') {
        Some((digest, extension)) => {
            digest.len() == 40
                && digest.bytes().all(|b| b.is_ascii_hexdigit())
                && (1..=5).contains(&extension.len())
                && extension.chars().all(|c| c.is_ascii_alphanumeric())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_is_sha1_of_url_plus_extension() {
        // sha1("abc") is a published test vector.
        let url = "abc";
        assert!(cache_file_name(url).starts_with("a9993e364706816aba3e25717850c26c9cd0d89d"));
        let name = cache_file_name("https://example.invalid/a/b/photo.PNG?w=200#x");
        assert!(name.ends_with(".PNG"), "{name}");
        assert!(is_cache_file_name(&name));
    }

    #[test]
    fn missing_or_odd_extension_falls_back_to_jpg() {
        for url in [
            "https://example.invalid/image",
            "https://example.invalid/dir.v2/image",
            "https://example.invalid/image.verylongext",
            "https://example.invalid/.hidden",
            "https://example.invalid/",
        ] {
            assert!(cache_file_name(url).ends_with(".jpg"), "{url}");
        }
        assert!(!is_cache_file_name("../etc/passwd"));
        assert!(!is_cache_file_name("abc.jpg"));
    }
}
