//! `verdict encoders train`, `verdict embed` and `verdict search` as processes, on the tiny
//! CLIP checkpoint of the dual-encoder parity fixtures.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use image::{Rgb, RgbImage};
use serde_json::Value;

fn clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict-encoders/tests/fixtures/clip/tiny")
}

fn verdict() -> Command {
    Command::cargo_bin("verdict").expect("verdict binary")
}

/// Solid-colour 40x40 images, one per colour.
fn write_images(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, rgb) in [
        ("red", [220u8, 30, 30]),
        ("green", [30, 200, 40]),
        ("blue", [40, 50, 230]),
    ] {
        let mut image = RgbImage::from_pixel(40, 40, Rgb([90, 90, 90]));
        for y in 8..32 {
            for x in 8..32 {
                image.put_pixel(x, y, Rgb(rgb));
            }
        }
        image.save(dir.join(format!("{name}.png"))).unwrap();
    }
}

fn hits(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

#[test]
fn train_embed_and_search_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("train");
    let assert = verdict()
        .args([
            "encoders",
            "train",
            "--synthetic",
            "32",
            "--scenario",
            "dual_lora",
        ])
        .args(["--epochs", "2", "--batch-size", "16", "--model"])
        .arg(clip())
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let table = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert!(
        table.contains("scenario") && table.contains("dual_lora"),
        "{table}"
    );
    let checkpoint = out.join("dual_lora/epoch-2");
    assert!(checkpoint.join("adapter/adapter_config.json").exists());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("dual_lora/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["scenario"], "dual_lora");
    assert_eq!(report["epoch_losses"].as_array().unwrap().len(), 2);

    let images = dir.path().join("images");
    write_images(&images);
    let vectors = dir.path().join("vectors.parquet");
    verdict()
        .arg("embed")
        .arg(&images)
        .arg("--model")
        .arg(clip())
        .arg("--finetuned")
        .arg(&checkpoint)
        .arg("--out")
        .arg(&vectors)
        .assert()
        .success();
    assert!(vectors.exists());

    // An image is its own nearest neighbour, in base and fine-tuned space.
    for finetuned in [false, true] {
        let mut command = verdict();
        command
            .arg("search")
            .arg(&vectors)
            .arg("--model")
            .arg(clip())
            .arg("--image")
            .arg(images.join("green.png"))
            .args(["-k", "2"]);
        if finetuned {
            command.arg("--finetuned").arg(&checkpoint);
        }
        let output = command.assert().success().get_output().stdout.clone();
        let found = hits(&output);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0]["image_id"], "green");
        assert!((found[0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-4);
        assert!(found[0]["score"].as_f64() >= found[1]["score"].as_f64());
    }

    let output = verdict()
        .arg("search")
        .arg(&vectors)
        .arg("--model")
        .arg(clip())
        .args(["--text", "a red square", "-k", "3", "--index", "hnsw"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(hits(&output).len(), 3);
}

#[test]
fn search_refuses_a_vector_file_of_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    write_images(&images);
    let vectors = dir.path().join("vectors.parquet");
    verdict()
        .arg("embed")
        .arg(&images)
        .arg("--model")
        .arg(clip())
        .arg("--out")
        .arg(&vectors)
        .assert()
        .success();
    let siglip = clip().join("../../siglip/tiny");
    let assert = verdict()
        .arg("search")
        .arg(&vectors)
        .arg("--model")
        .arg(siglip)
        .args(["--text", "a red square"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(stderr.contains("dimensions"), "{stderr}");
}

/// With `verdict media shards` run, `verdict encoders train TASK` reads its pairs from the
/// WebDataset shards instead of the manifest.
#[test]
fn task_training_reads_webdataset_shards_when_present() {
    let dir = tempfile::tempdir().unwrap();
    for (label, rgb) in [("red", [220u8, 30, 30]), ("blue", [40, 50, 230])] {
        let folder = dir.path().join("images").join(label);
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..6u32 {
            let mut image = RgbImage::from_pixel(40, 40, Rgb([90, 90, 90]));
            for y in 6 + i..34 {
                for x in 6..34 - i {
                    image.put_pixel(x, y, Rgb(rgb));
                }
            }
            image.save(folder.join(format!("{label}-{i}.png"))).unwrap();
        }
    }
    let task = dir.path().join("task.toml");
    std::fs::write(
        &task,
        r#"name = "colours"
kind = "single_label"
inputs = ["image"]
labels = [{ name = "red" }, { name = "blue" }]
candidates = []

[[sources]]
kind = "folder_tree"
path = "images"
extensions = ["png"]

[split]
train = 0.5
val = 0.5
test = 0.0
"#,
    )
    .unwrap();
    let store = dir.path().join("store");
    verdict()
        .arg("run")
        .arg(&task)
        .args(["--until", "split", "--data-dir"])
        .arg(&store)
        .assert()
        .success();
    verdict()
        .args(["media", "shards"])
        .arg(&task)
        .arg("--data-dir")
        .arg(&store)
        .assert()
        .success();
    let out = dir.path().join("encoders");
    let assert = verdict()
        .args(["encoders", "train"])
        .arg(&task)
        .arg("--model")
        .arg(clip())
        .args(["--scenario", "linear_probe", "--epochs", "1", "--out"])
        .arg(&out)
        .arg("--data-dir")
        .arg(&store)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(
        stderr.contains("train: reading pairs from the WebDataset shards")
            && stderr.contains("val: reading pairs from the WebDataset shards"),
        "{stderr}"
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("linear_probe/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["scenario"], "linear_probe");
}
