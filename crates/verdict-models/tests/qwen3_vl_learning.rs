//! A tiny Qwen3-VL trained from scratch learns a synthetic visual task, which shows that the
//! whole forward/backward path (vision tower, DeepStack, MRoPE, decoder, head) carries
//! gradients; and a direct check that every trainable parameter receives one.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use verdict_models::nn::ops::log_softmax_last_dim;
use verdict_models::nn::LayerBuilder;
use verdict_models::qwen3_vl::generation::score_labels;
use verdict_models::qwen3_vl::{Batch, Config, Logits, Qwen3VL};

const IMAGE: usize = 32;
const PATCH: usize = 8;
const VISION_START: u32 = 1;
const VISION_END: u32 = 2;
const IMAGE_TOKEN: u32 = 3;
const QUESTION: u32 = 4;
/// Answer tokens of the four classes: a red, green, blue or yellow shape.
const ANSWERS: [u32; 4] = [10, 11, 12, 13];
const COLOURS: [[f32; 3]; 4] = [
    [0.9, 0.15, 0.1],
    [0.1, 0.8, 0.2],
    [0.1, 0.2, 0.9],
    [0.9, 0.85, 0.1],
];

fn tiny_config(tied: bool, text_layers: usize, deepstack: &[usize]) -> Config {
    let json = serde_json::json!({
        "image_token_id": IMAGE_TOKEN, "video_token_id": 5,
        "vision_start_token_id": VISION_START, "vision_end_token_id": VISION_END,
        "tie_word_embeddings": tied,
        "text_config": {
            "vocab_size": 16, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": text_layers,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}
        },
        "vision_config": {
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
            "patch_size": PATCH, "temporal_patch_size": 2, "spatial_merge_size": 2,
            "out_hidden_size": 32, "num_position_embeddings": 16, "deepstack_visual_indexes": deepstack
        }
    });
    serde_json::from_value(json).expect("valid tiny config")
}

/// A noisy grey background with one filled square or disc of the class colour at a random
/// place and size; returns RGB in [0, 1], row-major.
fn draw(class: usize, rng: &mut impl Rng) -> Vec<[f32; 3]> {
    let colour = COLOURS[class];
    let disc = rng.random_bool(0.5);
    let radius = rng.random_range(4.0..9.0f32);
    let cx = rng.random_range(radius..IMAGE as f32 - radius);
    let cy = rng.random_range(radius..IMAGE as f32 - radius);
    let mut pixels = Vec::with_capacity(IMAGE * IMAGE);
    for y in 0..IMAGE {
        for x in 0..IMAGE {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let inside = if disc {
                dx * dx + dy * dy <= radius * radius
            } else {
                dx.abs() <= radius * 0.85 && dy.abs() <= radius * 0.85
            };
            let noise = rng.random_range(0.0..0.2f32);
            pixels.push(if inside {
                colour
            } else {
                [0.45 + noise, 0.45 + noise, 0.45 + noise]
            });
        }
    }
    pixels
}

