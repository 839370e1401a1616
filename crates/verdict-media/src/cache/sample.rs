//! Manifest samples and the cache: which URLs to download, and where a sample's image is.
//!
//! A sample's image is its first `images` entry: a URL served from the cache, or a local path
//! relative to the manifest's folder. When it is missing the sample stays in the data set and
//! falls back to a text-only prompt; `image_present` records which case applies.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use verdict_core::manifest::is_url;
use verdict_core::Sample;

use super::download::ImageCache;
use super::validate::sniff;

/// Every distinct image URL of the samples, in first-seen order.
pub fn image_urls(samples: &[Sample]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    samples
        .iter()
        .flat_map(|s| s.images.iter())
        .filter(|reference| is_url(reference))
        .filter(|url| seen.insert(url.as_str()))
        .cloned()
        .collect()
}

/// The image file of `sample`, if it has one that exists and is an image. Local references
/// are resolved against `base` (the manifest's folder).
pub fn sample_image(cache: &ImageCache, sample: &Sample, base: &Path) -> Option<PathBuf> {
    let reference = sample.images.first()?;
    if is_url(reference) {
        return cache.lookup(reference);
    }
    let path = Sample::resolve(base, reference);
    let mut head = [0u8; 16];
    let mut file = std::fs::File::open(&path).ok()?;
    let read = std::io::Read::read(&mut file, &mut head).ok()?;
    sniff(&head[..read]).map(|_| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_distinct_and_local_paths_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Sample::new("a");
        a.images = vec!["https://x.invalid/1.jpg".into(), "local.png".into()];
        let mut b = Sample::new("b");
        b.images = vec![
            "https://x.invalid/1.jpg".into(),
            "https://x.invalid/2".into(),
        ];
        assert_eq!(
            image_urls(&[a.clone(), b]),
            ["https://x.invalid/1.jpg", "https://x.invalid/2"]
        );

        let cache = ImageCache::new(dir.path().join("cache"));
        assert_eq!(sample_image(&cache, &a, dir.path()), None, "not downloaded");
        let mut c = Sample::new("c");
        c.images = vec!["local.png".into()];
        assert_eq!(sample_image(&cache, &c, dir.path()), None, "file missing");
        std::fs::write(dir.path().join("local.png"), b"\x89PNG\r\n\x1a\nrest").unwrap();
        assert_eq!(
            sample_image(&cache, &c, dir.path()),
            Some(dir.path().join("local.png"))
        );
    }
}
