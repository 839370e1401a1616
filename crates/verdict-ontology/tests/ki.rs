//! Knowledge-infusion questions on the hand-checked fixture: every question and answer below
//! was written out by hand from `tests/fixtures/tiny.ttl`.

use std::path::{Path, PathBuf};

use verdict_ontology::ki::{generate, questions, KiConfig, KiDataset, QuestionKind};
use verdict_ontology::Ontology;

fn tiny() -> Ontology {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.ttl");
    Ontology::load(&path, None).expect("fixture")
}

fn one_phrasing() -> KiConfig {
    KiConfig {
        phrasings: 1,
        val_fraction: 0.0,
        ..KiConfig::default()
    }
}

#[test]
fn questions_match_the_hand_written_list() {
    let o = tiny();
    let got: Vec<(String, String, String)> = questions(&o, &one_phrasing())
        .into_iter()
        .map(|q| (q.kind.as_str().to_string(), q.question, q.answer))
        .collect();
    let expected: Vec<(&str, &str, &str)> = vec![
        (
            "definition",
            "What does the concept Colour mean in the tiny ontology?",
            "What hue something has.",
        ),
        (
            "children-of",
            "Which concepts are directly below Colour?",
            "Warm, Cool",
        ),
        (
            "definition",
            "What does the concept Warm (warm colour) mean in the tiny ontology?",
            "Red, orange or yellow hues.",
        ),
        (
            "parent-of",
            "What is the direct parent concept of Warm (warm colour)?",
            "Colour",
        ),
        (
            "children-of",
            "Which concepts are directly below Warm (warm colour)?",
            "Red",
        ),
        (
            "dimension",
            "Which dimension does Warm (warm colour) belong to?",
            "Colour",
        ),
        (
            "definition",
            "What does the concept Red mean in the tiny ontology?",
            "The colour of ripe tomatoes.",
        ),
        (
            "parent-of",
            "What is the direct parent concept of Red?",
            "Warm",
        ),
        ("dimension", "Which dimension does Red belong to?", "Colour"),
        (
            "parent-of",
            "What is the direct parent concept of Cool (cool colour)?",
            "Colour",
        ),
        (
            "dimension",
            "Which dimension does Cool (cool colour) belong to?",
            "Colour",
        ),
        (
            "children-of",
            "Which concepts are directly below Size?",
            "Big, Small",
        ),
        (
            "definition",
            "What does the concept Big mean in the tiny ontology?",
            "Larger than a hand.",
        ),
        (
            "parent-of",
            "What is the direct parent concept of Big?",
            "Size",
        ),
        ("dimension", "Which dimension does Big belong to?", "Size"),
        (
            "definition",
            "What does the concept Small mean in the tiny ontology?",
            "Fits in a hand.",
        ),
        (
            "parent-of",
            "What is the direct parent concept of Small?",
            "Size",
        ),
        ("dimension", "Which dimension does Small belong to?", "Size"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .into_iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn counts_per_kind_and_chat_format() {
    let o = tiny();
    let set = generate(&o, &one_phrasing());
    assert!(set.val.is_empty());
    let counts = set.counts();
    let train: Vec<(&str, usize)> = counts.train.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        train,
        [
            ("children-of", 3),
            ("definition", 5),
            ("dimension", 5),
            ("parent-of", 5)
        ]
    );
    let examples = KiDataset::examples(&o, &set.train);
    let first = serde_json::to_value(&examples[0]).unwrap();
    assert_eq!(
        first,
        serde_json::json!({
            "sample_id": "ki-definition-Colour-0",
            "label": "What hue something has.",
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "You label material with concepts of the ontology tiny. Answer only with concept names of the ontology."}]},
                {"role": "user", "content": [{"type": "text", "text": "What does the concept Colour mean in the tiny ontology?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "What hue something has."}]}
            ]
        })
    );
}

#[test]
fn repeated_questions_are_removed_and_counted() {
    let o = tiny();
    let config = KiConfig {
        kinds: vec![QuestionKind::Definition, QuestionKind::Definition],
        ..one_phrasing()
    };
    let set = generate(&o, &config);
    assert_eq!(set.train.len(), 5);
    assert_eq!(set.duplicates_removed, 5);
    assert_eq!(set.counts().duplicates_removed, 5);
}

#[test]
fn split_keeps_every_phrasing_of_a_fact_together() {
    let o = tiny();
    let config = KiConfig {
        phrasings: 2,
        val_fraction: 0.5,
        seed: 7,
        ..KiConfig::default()
    };
    let set = generate(&o, &config);
    assert_eq!(set.train.len() + set.val.len(), 36);
    // round(n / 2) facts of each kind: definition 3 of 5, parent-of 3 of 5, children-of 2 of 3,
    // dimension 3 of 5; two phrasings each.
    let val = set.counts().val;
    assert_eq!(val.get("definition"), Some(&6));
    assert_eq!(val.get("parent-of"), Some(&6));
    assert_eq!(val.get("children-of"), Some(&4));
    assert_eq!(val.get("dimension"), Some(&6));
    for q in &set.val {
        assert!(
            !set.train
                .iter()
                .any(|t| t.kind == q.kind && t.concept == q.concept),
            "{:?} {} is on both sides",
            q.kind,
            q.concept
        );
    }
    // The same seed gives the same split.
    let again = generate(&o, &config);
    assert_eq!(again.val, set.val);
}
