//! Loading the hand-checked fixture in three RDF syntaxes, and the errors malformed files give.

use std::path::{Path, PathBuf};

use verdict_ontology::{Ontology, OntologyError};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn summary(o: &Ontology) -> Vec<String> {
    o.concepts()
        .iter()
        .map(|c| {
            let parents: Vec<&str> = c
                .parents
                .iter()
                .map(|&p| o.concept(p).name.as_str())
                .collect();
            let children: Vec<&str> = c
                .children
                .iter()
                .map(|&p| o.concept(p).name.as_str())
                .collect();
            format!(
                "{} [{}] def={:?} parents={parents:?} children={children:?}",
                c.name, c.label, c.definition
            )
        })
        .collect()
}

#[test]
fn turtle_fixture_has_the_hand_checked_hierarchy() {
    let o = Ontology::load(&fixture("tiny.ttl"), None).expect("load");
    assert_eq!(o.iri.as_deref(), Some("http://example.org/tiny"));
    assert_eq!(o.version.as_deref(), Some("0.1"));
    assert_eq!(o.sha256.len(), 64);
    assert_eq!(
        summary(&o),
        [
            "Colour [colour] def=Some(\"What hue something has.\") parents=[] children=[\"Warm\", \"Cool\"]",
            "Warm [warm colour] def=Some(\"Red, orange or yellow hues.\") parents=[\"Colour\"] children=[\"Red\"]",
            "Red [red] def=Some(\"The colour of ripe tomatoes.\") parents=[\"Warm\"] children=[]",
            "Cool [cool colour] def=None parents=[\"Colour\"] children=[]",
            "Size [size] def=None parents=[] children=[\"Big\", \"Small\"]",
            "Big [Big] def=Some(\"Larger than a hand.\") parents=[\"Size\"] children=[]",
            "Small [small] def=Some(\"Fits in a hand.\") parents=[\"Size\"] children=[]",
        ]
    );
    assert_eq!(o.dimension_names(), ["Colour", "Size"]);
    assert_eq!(
        o.label_sets(),
        [
            (
                "Colour".to_string(),
                vec!["Warm".to_string(), "Red".into(), "Cool".into()]
            ),
            ("Size".to_string(), vec!["Big".to_string(), "Small".into()]),
        ]
    );
    let red = o.find("Red").unwrap();
    let ancestors: Vec<&str> = o
        .ancestors(red)
        .iter()
        .map(|&a| o.concept(a).name.as_str())
        .collect();
    assert_eq!(ancestors, ["Warm", "Colour"]);
}

#[test]
fn rdf_xml_and_n_triples_load_the_same_ontology() {
    let turtle = Ontology::load(&fixture("tiny.ttl"), None).unwrap();
    for name in ["tiny.rdf", "tiny.nt"] {
        let other = Ontology::load(&fixture(name), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(summary(&other), summary(&turtle), "{name}");
        assert_eq!(other.version, turtle.version, "{name}");
        assert_eq!(other.dimension_names(), turtle.dimension_names(), "{name}");
    }
}

#[test]
fn chosen_dimensions_must_be_concepts_and_not_nested() {
    let dims = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let o = Ontology::load(&fixture("tiny.ttl"), Some(&dims(&["Size", "Warm"]))).unwrap();
    assert_eq!(o.dimension_names(), ["Size", "Warm"]);
    // Cool lies under no chosen dimension, so it is no label.
    assert_eq!(o.label_sets()[1].1, ["Red"]);
    let err = Ontology::load(&fixture("tiny.ttl"), Some(&dims(&["Shape"]))).unwrap_err();
    assert!(
        err.to_string()
            .contains("dimension `Shape` is not a concept"),
        "{err}"
    );
    let err = Ontology::load(&fixture("tiny.ttl"), Some(&dims(&["Colour", "Warm"]))).unwrap_err();
    assert!(
        err.to_string().contains("lies under two dimensions")
            || err.to_string().contains("below another dimension"),
        "{err}"
    );
}

#[test]
fn cycle_is_reported_with_its_iris() {
    let path = fixture("malformed/cycle.ttl");
    let err = Ontology::load(&path, None).unwrap_err();
    let OntologyError::Cycle { cycle, .. } = &err else {
        panic!("expected a cycle, got {err}");
    };
    // A -> C -> B -> A through the parent relation.
    assert_eq!(
        cycle,
        &[
            "http://example.org/bad#A",
            "http://example.org/bad#C",
            "http://example.org/bad#B",
            "http://example.org/bad#A"
        ]
    );
    let message = err.to_string();
    assert!(message.contains("cycle.ttl"), "{message}");
}

#[test]
fn unknown_parent_names_file_concept_and_parent() {
    let err = Ontology::load(&fixture("malformed/unknown_parent.ttl"), None).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, OntologyError::UnknownParent { .. }),
        "{message}"
    );
    assert!(message.contains("unknown_parent.ttl"), "{message}");
    assert!(
        message.contains("<http://example.org/bad#Counting>"),
        "{message}"
    );
    assert!(
        message.contains("<http://example.org/bad#Aera>"),
        "{message}"
    );
}

#[test]
fn duplicate_labels_and_names_are_rejected() {
    let err = Ontology::load(&fixture("malformed/duplicate_label.ttl"), None).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, OntologyError::DuplicateLabel { .. }),
        "{message}"
    );
    assert!(message.contains("duplicate_label.ttl"), "{message}");
    assert!(
        message.contains("bad#Red") && message.contains("bad#Crimson"),
        "{message}"
    );

    let err = Ontology::load(&fixture("malformed/duplicate_name.ttl"), None).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("\"Red\""), "{message}");
    assert!(
        message.contains("http://example.org/other#Red"),
        "{message}"
    );
}

#[test]
fn syntax_error_gives_file_line_and_column() {
    let err = Ontology::load(&fixture("malformed/syntax_error.ttl"), None).unwrap_err();
    let OntologyError::Syntax { line, column, .. } = &err else {
        panic!("expected a syntax error, got {err}");
    };
    assert_eq!(*line, 7, "{err}");
    assert!(*column > 1, "{err}");
    assert!(err.to_string().contains("syntax_error.ttl:7:"), "{err}");
}

#[test]
fn unknown_extension_and_missing_file_are_clear() {
    let err = Ontology::load(Path::new("ontology.yaml"), None).unwrap_err();
    assert!(err.to_string().contains("ontology.yaml"), "{err}");
    let err = Ontology::load(&fixture("missing.ttl"), None).unwrap_err();
    assert!(err.to_string().contains("missing.ttl"), "{err}");
}

#[test]
fn example_ontology_has_three_dimensions() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ontology/ontology.toml");
    let spec = verdict_ontology::OntologySpec::load(&path).unwrap();
    let o = spec.load_ontology().unwrap();
    assert_eq!(o.dimension_names(), ["Area", "Scope", "Ability"]);
    assert_eq!(o.concepts().len(), 33);
    assert_eq!(o.version.as_deref(), Some("1.0.0"));
}
