//! all-MiniLM-L6-v2 on candle against sentence-transformers' embeddings
//! (`fixtures/minilm_embeddings.json`, from `fixtures/make_minilm_fixture.py`).
//! Needs the real model: run `scripts/fetch-data` (or `scripts/fetch/minilm.sh`).

use std::path::PathBuf;

use serde_json::Value;
use verdict_baseline::embed::{Kernels, SentenceEncoder};

fn model_dir() -> PathBuf {
    let data_dir = std::env::var_os("VERDICT_DATA_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/data"),
        PathBuf::from,
    );
    let dir = data_dir.join("minilm/model");
    assert!(
        dir.join("model.safetensors").exists(),
        "all-MiniLM-L6-v2 not found in {}: run scripts/fetch-data (or scripts/fetch/minilm.sh) \
         first, or point VERDICT_DATA_DIR at the data folder",
        dir.display()
    );
    dir
}

#[test]
fn minilm_embeddings_match_sentence_transformers() {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/minilm_embeddings.json")).expect("fixture");
    let sentences: Vec<String> = fixture["sentences"]
        .as_array()
        .expect("sentences")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect();
    let expected: Vec<Vec<f64>> = fixture["embeddings"]
        .as_array()
        .expect("embeddings")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_f64().expect("number"))
                .collect()
        })
        .collect();
    let max_seq_length = fixture["max_seq_length"].as_u64().expect("limit") as usize;

    let encoder = SentenceEncoder::load(&model_dir())
        .expect("load encoder")
        .with_batch_size(4);
    assert_eq!(encoder.max_seq_length(), max_seq_length);
    assert_eq!(encoder.dimension(), 384);

    // Truncation: every text keeps min(its token count, limit) tokens.
    for (sentence, count) in sentences.iter().zip(
        fixture["token_counts_untruncated"]
            .as_array()
            .expect("counts"),
    ) {
        let (ids, _) = encoder.token_ids(sentence).expect("tokenize");
        let count = count.as_u64().expect("count") as usize;
        assert_eq!(
            ids.len(),
            count.min(max_seq_length),
            "token count of {sentence:.40?}"
        );
    }
    assert!(sentences.len() >= 10);

    // Both implementations of the transformer: the fused kernels (the default) and the
    // candle graph they replace.
    let fused = encoder.encode(&sentences).expect("encode");
    let encoder = encoder.with_kernels(Kernels::Candle);
    let candle = encoder.encode(&sentences).expect("encode");
    for (kernels, actual) in [("fused", fused), ("candle", candle)] {
        check(kernels, &actual, &expected);
    }
}

fn check(kernels: &str, actual: &[f32], expected: &[Vec<f64>]) {
    for (i, want) in expected.iter().enumerate() {
        let got = &actual[i * 384..(i + 1) * 384];
        let dot: f64 = got.iter().zip(want).map(|(a, b)| f64::from(*a) * b).sum();
        let norm_a = got
            .iter()
            .map(|a| f64::from(*a).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm_b = want.iter().map(|b| b * b).sum::<f64>().sqrt();
        let cosine = dot / (norm_a * norm_b);
        let max_diff = got
            .iter()
            .zip(want)
            .fold(0.0f64, |m, (a, b)| m.max((f64::from(*a) - b).abs()));
        assert!(
            cosine >= 1.0 - 1e-4,
            "{kernels}, sentence {i}: cosine {cosine}"
        );
        assert!(
            max_diff <= 1e-4,
            "{kernels}, sentence {i}: max abs difference {max_diff}"
        );
    }
}
