//! Parity of the Rust Qwen3-VL with `transformers` on tiny random checkpoints.
//!
//! Fixtures: `tests/fixtures/qwen3_vl/` (see its README; regenerate with `make_fixtures.py`).
//! Inputs (`input_ids`, `pixel_values`, `image_grid_thw`) are taken from the reference so the
//! model is checked on its own; the processor has its own tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use verdict_models::qwen3_vl::generation::{
    generate, generate_batch, score_labels, GenerationConfig,
};
use verdict_models::qwen3_vl::{Batch, Logits, Qwen3VL};

const SAMPLES: [&str; 3] = ["one_image", "two_images", "text_only"];

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/qwen3_vl")
        .join(name)
}

struct Fixture {
    model: Qwen3VL,
    tensors: HashMap<String, Tensor>,
    json: serde_json::Value,
}

impl Fixture {
    fn load(name: &str) -> Self {
        let dir = fixture_dir(name);
        let model = Qwen3VL::load(&dir, DType::F32, &Device::Cpu, None).expect("load checkpoint");
        let tensors =
            candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu)
                .expect("reference tensors");
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("reference.json")).expect("reference.json"),
        )
        .expect("valid reference.json");
        Self {
            model,
            tensors,
            json,
        }
    }

    fn tensor(&self, key: &str) -> &Tensor {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("reference tensor {key} missing"))
    }

    fn ids(&self, key: &str) -> Vec<Vec<u32>> {
        self.tensor(key)
            .to_vec2::<i64>()
            .expect("i64 matrix")
            .into_iter()
            .map(|row| row.into_iter().map(|v| v as u32).collect())
            .collect()
    }

    fn grid(&self, key: &str) -> Vec<[usize; 3]> {
        match self.tensors.get(key) {
            Some(t) => t
                .to_vec2::<i64>()
                .expect("grid")
                .into_iter()
                .map(|r| [r[0] as usize, r[1] as usize, r[2] as usize])
                .collect(),
            None => Vec::new(),
        }
    }

    fn sample_batch(&self, sample: &str) -> Batch {
        let ids = self.ids(&format!("{sample}.input_ids")).remove(0);
        let pixels = self.tensors.get(&format!("{sample}.pixel_values")).cloned();
        Batch::single(ids, pixels, self.grid(&format!("{sample}.image_grid_thw")))
    }

    fn stop_tokens(&self) -> Vec<u32> {
        let special = &self.json["special_token_ids"];
        vec![
            special["<|im_end|>"].as_u64().expect("im_end id") as u32,
            special["<|endoftext|>"].as_u64().expect("endoftext id") as u32,
        ]
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn check_single_forward(name: &str) {
    let fx = Fixture::load(name);
    let layers = fx.model.config().text_config.num_hidden_layers;
    for sample in SAMPLES {
        let batch = fx.sample_batch(sample);
        let out = fx
            .model
            .forward(&batch, None, Logits::All, true)
            .expect("forward");
        let positions = out
            .positions
            .to_tensor(&Device::Cpu)
            .unwrap()
            .to_dtype(DType::I64)
            .unwrap();
        let reference = fx.tensor(&format!("{sample}.position_ids"));
        assert_eq!(
            positions.flatten_all().unwrap().to_vec1::<i64>().unwrap(),
            reference.flatten_all().unwrap().to_vec1::<i64>().unwrap(),
            "{name}/{sample}: position ids"
        );
        if let Some(vision) = &out.vision {
            let d = max_diff(&vision.embeds, fx.tensor(&format!("{sample}.image_embeds")));
            assert!(d <= 1e-4, "{name}/{sample}: image embeds differ by {d}");
            for (k, feature) in vision.deepstack.iter().enumerate() {
                let d = max_diff(feature, fx.tensor(&format!("{sample}.deepstack.{k}")));
                assert!(d <= 1e-4, "{name}/{sample}: deepstack {k} differs by {d}");
            }
        }
        assert_eq!(out.hidden_states.len(), layers + 1);
        for (i, hidden) in out.hidden_states.iter().enumerate() {
            let d = max_diff(hidden, fx.tensor(&format!("{sample}.hidden_states.{i}")));
            assert!(
                d <= 1e-4,
                "{name}/{sample}: hidden state {i} differs by {d}"
            );
        }
        let d = max_diff(&out.logits, fx.tensor(&format!("{sample}.logits")));
        println!("{name}/{sample}: logits max |diff| = {d:e}");
        assert!(d <= 1e-4, "{name}/{sample}: logits differ by {d}");
    }
}

fn check_generation_and_scoring(name: &str) {
    let fx = Fixture::load(name);
    let labels: Vec<Vec<u32>> = serde_json::from_value(fx.json["label_token_ids"].clone()).unwrap();
    for sample in SAMPLES {
        let batch = fx.sample_batch(sample);
        let expected = fx.ids(&format!("{sample}.generated_ids")).remove(0);
        let config = GenerationConfig {
            max_new_tokens: expected.len(),
            stop_tokens: fx.stop_tokens(),
            ..GenerationConfig::default()
        };
        let generation = generate(&fx.model, &batch, &config, None).expect("generate");
        assert_eq!(
            generation.tokens,
            expected[..generation.tokens.len()],
            "{name}/{sample}: greedy"
        );
        assert_eq!(
            generation.tokens.len(),
            expected.len(),
            "{name}/{sample}: greedy length"
        );

        let scores = score_labels(&fx.model, &batch, &labels).expect("score labels");
        let ref_logp = fx
            .tensor(&format!("{sample}.label_logprobs"))
            .to_vec1::<f32>()
            .unwrap();
        let ref_prob = fx
            .tensor(&format!("{sample}.label_probs"))
            .to_vec1::<f32>()
            .unwrap();
        for i in 0..labels.len() {
            let dl = (scores.log_probs[i] - ref_logp[i] as f64).abs();
            let dp = (scores.probabilities[i] - ref_prob[i] as f64).abs();
            assert!(
                dl <= 1e-4,
                "{name}/{sample}: label {i} log-prob differs by {dl}"
            );
            assert!(
                dp <= 1e-4,
                "{name}/{sample}: label {i} probability differs by {dp}"
            );
        }
        let total: f64 = scores.probabilities.iter().sum();
        assert!((total - 1.0).abs() < 1e-9);
    }
}

fn padded_batch(fx: &Fixture) -> Batch {
    let mask: Vec<Vec<bool>> = fx
        .ids("batch.attention_mask")
        .into_iter()
        .map(|row| row.into_iter().map(|v| v != 0).collect())
        .collect();
    let pixels = Tensor::cat(
        &[
            fx.tensor("one_image.pixel_values"),
            fx.tensor("two_images.pixel_values"),
        ],
        0,
    )
    .unwrap();
    Batch {
        input_ids: fx.ids("batch.input_ids"),
        attention_mask: Some(mask),
        pixel_values: Some(pixels),
        image_grid_thw: fx.grid("batch.image_grid_thw"),
    }
}

fn check_batched(name: &str) {
    let fx = Fixture::load(name);
    let batch = padded_batch(&fx);
    let out = fx
        .model
        .forward(&batch, None, Logits::All, false)
        .expect("batched forward");
    let positions = out
        .positions
        .to_tensor(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap();
    assert_eq!(
        positions.flatten_all().unwrap().to_vec1::<i64>().unwrap(),
        fx.tensor("batch.position_ids")
            .flatten_all()
            .unwrap()
            .to_vec1::<i64>()
            .unwrap(),
        "{name}: batched position ids"
    );
    let mask = batch.attention_mask.as_ref().unwrap();
    for (row, sample) in SAMPLES.iter().enumerate() {
        let start = mask[row].iter().position(|v| *v).unwrap();
        let len = mask[row].len() - start;
        let ours = out.logits.get(row).unwrap().narrow(0, start, len).unwrap();
        let reference = fx
            .tensor("batch.logits")
            .get(row)
            .unwrap()
            .narrow(0, start, len)
            .unwrap();
        let d = max_diff(&ours, &reference);
        assert!(
            d <= 1e-4,
            "{name}: batched row {row} logits differ from reference by {d}"
        );
        let single = fx
            .model
            .forward(&fx.sample_batch(sample), None, Logits::All, false)
            .unwrap();
        let d = max_diff(&ours, &single.logits.squeeze(0).unwrap());
        assert!(
            d <= 1e-4,
            "{name}: batched row {row} differs from the unbatched pass by {d}"
        );
    }
    let expected = fx.ids("batch.generated_ids");
    let config = GenerationConfig {
        max_new_tokens: expected[0].len(),
        stop_tokens: fx.stop_tokens(),
        ..GenerationConfig::default()
    };
    let generations = generate_batch(&fx.model, &batch, &config).expect("batched generation");
    for (row, generation) in generations.iter().enumerate() {
        let n = generation.tokens.len();
        assert_eq!(
            generation.tokens,
            expected[row][..n],
            "{name}: batched greedy row {row}"
        );
    }
}

#[test]
fn tiny_a_forward_matches_reference() {
    check_single_forward("tiny_a");
}

#[test]
fn tiny_b_forward_matches_reference() {
    check_single_forward("tiny_b");
}

#[test]
fn tiny_a_generation_and_label_scoring_match_reference() {
    check_generation_and_scoring("tiny_a");
}

#[test]
fn tiny_b_generation_and_label_scoring_match_reference() {
    check_generation_and_scoring("tiny_b");
}

#[test]
fn tiny_a_batched_padded_matches_reference() {
    check_batched("tiny_a");
}

#[test]
fn tiny_b_batched_padded_matches_reference() {
    check_batched("tiny_b");
}

#[test]
fn half_precision_loads_and_agrees_roughly() {
    let fx = Fixture::load("tiny_b");
    let dir = fixture_dir("tiny_b");
    for dtype in [DType::BF16, DType::F16] {
        let model = Qwen3VL::load(&dir, dtype, &Device::Cpu, None).expect("load in half precision");
        let out = model
            .forward(&fx.sample_batch("one_image"), None, Logits::All, false)
            .unwrap();
        assert_eq!(out.logits.dtype(), dtype);
        let d = max_diff(&out.logits, fx.tensor("one_image.logits"));
        assert!(d < 0.1, "{dtype:?} logits differ from f32 reference by {d}");
    }
}
