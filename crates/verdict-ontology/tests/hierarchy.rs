//! Hierarchy policies and hierarchical precision/recall on hand-computed cases
//! (fixture `tiny.ttl`: Colour > {Warm > Red, Cool}, Size > {Big, Small}).

use std::path::Path;

use verdict_ontology::evaluate::{evaluate, ScoredSample};
use verdict_ontology::{Answer, HierarchicalCounter, HierarchyPolicy, Ontology};

fn tiny() -> Ontology {
    Ontology::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.ttl"),
        None,
    )
    .expect("fixture")
}

fn s(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn ancestors_implied_adds_ancestors_below_the_root() {
    let o = tiny();
    let policy = HierarchyPolicy::AncestorsImplied;
    assert_eq!(
        policy.normalise(&o, 0, &s(&["Red"])).unwrap(),
        s(&["Warm", "Red"])
    );
    assert_eq!(
        policy.normalise(&o, 0, &s(&["Red", "Cool"])).unwrap(),
        s(&["Warm", "Red", "Cool"])
    );
    assert_eq!(policy.normalise(&o, 0, &s(&[])).unwrap(), s(&[]));
}

#[test]
fn leaves_only_keeps_the_most_specific() {
    let o = tiny();
    let policy = HierarchyPolicy::LeavesOnly;
    assert_eq!(
        policy.normalise(&o, 0, &s(&["Warm", "Red"])).unwrap(),
        s(&["Red"])
    );
    assert_eq!(
        policy.normalise(&o, 0, &s(&["Warm", "Cool"])).unwrap(),
        s(&["Warm", "Cool"])
    );
    assert_eq!(
        policy.normalise(&o, 1, &s(&["Small", "Big"])).unwrap(),
        s(&["Big", "Small"])
    );
}

#[test]
fn labels_outside_the_dimension_are_errors() {
    let o = tiny();
    let err = HierarchyPolicy::LeavesOnly
        .normalise(&o, 1, &s(&["Red"]))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`Red` is not a label of dimension `Size`"),
        "{err}"
    );
    assert!(HierarchyPolicy::AncestorsImplied
        .normalise(&o, 0, &s(&["Colour"]))
        .is_err());
}

#[test]
fn hierarchical_precision_recall_by_hand() {
    let o = tiny();
    let mut counter = HierarchicalCounter::default();
    // Sample 1: truth {Red} -> {Warm, Red}; predicted {Cool} -> {Cool}: overlap 0, |P|=1, |T|=2.
    counter.add(&o, 0, &s(&["Red"]), &s(&["Cool"])).unwrap();
    // Sample 2: truth {Red} -> {Warm, Red}; predicted {Warm} -> {Warm}: overlap 1, |P|=1, |T|=2.
    counter.add(&o, 0, &s(&["Red"]), &s(&["Warm"])).unwrap();
    // Sample 3: truth {Cool}; predicted {Red, Cool} -> {Warm, Red, Cool}: overlap 1, |P|=3, |T|=1.
    counter
        .add(&o, 0, &s(&["Cool"]), &s(&["Red", "Cool"]))
        .unwrap();
    let scores = counter.scores();
    assert_eq!((scores.overlap, scores.predicted, scores.truth), (2, 5, 5));
    assert!((scores.precision - 0.4).abs() < 1e-12);
    assert!((scores.recall - 0.4).abs() < 1e-12);
    assert!((scores.f1 - 0.4).abs() < 1e-12);
}

fn answer(colour: &[&str], size: &[&str]) -> Answer {
    Answer {
        dimensions: vec![("Colour".into(), s(colour)), ("Size".into(), s(size))],
    }
}

#[test]
fn evaluation_applies_the_policy_to_both_sides() {
    let o = tiny();
    let samples = vec![
        // Same labels written with and without the implied ancestor.
        ScoredSample::new(
            "a",
            &answer(&["Red"], &["Big"]),
            &answer(&["Warm", "Red"], &["Big"]),
        ),
        ScoredSample::new(
            "b",
            &answer(&["Cool"], &["Small"]),
            &answer(&["Red"], &["Small"]),
        ),
    ];
    let implied = evaluate(&o, HierarchyPolicy::AncestorsImplied, &samples).unwrap();
    // Sample a matches exactly under either policy; b misses Colour.
    assert_eq!(implied.exact_match, Some(0.5));
    let colour = &implied.dimensions["Colour"];
    assert_eq!(colour.labels, s(&["Warm", "Red", "Cool"]));
    // Ancestors implied: a {Warm, Red} vs {Warm, Red}; b {Cool} vs {Warm, Red}.
    // Warm: tp 1 fp 1; Red: tp 1 fp 1; Cool: fn 1 -> micro P = 2/4, R = 2/3.
    assert_eq!(colour.metrics.get("micro_precision"), Some(0.5));
    assert!((colour.metrics.get("micro_recall").unwrap() - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(colour.metrics.get("subset_accuracy"), Some(0.5));
    // Hierarchical on Colour: overlap 2, |P| 4, |T| 3.
    assert!((colour.hierarchical.precision - 0.5).abs() < 1e-12);
    assert!((colour.hierarchical.recall - 2.0 / 3.0).abs() < 1e-12);
    // Overall adds Size: overlap 2, |P| 2, |T| 2 -> 4/6 and 4/5.
    assert!((implied.hierarchical.precision - 4.0 / 6.0).abs() < 1e-12);
    assert!((implied.hierarchical.recall - 4.0 / 5.0).abs() < 1e-12);

    let leaves = evaluate(&o, HierarchyPolicy::LeavesOnly, &samples).unwrap();
    assert_eq!(leaves.exact_match, Some(0.5));
    // Leaves only: a {Red} vs {Red}; b {Cool} vs {Red}: Red tp 1 fp 1, Cool fn 1.
    let colour = &leaves.dimensions["Colour"];
    assert_eq!(colour.metrics.get("micro_precision"), Some(0.5));
    assert_eq!(colour.metrics.get("micro_recall"), Some(0.5));
    // Hierarchical scores do not depend on the policy.
    assert_eq!(
        colour.hierarchical,
        implied.dimensions["Colour"].hierarchical
    );
}
