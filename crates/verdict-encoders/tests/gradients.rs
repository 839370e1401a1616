//! Every parameter of both models receives a gradient from the training losses (no fused op
//! without a backward pass silently cuts a branch off).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use verdict_encoders::preprocess::ImageProcessor;
use verdict_encoders::tokenize::{Padding, TextTokenizer};
use verdict_encoders::train::data::{synthetic_shapes, ImageSource};
use verdict_encoders::transformer::l2_normalize;
use verdict_encoders::DualEncoder;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .join("tiny")
}

fn check_all_parameters_get_gradients(name: &str, padding: Padding, pad_id: u32) {
    let device = Device::Cpu;
    let dir = fixture(name);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let model = DualEncoder::from_var_builder(&dir, vb, None).unwrap();
    let processor = ImageProcessor::from_dir(&dir).unwrap();
    let tokenizer = TextTokenizer::from_dir(&dir, 16, padding, pad_id).unwrap();
    let examples = synthetic_shapes(4, 32, 5);
    let images: Vec<_> = examples
        .iter()
        .map(|e| match &e.image {
            ImageSource::Pixels(p) => p.clone(),
            ImageSource::Path(_) => unreachable!(),
        })
        .collect();
    let captions: Vec<&str> = examples.iter().map(|e| e.caption.as_str()).collect();
    let pixels = processor.preprocess(&images, &device).unwrap();
    let (ids, mask) = tokenizer
        .encode(&captions)
        .unwrap()
        .to_tensors(&device)
        .unwrap();
    let image_embeddings = l2_normalize(&model.image_features(&pixels).unwrap()).unwrap();
    let text_embeddings = l2_normalize(&model.text_features(&ids, mask.as_ref()).unwrap()).unwrap();
    let loss = model
        .pair_loss(&image_embeddings, &text_embeddings)
        .unwrap();
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    assert!(data.len() > 30, "{name}: only {} parameters", data.len());
    let mut missing = Vec::new();
    for (key, var) in data.iter() {
        let ok = grads
            .get(var.as_tensor())
            .map(|g| {
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            })
            .unwrap_or(false);
        if !ok {
            missing.push(key.clone());
        }
    }
    assert!(missing.is_empty(), "{name}: no gradient for {missing:?}");
}

#[test]
fn clip_parameters_all_receive_gradients() {
    check_all_parameters_get_gradients("clip", Padding::Longest, 412);
}

#[test]
fn siglip_parameters_all_receive_gradients() {
    check_all_parameters_get_gradients("siglip", Padding::MaxLength, 1);
}
