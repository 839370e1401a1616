//! Loading a model on a chosen device and precision: the precision reaches a Qwen3-VL
//! model's weights, a bf16 model scores like the f32 one within bf16's resolution, and a text
//! baseline loads on the CPU. (CI has no GPU: CUDA placements are covered by the refusal of
//! a build without the `cuda` feature, in the unit tests.)

mod common;

use std::path::PathBuf;

use common::spam_baseline;
use verdict_models::{DType, Device};
use verdict_serve::{ClassifyInput, LabelSet, ModelKind, Placement, Precision, ServedModel};

fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

fn labels() -> LabelSet {
    LabelSet {
        names: vec!["sfw".into(), "nsfw".into()],
        descriptions: Vec::new(),
    }
}

fn on_cpu(precision: Precision) -> Placement {
    Placement {
        device: Device::Cpu,
        precision,
    }
}

fn load(precision: Precision) -> ServedModel {
    ServedModel::load_on(&tiny_dir(), Some(labels()), None, &on_cpu(precision)).expect("tiny")
}

fn weights_dtype(model: &ServedModel) -> DType {
    match model {
        ServedModel::Qwen(engine) => engine.classifier().model().dtype(),
        other => panic!("expected a Qwen3-VL model, got {other:?}"),
    }
}

#[test]
fn precision_reaches_the_weights_and_bf16_scores_like_f32() {
    let auto = load(Precision::Auto);
    assert_eq!(weights_dtype(&auto), DType::F32, "auto is f32 on the CPU");
    let bf16 = load(Precision::Bf16);
    assert_eq!(weights_dtype(&bf16), DType::BF16);
    let inputs: Vec<ClassifyInput> = (0..3u8)
        .map(|i| ClassifyInput {
            text: Some(format!("item {i}: a picture of a cat")),
            images: vec![image::RgbImage::from_pixel(
                32,
                32,
                image::Rgb([40 * i, 200, 90]),
            )],
            reason: false,
        })
        .collect();
    let reference = auto.classify_batch(&inputs);
    let reduced = bf16.classify_batch(&inputs);
    for (i, (a, b)) in reference.iter().zip(&reduced).enumerate() {
        let (a, b) = (
            &a.as_ref().expect("f32").probabilities,
            &b.as_ref().expect("bf16").probabilities,
        );
        assert_eq!(a.len(), 2);
        for (x, y) in a.iter().zip(b) {
            // bf16 keeps 8 bits of mantissa: these label probabilities move by under 1e-2.
            assert!((x - y).abs() < 0.02, "item {i}: f32 {a:?} vs bf16 {b:?}");
        }
    }
}

#[test]
fn a_text_baseline_loads_on_the_cpu() {
    let dir = tempfile::tempdir().expect("temporary folder");
    spam_baseline()
        .save(dir.path())
        .expect("saving the baseline");
    let model =
        ServedModel::load_on(dir.path(), None, None, &on_cpu(Precision::Bf16)).expect("baseline");
    assert_eq!(model.kind(), ModelKind::TextBaseline);
    let answer = model.classify_batch(&[ClassifyInput {
        text: Some("win money now".into()),
        ..ClassifyInput::default()
    }]);
    let probabilities = &answer[0].as_ref().expect("scored").probabilities;
    assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-9);
}
