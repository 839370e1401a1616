//! `verdict train` end to end on the tiny Qwen3-VL checkpoint: SFT data, a short run, the
//! adapter, a merged checkpoint, and `--resume` of a finished run.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tiny_a() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

/// A task whose split files already exist (as `verdict data split` leaves them).
fn workspace(dir: &Path) -> PathBuf {
    let task = dir.join("task.toml");
    std::fs::write(
        &task,
        "name = \"colour\"\nkind = \"single_label\"\n[[labels]]\nname = \"red\"\n[[labels]]\nname = \"blue\"\n",
    )
    .unwrap();
    let split = dir.join("work/data/split");
    std::fs::create_dir_all(&split).unwrap();
    for (name, count) in [("train", 4), ("val", 2)] {
        let mut lines = String::new();
        for i in 0..count {
            let label = ["red", "blue"][i % 2];
            let colour = if i % 2 == 0 {
                [220, 30, 20]
            } else {
                [20, 40, 220]
            };
            let image = dir.join(format!("{name}-{i}.png"));
            image::RgbImage::from_pixel(64, 64, image::Rgb(colour))
                .save(&image)
                .unwrap();
            let images = if i == 1 {
                // One sample's image is gone: the conversation carries the unavailable note.
                vec![
                    image.display().to_string(),
                    dir.join("missing.png").display().to_string(),
                ]
            } else {
                vec![image.display().to_string()]
            };
            let line = serde_json::json!({
                "sample_id": format!("{name}-{i}"), "label": label, "images": images, "split": name,
            });
            lines.push_str(&format!("{line}\n"));
        }
        std::fs::write(split.join(format!("{name}.jsonl")), lines).unwrap();
    }
    task
}

fn train(task: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_verdict"))
        .arg("train")
        .arg(task)
        .arg("--base")
        .arg(tiny_a())
        .args([
            "--epochs",
            "1",
            "--micro-batch",
            "2",
            "--grad-accumulation",
            "1",
            "--rank",
            "4",
            "--lr",
            "1e-3",
        ])
        .args(extra)
        .output()
        .expect("run verdict")
}

#[test]
fn train_writes_adapter_metrics_and_merged_model_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let task = workspace(dir.path());
    let output = train(&task, &["--merge", "--max-rows", "4"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("before fine-tuning: macro-F1"), "{stderr}");
    let out = dir.path().join("work/train");
    for file in [
        "data/train.jsonl",
        "data/val.jsonl",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "best/adapter_model.safetensors",
        "merged/model.safetensors",
        "merged/config.json",
        "merged/tokenizer.json",
        "metrics.jsonl",
        "summary.json",
        "train_config.json",
    ] {
        assert!(out.join(file).exists(), "{file} missing\n{stderr}");
    }
    let train_data = std::fs::read_to_string(out.join("data/train.jsonl")).unwrap();
    assert!(train_data.contains("[image unavailable]"), "{train_data}");
    let steps = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"kind\":\"train\""))
        .count();
    assert_eq!(steps, 2);

    // Starting over the finished run is refused; resuming it finishes at once.
    let again = train(&task, &[]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--resume")
            || String::from_utf8_lossy(&again.stderr).contains("resume")
    );
    let resumed = train(&task, &["--resume", "--max-rows", "4"]);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(stderr.contains("Completed after 2 of 2 steps"), "{stderr}");
}
