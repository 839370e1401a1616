//! Parity with scikit-learn on the committed fixture `fixtures/sklearn_parity.json`
//! (regenerate with `python3 tests/fixtures/make_fixtures.py`).

use serde_json::Value;
use verdict_baseline::logistic::{ClassWeight, LogisticConfig, LogisticRegression};
use verdict_baseline::tfidf::{DocumentFrequency, Norm, StopWords, TfidfConfig, TfidfVectorizer};
use verdict_baseline::CsrMatrix;

fn fixture() -> Value {
    let text = include_str!("fixtures/sklearn_parity.json");
    serde_json::from_str(text).expect("fixture is valid JSON")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

fn tfidf_config(settings: &Value) -> TfidfConfig {
    let mut config = TfidfConfig::default();
    let settings = settings.as_object().expect("settings object");
    for (key, value) in settings {
        match key.as_str() {
            "stop_words" => {
                assert_eq!(value, "english");
                config.stop_words = StopWords::English;
            }
            "ngram_range" => {
                let range = floats(value);
                config.ngram_range = (range[0] as usize, range[1] as usize);
            }
            "sublinear_tf" => config.sublinear_tf = value.as_bool().expect("bool"),
            "binary" => config.binary = value.as_bool().expect("bool"),
            "smooth_idf" => config.smooth_idf = value.as_bool().expect("bool"),
            "use_idf" => config.use_idf = value.as_bool().expect("bool"),
            "lowercase" => config.lowercase = value.as_bool().expect("bool"),
            "max_features" => config.max_features = value.as_u64().map(|v| v as usize),
            "min_df" | "max_df" => {
                let bound = match value.as_u64() {
                    Some(count) => DocumentFrequency::Count(count),
                    None => DocumentFrequency::Proportion(value.as_f64().expect("number")),
                };
                if key == "min_df" {
                    config.min_df = bound;
                } else {
                    config.max_df = bound;
                }
            }
            "norm" => {
                config.norm = match value.as_str() {
                    Some("l1") => Norm::L1,
                    Some("l2") => Norm::L2,
                    None => Norm::None,
                    Some(other) => panic!("unknown norm {other}"),
                }
            }
            other => panic!("setting {other} not mapped"),
        }
    }
    config
}

fn assert_rows(matrix: &CsrMatrix, expected: &Value, what: &str) {
    for row in expected.as_array().expect("rows") {
        let i = row["row"].as_u64().expect("row") as usize;
        let indices: Vec<u32> = row["indices"]
            .as_array()
            .expect("indices")
            .iter()
            .map(|v| v.as_u64().expect("index") as u32)
            .collect();
        let data = floats(&row["data"]);
        let actual = matrix.row(i);
        assert_eq!(
            actual.indices,
            indices.as_slice(),
            "{what}: columns of row {i}"
        );
        for (a, e) in actual.data.iter().zip(&data) {
            assert!((a - e).abs() <= 1e-12, "{what}: row {i}: {a} vs {e}");
        }
    }
}

#[test]
fn tfidf_vocabulary_idf_and_rows_match_sklearn() {
    let fixture = fixture();
    let train = strings(&fixture["train_texts"]);
    let test = strings(&fixture["test_texts"]);
    let cases = fixture["vectorizers"].as_object().expect("cases");
    assert!(cases.len() >= 5);
    for (name, case) in cases {
        let config = tfidf_config(&case["settings"]);
        let (vectorizer, x_train) = TfidfVectorizer::fit_transform(&train, &config).expect("fit");
        assert_eq!(
            vectorizer.vocabulary(),
            strings(&case["vocabulary"]).as_slice(),
            "{name}: vocabulary"
        );
        match vectorizer.idf() {
            Some(idf) => {
                let expected = floats(&case["idf"]);
                assert_eq!(idf.len(), expected.len());
                for (term, (a, e)) in vectorizer
                    .vocabulary()
                    .iter()
                    .zip(idf.iter().zip(&expected))
                {
                    assert!(
                        (a - e).abs() <= 1e-12,
                        "{name}: idf of {term:?}: {a} vs {e}"
                    );
                }
            }
            None => assert!(case["idf"].is_null(), "{name}: idf expected"),
        }
        assert_rows(&x_train, &case["train_rows"], &format!("{name} train"));
        let x_test = vectorizer.transform(&test);
        assert_rows(&x_test, &case["test_rows"], &format!("{name} test"));
    }
}

#[test]
fn logistic_regression_matches_sklearn() {
    let fixture = fixture();
    let train = strings(&fixture["train_texts"]);
    let test = strings(&fixture["test_texts"]);
    let weights = floats(&fixture["sample_weights"]);
    let cases = fixture["models"].as_object().expect("models");
    assert!(cases.len() >= 6);
    for (name, case) in cases {
        let features = &fixture["vectorizers"][case["features"].as_str().expect("features")];
        let (vectorizer, x_train) =
            TfidfVectorizer::fit_transform(&train, &tfidf_config(&features["settings"]))
                .expect("fit features");
        let x_test = vectorizer.transform(&test);
        let labels = match case["labels"].as_str() {
            Some("binary") => strings(&fixture["binary_train_labels"]),
            _ => strings(&fixture["train_labels"]),
        };
        let settings = &case["settings"];
        let config = LogisticConfig {
            c: settings["C"].as_f64().unwrap_or(1.0),
            fit_intercept: settings["fit_intercept"].as_bool().unwrap_or(true),
            class_weight: match settings["class_weight"].as_str() {
                Some("balanced") => ClassWeight::Balanced,
                _ => ClassWeight::None,
            },
            tol: 1e-9,
            max_iter: 10_000,
        };
        let sample_weights = case["sample_weights"]
            .as_bool()
            .expect("flag")
            .then_some(weights.as_slice());
        let (model, report) =
            LogisticRegression::fit(&x_train, &labels, sample_weights, &config).expect("fit");
        assert!(report.converged, "{name}: {report:?}");
        assert_eq!(model.classes, strings(&case["classes"]), "{name}: classes");

        let expected_coef: Vec<f64> = case["coef"]
            .as_array()
            .expect("coef")
            .iter()
            .flat_map(floats)
            .collect();
        assert_eq!(model.coefficients.len(), expected_coef.len(), "{name}");
        let coef_error = model
            .coefficients
            .iter()
            .zip(&expected_coef)
            .fold(0.0f64, |m, (a, e)| m.max((a - e).abs()));
        assert!(
            coef_error <= 1e-5,
            "{name}: coefficients differ by {coef_error}"
        );
        for (a, e) in model.intercepts.iter().zip(floats(&case["intercept"])) {
            assert!((a - e).abs() <= 1e-5, "{name}: intercept {a} vs {e}");
        }

        let proba = model.predict_proba(&x_test).expect("predict");
        let expected: Vec<f64> = case["test_proba"]
            .as_array()
            .expect("proba")
            .iter()
            .flat_map(floats)
            .collect();
        assert_eq!(proba.len(), expected.len());
        let error = proba
            .iter()
            .zip(&expected)
            .fold(0.0f64, |m, (a, e)| m.max((a - e).abs()));
        assert!(error <= 1e-4, "{name}: probabilities differ by {error}");
    }
}
