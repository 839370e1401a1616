//! `verdict run` with checkpoint candidates: the tiny Qwen3-VL and CLIP fixtures scored on
//! the sealed benchmark, the winner recorded, the Qwen3-VL candidate fine-tuned with LoRA and
//! evaluated beside them, and a second run that does no work.

#[path = "common/stages.rs"]
mod stages;

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use image::{Rgb, RgbImage};
use serde_json::Value;
use stages::{stage_statuses, status_of};

fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
        .canonicalize()
        .unwrap()
}

/// 12 red and 12 blue squares on grey, one folder per label, in a fresh task folder.
fn colour_task(rank: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (label, rgb) in [("red", [210u8, 30, 30]), ("blue", [30, 40, 220])] {
        let folder = dir.path().join("images").join(label);
        fs::create_dir_all(&folder).unwrap();
        for i in 0..12u32 {
            let mut image = RgbImage::from_pixel(32, 32, Rgb([120, 120, 120]));
            for y in 4 + i % 3..28 {
                for x in 4..28 - i % 4 {
                    image.put_pixel(x, y, Rgb(rgb));
                }
            }
            image
                .save(folder.join(format!("{label}-{i:02}.png")))
                .unwrap();
        }
    }
    write_task(dir.path(), rank);
    let task = dir.path().join("task.toml");
    (dir, task)
}

fn write_task(dir: &Path, rank: usize) {
    let qwen = fixture("verdict-models/tests/fixtures/qwen3_vl/tiny_a");
    let clip = fixture("verdict-encoders/tests/fixtures/clip/tiny");
    let text = format!(
        r#"name = "colours"
kind = "single_label"
seed = 7
inputs = ["image"]

[[labels]]
name = "red"
description = "a red square"

[[labels]]
name = "blue"
description = "a blue square"

[[sources]]
kind = "folder_tree"
path = "images"
extensions = ["png"]

[split]
benchmark_size = 6
train = 0.6
val = 0.2
test = 0.2

[[candidates]]
name = "tiny-qwen"
kind = "qwen3_vl"
path = "{qwen}"

[[candidates]]
name = "tiny-clip"
kind = "clip"
path = "{clip}"

[finetune]
enabled = true
candidate = "tiny-qwen"
epochs = 2
lr = 0.01
rank = {rank}
max_rows = 10
"#,
        qwen = qwen.display(),
        clip = clip.display(),
    );
    fs::write(dir.join("task.toml"), text).unwrap();
}

fn statuses(task: &Path) -> Vec<(String, String)> {
    let output = Command::cargo_bin("verdict")
        .unwrap()
        .arg("run")
        .arg(task)
        .arg("--data-dir")
        .arg(task.parent().unwrap().join("store"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "verdict run failed:\n{stderr}");
    stage_statuses(&stderr)
}

#[test]
fn candidates_are_compared_chosen_fine_tuned_and_cached() {
    let (dir, task) = colour_task(4);
    let work = dir.path().join("work");
    let first = statuses(&task);
    for stage in [
        "import",
        "split",
        "candidates",
        "select",
        "finetune",
        "evaluate",
    ] {
        assert!(status_of(&first, stage).starts_with("ran"), "{first:?}");
    }

    // Both candidates scored the same benchmark samples; the choice is the best macro-F1.
    let selection: Value =
        serde_json::from_str(&fs::read_to_string(work.join("report/selection.json")).unwrap())
            .unwrap();
    assert_eq!(selection["split"], "benchmark");
    assert_eq!(selection["samples"], 6);
    let rows = selection["rows"].as_array().unwrap();
    let runs: Vec<&str> = rows.iter().map(|r| r[0].as_str().unwrap()).collect();
    assert_eq!(runs, ["tiny-qwen", "tiny-clip", "tiny-clip-head"]);
    let best = rows
        .iter()
        .map(|r| r[3].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    let chosen = rows
        .iter()
        .find(|r| r[0] == selection["chosen"])
        .expect("the chosen run is one of the rows");
    assert_eq!(chosen[3].as_f64().unwrap(), best);
    assert!(work.join("report/selection/report.html").is_file());

    // The fine-tuned model has its adapter, merged checkpoint and predictions, and the final
    // report compares it with both candidates on test and benchmark.
    assert!(work
        .join("runs/finetuned/train/adapter/adapter_config.json")
        .is_file());
    assert!(work
        .join("runs/finetuned/train/merged/config.json")
        .is_file());
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(work.join("report/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["chosen"], "finetuned");
    assert!(work.join("package/colours-report.zip").is_file());
    for split in ["test", "benchmark"] {
        let models: Vec<&str> = summary["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r[1] == split)
            .map(|r| r[0].as_str().unwrap())
            .collect();
        assert_eq!(
            models,
            ["tiny-qwen", "tiny-clip", "tiny-clip-head", "finetuned"],
            "{split}"
        );
    }

    // Nothing changed: nothing runs.
    let second = statuses(&task);
    for stage in [
        "import",
        "split",
        "candidates",
        "select",
        "finetune",
        "evaluate",
    ] {
        assert!(
            status_of(&second, stage).starts_with("up to date"),
            "{second:?}"
        );
    }

    // A fine-tuning setting changed (the LoRA rank): the candidates and the selection stay.
    write_task(dir.path(), 8);
    let third = statuses(&task);
    for stage in ["candidates", "select"] {
        assert!(
            status_of(&third, stage).starts_with("up to date"),
            "{third:?}"
        );
    }
    for stage in ["finetune", "evaluate"] {
        assert!(status_of(&third, stage).starts_with("ran"), "{third:?}");
    }
}

#[test]
fn a_candidate_without_a_checkpoint_is_refused_by_name() {
    let (dir, task) = colour_task(4);
    let text = fs::read_to_string(&task).unwrap();
    let missing = dir.path().join("no-such-model");
    let text = text.replace(
        &fixture("verdict-encoders/tests/fixtures/clip/tiny")
            .display()
            .to_string(),
        &missing.display().to_string(),
    );
    fs::write(&task, text).unwrap();
    // Run from the task's folder with a bare file name: paths still resolve.
    let output = Command::cargo_bin("verdict")
        .unwrap()
        .current_dir(dir.path())
        .args(["run", "task.toml", "--data-dir", "store"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tiny-clip") && stderr.contains("no config.json"),
        "{stderr}"
    );
    // The stages before it kept their outputs.
    assert!(dir.path().join("work/data/splits.jsonl").is_file());
}
