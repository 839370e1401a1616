//! Building contests from files: method arguments, retrieval rankings, classification
//! pairing, and the errors a user sees for bad input.

mod support;

use std::path::Path;

use verdict_arena::{build_contest, parse_method, ContestKind, ContestOptions, MethodSource};
use verdict_eval::Prediction;

fn contest(
    spec_a: &str,
    spec_b: &str,
    options: &ContestOptions,
) -> verdict_arena::Result<verdict_arena::Contest> {
    let a = parse_method(spec_a, &options.split)?;
    let b = parse_method(spec_b, &options.split)?;
    build_contest(&a, &b, [spec_a, spec_b], options)
}

#[test]
fn retrieval_contest_ranks_each_method_by_its_own_column() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = support::data::write_retrieval_fixture(dir.path());
    let spec_a = parquet.display().to_string();
    let spec_b = format!("{}#finetuned_embedding", parquet.display());
    assert_eq!(
        parse_method(&spec_a, "test").unwrap(),
        MethodSource::Embeddings {
            file: parquet.clone(),
            column: "base_embedding".into()
        }
    );
    let options = ContestOptions::default();
    let contest = contest(&spec_a, &spec_b, &options).unwrap();
    assert_eq!(contest.kind, ContestKind::Retrieval);
    assert_eq!(contest.queries.len(), support::data::QUERIES);
    assert_eq!(contest.methods[0].name, "emb.parquet#base_embedding");
    for query in &contest.queries {
        assert_eq!(
            query.prompt.text.as_deref(),
            Some(format!("{} text", query.id).as_str())
        );
        for (side, prefix) in [(0, "bad"), (1, "good")] {
            let answers = &query.answers[side];
            assert_eq!(answers.len(), 4);
            for card in answers {
                assert!(
                    card.text.as_deref().unwrap().starts_with(prefix),
                    "{}: {:?}",
                    query.id,
                    card
                );
                assert!(card.image.is_some() && card.confidence.is_none());
            }
        }
    }
    // 8 queries + 16 gallery images, each registered once.
    assert_eq!(contest.images.len(), 24);
    let larger = ContestOptions {
        top_k: 20,
        ..ContestOptions::default()
    };
    let everything = contest_ok(&spec_a, &spec_b, &larger);
    assert_eq!(
        everything.queries[0].answers[0].len(),
        16,
        "top-k past the gallery size shows the whole gallery"
    );
}

fn contest_ok(spec_a: &str, spec_b: &str, options: &ContestOptions) -> verdict_arena::Contest {
    contest(spec_a, spec_b, options).unwrap()
}

fn error_of(spec_a: &str, spec_b: &str, options: &ContestOptions) -> String {
    match contest(spec_a, spec_b, options) {
        Ok(_) => panic!("{spec_a} vs {spec_b} should fail"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn retrieval_input_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = support::data::write_retrieval_fixture(dir.path());
    let file = parquet.display().to_string();
    let options = ContestOptions::default();
    let error = error_of(&format!("{file}#nope"), &file, &options);
    assert!(error.contains("no column `nope`"), "{error}");
    let error = error_of(
        &file,
        &file,
        &ContestOptions {
            split: "val".into(),
            ..ContestOptions::default()
        },
    );
    assert!(error.contains("no row has split `val`"), "{error}");
    let error = error_of("missing.parquet#x", &file, &options);
    assert!(error.contains("missing.parquet"), "{error}");
    let error = error_of(&format!("{file}#"), &file, &options);
    assert!(error.contains("empty column"), "{error}");
    let error = error_of(
        &file,
        &file,
        &ContestOptions {
            top_k: 0,
            ..ContestOptions::default()
        },
    );
    assert!(error.contains("top-k"), "{error}");
    std::fs::remove_file(dir.path().join("images/good-2.png")).unwrap();
    let error = error_of(&file, &format!("{file}#finetuned_embedding"), &options);
    assert!(error.contains("good-2") && error.contains("row"), "{error}");
}

fn prediction(
    id: &str,
    predicted: &str,
    probability: f64,
    reason: &str,
    image: Option<&str>,
) -> Prediction {
    let mut row = Prediction {
        sample_id: id.into(),
        true_labels: vec!["safe".into()],
        predicted_labels: vec![predicted.into()],
        reason: Some(reason.into()),
        input_text: Some(format!("text of {id}")),
        image_path: image.map(str::to_owned),
        model_id: "model".into(),
        ..Prediction::default()
    };
    let other = if predicted == "safe" {
        "unsafe"
    } else {
        "safe"
    };
    row.probabilities.insert(predicted.into(), probability);
    row.probabilities.insert(other.into(), 1.0 - probability);
    row
}

fn write_predictions(path: &Path, model: &str, rows: Vec<Prediction>) {
    let rows: Vec<Prediction> = rows
        .into_iter()
        .map(|mut row| {
            row.model_id = model.into();
            row
        })
        .collect();
    verdict_eval::prediction::write(path, &rows, &["safe".into(), "unsafe".into()]).unwrap();
}

#[test]
fn classification_contest_pairs_samples_and_shows_answers_blind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tuned")).unwrap();
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    image::RgbImage::new(4, 4)
        .save(dir.path().join("images/s1.png"))
        .unwrap();
    let base = dir.path().join("base.parquet");
    write_predictions(
        &base,
        "base-model",
        vec![
            prediction("s1", "unsafe", 0.7, "looks risky", Some("images/s1.png")),
            prediction("s2", "safe", 0.9, "plain text", None),
            prediction("only-in-a", "safe", 0.5, "", None),
        ],
    );
    write_predictions(
        &dir.path().join("tuned/predictions_test.csv"),
        "tuned-model",
        vec![
            prediction("s2", "unsafe", 0.6, "slur in text", None),
            prediction("s1", "safe", 0.8, "a toy", Some("images/s1.png")),
        ],
    );
    let run_folder = dir.path().join("tuned").display().to_string();
    let options = ContestOptions {
        images_root: Some(dir.path().to_path_buf()),
        ..ContestOptions::default()
    };
    let contest = contest_ok(&base.display().to_string(), &run_folder, &options);
    assert_eq!(contest.kind, ContestKind::Classification);
    assert_eq!(contest.methods[0].name, "base-model");
    assert_eq!(contest.methods[1].name, "tuned-model");
    let ids: Vec<&str> = contest.queries.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, ["s1", "s2"]);
    let s1 = &contest.queries[0];
    assert!(s1.prompt.image.is_some());
    assert_eq!(s1.prompt.text.as_deref(), Some("text of s1"));
    assert_eq!(s1.answers[0][0].label.as_deref(), Some("unsafe"));
    assert_eq!(s1.answers[0][0].confidence, Some(0.7));
    assert_eq!(s1.answers[0][0].reason.as_deref(), Some("looks risky"));
    assert_eq!(s1.answers[1][0].label.as_deref(), Some("safe"));
    assert_eq!(s1.answers[1][0].confidence, Some(0.8));
    assert!(contest.queries[1].prompt.image.is_none());

    // Mixing a classifier with an embeddings column is refused.
    let parquet = support::data::write_retrieval_fixture(&dir.path().join("emb"));
    let error = error_of(
        &base.display().to_string(),
        &format!("{}#base_embedding", parquet.display()),
        &options,
    );
    assert!(error.contains("both"), "{error}");
    // A run folder without predictions for the split.
    let error = error_of(
        &run_folder,
        &run_folder,
        &ContestOptions {
            split: "val".into(),
            ..options.clone()
        },
    );
    assert!(error.contains("predictions_val"), "{error}");
}
