//! Round trips through both formats and the errors bad files must give.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::spec::{EvalSpec, TaskKind};

fn labels() -> Vec<String> {
    ["nsfw", "sfw", "grey_area"].map(String::from).to_vec()
}

fn spec() -> EvalSpec {
    EvalSpec::new("content", TaskKind::MultiClass, labels())
}

fn row(id: &str, truth: &str, predicted: &str, probabilities: [f64; 3]) -> Prediction {
    Prediction {
        sample_id: id.into(),
        true_labels: vec![truth.into()],
        predicted_labels: vec![predicted.into()],
        probabilities: labels().into_iter().zip(probabilities).collect(),
        reason: Some(format!("because, \"quoted\"\nand a new line ({id})")),
        decision: Some(Decision::Review),
        slices: BTreeMap::from([("image".to_string(), "present".to_string())]),
        model_id: "model-a".into(),
        run_id: "run-1".into(),
        input_text: Some("text with | pipe".into()),
        image_path: None,
    }
}

fn rows() -> Vec<Prediction> {
    let mut second = row("b", "sfw", "nsfw", [0.5, 0.25, 0.25]);
    second.reason = None;
    second.decision = None;
    second.slices.insert("image".into(), "missing".into());
    vec![
        row("a", "nsfw", "nsfw", [0.7, 0.2, 0.1]),
        second,
        row("c", "grey_area", "grey_area", [0.1, 0.1 + 0.2, 0.6]),
    ]
}

fn write_text(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn csv_and_parquet_round_trip_every_field() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["p.csv", "p.parquet"] {
        let path = dir.path().join(name);
        write(&path, &rows(), &labels()).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.rows, rows(), "{name}");
        validate(&back, &spec()).unwrap();
    }
}

#[test]
fn reads_a_parquet_file_written_by_pyarrow() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/predictions_pyarrow.parquet");
    let set = read(&path).unwrap();
    validate(&set, &spec()).unwrap();
    assert_eq!(set.rows.len(), 3);
    assert_eq!(set.rows[1].predicted_labels, vec!["nsfw".to_string()]);
    assert_eq!(set.rows[1].decision, Some(Decision::Review));
    assert_eq!(set.rows[1].reason, None);
    assert_eq!(set.rows[2].probabilities["grey_area"], 0.7);
    assert_eq!(set.rows[1].slices["image"], "missing");
}

const HEADER: &str = "sample_id,true_labels,predicted_labels,prob:nsfw,prob:sfw,prob:grey_area\n";

fn csv_error(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write_text(dir.path(), "bad.csv", &format!("{HEADER}{body}"));
    let result = read(&path).and_then(|set| validate(&set, &spec()));
    result.expect_err("bad input must fail").to_string()
}

#[test]
fn unknown_label_names_file_line_and_label() {
    let message = csv_error("a,nsfw,nsfw,0.5,0.3,0.2\nb,violent,sfw,0.1,0.8,0.1\n");
    assert!(message.contains("bad.csv, line 3"), "{message}");
    assert!(message.contains("unknown label \"violent\""), "{message}");
}

#[test]
fn missing_and_duplicate_ids_are_rejected() {
    let message = csv_error("a,nsfw,nsfw,0.5,0.3,0.2\n,sfw,sfw,0.1,0.8,0.1\n");
    assert!(message.contains("line 3: missing sample_id"), "{message}");
    let message =
        csv_error("a,nsfw,nsfw,0.5,0.3,0.2\nb,sfw,sfw,0.1,0.8,0.1\na,sfw,sfw,0.1,0.8,0.1\n");
    assert!(
        message.contains("line 4: duplicate sample_id \"a\" (first seen at line 2)"),
        "{message}"
    );
}

#[test]
fn nan_empty_and_out_of_range_probabilities_are_rejected() {
    let message = csv_error("a,nsfw,nsfw,NaN,0.3,0.2\n");
    assert!(
        message.contains("line 2") && message.contains("is NaN"),
        "{message}"
    );
    let message = csv_error("a,nsfw,nsfw,,0.3,0.2\n");
    assert!(
        message.contains("line 2: empty probability for label \"nsfw\""),
        "{message}"
    );
    let message = csv_error("a,nsfw,nsfw,1.5,0.3,0.2\n");
    assert!(message.contains("outside [0, 1]"), "{message}");
    let message = csv_error("a,nsfw,nsfw,high,0.3,0.2\n");
    assert!(message.contains("\"high\" is not a number"), "{message}");
}

#[test]
fn parquet_nan_names_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.parquet");
    let mut bad = rows();
    bad[2].probabilities.insert("sfw".into(), f64::NAN);
    write(&path, &bad, &labels()).unwrap();
    let message = validate(&read(&path).unwrap(), &spec())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("nan.parquet, row 3") && message.contains("NaN"),
        "{message}"
    );
}

#[test]
fn single_label_tasks_need_exactly_one_label() {
    let message = csv_error("a,nsfw|sfw,nsfw,0.5,0.3,0.2\n");
    assert!(message.contains("exactly one label"), "{message}");
}

#[test]
fn missing_column_and_unknown_extension_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_text(dir.path(), "cols.csv", "sample_id,true_labels\na,nsfw\n");
    assert!(read(&path)
        .unwrap_err()
        .to_string()
        .contains("cols.csv: missing column `predicted_labels`"));
    let path = write_text(dir.path(), "p.txt", "");
    assert!(read(&path)
        .unwrap_err()
        .to_string()
        .contains("use a .csv or .parquet file"));
    let path = write_text(dir.path(), "fake.parquet", "not parquet");
    assert!(read(&path)
        .unwrap_err()
        .to_string()
        .contains("fake.parquet: not a readable Parquet file"));
}

#[test]
fn align_reorders_and_rejects_mismatched_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = PredictionSet::in_memory(dir.path().join("base.csv"), rows());
    let mut reversed = rows();
    reversed.reverse();
    let mut sets = vec![
        first.clone(),
        PredictionSet::in_memory("cand.csv", reversed),
    ];
    align(&mut sets).unwrap();
    assert_eq!(sets[1].rows, rows());
    assert_eq!(sets[1].locations[0], RowLocation::Row(3));

    let mut other = rows();
    other[1].sample_id = "zzz".into();
    let mut sets = vec![first.clone(), PredictionSet::in_memory("cand.csv", other)];
    let message = align(&mut sets).unwrap_err().to_string();
    assert!(
        message.contains("cand.csv, row 2: sample \"zzz\" is not in"),
        "{message}"
    );

    let mut fewer = rows();
    fewer.pop();
    let mut sets = vec![first, PredictionSet::in_memory("short.csv", fewer)];
    let message = align(&mut sets).unwrap_err().to_string();
    assert!(
        message.contains("short.csv: sample \"c\"") && message.contains("is missing"),
        "{message}"
    );
}
