//! The benchmark binary on CPU with the tiny fixture checkpoint: the same code path the
//! accelerator run takes, at a size CI can afford (no timing assertions).

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use verdict_models::nn::seeded::normal;
use verdict_models::qwen3_vl::{Batch, Logits, Qwen3VL};

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

/// Three rows: vision start, 4 merged image tokens (a 4x4 patch grid), vision end, 5 text tokens.
fn write_inputs(path: &Path) -> (Vec<Vec<u32>>, Tensor) {
    let mut rows = Vec::new();
    for r in 0..3u32 {
        let mut row = vec![329u32];
        row.extend([332u32; 4]);
        row.push(330);
        row.extend((0..5).map(|i| 10 + 7 * r + i));
        rows.push(row);
    }
    let flat: Vec<i64> = rows.iter().flatten().map(|&t| t as i64).collect();
    let device = Device::Cpu;
    let pixels = normal((3 * 16, 3 * 2 * 16 * 16), 1.0, 1, &device).unwrap();
    let tensors = [
        (
            "input_ids",
            Tensor::from_vec(flat, (3, 11), &device).unwrap(),
        ),
        ("pixel_values", pixels.clone()),
        (
            "image_grid_thw",
            Tensor::new(&[[1i64, 4, 4], [1, 4, 4], [1, 4, 4]], &device).unwrap(),
        ),
        ("label_ids", Tensor::new(&[3i64, 5, 8], &device).unwrap()),
    ];
    let tensors: std::collections::HashMap<&str, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&tensors, path).unwrap();
    (rows, pixels)
}

fn bench(inputs: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_verdict-gpu-bench"))
        .arg("--model")
        .arg(tiny_model())
        .arg("--inputs")
        .arg(inputs)
        .args(["--device", "cpu", "--dtype", "f32"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn logits_match_an_in_process_forward_pass() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.safetensors");
    let (rows, pixels) = write_inputs(&inputs);
    let out = dir.path().join("logits.safetensors");
    bench(&inputs, &["logits", "--out", out.to_str().unwrap()]);
    let saved = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    let logits = &saved["logits"];
    assert_eq!(logits.dims(), &[3, 352]);
    assert_eq!(saved["label_log_probs"].dims(), &[3, 3]);

    let model = Qwen3VL::load(&tiny_model(), DType::F32, &Device::Cpu, None).unwrap();
    let batch = Batch {
        input_ids: rows,
        attention_mask: None,
        pixel_values: Some(pixels),
        image_grid_thw: vec![[1, 4, 4]; 3],
    };
    let expected = model
        .forward(&batch, None, Logits::Last, false)
        .unwrap()
        .logits
        .squeeze(1)
        .unwrap();
    let diff = (logits - expected)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-5, "logits differ by {diff}");
}

#[test]
fn scoring_and_training_report_their_measurements() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.safetensors");
    write_inputs(&inputs);
    let scores = bench(&inputs, &["score", "--batch-sizes", "2,4", "--items", "4"]);
    assert_eq!(scores.len(), 2);
    for (row, batch) in scores.iter().zip([2, 4]) {
        assert_eq!(row["batch"], batch);
        assert!(row["items_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(row["seq_len"], 11);
    }
    let train = bench(
        &inputs,
        &["train", "--rank", "4", "--batch", "2", "--steps", "5"],
    );
    let first = train[0]["first_loss"].as_f64().unwrap();
    let last = train[0]["loss"].as_f64().unwrap();
    assert!(first.is_finite() && last.is_finite());
    assert!(last <= first + 1e-3, "loss rose: {first} -> {last}");
    assert!(train[0]["trainable_parameters"].as_u64().unwrap() > 0);
}
