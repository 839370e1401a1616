//! `verdict ontology` and `verdict classify-image` end to end on the example ontology with the
//! tiny Qwen3-VL checkpoint: worksheets -> knowledge questions -> SFT mix -> evaluation with a
//! model card -> one labelled image.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn verdict() -> Command {
    Command::cargo_bin("verdict").expect("verdict binary")
}

fn stdout(command: &mut Command) -> String {
    let output = command.output().expect("run");
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[test]
fn example_runs_end_to_end_with_the_tiny_model() {
    let spec = repo().join("examples/ontology/ontology.toml");
    let task = repo().join("examples/ontology/task.toml");
    let work = tempfile::tempdir().unwrap();
    let sheets = work.path().join("worksheets");
    let ki = work.path().join("ki");
    let sft = work.path().join("sft");

    let out = stdout(
        verdict()
            .args(["ontology", "check"])
            .arg(&spec)
            .arg("--task")
            .arg(&task),
    );
    assert!(out.contains("Area (14): NumberSense, Counting"), "{out}");
    assert!(out.contains("matches the ontology"), "{out}");

    stdout(
        verdict()
            .args(["ontology", "worksheets", "--count", "10", "--out"])
            .arg(&sheets),
    );
    assert!(sheets.join("sheet-0000/sheet.png").is_file());

    let out = stdout(
        verdict()
            .args(["ontology", "ki"])
            .arg(&spec)
            .arg("--out")
            .arg(&ki),
    );
    assert!(out.contains("definition"), "{out}");
    let counts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ki.join("counts.json")).unwrap()).unwrap();
    let train_total: u64 = counts["counts"]["train"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        train_total as usize,
        read_jsonl(&ki.join("train.jsonl")).len()
    );

    stdout(
        verdict()
            .args(["ontology", "sft"])
            .arg(&spec)
            .arg("--data")
            .arg(&sheets)
            .arg("--ki")
            .arg(&ki)
            .arg("--out")
            .arg(&sft),
    );
    let images = read_jsonl(&sft.join("images_train.jsonl"));
    let mixed = read_jsonl(&sft.join("train.jsonl"));
    // One knowledge question per training image (mix.ki_per_image = 1).
    assert_eq!(mixed.len(), 2 * images.len());
    let first = images.first().expect("training images");
    let answer = first["label"].as_str().unwrap();
    assert!(answer.starts_with("{\"Area\": ["), "{answer}");
    // Targets follow the ancestors-implied policy.
    if answer.contains("\"Counting\"") {
        assert!(answer.contains("\"NumberSense\""), "{answer}");
    }

    // A short fine-tuning run of the tiny checkpoint on the mix, merged into a checkpoint.
    let tiny = repo().join("crates/verdict-models/tests/fixtures/qwen3_vl/tiny_a");
    let trained = work.path().join("train");
    let out = stdout(
        verdict()
            .args(["ontology", "train", "--base"])
            .arg(&tiny)
            .arg("--sft")
            .arg(&sft)
            .arg("--out")
            .arg(&trained)
            .args(["--epochs", "1", "--max-rows", "4", "--merge"]),
    );
    assert!(out.contains("merged checkpoint"), "{out}");
    let model = trained.join("merged");
    assert!(model.join("config.json").is_file());
    let eval = work.path().join("eval");
    let out = stdout(
        verdict()
            .args(["ontology", "eval"])
            .arg(&model)
            .arg("--ontology")
            .arg(&spec)
            .arg("--data")
            .arg(&sheets)
            .arg("--out")
            .arg(&eval)
            .args(["--all", "--card", "--ki"])
            .arg(&ki),
    );
    assert!(out.contains("10 samples"), "{out}");
    let predictions = read_jsonl(&eval.join("predictions.jsonl"));
    assert_eq!(predictions.len(), 10);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eval.join("metrics.json")).unwrap()).unwrap();
    for dimension in ["Area", "Scope", "Ability"] {
        assert!(
            metrics["dimensions"][dimension]["metrics"]["micro_f1"].is_number(),
            "{metrics}"
        );
    }
    let card = std::fs::read_to_string(model.join("README.md")).unwrap();
    assert!(card.contains("| version | 1.0.0 |"), "{card}");
    assert!(card.contains("ancestors-implied"), "{card}");
    assert!(
        card.contains("knowledge-infusion questions (train)"),
        "{card}"
    );
    assert!(card.contains("## Intended use"), "{card}");

    let out = stdout(
        verdict()
            .arg("classify-image")
            .arg(&model)
            .arg(sheets.join("sheet-0001/sheet.png"))
            .arg("--ontology")
            .arg(&spec),
    );
    let value: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON answer");
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["Area", "Scope", "Ability"]);
}

#[test]
fn malformed_ontology_error_names_file_and_line() {
    let bad = repo().join("crates/verdict-ontology/tests/fixtures/malformed/syntax_error.ttl");
    let output = verdict()
        .args(["ontology", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("syntax_error.ttl:7:"), "{stderr}");
}
