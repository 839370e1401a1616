//! Fitting, saving, loading and the train-on-train / evaluate-on-val entry points.

use serde_json::Value;
use verdict_baseline::io::{read_labelled, Fields};
use verdict_baseline::logistic::LogisticConfig;
use verdict_baseline::tfidf::TfidfConfig;
use verdict_baseline::{
    train_multilabel_baseline, train_text_baseline, Baseline, BaselineConfig, FeatureConfig, Head,
    Targets,
};

fn corpus() -> (Vec<String>, Vec<String>, Vec<String>) {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/sklearn_parity.json")).expect("fixture");
    let strings = |key: &str| -> Vec<String> {
        fixture[key]
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_str().expect("string").to_owned())
            .collect()
    };
    (
        strings("train_texts"),
        strings("train_labels"),
        strings("test_texts"),
    )
}

fn tfidf_config() -> BaselineConfig {
    BaselineConfig {
        features: FeatureConfig::Tfidf(TfidfConfig::default()),
        logistic: LogisticConfig::default(),
    }
}

#[test]
fn saved_model_predicts_the_same_probabilities() {
    let (texts, labels, test) = corpus();
    let (baseline, report) = Baseline::fit(
        &texts,
        &Targets::SingleLabel(labels),
        None,
        &BaselineConfig::default(),
    )
    .expect("fit");
    assert!(report.converged);
    let before = baseline.predict_proba(&test).expect("predict");
    assert_eq!(before.columns, ["ham", "news", "spam"]);
    for i in 0..before.len() {
        let sum: f64 = before.row(i).iter().sum();
        assert!((sum - 1.0).abs() < 1e-12);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    baseline.save(dir.path()).expect("save");
    let loaded = Baseline::load(dir.path()).expect("load");
    assert_eq!(loaded.config, baseline.config);
    let after = loaded.predict_proba(&test).expect("predict");
    assert_eq!(before, after, "bit-identical after a round trip");
}

#[test]
fn multi_label_is_one_vs_rest_with_constant_labels() {
    let (texts, labels, test) = corpus();
    // Each text gets its class plus "any" (always present), and "urgent" for some spam.
    let sets: Vec<Vec<String>> = texts
        .iter()
        .zip(&labels)
        .map(|(text, label)| {
            let mut set = vec![label.clone(), "any".to_owned()];
            if text.contains("urgent") {
                set.push("urgent".to_owned());
            }
            set
        })
        .collect();
    let (baseline, _) =
        Baseline::fit(&texts, &Targets::MultiLabel(sets), None, &tfidf_config()).expect("fit");
    let Head::MultiLabel {
        labels: columns, ..
    } = &baseline.head
    else {
        panic!("multi-label head expected");
    };
    assert_eq!(columns, &["any", "ham", "news", "spam", "urgent"]);
    let probabilities = baseline.predict_proba(&test).expect("predict");
    for i in 0..probabilities.len() {
        assert_eq!(probabilities.row(i)[0], 1.0, "constant label");
        assert!(probabilities.row(i).iter().all(|p| (0.0..=1.0).contains(p)));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    baseline.save(dir.path()).expect("save");
    let loaded = Baseline::load(dir.path()).expect("load");
    assert_eq!(loaded.predict_proba(&test).expect("predict"), probabilities);
}

#[test]
fn train_text_baseline_writes_metrics_and_model() {
    let (texts, labels, _) = corpus();
    let train: Vec<(String, String, f32)> = texts
        .iter()
        .zip(&labels)
        .take(70)
        .map(|(t, l)| (t.clone(), l.clone(), 1.0))
        .collect();
    let val: Vec<(String, String)> = texts
        .iter()
        .zip(&labels)
        .skip(70)
        .map(|(t, l)| (t.clone(), l.clone()))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let report = train_text_baseline(&train, &val, &tfidf_config(), dir.path()).expect("train");
    assert_eq!(report.n_train, 70);
    assert_eq!(report.n_val, texts.len() - 70);
    assert!(
        report.accuracy > 0.5,
        "topic words make this easy: {report:?}"
    );
    let metrics: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("baseline_metrics.json")).expect("metrics file"),
    )
    .expect("metrics JSON");
    assert_eq!(metrics["accuracy"].as_f64(), Some(report.accuracy));
    assert_eq!(metrics["macro_f1"].as_f64(), Some(report.macro_f1));
    assert!(Baseline::load(&dir.path().join("model")).is_ok());

    let train_multi: Vec<(String, Vec<String>, f32)> = train
        .iter()
        .map(|(t, l, w)| (t.clone(), vec![l.clone()], *w))
        .collect();
    let val_multi: Vec<(String, Vec<String>)> = val
        .iter()
        .map(|(t, l)| (t.clone(), vec![l.clone()]))
        .collect();
    let multi_dir = tempfile::tempdir().expect("tempdir");
    let multi =
        train_multilabel_baseline(&train_multi, &val_multi, &tfidf_config(), multi_dir.path())
            .expect("train multi-label");
    assert_eq!(multi.task, "multi_label");
    assert_eq!(multi.columns, ["ham", "news", "spam"]);
}

#[test]
fn labelled_files_report_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.jsonl");
    std::fs::write(
        &good,
        "{\"text\": \"a b\", \"label\": \"x\"}\n\n{\"text\": \"c\", \"label\": [\"y\", \"z\"], \"weight\": 0.5}\n",
    )
    .expect("write");
    let records = read_labelled(&good, &Fields::default()).expect("read");
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].labels, ["y", "z"]);
    assert_eq!(records[1].weight, 0.5);

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": 3, \"label\": \"x\"}\n",
    )
    .expect("write");
    let error = read_labelled(&bad, &Fields::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("bad.jsonl:2") && error.contains("`text`"),
        "{error}"
    );

    let csv = dir.path().join("data.csv");
    std::fs::write(
        &csv,
        "text,label,weight\n\"hello, world\",greeting,2\nbye,farewell,-1\n",
    )
    .expect("write");
    let error = read_labelled(&csv, &Fields::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("data.csv:3") && error.contains("weight"),
        "{error}"
    );
}

#[test]
fn bad_training_data_is_rejected_with_a_reason() {
    let error = Baseline::fit(
        &["only one class here", "still one class"],
        &Targets::SingleLabel(vec!["a".into(), "a".into()]),
        None,
        &tfidf_config(),
    )
    .err()
    .expect("one class cannot be fitted")
    .to_string();
    assert!(error.contains("at least 2 classes"), "{error}");
    let error = Baseline::fit(
        &["x y", "z w"],
        &Targets::SingleLabel(vec!["a".into()]),
        None,
        &tfidf_config(),
    )
    .err()
    .expect("length mismatch")
    .to_string();
    assert!(error.contains("2 texts but 1 targets"), "{error}");
}
