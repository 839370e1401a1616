//! The classifier JSON constraint on a real byte-level BPE vocabulary (the fixture tokenizer):
//! every constrained walk ends in valid JSON of the schema, valid answers are accepted token by
//! token, malformed ones are rejected.

use std::path::Path;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokenizers::Tokenizer;
use verdict_models::constraint::TokenConstraint;
use verdict_models::json_constraint::{parse_label_json, LabelJsonConstraint, LabelJsonSchema};
use verdict_models::token_bytes::TokenBytes;

const IM_END: u32 = 322;

fn tokenizer() -> Tokenizer {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3_vl/tiny_a/tokenizer.json");
    Tokenizer::from_file(path).unwrap()
}

fn labels() -> Vec<String> {
    ["nsfw", "sfw", "grey_area"].map(String::from).to_vec()
}

fn constraint(tokens: &Arc<TokenBytes>) -> LabelJsonConstraint {
    LabelJsonConstraint::new(
        Arc::new(LabelJsonSchema::new(labels())),
        tokens.clone(),
        vec![IM_END],
    )
    .unwrap()
}

#[test]
fn token_bytes_follow_the_tokenizer() {
    let tok = tokenizer();
    let table = TokenBytes::from_tokenizer(&tok);
    assert_eq!(table.vocab_size(), tok.get_vocab_size(true));
    // Special tokens carry no bytes; ordinary ones decode to what the tokenizer decodes.
    assert!(table.get(IM_END).is_none());
    for id in [13u32, 88, 198, 279, 306] {
        let text = tok.decode(&[id], false).unwrap();
        assert_eq!(table.get(id).unwrap(), text.as_bytes(), "token {id}");
    }
}

#[test]
fn random_constrained_walks_always_give_valid_answers() {
    let tokens = Arc::new(TokenBytes::from_tokenizer(&tokenizer()));
    let mut rng = StdRng::seed_from_u64(7);
    let mut seen_labels = std::collections::BTreeSet::new();
    for walk in 0..150 {
        let mut state = constraint(&tokens);
        let mut steps = 0;
        while !state.is_done() {
            let allowed = state.allowed().unwrap();
            assert!(
                !allowed.is_empty(),
                "walk {walk}: dead end after {:?}",
                String::from_utf8_lossy(state.output())
            );
            let pick = allowed[rng.random_range(0..allowed.len())];
            state.advance(pick).unwrap();
            steps += 1;
            assert!(steps < 2000, "walk {walk} does not terminate");
        }
        assert_eq!(state.allowed().unwrap(), vec![IM_END]);
        let text = String::from_utf8(state.output().to_vec()).expect("answer must be UTF-8");
        let answer =
            parse_label_json(&text, &labels()).unwrap_or_else(|e| panic!("walk {walk}: {e}"));
        let label_at = text.find("\"label\"").unwrap();
        assert!(
            label_at < text.find("\"confidence\"").unwrap()
                && text.find("\"confidence\"").unwrap() < text.find("\"reason\"").unwrap()
        );
        seen_labels.insert(answer.label);
    }
    assert_eq!(
        seen_labels.len(),
        3,
        "all labels should be reachable: {seen_labels:?}"
    );
}

#[test]
fn canonical_answers_are_accepted_token_by_token() {
    let tok = tokenizer();
    let tokens = Arc::new(TokenBytes::from_tokenizer(&tok));
    for answer in [
        r#"{"label": "sfw", "confidence": 0.93, "reason": "a product photo on a white background"}"#,
        r#"{"label":"grey_area","confidence":1,"reason":""}"#,
        "{\n  \"label\": \"nsfw\",\n  \"confidence\": 0.5,\n  \"reason\": \"caf\u{e9} \\\"quoted\\\" \\u00e9 \u{1F600}\"\n}",
    ] {
        let ids = tok.encode(answer, false).unwrap().get_ids().to_vec();
        let mut state = constraint(&tokens);
        for &id in &ids {
            assert!(state.allowed().unwrap().contains(&id), "{answer}: token {id} not offered after {:?}", String::from_utf8_lossy(state.output()));
            state.advance(id).unwrap();
        }
        assert!(state.is_done(), "{answer}");
        assert_eq!(state.output(), answer.as_bytes());
        parse_label_json(answer, &labels()).unwrap();
    }
}

