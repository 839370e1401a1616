//! Parity of the Qwen3-VL processor (pixels, grids) and chat tokenisation (prompt text, token
//! ids) with the reference, on the fixtures written by
//! `tests/fixtures/qwen3_vl/make_fixtures.py`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use verdict_models::qwen3_vl::chat::{ChatTokenizer, Content, ContentPart, Message};
use verdict_models::qwen3_vl::processor::{load_image, smart_resize, ImageProcessor};

const CONFIGS: [&str; 2] = ["tiny_a", "tiny_b"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3_vl")
}

fn reference(config: &str) -> (Value, HashMap<String, Tensor>) {
    let dir = fixtures().join(config);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let tensors =
        candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
    (meta, tensors)
}

/// Messages of `reference.json` (transformers' format) as our message type.
fn messages(sample: &Value) -> Vec<Message> {
    sample["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let content = match &m["content"] {
                Value::String(text) => Content::Text(text.clone()),
                Value::Array(parts) => Content::Parts(
                    parts
                        .iter()
                        .map(|p| match p["type"].as_str().unwrap() {
                            "image" => ContentPart::Image,
                            "text" => ContentPart::Text {
                                text: p["text"].as_str().unwrap().to_string(),
                            },
                            other => panic!("unexpected part type {other}"),
                        })
                        .collect(),
                ),
                other => panic!("unexpected content {other}"),
            };
            Message {
                role: m["role"].as_str().unwrap().to_string(),
                content,
            }
        })
        .collect()
}

fn images(sample: &Value) -> Vec<image::RgbImage> {
    sample["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| load_image(&fixtures().join("images").join(name.as_str().unwrap())).unwrap())
        .collect()
}

fn ids(tensor: &Tensor) -> Vec<u32> {
    tensor
        .flatten_all()
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as u32)
        .collect()
}

fn grids(tensor: &Tensor) -> Vec<[usize; 3]> {
    tensor
        .to_vec2::<i64>()
        .unwrap()
        .into_iter()
        .map(|row| [row[0] as usize, row[1] as usize, row[2] as usize])
        .collect()
}

#[test]
fn smart_resize_matches_reference_cases() {
    let cases: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("smart_resize_cases.json")).unwrap(),
    )
    .unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let get = |key: &str| case[key].as_u64().unwrap();
        let result = smart_resize(
            get("height") as usize,
            get("width") as usize,
            get("factor") as usize,
            get("min_pixels"),
            get("max_pixels"),
        );
        match case.get("resized") {
            Some(resized) => {
                let expected = (
                    resized[0].as_u64().unwrap() as usize,
                    resized[1].as_u64().unwrap() as usize,
                );
                assert_eq!(result.unwrap(), expected, "{case}");
            }
            None => {
                let err = result.expect_err(&format!("{case} should fail"));
                assert!(
                    err.to_string()
                        .contains("aspect ratio must be smaller than 200"),
                    "{err}"
                );
            }
        }
    }
}

#[test]
fn pixel_values_and_grids_are_identical() {
    for config in CONFIGS {
        let (meta, refs) = reference(config);
        let processor = ImageProcessor::from_dir(&fixtures().join(config)).unwrap();
        for sample in meta["samples"].as_array().unwrap() {
            let name = sample["name"].as_str().unwrap();
            let images = images(sample);
            let out = processor.preprocess(&images).unwrap();
            if images.is_empty() {
                assert_eq!(out.n_patches(), 0);
                assert!(!refs.contains_key(&format!("{name}.pixel_values")));
                continue;
            }
            let expected = &refs[&format!("{name}.pixel_values")];
            assert_eq!(
                out.grid_thw,
                grids(&refs[&format!("{name}.image_grid_thw")]),
                "{config}/{name} grid"
            );
            assert_eq!(
                expected.dims(),
                &[out.n_patches(), out.patch_dim],
                "{config}/{name} shape"
            );
            let expected: Vec<f32> = expected.flatten_all().unwrap().to_vec1().unwrap();
            let mismatches = expected
                .iter()
                .zip(&out.values)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                mismatches,
                0,
                "{config}/{name}: {mismatches} of {} pixel values differ",
                expected.len()
            );
            let tensor = out.to_tensor(&Device::Cpu).unwrap();
            assert_eq!(tensor.dims(), &[out.n_patches(), out.patch_dim]);
        }
    }
}

