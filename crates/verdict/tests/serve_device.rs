//! `--device` and `--precision` of `verdict predict` and `verdict serve` on the tiny Qwen3-VL
//! checkpoint: the CPU works in every precision, and a build without the `cuda` feature
//! refuses CUDA names up front (before loading anything or opening a socket) with a message
//! saying how to get a build that accepts them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;

fn verdict() -> Command {
    let mut command = Command::cargo_bin("verdict").unwrap();
    command
        .env_remove("RUST_LOG")
        .env_remove("VERDICT_API_TOKEN")
        .env("NO_COLOR", "1")
        // A service that wrongly started would otherwise never return.
        .timeout(Duration::from_secs(120));
    command
}

fn tiny_a() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

fn predict(extra: &[&str]) -> Command {
    let mut command = verdict();
    command
        .arg("predict")
        .arg("--model")
        .arg(tiny_a())
        .args(["--labels", "sfw,nsfw", "--text", "a cat on a sofa"])
        .args(extra);
    command
}

/// `(label, probability)` rows of `verdict predict`'s table.
fn probabilities(stdout: &[u8]) -> Vec<(String, f64)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let label = fields.next()?.to_string();
            let probability = fields.next()?.parse().ok()?;
            Some((label, probability))
        })
        .collect()
}

#[test]
fn predict_runs_on_the_cpu_in_every_precision() {
    let output = predict(&["--device", "cpu"]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let f32_rows = probabilities(&output.stdout);
    assert_eq!(f32_rows.len(), 2, "{f32_rows:?}");
    let default = predict(&[]).output().unwrap();
    assert_eq!(
        probabilities(&default.stdout),
        f32_rows,
        "auto is f32 on the CPU"
    );
    let bf16 = predict(&["--device", "cpu", "--precision", "bf16"])
        .output()
        .unwrap();
    assert!(bf16.status.success());
    let bf16_rows = probabilities(&bf16.stdout);
    for (label, p) in &f32_rows {
        let (_, q) = bf16_rows
            .iter()
            .find(|(l, _)| l == label)
            .unwrap_or_else(|| panic!("{label} missing from {bf16_rows:?}"));
        assert!((p - q).abs() < 0.02, "{label}: f32 {p} vs bf16 {q}");
    }
}

#[test]
fn device_names_are_checked_before_the_model_loads() {
    // The model path does not exist: only the device check can produce these messages.
    let missing = Path::new("/nonexistent/checkpoint");
    verdict()
        .args([
            "predict", "--labels", "a,b", "--text", "x", "--device", "tpu",
        ])
        .arg("--model")
        .arg(missing)
        .assert()
        .failure()
        .stderr(predicate::str::contains("unknown device `tpu`"));
    if cfg!(feature = "cuda") {
        return;
    }
    verdict()
        .args([
            "predict", "--labels", "a,b", "--text", "x", "--device", "cuda",
        ])
        .arg("--model")
        .arg(missing)
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("no CUDA support")
                .and(predicate::str::contains("--features cuda")),
        );
}

#[test]
fn serve_refuses_cuda_in_a_build_without_it_before_opening_a_socket() {
    if cfg!(feature = "cuda") {
        return;
    }
    verdict()
        .arg("serve")
        .arg("--model")
        .arg(tiny_a())
        .args(["--labels", "sfw,nsfw", "--port", "0", "--device", "cuda:1"])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("device `cuda:1`")
                .and(predicate::str::contains("--features cuda")),
        )
        .stderr(predicate::str::contains("listening").not());
}
