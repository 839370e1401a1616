//! Classifier candidates: zero-shot probabilities are the softmax (or sigmoid) of the model's
//! own logits against prompt-ensemble class embeddings; a head survives save and load.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use verdict_encoders::head::{HeadConfig, HeadTargets, LinearHead};
use verdict_encoders::train::data::{synthetic_shapes, ImageSource};
use verdict_encoders::transformer::l2_normalize;
use verdict_encoders::zero_shot::Scoring;
use verdict_encoders::{DualEncoderClassifier, Embedder};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .join("tiny")
}

fn images(n: usize) -> Vec<image::RgbImage> {
    synthetic_shapes(n, 32, 9)
        .into_iter()
        .map(|e| match e.image {
            ImageSource::Pixels(p) => p,
            ImageSource::Path(_) => unreachable!(),
        })
        .collect()
}

#[test]
fn zero_shot_probabilities_follow_the_prompt_ensemble() {
    for (model, scoring) in [("clip", Scoring::Softmax), ("siglip", Scoring::Sigmoid)] {
        let device = Device::Cpu;
        let labels = vec!["red".to_string(), "blue".to_string()];
        let templates = ["a {} square", "a {} circle"];
        let classifier = DualEncoderClassifier::zero_shot(
            Embedder::load(&fixture(model), &device, None).unwrap(),
            &labels,
            &["red", "blue"],
            &templates,
            scoring,
        )
        .unwrap();
        let pictures = images(3);
        let probabilities = classifier.predict_proba(&pictures).unwrap();

        // The same by hand: mean of the normalised prompt embeddings, renormalised.
        let embedder = classifier.embedder();
        let class = |label: &str| {
            let texts: Vec<String> = templates.iter().map(|t| t.replace("{}", label)).collect();
            embedder
                .embed_texts(&texts)
                .unwrap()
                .mean_keepdim(0)
                .unwrap()
        };
        let classes =
            l2_normalize(&Tensor::cat(&[class("red"), class("blue")], 0).unwrap()).unwrap();
        let logits = embedder
            .model
            .logits(&embedder.embed_images(&pictures).unwrap(), &classes)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (row, expected_logits) in probabilities.iter().zip(&logits) {
            let expected: Vec<f32> = match scoring {
                Scoring::Softmax => {
                    let max = expected_logits.iter().cloned().fold(f32::MIN, f32::max);
                    let exp: Vec<f32> = expected_logits.iter().map(|l| (l - max).exp()).collect();
                    let sum: f32 = exp.iter().sum();
                    exp.iter().map(|e| e / sum).collect()
                }
                Scoring::Sigmoid => expected_logits
                    .iter()
                    .map(|l| 1.0 / (1.0 + (-l).exp()))
                    .collect(),
            };
            for (p, e) in row.iter().zip(&expected) {
                assert!((p - e).abs() < 1e-5, "{model}: {row:?} vs {expected:?}");
            }
        }
    }
}

#[test]
fn a_fitted_head_round_trips_through_save_and_load() {
    let device = Device::Cpu;
    let embedder = Embedder::load(&fixture("clip"), &device, None).unwrap();
    let pictures = images(8);
    let labels: Vec<String> = ["red", "green", "blue", "yellow"]
        .map(String::from)
        .to_vec();
    let targets = HeadTargets::SingleLabel((0..8).map(|i| (i % 4) as u32).collect());
    let classifier = DualEncoderClassifier::fit_head(
        embedder.clone(),
        labels.clone(),
        &pictures,
        &targets,
        &HeadConfig::default(),
    )
    .unwrap();
    let before = classifier.predict_proba(&pictures).unwrap();
    for row in &before {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // Eight separable training points: the head fits them.
    let predicted: Vec<usize> = before
        .iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0
        })
        .collect();
    assert_eq!(predicted, (0..8).map(|i| i % 4).collect::<Vec<_>>());

    let dir = tempfile::tempdir().unwrap();
    let embeddings = verdict_encoders::classify::embed(&embedder, &pictures).unwrap();
    let head = LinearHead::fit(labels, &embeddings, &targets, &HeadConfig::default()).unwrap();
    head.save(dir.path()).unwrap();
    let reloaded = DualEncoderClassifier::with_head(embedder, dir.path()).unwrap();
    assert_eq!(reloaded.labels(), head.labels.as_slice());
    let after = reloaded.predict_proba(&pictures).unwrap();
    let direct = head
        .probabilities(&embeddings)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(after, direct);
}