#[test]
fn batched_images_keep_order() {
    for config in CONFIGS {
        let (meta, refs) = reference(config);
        let processor = ImageProcessor::from_dir(&fixtures().join(config)).unwrap();
        let all: Vec<_> = meta["samples"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(images)
            .collect();
        let out = processor.preprocess(&all).unwrap();
        assert_eq!(
            out.grid_thw,
            grids(&refs["batch.image_grid_thw"]),
            "{config}"
        );
    }
}

#[test]
fn prompts_and_token_ids_are_identical() {
    for config in CONFIGS {
        let (meta, refs) = reference(config);
        let dir = fixtures().join(config);
        let chat = ChatTokenizer::from_dir(&dir).unwrap();
        let processor = ImageProcessor::from_dir(&dir).unwrap();
        for sample in meta["samples"].as_array().unwrap() {
            let name = sample["name"].as_str().unwrap();
            let prompt = chat.render(&messages(sample), true).unwrap();
            assert_eq!(
                prompt,
                sample["prompt"].as_str().unwrap(),
                "{config}/{name} prompt text"
            );
            let pixels = processor.preprocess(&images(sample)).unwrap();
            let counts: Vec<usize> = pixels
                .grid_thw
                .iter()
                .map(|&g| processor.num_image_tokens(g))
                .collect();
            let input_ids = chat.encode_prompt(&prompt, &counts).unwrap();
            assert_eq!(
                input_ids,
                ids(&refs[&format!("{name}.input_ids")]),
                "{config}/{name} input ids"
            );
        }
    }
}

#[test]
fn labels_and_generations_round_trip() {
    for config in CONFIGS {
        let (meta, _) = reference(config);
        let chat = ChatTokenizer::from_dir(&fixtures().join(config)).unwrap();
        for (label, expected) in meta["labels"]
            .as_array()
            .unwrap()
            .iter()
            .zip(meta["label_token_ids"].as_array().unwrap())
        {
            let expected: Vec<u32> = expected
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(
                chat.encode_continuation(label.as_str().unwrap()).unwrap(),
                expected,
                "{config} label {label}"
            );
        }
        for sample in meta["samples"].as_array().unwrap() {
            let generated: Vec<u32> = sample["generated_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            // Ids beyond the tokenizer (padded embedding rows) have no text in either library.
            if generated
                .iter()
                .all(|&id| chat.tokenizer().id_to_token(id).is_some())
            {
                assert_eq!(
                    chat.decode(&generated, false).unwrap(),
                    sample["generated_text"].as_str().unwrap()
                );
            }
        }
    }
}

#[test]
fn special_token_ids_match_config() {
    for config in CONFIGS {
        let (meta, _) = reference(config);
        let chat = ChatTokenizer::from_dir(&fixtures().join(config)).unwrap();
        for (token, id) in meta["special_token_ids"].as_object().unwrap() {
            assert_eq!(
                chat.token_id(token),
                Some(id.as_u64().unwrap() as u32),
                "{config} {token}"
            );
        }
        let vision = chat.vision_tokens();
        assert_eq!(
            vision.image_pad,
            meta["special_token_ids"]["<|image_pad|>"].as_u64().unwrap() as u32
        );
    }
}

#[test]
fn placeholder_count_mismatch_is_an_error() {
    let chat = ChatTokenizer::from_dir(&fixtures().join("tiny_a")).unwrap();
    let prompt = chat
        .render(&[Message::user_with_images(2, "two?")], true)
        .unwrap();
    assert_eq!(prompt.matches("<|image_pad|>").count(), 2);
    let err = chat.encode_prompt(&prompt, &[4]).unwrap_err();
    assert!(
        err.to_string()
            .contains("2 image placeholders but 1 images"),
        "{err}"
    );
}

#[test]
fn preprocessor_builds_the_reference_batches() {
    use verdict_models::qwen3_vl::inputs::Preprocessor;
    for config in CONFIGS {
        let (meta, refs) = reference(config);
        let pre = Preprocessor::from_dir(&fixtures().join(config)).unwrap();
        let special = &meta["special_token_ids"];
        let id = |token: &str| special[token].as_u64().unwrap() as u32;
        assert_eq!(pre.stop_tokens(), &[id("<|im_end|>"), id("<|endoftext|>")]);
        assert_eq!(
            pre.pad_token(),
            meta["batch"]["pad_token_id"].as_u64().unwrap() as u32
        );

        let mut prompts = Vec::new();
        for sample in meta["samples"].as_array().unwrap() {
            let name = sample["name"].as_str().unwrap();
            let batch = pre
                .prompt(&messages(sample), &images(sample), &Device::Cpu)
                .unwrap();
            assert_eq!(
                batch.input_ids[0],
                ids(&refs[&format!("{name}.input_ids")]),
                "{config}/{name}"
            );
            match &batch.pixel_values {
                Some(pixels) => {
                    let expected = &refs[&format!("{name}.pixel_values")];
                    let diff = (pixels - expected)
                        .unwrap()
                        .abs()
                        .unwrap()
                        .max_all()
                        .unwrap();
                    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
                }
                None => assert!(sample["images"].as_array().unwrap().is_empty()),
            }
            prompts.push((messages(sample), images(sample)));
        }

        let batch = pre.batch(&prompts, &Device::Cpu).unwrap();
        let expected_ids = refs["batch.input_ids"].to_vec2::<i64>().unwrap();
        let expected_mask = refs["batch.attention_mask"].to_vec2::<i64>().unwrap();
        for (row, (ids_row, mask_row)) in expected_ids.iter().zip(&expected_mask).enumerate() {
            let ids_row: Vec<u32> = ids_row.iter().map(|&v| v as u32).collect();
            let mask_row: Vec<bool> = mask_row.iter().map(|&v| v == 1).collect();
            assert_eq!(batch.input_ids[row], ids_row, "{config} batch row {row}");
            assert_eq!(
                batch.attention_mask.as_ref().unwrap()[row],
                mask_row,
                "{config} batch mask {row}"
            );
        }
        assert_eq!(batch.image_grid_thw, grids(&refs["batch.image_grid_thw"]));

        let labels: Vec<String> = meta["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        let expected: Vec<Vec<u32>> = meta["label_token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ids| {
                ids.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect();
        assert_eq!(pre.label_token_ids(&labels).unwrap(), expected);
    }
}

/// Largest difference in 8-bit levels between our decoded RGB image and the reference's, and
/// the number of differing values.
fn rgb_difference(case: &str, refs: &HashMap<String, Tensor>) -> (u8, usize) {
    let ext = if case == "case_jpeg" { "jpg" } else { "png" };
    let ours = load_image(&fixtures().join("images").join(format!("{case}.{ext}"))).unwrap();
    let expected = &refs[&format!("{case}.rgb")];
    let (height, width) = (expected.dims()[0], expected.dims()[1]);
    assert_eq!(ours.dimensions(), (width as u32, height as u32), "{case}");
    let expected: Vec<u8> = expected.flatten_all().unwrap().to_vec1().unwrap();
    let diffs: Vec<u8> = expected
        .iter()
        .zip(ours.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .collect();
    (
        diffs.iter().copied().max().unwrap_or(0),
        diffs.iter().filter(|&&d| d > 0).count(),
    )
}

fn case_pixels(case: &str, processor: &ImageProcessor) -> Vec<f32> {
    let ext = if case == "case_jpeg" { "jpg" } else { "png" };
    let image = load_image(&fixtures().join("images").join(format!("{case}.{ext}"))).unwrap();
    processor.preprocess(&[image]).unwrap().values
}

#[test]
fn alpha_and_grayscale_png_decode_like_the_reference() {
    let refs =
        candle_core::safetensors::load(fixtures().join("image_cases.safetensors"), &Device::Cpu)
            .unwrap();
    let processor = ImageProcessor::from_dir(&fixtures().join("tiny_a")).unwrap();
    for case in ["case_rgba", "case_gray"] {
        assert_eq!(
            rgb_difference(case, &refs),
            (0, 0),
            "{case}: decoded RGB differs"
        );
        let expected: Vec<f32> = refs[&format!("{case}.pixel_values")]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(case_pixels(case, &processor), expected, "{case}");
    }
}

/// JPEG decoders differ (IDCT, chroma upsampling): the `image` crate's decoder and the
/// reference's libjpeg give values a few levels apart on a 4:2:0 file. This bounds the gap so
/// a regression (wrong colour conversion, orientation) still fails.
#[test]
fn jpeg_decodes_within_a_few_levels_of_the_reference() {
    let refs =
        candle_core::safetensors::load(fixtures().join("image_cases.safetensors"), &Device::Cpu)
            .unwrap();
    let processor = ImageProcessor::from_dir(&fixtures().join("tiny_a")).unwrap();
    let (max_levels, _) = rgb_difference("case_jpeg", &refs);
    assert!(
        max_levels <= 6,
        "JPEG decode differs by {max_levels} levels"
    );
    let expected: Vec<f32> = refs["case_jpeg.pixel_values"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let ours = case_pixels("case_jpeg", &processor);
    assert_eq!(ours.len(), expected.len());
    let max = expected
        .iter()
        .zip(&ours)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max <= 6.0 / 127.5 + 1e-6,
        "normalised pixel difference {max}"
    );
}
