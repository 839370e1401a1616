//! What the load generator sends: SpamAssassin mails to a TF-IDF baseline trained on the rest,
//! or synthetic items (text of a chosen length, one image of a chosen size) to a model
//! directory. Every item exists twice, as the JSON body the server gets and as the model
//! input the offline run gets, with the same pixels (the offline image is the decoded
//! upload).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use base64::Engine as _;
use serde_json::json;
use verdict_baseline::{Baseline, BaselineConfig, Targets};
use verdict_serve::{ClassifyInput, LabelSet, Placement, ServedModel};

/// Distinct synthetic items; requests cycle through them.
pub const SYNTHETIC_ITEMS: u32 = 256;

pub struct Workload {
    pub name: String,
    pub model: ServedModel,
    /// Request bodies and the same items as model inputs.
    pub bodies: Vec<serde_json::Value>,
    pub inputs: Vec<ClassifyInput>,
}

/// Encoding of the synthetic images as uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageFormat {
    Jpeg,
    Png,
}

/// Shape of the synthetic items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemShape {
    /// Side of the square image, in pixels.
    pub image_size: u32,
    pub image_format: ImageFormat,
    /// Approximate words (about one token each) of the item text; `None`: a short question.
    pub text_tokens: Option<usize>,
}

pub fn spamassassin(dir: &Path) -> anyhow::Result<Workload> {
    let data = dir.join("package/data");
    let mut mails = Vec::new();
    for (folder, label) in [
        ("easy-ham-1", "ham"),
        ("easy-ham-2", "ham"),
        ("hard-ham-1", "ham"),
        ("spam-1", "spam"),
        ("spam-2", "spam"),
    ] {
        let path = data.join(folder);
        if !path.exists() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file)?;
            mails.push((
                String::from_utf8_lossy(&bytes).into_owned(),
                label.to_string(),
            ));
        }
    }
    if mails.is_empty() {
        bail!("no mails under {} (run scripts/fetch-data)", data.display());
    }
    // Every fifth mail is held out for the load; the rest trains the model.
    let (mut train_texts, mut train_labels, mut held_out) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (text, label)) in mails.into_iter().enumerate() {
        if i % 5 == 0 {
            held_out.push(text);
        } else {
            train_texts.push(text);
            train_labels.push(label);
        }
    }
    let started = Instant::now();
    let (baseline, _) = Baseline::fit(
        &train_texts,
        &Targets::SingleLabel(train_labels),
        None,
        &BaselineConfig::default(),
    )?;
    eprintln!(
        "trained TF-IDF baseline on {} mails in {:.1} s",
        train_texts.len(),
        started.elapsed().as_secs_f64()
    );
    let bodies = held_out.iter().map(|t| json!({"text": t})).collect();
    let inputs = held_out
        .into_iter()
        .map(|text| ClassifyInput {
            text: Some(text),
            ..ClassifyInput::default()
        })
        .collect();
    Ok(Workload {
        name: "TF-IDF + logistic regression baseline, SpamAssassin (trained on 80%, 20% sent)"
            .into(),
        model: ServedModel::Baseline(Box::new(baseline)),
        bodies,
        inputs,
    })
}

/// Everyday words, most of them one token (with their leading space) in Qwen's vocabulary.
const WORDS: [&str; 48] = [
    "the", "photo", "shows", "a", "person", "in", "a", "room", "with", "some", "people", "near",
    "the", "table", "and", "a", "dog", "on", "the", "floor", "is", "this", "post", "safe", "for",
    "work", "or", "not", "please", "check", "the", "picture", "and", "its", "text", "before", "we",
    "show", "it", "to", "our", "users", "on", "the", "home", "page", "today", "thanks",
];

/// Item `i`'s text: a short question, or words added while `count` (the served model's
/// tokenizer, or a word count) stays within `tokens`.
pub fn synthetic_text(i: u32, tokens: Option<usize>, count: &dyn Fn(&str) -> usize) -> String {
    let Some(tokens) = tokens else {
        return format!("item {i}: is this content safe to show?");
    };
    let mut text = format!("item {i}:");
    for k in 0.. {
        let word = WORDS[(i as usize * 7 + k * 13) % WORDS.len()];
        let longer = format!("{text} {word}");
        if count(&longer) > tokens {
            break;
        }
        text = longer;
    }
    text
}

fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Item `i`'s image: a colour gradient with a little deterministic noise, so that it encodes
/// like a photo (JPEG of a flat colour would be unrealistically small and fast to decode).
pub fn synthetic_image(i: u32, size: u32) -> image::RgbImage {
    let size = size.max(1);
    let base = [
        (i * 37 % 256) as i32,
        (i * 91 % 256) as i32,
        (i * 13 % 256) as i32,
    ];
    let mut state = 0x9E37_79B9u32 ^ i.wrapping_mul(0x85EB_CA6B);
    image::RgbImage::from_fn(size, size, |x, y| {
        // xorshift: cheap, deterministic noise.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 24) as i32 - 12;
        let ramp = ((x + y) * 255 / (2 * size)) as i32;
        image::Rgb(base.map(|c| ((c + ramp) / 2 + noise).clamp(0, 255) as u8))
    })
}