/// Patchifies like the processor: merge-block order, each row (C, T=2, P, P), normalised
/// with mean = std = 0.5.
// The channel loop indexes each pixel, not `pixels`: an iterator would not read better.
#[allow(clippy::needless_range_loop)]
fn patchify(pixels: &[[f32; 3]]) -> Vec<f32> {
    let grid = IMAGE / PATCH;
    let mut out = Vec::new();
    for block_row in 0..grid / 2 {
        for block_col in 0..grid / 2 {
            for in_row in 0..2 {
                for in_col in 0..2 {
                    let (pr, pc) = (block_row * 2 + in_row, block_col * 2 + in_col);
                    for c in 0..3 {
                        for _t in 0..2 {
                            for y in 0..PATCH {
                                for x in 0..PATCH {
                                    let p = pixels[(pr * PATCH + y) * IMAGE + pc * PATCH + x][c];
                                    out.push((p - 0.5) / 0.5);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn prompt() -> Vec<u32> {
    let tokens = (IMAGE / PATCH).pow(2) / 4;
    let mut ids = vec![VISION_START];
    ids.extend(std::iter::repeat_n(IMAGE_TOKEN, tokens));
    ids.extend([VISION_END, QUESTION]);
    ids
}

fn make_batch(classes: &[usize], rng: &mut impl Rng, device: &Device) -> Batch {
    let patch_dim = 3 * 2 * PATCH * PATCH;
    let mut values = Vec::new();
    for &class in classes {
        values.extend(patchify(&draw(class, rng)));
    }
    let rows = values.len() / patch_dim;
    let pixels = Tensor::from_vec(values, (rows, patch_dim), device).expect("pixels");
    let grid = IMAGE / PATCH;
    Batch {
        input_ids: vec![prompt(); classes.len()],
        attention_mask: None,
        pixel_values: Some(pixels),
        image_grid_thw: vec![[1, grid, grid]; classes.len()],
    }
}

/// Cross-entropy of the answer token predicted after the question token.
fn loss(model: &Qwen3VL, batch: &Batch, classes: &[usize]) -> Tensor {
    let out = model
        .forward(batch, None, Logits::Last, false)
        .expect("forward");
    let log_probs = log_softmax_last_dim(&out.logits.squeeze(1).unwrap()).unwrap();
    let targets: Vec<u32> = classes.iter().map(|&c| ANSWERS[c]).collect();
    let targets = Tensor::new(targets, log_probs.device())
        .unwrap()
        .unsqueeze(1)
        .unwrap();
    log_probs
        .gather(&targets, 1)
        .unwrap()
        .mean_all()
        .unwrap()
        .neg()
        .unwrap()
}

fn build(config: &Config, device: &Device) -> (VarMap, Qwen3VL) {
    let varmap = VarMap::new();
    let builder = LayerBuilder::new(VarBuilder::from_varmap(&varmap, DType::F32, device));
    let model = Qwen3VL::new(config, &builder).expect("build tiny model");
    (varmap, model)
}

#[test]
fn every_trainable_parameter_gets_a_gradient() {
    let device = Device::Cpu;
    // DeepStack features enter after text layer k, so with `Logits::Last` only taps injected
    // before the last layer can influence the loss; 3 text layers cover taps 0 and 1.
    for (tied, deepstack) in [(false, vec![0, 1]), (true, vec![1])] {
        let (varmap, model) = build(&tiny_config(tied, 3, &deepstack), &device);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let classes = [0, 1, 2, 3];
        let batch = make_batch(&classes, &mut rng, &device);
        let grads = loss(&model, &batch, &classes).backward().expect("backward");
        let data = varmap.data().lock().expect("varmap lock");
        assert!(data.len() > 40, "only {} parameters", data.len());
        let mut missing = Vec::new();
        for (name, var) in data.iter() {
            let total = grads
                .get(var.as_tensor())
                .map(|g| {
                    g.abs()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap()
                })
                .unwrap_or(0.0);
            if total <= 0.0 || !total.is_finite() {
                missing.push(name.clone());
            }
        }
        missing.sort();
        assert!(
            missing.is_empty(),
            "no gradient (tied = {tied}) for: {missing:?}"
        );
    }
}

#[test]
fn tiny_model_learns_shape_colours_from_scratch() {
    let device = Device::Cpu;
    let (varmap, model) = build(&tiny_config(true, 2, &[0]), &device);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let vars: Vec<Var> = varmap.all_vars();
    let params = ParamsAdamW {
        lr: 3e-3,
        weight_decay: 0.01,
        ..ParamsAdamW::default()
    };
    let mut optimiser = AdamW::new(vars, params).expect("optimiser");
    let steps = 300;
    let mut first_loss = None;
    let mut last_loss = 0.0;
    for _ in 0..steps {
        let classes: Vec<usize> = (0..16).map(|_| rng.random_range(0..4)).collect();
        let batch = make_batch(&classes, &mut rng, &device);
        let value = loss(&model, &batch, &classes);
        last_loss = value.to_scalar::<f32>().unwrap();
        first_loss.get_or_insert(last_loss);
        optimiser.backward_step(&value).expect("step");
    }
    let labels: Vec<Vec<u32>> = ANSWERS.iter().map(|&a| vec![a]).collect();
    let held_out = 100;
    let mut correct = 0;
    for i in 0..held_out {
        let class = i % 4;
        let batch = make_batch(&[class], &mut rng, &device);
        let scores = score_labels(&model, &batch, &labels).expect("label scoring");
        let best = (0..4)
            .max_by(|&a, &b| scores.probabilities[a].total_cmp(&scores.probabilities[b]))
            .unwrap();
        correct += usize::from(best == class);
    }
    let accuracy = correct as f64 / held_out as f64;
    println!(
        "loss {:?} -> {last_loss}, held-out accuracy {accuracy}",
        first_loss
    );
    assert!(
        accuracy >= 0.9,
        "held-out accuracy {accuracy} after {steps} steps (loss {last_loss})"
    );
}
