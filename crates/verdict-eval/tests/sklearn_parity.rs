//! Every metric against scikit-learn's value on the committed fixtures
//! (`tests/fixtures/make_fixtures.py` regenerates them).

use serde_json::Value;
use verdict_eval::calibration::{
    fit_temperature, negative_log_likelihood, reliability, IsotonicRegression,
};
use verdict_eval::metrics::{
    average_precision, averaged, hamming_loss, per_label, roc_auc, subset_accuracy, Average,
    ConfusionMatrix, Outcomes, ZeroDivision,
};

const TOLERANCE: f64 = 1e-12;

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Equal within tolerance; null in the fixture (NaN or undefined) must be NaN here.
fn assert_close(actual: f64, expected: &Value, what: &str) {
    match expected.as_f64() {
        None => assert!(
            actual.is_nan(),
            "{what}: expected NaN/undefined, got {actual}"
        ),
        Some(expected) => assert!(
            (actual - expected).abs() <= TOLERANCE,
            "{what}: expected {expected}, got {actual}"
        ),
    }
}

fn zero_division(key: &str) -> ZeroDivision {
    match key {
        "zero" => ZeroDivision::Zero,
        "one" => ZeroDivision::One,
        _ => ZeroDivision::Nan,
    }
}

#[test]
fn multiclass_metrics_match_sklearn() {
    let data = fixture("multiclass.json");
    for case in data["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let labels = strings(&case["labels"]);
        let index = |l: &String| labels.iter().position(|x| x == l).unwrap();
        let truth: Vec<usize> = strings(&case["y_true"]).iter().map(index).collect();
        let predicted: Vec<usize> = strings(&case["y_pred"]).iter().map(index).collect();
        let mut outcomes = Outcomes::from_indices(labels.clone(), &truth, &predicted);
        assert_close(
            subset_accuracy(&outcomes).unwrap(),
            &case["accuracy"],
            &format!("{name} accuracy"),
        );
        let confusion = ConfusionMatrix::from_outcomes(&outcomes);
        let expected: Vec<Vec<u64>> = serde_json::from_value(case["confusion"].clone()).unwrap();
        assert_eq!(confusion.counts, expected, "{name} confusion");
        for (key, entry) in case["by_zero_division"].as_object().unwrap() {
            outcomes.zero_division = zero_division(key);
            let scores = per_label(&outcomes);
            for (i, label) in scores.iter().enumerate() {
                let what = format!("{name} zero_division={key} label {}", label.label);
                assert_close(
                    label.precision,
                    &entry["precision"][i],
                    &format!("{what} precision"),
                );
                assert_close(label.recall, &entry["recall"][i], &format!("{what} recall"));
                assert_close(label.f1, &entry["f1"][i], &format!("{what} f1"));
                assert_eq!(
                    label.support,
                    entry["support"][i].as_u64().unwrap(),
                    "{what} support"
                );
            }
            for (average, key_name) in [
                (Average::Macro, "macro"),
                (Average::Micro, "micro"),
                (Average::Weighted, "weighted"),
            ] {
                let triple = averaged(&outcomes, average).unwrap();
                let what = format!("{name} zero_division={key} {key_name}");
                assert_close(
                    triple.precision,
                    &entry[key_name]["precision"],
                    &format!("{what} precision"),
                );
                assert_close(
                    triple.recall,
                    &entry[key_name]["recall"],
                    &format!("{what} recall"),
                );
                assert_close(triple.f1, &entry[key_name]["f1"], &format!("{what} f1"));
            }
        }
    }
}

#[test]
fn ranking_metrics_match_sklearn_including_ties() {
    let data = fixture("ranking.json");
    for case in data["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let truth: Vec<bool> = case["y_true"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64() == Some(1))
            .collect();
        let scores = floats(&case["scores"]);
        assert_close(
            average_precision(&truth, &scores).unwrap(),
            &case["average_precision"],
            &format!("{name} AP"),
        );
        match roc_auc(&truth, &scores) {
            Some(auc) => assert_close(auc, &case["roc_auc"], &format!("{name} ROC-AUC")),
            None => assert!(
                case["roc_auc"].is_null(),
                "{name}: ROC-AUC undefined here but sklearn gives one"
            ),
        }
    }
}

#[test]
fn multilabel_metrics_match_sklearn() {
    let data = fixture("multilabel.json");
    for case in data["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let rows = |v: &Value| -> Vec<Vec<bool>> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_i64() == Some(1))
                        .collect()
                })
                .collect()
        };
        let truth = rows(&case["y_true"]);
        let labels: Vec<String> = (0..truth[0].len()).map(|i| format!("label{i}")).collect();
        let mut outcomes = Outcomes {
            labels,
            truth,
            predicted: rows(&case["y_pred"]),
            scores: None,
            positive: None,
            zero_division: ZeroDivision::Zero,
            multi_label: true,
        };
        assert_close(
            subset_accuracy(&outcomes).unwrap(),
            &case["subset_accuracy"],
            &format!("{name} subset accuracy"),
        );
        assert_close(
            hamming_loss(&outcomes).unwrap(),
            &case["hamming_loss"],
            &format!("{name} hamming"),
        );
        for (key, entry) in case["by_zero_division"].as_object().unwrap() {
            outcomes.zero_division = zero_division(key);
            for (average, key_name) in [
                (Average::Micro, "micro"),
                (Average::Macro, "macro"),
                (Average::Samples, "samples"),
                (Average::Weighted, "weighted"),
            ] {
                let f1 = averaged(&outcomes, average).unwrap().f1;
                assert_close(
                    f1,
                    &entry[key_name],
                    &format!("{name} zero_division={key} {key_name} F1"),
                );
            }
            for (i, label) in per_label(&outcomes).iter().enumerate() {
                let what = format!("{name} zero_division={key} label {i}");
                assert_close(
                    label.precision,
                    &entry["per_label"]["precision"][i],
                    &format!("{what} precision"),
                );
                assert_close(
                    label.recall,
                    &entry["per_label"]["recall"][i],
                    &format!("{what} recall"),
                );
                assert_close(
                    label.f1,
                    &entry["per_label"]["f1"][i],
                    &format!("{what} f1"),
                );
            }
        }
    }
}