#[test]
fn malformed_answers_are_rejected() {
    let tok = tokenizer();
    let tokens = Arc::new(TokenBytes::from_tokenizer(&tok));
    for (bad, reason) in [
        (r#"{"label": "unsafe", "#, "unknown label"),
        (r#"{"confidence": 0.5, "#, "wrong key order"),
        (
            r#"{"label": "sfw", "confidence": 1.5"#,
            "confidence above 1",
        ),
        (
            r#"{"label": "sfw", "confidence": 0.5, "reason": "line
break"#,
            "raw control character",
        ),
        (
            r#"{"label": "sfw", "confidence": 0.5, "reason": "x"} trailing"#,
            "text after the object",
        ),
        (
            r#"{"label": "sfw", "confidence": .5"#,
            "number without a leading digit",
        ),
    ] {
        let ids = tok.encode(bad, false).unwrap().get_ids().to_vec();
        let mut state = constraint(&tokens);
        let rejected = ids.iter().any(|&id| {
            let offered = state.allowed().unwrap().contains(&id);
            assert_eq!(offered, state.allows(id));
            !offered || state.advance(id).is_err()
        });
        assert!(rejected, "{reason}: {bad:?} was accepted");
    }
    // Special tokens never appear inside the answer.
    let mut state = constraint(&tokens);
    assert!(state.advance(IM_END).is_err());
}

#[test]
fn labels_that_prefix_each_other() {
    let tok = tokenizer();
    let tokens = Arc::new(TokenBytes::from_tokenizer(&tok));
    let labels: Vec<String> = ["sfw", "sfw_strict"].map(String::from).to_vec();
    for answer in [
        r#"{"label": "sfw", "confidence": 0, "reason": "a"}"#,
        r#"{"label": "sfw_strict", "confidence": 0, "reason": "a"}"#,
    ] {
        let mut state = LabelJsonConstraint::new(
            Arc::new(LabelJsonSchema::new(labels.clone())),
            tokens.clone(),
            vec![IM_END],
        )
        .unwrap();
        for id in tok.encode(answer, false).unwrap().get_ids() {
            state.advance(*id).unwrap();
        }
        assert!(state.is_done());
        assert_eq!(
            parse_label_json(answer, &labels).unwrap().label,
            answer[11..answer.find("\",").unwrap()]
        );
    }
}

#[test]
fn walks_stay_within_the_declared_bound() {
    let tokens = Arc::new(TokenBytes::from_tokenizer(&tokenizer()));
    let mut schema = LabelJsonSchema::new(labels());
    schema.max_reason_bytes = 24;
    let schema = Arc::new(schema);
    let bound = schema.max_output_bytes();
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..100 {
        let mut state =
            LabelJsonConstraint::new(schema.clone(), tokens.clone(), vec![IM_END]).unwrap();
        while !state.is_done() {
            let allowed = state.allowed().unwrap();
            state
                .advance(allowed[rng.random_range(0..allowed.len())])
                .unwrap();
        }
        assert!(
            state.output().len() <= bound,
            "{} > {bound}",
            state.output().len()
        );
    }
}

#[test]
fn constrained_generation_with_the_tiny_model_gives_a_valid_answer() {
    use candle_core::{DType, Device};
    use verdict_models::qwen3_vl::generation::{generate, GenerationConfig};
    use verdict_models::qwen3_vl::inputs::Preprocessor;
    use verdict_models::qwen3_vl::Qwen3VL;

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3_vl/tiny_a");
    let pre = Preprocessor::from_dir(&dir).unwrap();
    let model = Qwen3VL::load(&dir, DType::F32, &Device::Cpu, None).unwrap();
    let image =
        verdict_models::qwen3_vl::processor::load_image(&dir.join("../images/img_a.png")).unwrap();
    let messages =
        Preprocessor::classification_messages(Some("Moderate content."), 1, "Reply in JSON.");
    let prompt = pre.prompt(&messages, &[image], &Device::Cpu).unwrap();
    let mut schema = LabelJsonSchema::new(labels());
    schema.max_reason_bytes = 32;
    let schema = Arc::new(schema);
    for seed in 0..3 {
        let mut constraint = pre.json_constraint(schema.clone()).unwrap();
        let config = GenerationConfig {
            max_new_tokens: schema.max_output_bytes(),
            stop_tokens: pre.stop_tokens().to_vec(),
            temperature: if seed == 0 { 0.0 } else { 1.0 },
            seed,
        };
        let generation = generate(&model, &prompt, &config, Some(&mut constraint)).unwrap();
        let text = pre.chat().decode(&generation.tokens, true).unwrap();
        assert_eq!(text.as_bytes(), constraint.output(), "seed {seed}");
        let answer =
            parse_label_json(&text, &labels()).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(labels().contains(&answer.label));
    }
}
