//! End to end on the fixture checkpoints: image files + text through the checkpoint's own
//! processor and chat template, then label scoring and constrained JSON answers.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use verdict_models::qwen3_vl::classify::{Classifier, Query};
use verdict_models::qwen3_vl::processor::load_image;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3_vl")
}

/// Rebuilds a reference sample's query from `reference.json`.
fn query(sample: &serde_json::Value) -> Query {
    let mut query = Query::default();
    for message in sample["messages"].as_array().expect("messages") {
        match (&message["role"], &message["content"]) {
            (role, serde_json::Value::String(text)) if role == "system" => {
                query.system = Some(text.clone())
            }
            (_, serde_json::Value::Array(parts)) => {
                for part in parts {
                    match part["type"].as_str() {
                        Some("image") => {
                            let file = part["image"].as_str().expect("image name");
                            query.images.push(
                                load_image(&fixtures().join("images").join(file)).expect("image"),
                            );
                        }
                        Some("text") => {
                            query.text = part["text"].as_str().expect("text").to_string()
                        }
                        other => panic!("unexpected content part {other:?}"),
                    }
                }
            }
            other => panic!("unexpected message {other:?}"),
        }
    }
    query
}

#[test]
fn label_probabilities_from_image_files_match_reference() {
    for name in ["tiny_a", "tiny_b"] {
        let dir = fixtures().join(name);
        let classifier = Classifier::load(&dir, DType::F32, &Device::Cpu).expect("classifier");
        let reference: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();
        let labels: Vec<String> = serde_json::from_value(reference["labels"].clone()).unwrap();
        for sample in reference["samples"].as_array().unwrap() {
            let scores = classifier.score(&query(sample), &labels).expect("score");
            let expected: Vec<f64> = serde_json::from_value(sample["label_probs"].clone()).unwrap();
            for (ours, theirs) in scores.probabilities.iter().zip(&expected) {
                assert!(
                    (ours - theirs).abs() <= 1e-4,
                    "{name}/{}: probabilities {:?} vs reference {expected:?}",
                    sample["name"],
                    scores.probabilities
                );
            }
        }
    }
}

#[test]
fn constrained_json_answer_is_always_valid() {
    let dir = fixtures().join("tiny_b");
    let classifier = Classifier::load(&dir, DType::F32, &Device::Cpu).expect("classifier");
    let labels: Vec<String> = ["nsfw", "sfw", "grey_area"].map(String::from).to_vec();
    let query = Query {
        system: Some("Moderate content.".into()),
        text: "Reply in JSON.".into(),
        images: vec![load_image(&fixtures().join("images/img_a.png")).unwrap()],
    };
    // A random model would almost never write valid JSON on its own; the constraint makes
    // every answer parse, with the label first and from the label set.
    let answer = classifier
        .answer_json(&query, &labels, 24)
        .expect("constrained answer");
    assert!(answer.text.starts_with("{\"label\""), "{}", answer.text);
    assert!(labels.contains(&answer.parsed.label));
    assert!((0.0..=1.0).contains(&answer.parsed.confidence));
    // The cap is checked before each character, so a multi-byte one may end just past it.
    assert!(
        answer.parsed.reason.len() <= 24 + 3,
        "{:?} / {:?}",
        answer.text,
        answer.parsed
    );
}