#[test]
fn reliability_bins_match_sklearn_calibration_curve() {
    let data = fixture("calibration.json");
    let case = &data["reliability"];
    let events: Vec<bool> = case["y_true"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64() == Some(1))
        .collect();
    let probabilities = floats(&case["prob"]);
    for curve in case["curves"].as_array().unwrap() {
        let bins = curve["n_bins"].as_u64().unwrap() as usize;
        let diagram = reliability(&events, &probabilities, bins);
        let prob_true = floats(&curve["prob_true"]);
        let prob_pred = floats(&curve["prob_pred"]);
        assert_eq!(
            diagram.bins.len(),
            prob_true.len(),
            "{bins} bins: non-empty bin count"
        );
        for (k, bin) in diagram.bins.iter().enumerate() {
            assert!(
                (bin.frequency - prob_true[k]).abs() < TOLERANCE,
                "{bins} bins, bin {k} frequency"
            );
            assert!(
                (bin.mean_confidence - prob_pred[k]).abs() < TOLERANCE,
                "{bins} bins, bin {k} mean"
            );
            assert_eq!(
                bin.count as u64,
                curve["counts"][k].as_u64().unwrap(),
                "{bins} bins, bin {k} count"
            );
        }
        assert_close(
            diagram.expected_calibration_error,
            &curve["ece"],
            &format!("{bins} bins ECE"),
        );
    }
}

#[test]
fn isotonic_regression_matches_sklearn_with_clipping() {
    let data = fixture("calibration.json");
    let case = &data["isotonic"];
    let model = IsotonicRegression::fit(&floats(&case["x_fit"]), &floats(&case["y_fit"])).unwrap();
    for (x, expected) in floats(&case["x_new"]).iter().zip(floats(&case["y_new"])) {
        let actual = model.predict(*x);
        assert!(
            (actual - expected).abs() < 1e-12,
            "isotonic({x}) = {actual}, sklearn {expected}"
        );
    }
}

#[test]
fn temperature_matches_scipy_minimum() {
    let data = fixture("calibration.json");
    let case = &data["temperature"];
    let probabilities: Vec<Vec<f64>> = case["probs"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    let truth: Vec<usize> = case["truth"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let before = negative_log_likelihood(&probabilities, &truth, 1.0);
    assert!((before - case["nll_before"].as_f64().unwrap()).abs() < 1e-10);
    let t = fit_temperature(&probabilities, &truth);
    let expected = case["temperature"].as_f64().unwrap();
    assert!(
        (t - expected).abs() < 1e-5,
        "temperature {t}, scipy {expected}"
    );
    let after = negative_log_likelihood(&probabilities, &truth, t);
    assert!(
        (after - case["nll_after"].as_f64().unwrap()).abs() < 1e-9,
        "NLL after {after}"
    );
    assert!(after < before);
}

/// `classification_report.json` written by `evaluate` equals scikit-learn's
/// `classification_report(output_dict=True)`, key for key.
#[test]
fn classification_report_file_matches_sklearn() {
    use verdict_eval::{EvalSpec, Prediction, TaskKind};
    let data = fixture("classification_report.json");
    for (case_name, kind) in [
        ("multiclass", TaskKind::MultiClass),
        ("multilabel", TaskKind::MultiLabel),
    ] {
        let case = &data[case_name];
        let labels = strings(&case["labels"]);
        let as_labels = |value: &Value| -> Vec<String> {
            match value {
                Value::String(label) => vec![label.clone()],
                Value::Array(flags) => flags
                    .iter()
                    .zip(&labels)
                    .filter(|(flag, _)| flag.as_i64() == Some(1))
                    .map(|(_, label)| label.clone())
                    .collect(),
                other => panic!("unexpected label value {other}"),
            }
        };
        let rows: Vec<Prediction> = case["y_true"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["y_pred"].as_array().unwrap())
            .enumerate()
            .map(|(i, (truth, predicted))| Prediction {
                sample_id: format!("s{i}"),
                true_labels: as_labels(truth),
                predicted_labels: as_labels(predicted),
                model_id: "m".into(),
                ..Default::default()
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let spec = EvalSpec::new(case_name, kind, labels.clone());
        verdict_eval::evaluate(&rows, &spec, dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("classification_report.json")).unwrap();
        let ours: Value = serde_json::from_str(&text).unwrap();
        let ours = ours["m"].as_object().unwrap();
        let expected = case["report"].as_object().unwrap();
        let keys: Vec<&String> = ours.keys().collect();
        assert_eq!(
            keys,
            expected.keys().collect::<Vec<_>>(),
            "{case_name}: report keys"
        );
        for (key, value) in expected {
            match value {
                Value::Object(scores) => {
                    for (score, number) in scores {
                        let actual = ours[key][score].as_f64().unwrap();
                        assert_close(actual, number, &format!("{case_name} {key} {score}"));
                    }
                }
                number => assert_close(
                    ours[key].as_f64().unwrap(),
                    number,
                    &format!("{case_name} {key}"),
                ),
            }
        }
    }
}
