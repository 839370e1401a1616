//! CLIP and SigLIP against `transformers` on the tiny checkpoints written by
//! `tests/fixtures/{clip,siglip}/make_fixtures.py`: identical token ids, pixel values equal to
//! float rounding, hidden states / embeddings / logits / loss within 1e-4.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use verdict_encoders::preprocess::load_image;
use verdict_encoders::{DualEncoder, Embedder};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Reference {
    tensors: HashMap<String, Tensor>,
    texts: Vec<String>,
    images: Vec<String>,
}

fn reference(name: &str) -> Reference {
    let dir = fixture(name);
    let tensors = candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu)
        .expect("reference tensors");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let strings = |key: &str| -> Vec<String> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    Reference {
        tensors,
        texts: strings("texts"),
        images: strings("images"),
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn check(what: &str, ours: &Tensor, theirs: &Tensor, tolerance: f32) {
    let diff = max_diff(ours, theirs);
    assert!(diff <= tolerance, "{what}: max |diff| {diff} > {tolerance}");
    eprintln!("{what}: max |diff| {diff:e}");
}

fn ids(tensor: &Tensor) -> Vec<Vec<u32>> {
    tensor
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec2::<u32>()
        .unwrap()
}

fn run_parity(name: &str) {
    let device = Device::Cpu;
    let reference = reference(name);
    let r = |key: &str| {
        reference
            .tensors
            .get(key)
            .unwrap_or_else(|| panic!("{key}"))
    };
    let dir = fixture(name).join("tiny");
    let embedder = Embedder::load(&dir, &device, None).expect("load checkpoint");

    // Token ids (and the mask, for CLIP) exactly as the reference processor pads them.
    let batch = embedder.tokenizer.encode(&reference.texts).unwrap();
    assert_eq!(batch.input_ids, ids(r("input_ids")), "{name} input ids");
    match reference.tensors.get("attention_mask") {
        Some(mask) => assert_eq!(batch.attention_mask.clone().unwrap(), ids(mask)),
        None => assert!(batch.attention_mask.is_none()),
    }

    // Pixel values: same 8-bit resize/crop, then the same f32 arithmetic.
    let images: Vec<_> = reference
        .images
        .iter()
        .map(|file| load_image(&fixture(name).join("images").join(file)).unwrap())
        .collect();
    let pixels = embedder.processor.preprocess(&images, &device).unwrap();
    check(
        &format!("{name} pixel_values"),
        &pixels,
        r("pixel_values"),
        1e-6,
    );

    let (input_ids, mask) = batch.to_tensors(&device).unwrap();
    let model = &embedder.model;
    let (vision_hidden, vision_pooled, text_hidden) = match model {
        DualEncoder::Clip(m) => {
            let (vh, _) = m.vision.forward(&pixels).unwrap();
            let (th, _) = m.text.forward(&input_ids, mask.as_ref()).unwrap();
            (vh, m.image_features(&pixels).unwrap(), th)
        }
        DualEncoder::Siglip(m) => {
            let (vh, vp) = m.vision.forward(&pixels).unwrap();
            let (th, _) = m.text.forward(&input_ids, mask.as_ref()).unwrap();
            (vh, vp, th)
        }
    };
    check(
        &format!("{name} vision last_hidden_state"),
        &vision_hidden,
        r("vision_last_hidden_state"),
        1e-4,
    );
    check(
        &format!("{name} vision pooler_output"),
        &vision_pooled,
        r("vision_pooler_output"),
        1e-4,
    );
    // CLIP's reference masks padded query rows only through the causal mask; compare the real
    // tokens (padding positions are never read).
    let text_ref = r("text_last_hidden_state");
    match &batch.attention_mask {
        Some(masks) => {
            for (row, m) in masks.iter().enumerate() {
                let real = m.iter().filter(|&&v| v == 1).count();
                let ours = text_hidden.get(row).unwrap().narrow(0, 0, real).unwrap();
                let theirs = text_ref.get(row).unwrap().narrow(0, 0, real).unwrap();
                check(
                    &format!("{name} text hidden row {row}"),
                    &ours,
                    &theirs,
                    1e-4,
                );
            }
        }
        None => check(
            &format!("{name} text last_hidden_state"),
            &text_hidden,
            text_ref,
            1e-4,
        ),
    }
    check(
        &format!("{name} text pooler_output"),
        &model.text_features(&input_ids, mask.as_ref()).unwrap(),
        r("text_pooler_output"),
        1e-4,
    );

    let image_embeds = embedder.embed_images(&images).unwrap();
    let text_embeds = embedder.embed_texts(&reference.texts).unwrap();
    check(
        &format!("{name} image_embeds"),
        &image_embeds,
        r("image_embeds"),
        1e-4,
    );
    check(
        &format!("{name} text_embeds"),
        &text_embeds,
        r("text_embeds"),
        1e-4,
    );
    let logits = model.logits(&image_embeds, &text_embeds).unwrap();
    check(
        &format!("{name} logits_per_image"),
        &logits,
        r("logits_per_image"),
        1e-4,
    );

    let n = images.len();
    let loss = model
        .pair_loss(&image_embeds, &text_embeds.narrow(0, 0, n).unwrap())
        .unwrap();
    check(
        &format!("{name} loss"),
        &loss.reshape(1).unwrap(),
        r("pair_loss"),
        1e-4,
    );
}

#[test]
fn clip_matches_transformers() {
    run_parity("clip");
}

#[test]
fn siglip_matches_transformers() {
    run_parity("siglip");
}
