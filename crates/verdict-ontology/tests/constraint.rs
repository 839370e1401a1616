//! The answer constraint: random walks over a hand-made vocabulary (tokens crossing every
//! grammar boundary) always end in a valid answer, invalid continuations are refused, and the
//! tiny Qwen3-VL checkpoint writes valid JSON with concept names only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use verdict_models::constraint::TokenConstraint;
use verdict_models::token_bytes::TokenBytes;
use verdict_ontology::classify::OntologyClassifier;
use verdict_ontology::constraint::{parse_answer, AnswerConstraint, AnswerSchema};
use verdict_ontology::worksheet::worksheet;
use verdict_ontology::{HierarchyPolicy, Ontology};

const STOP: u32 = 1000;

fn schema() -> AnswerSchema {
    let s = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    AnswerSchema::new(vec![
        ("Colour".into(), s(&["Red", "Reddish", "Cool"])),
        ("Size".into(), s(&["Big", "Small"])),
    ])
    .unwrap()
}

/// Single bytes plus tokens that span boundaries: `"],`, `":["`, `Red"`, `dish`, ...
fn vocabulary() -> TokenBytes {
    let mut pieces: Vec<Vec<u8>> = (32u8..127).map(|b| vec![b]).collect();
    for piece in [
        "{\"",
        "\":",
        "\": [",
        "[\"",
        "\"]",
        "\"],",
        "\", \"",
        "\"]}",
        ", ",
        "  ",
        "\n",
        "Re",
        "Red",
        "Red\"",
        "dish",
        "Cool",
        "Big\"]",
        "Small",
        "Size",
        "Colour\":[\"",
        "Purple",
        "\"Tiny\"",
    ] {
        pieces.push(piece.as_bytes().to_vec());
    }
    TokenBytes::from_bytes(pieces.into_iter().map(Some).collect())
}

fn constraint(schema: &Arc<AnswerSchema>, tokens: &Arc<TokenBytes>) -> AnswerConstraint {
    AnswerConstraint::new(schema.clone(), tokens.clone(), vec![STOP]).unwrap()
}

#[test]
fn random_walks_always_end_in_valid_answers() {
    let schema = Arc::new(schema());
    let tokens = Arc::new(vocabulary());
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut seen_multi = false;
    for _ in 0..300 {
        let mut c = constraint(&schema, &tokens);
        let mut steps = 0;
        while !c.is_done() {
            let allowed = c.allowed().expect("restricted");
            assert!(
                !allowed.is_empty(),
                "dead end after {:?}",
                String::from_utf8_lossy(c.output())
            );
            let token = allowed[rng.random_range(0..allowed.len())];
            c.advance(token).unwrap();
            steps += 1;
            assert!(steps <= schema.max_output_bytes(), "no end in sight");
        }
        assert_eq!(c.allowed(), Some(vec![STOP]));
        let text = String::from_utf8(c.output().to_vec()).unwrap();
        let answer = parse_answer(&text, &schema).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(answer.dimensions.len(), 2);
        seen_multi |= answer.labels("Colour").len() > 1;
    }
    assert!(seen_multi, "walks never produced a list of several labels");
}

fn feed(c: &mut AnswerConstraint, tokens: &TokenBytes, text: &str) -> Result<(), String> {
    // Byte by byte through single-byte tokens (ids 0..95 are bytes 32..127).
    for b in text.bytes() {
        let id = u32::from(b - 32);
        assert_eq!(tokens.get(id), Some(&[b][..]));
        c.advance(id).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[test]
fn invalid_answers_are_refused() {
    let schema = Arc::new(schema());
    let tokens = Arc::new(vocabulary());
    let ok = r#"{"Colour": ["Reddish", "Red"], "Size": ["Big"]}"#;
    let mut c = constraint(&schema, &tokens);
    feed(&mut c, &tokens, ok).unwrap();
    assert!(c.is_done());
    for (bad, why) in [
        (r#"{"Size": ["Big"]"#, "dimension out of order"),
        (r#"{"Colour": ["Big"#, "label of another dimension"),
        (r#"{"Colour": ["Red", "Red""#, "repeated label"),
        (r#"{"Colour": ["Purple"#, "unknown label"),
        (r#"{"Colour": []"#, "empty list with min_labels 1"),
        (
            r#"{"Colour": ["Red"], "Size": ["Big"], "#,
            "extra dimension",
        ),
        (
            r#"{"Colour": ["Red", "Cool", "Reddish", "#,
            "more than max_labels",
        ),
    ] {
        let mut c = constraint(&schema, &tokens);
        assert!(
            feed(&mut c, &tokens, bad).is_err(),
            "{why}: {bad} was accepted"
        );
    }
}

#[test]
fn schema_rejects_names_it_cannot_write() {
    let err = AnswerSchema::new(vec![("Colour".into(), vec!["a\"b".into()])]).unwrap_err();
    assert!(err.to_string().contains("quotes"), "{err}");
    assert!(AnswerSchema::new(vec![("Colour".into(), vec![])]).is_err());
}

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

#[test]
fn tiny_model_writes_valid_answers_with_concept_names_only() {
    let ontology = Ontology::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.ttl"),
        None,
    )
    .unwrap();
    let classifier = OntologyClassifier::load(
        &tiny_model(),
        ontology,
        HierarchyPolicy::AncestorsImplied,
        2,
        verdict_models::DType::F32,
        &verdict_models::Device::Cpu,
    )
    .expect("tiny checkpoint");
    let sets = classifier.ontology().label_sets();
    for index in 0..4 {
        let sheet = worksheet(11, index);
        let labelling = classifier.classify(&sheet.image).expect("answer");
        let value: serde_json::Value = serde_json::from_str(&labelling.text)
            .unwrap_or_else(|e| panic!("not JSON: {}: {e}", labelling.text));
        let object = value.as_object().unwrap();
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(keys, ["Colour", "Size"], "{}", labelling.text);
        for (dimension, labels) in &sets {
            let written = object[dimension].as_array().unwrap();
            assert!(
                !written.is_empty() && written.len() <= 2,
                "{}",
                labelling.text
            );
            for label in written {
                assert!(
                    labels.contains(&label.as_str().unwrap().to_string()),
                    "{}",
                    labelling.text
                );
            }
        }
        // The policy adds Warm whenever Red was written.
        let colour = labelling.answer.labels("Colour");
        if colour.iter().any(|l| l == "Red") {
            assert!(colour.iter().any(|l| l == "Warm"), "{colour:?}");
        }
    }
}
