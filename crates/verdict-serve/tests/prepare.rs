//! Building a padded Qwen3-VL batch on several threads gives exactly the batch the
//! checkpoint's preprocessor builds item after item: same token rows and padding, same image
//! order and the same pixel patches.

use std::path::PathBuf;

use verdict_models::qwen3_vl::inputs::Preprocessor;
use verdict_models::Device;
use verdict_serve::{ClassifyInput, LabelSet, ServedModel};

fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

fn item(i: u8) -> ClassifyInput {
    let images = (0..i % 3)
        .map(|k| {
            image::RgbImage::from_fn(24 + 8 * u32::from(k), 40, |x, y| {
                image::Rgb([i.wrapping_mul(40), (x * 5) as u8, (y * 3) as u8])
            })
        })
        .collect();
    ClassifyInput {
        text: (i % 4 != 1).then(|| format!("item {i} {}", "word ".repeat(i as usize))),
        images,
        reason: false,
    }
}

#[test]
fn threaded_preparation_matches_the_sequential_preprocessor() {
    let labels = LabelSet {
        names: vec!["sfw".into(), "nsfw".into()],
        descriptions: Vec::new(),
    };
    let model = ServedModel::load(&tiny_dir(), Some(labels)).expect("tiny model");
    let ServedModel::Qwen(engine) = &model else {
        unreachable!()
    };
    // Enough items for several threads with several items each.
    let inputs: Vec<ClassifyInput> = (0..9).map(item).collect();
    let refs: Vec<&ClassifyInput> = inputs.iter().collect();
    let threaded = engine.prepare_batch(&refs).expect("threaded batch");
    let prompts: Vec<_> = inputs
        .iter()
        .map(|input| {
            let text = engine.instruction(input.text.as_deref(), false);
            (
                Preprocessor::classification_messages(None, input.images.len(), &text),
                input.images.clone(),
            )
        })
        .collect();
    let sequential = engine
        .classifier()
        .preprocessor()
        .batch(&prompts, &Device::Cpu)
        .expect("sequential batch");
    assert_eq!(threaded.input_ids, sequential.input_ids);
    assert_eq!(threaded.attention_mask, sequential.attention_mask);
    assert_eq!(threaded.image_grid_thw, sequential.image_grid_thw);
    assert_eq!(
        threaded.image_grid_thw.len(),
        9,
        "0+1+2 images, three times"
    );
    let pixels = |batch: &verdict_models::qwen3_vl::Batch| {
        batch
            .pixel_values
            .as_ref()
            .expect("pixels")
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values")
    };
    assert_eq!(pixels(&threaded), pixels(&sequential));
}

#[test]
fn prepared_items_score_like_a_whole_batch_and_bad_items_fail_alone() {
    let labels = LabelSet {
        names: vec!["sfw".into(), "nsfw".into()],
        descriptions: Vec::new(),
    };
    let model = ServedModel::load(&tiny_dir(), Some(labels)).expect("tiny model");
    let mut inputs: Vec<ClassifyInput> = (0..5).map(item).collect();
    // Nothing to classify, and an image too thin for the processor (aspect ratio over 200).
    inputs.insert(1, ClassifyInput::default());
    inputs.insert(
        4,
        ClassifyInput {
            text: Some("thin".into()),
            images: vec![image::RgbImage::new(250, 1)],
            reason: false,
        },
    );
    let whole = model.classify_batch(&inputs);
    let prepared = model.prepare_all(inputs.clone());
    for (i, expected_error) in [(1, "nothing to classify"), (4, "aspect ratio")] {
        for result in [whole[i].as_ref().err(), prepared[i].as_ref().err()] {
            match result {
                Some(verdict_serve::ModelError::Input(message)) => {
                    assert!(message.contains(expected_error), "item {i}: {message}")
                }
                other => panic!("item {i}: expected an input error, got {other:?}"),
            }
        }
    }
    let ready: Vec<_> = prepared.into_iter().filter_map(Result::ok).collect();
    assert_eq!(ready.len(), 5);
    let scored = model.classify_prepared(ready);
    let valid: Vec<_> = whole.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(valid.len(), 5);
    for (served, batch) in scored.iter().zip(valid) {
        assert_eq!(
            &served.as_ref().expect("scored").probabilities,
            &batch.probabilities
        );
    }
}