/// Encodes `image` as uploaded and decodes it back, so server and offline runs see the same
/// pixels (JPEG is lossy).
pub fn encode(
    image: &image::RgbImage,
    format: ImageFormat,
) -> anyhow::Result<(Vec<u8>, image::RgbImage)> {
    let mut bytes = Vec::new();
    let dynamic = image::DynamicImage::ImageRgb8(image.clone());
    match format {
        ImageFormat::Png => {
            dynamic.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)?
        }
        ImageFormat::Jpeg => {
            let encoder =
                image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut bytes), 90);
            dynamic.write_with_encoder(encoder)?
        }
    }
    let decoded = verdict_serve::inputs::decode_image(&bytes, u64::MAX, "synthetic image")
        .map_err(|e| anyhow::anyhow!("decoding the synthetic image: {}", e.message))?;
    Ok((bytes, decoded))
}

/// Synthetic items for the model in `dir` (a baseline or a Qwen3-VL checkpoint), loaded on
/// `placement`.
pub fn model_dir(
    dir: &Path,
    labels: &[String],
    placement: &Placement,
    shape: ItemShape,
) -> anyhow::Result<Workload> {
    let set = LabelSet {
        names: labels.to_vec(),
        descriptions: vec![String::new(); labels.len()],
    };
    let model = ServedModel::load_on(dir, Some(set), None, placement)?;
    // Text lengths in the served model's own tokens where it has a tokenizer.
    let count: Box<dyn Fn(&str) -> usize> = match &model {
        ServedModel::Qwen(engine) => {
            let tokenizer = engine
                .classifier()
                .preprocessor()
                .chat()
                .tokenizer()
                .clone();
            Box::new(move |text: &str| {
                tokenizer
                    .encode(text, false)
                    .map(|encoding| encoding.len())
                    .unwrap_or_else(|_| word_count(text))
            })
        }
        _ => Box::new(word_count),
    };
    let mut bodies = Vec::new();
    let mut inputs = Vec::new();
    let mut image_bytes = 0usize;
    for i in 0..SYNTHETIC_ITEMS {
        let text = synthetic_text(i, shape.text_tokens, &count);
        if model.accepts_images() {
            let (encoded, image) =
                encode(&synthetic_image(i, shape.image_size), shape.image_format)?;
            image_bytes += encoded.len();
            let data = base64::engine::general_purpose::STANDARD.encode(&encoded);
            bodies.push(json!({"text": text, "images": [{"base64": data}]}));
            inputs.push(ClassifyInput {
                text: Some(text),
                images: vec![image],
                reason: false,
            });
        } else {
            bodies.push(json!({"text": text}));
            inputs.push(ClassifyInput {
                text: Some(text),
                ..ClassifyInput::default()
            });
        }
    }
    let total: usize = inputs
        .iter()
        .map(|input| count(input.text.as_deref().unwrap_or_default()))
        .sum();
    let unit = match &model {
        ServedModel::Qwen(_) => "tokens",
        _ => "words",
    };
    let text = format!(
        "item text {:.0} {unit}",
        total as f64 / inputs.len().max(1) as f64
    );
    let kind = if model.accepts_images() {
        let side = shape.image_size;
        let format = match shape.image_format {
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Png => "PNG",
        };
        let kib = image_bytes as f64 / inputs.len().max(1) as f64 / 1024.0;
        format!("Qwen3-VL, {text} + one {side}x{side} {format} ({kib:.0} KiB) per item")
    } else {
        format!("baseline, {text}")
    };
    Ok(Workload {
        name: format!(
            "{} ({kind}, labels {}, {})",
            dir.display(),
            labels.join(","),
            placement.describe()
        ),
        model,
        bodies,
        inputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_length_follows_the_token_budget() {
        assert_eq!(
            synthetic_text(3, None, &word_count),
            "item 3: is this content safe to show?"
        );
        let text = synthetic_text(5, Some(64), &word_count);
        assert_eq!(word_count(&text), 64);
        assert_ne!(
            synthetic_text(6, Some(64), &word_count),
            text,
            "items differ"
        );
        assert_eq!(synthetic_text(0, Some(2), &word_count), "item 0:");
        // A tokenizer that splits every character: the budget holds in its units.
        let characters = |t: &str| t.chars().count();
        let text = synthetic_text(1, Some(40), &characters);
        assert!(
            characters(&text) <= 40 && characters(&text) > 30,
            "{text:?}"
        );
    }

    #[test]
    fn images_have_the_asked_size_and_survive_the_upload_round_trip() {
        let image = synthetic_image(7, 48);
        assert_eq!(image.dimensions(), (48, 48));
        let (png, decoded) = encode(&image, ImageFormat::Png).expect("png");
        assert_eq!(decoded, image, "PNG is lossless");
        assert!(png.starts_with(b"\x89PNG"));
        let (jpeg, decoded) = encode(&image, ImageFormat::Jpeg).expect("jpeg");
        assert!(jpeg.starts_with(&[0xFF, 0xD8]));
        assert_eq!(decoded.dimensions(), (48, 48));
        // The offline input is what the server decodes, not the original.
        assert_eq!(
            image::load_from_memory(&jpeg).expect("decode").to_rgb8(),
            decoded
        );
    }
}
