//! Fit temperature scaling and isotonic regression on validation rows, apply them to test rows
//! and report NLL, Brier score, ECE and accuracy before and after.

use serde::Serialize;

use super::isotonic::IsotonicRegression;
use super::reliability::{reliability, ReliabilityDiagram};
use super::temperature::{fit_temperature, negative_log_likelihood, scale};

/// Rows of probabilities with the index of the true label.
///
/// # Shapes
/// - `probabilities`: `[samples][labels]`, `truth`: `[samples]`
#[derive(Debug, Clone, Default)]
pub struct ProbabilityTable {
    pub probabilities: Vec<Vec<f64>>,
    pub truth: Vec<usize>,
    /// The label whose probability the reliability diagram bins (binary tasks); `None` bins the
    /// top-label confidence against "top label is right".
    pub event_label: Option<usize>,
}

impl ProbabilityTable {
    fn with(&self, probabilities: Vec<Vec<f64>>) -> ProbabilityTable {
        ProbabilityTable {
            probabilities,
            truth: self.truth.clone(),
            event_label: self.event_label,
        }
    }

    /// (event happened, confidence) pairs the reliability diagram bins.
    pub fn events(&self) -> (Vec<bool>, Vec<f64>) {
        self.probabilities
            .iter()
            .zip(&self.truth)
            .map(|(row, &truth)| match self.event_label {
                Some(label) => (truth == label, row[label]),
                None => {
                    let top = argmax(row);
                    (top == truth, row[top])
                }
            })
            .unzip()
    }
}

fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &p) in row.iter().enumerate() {
        if p > row[best] {
            best = i;
        }
    }
    best
}

/// The calibration maps compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMethod {
    Uncalibrated,
    Temperature,
    Isotonic,
}

/// Test-set quality of one method.
#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    pub method: CalibrationMethod,
    /// Fitted temperature (temperature scaling only).
    pub temperature: Option<f64>,
    pub negative_log_likelihood: f64,
    /// Mean over samples of the squared error summed over labels.
    pub brier_score: f64,
    pub expected_calibration_error: f64,
    pub accuracy: f64,
    pub reliability: ReliabilityDiagram,
}

/// Before/after numbers of every method.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationReport {
    /// "validation file" or "2-fold cross-fitting on the test rows".
    pub fitted_on: String,
    pub validation_samples: usize,
    pub test_samples: usize,
    pub methods: Vec<MethodResult>,
}

/// A fitted calibration map.
enum Fitted {
    Temperature(f64),
    /// One map per label (one-vs-rest), or only the last label's for two labels.
    Isotonic(Vec<Option<IsotonicRegression>>),
}

fn fit(method: CalibrationMethod, table: &ProbabilityTable) -> Option<Fitted> {
    match method {
        CalibrationMethod::Uncalibrated => None,
        CalibrationMethod::Temperature => Some(Fitted::Temperature(fit_temperature(
            &table.probabilities,
            &table.truth,
        ))),
        CalibrationMethod::Isotonic => {
            let labels = table.probabilities.first().map_or(0, Vec::len);
            let maps = (0..labels)
                .map(|label| {
                    // With two labels only the second is fitted and the first is its complement,
                    // as scikit-learn's CalibratedClassifierCV does.
                    if labels == 2 && label == 0 {
                        return None;
                    }
                    let x: Vec<f64> = table.probabilities.iter().map(|row| row[label]).collect();
                    let y: Vec<f64> = table
                        .truth
                        .iter()
                        .map(|&t| (t == label) as u8 as f64)
                        .collect();
                    IsotonicRegression::fit(&x, &y)
                })
                .collect();
            Some(Fitted::Isotonic(maps))
        }
    }
}

fn apply(fitted: &Fitted, row: &[f64]) -> Vec<f64> {
    match fitted {
        Fitted::Temperature(t) => scale(row, *t),
        Fitted::Isotonic(maps) if row.len() == 2 => {
            let p = maps[1].as_ref().map_or(row[1], |m| m.predict(row[1]));
            vec![1.0 - p, p]
        }
        Fitted::Isotonic(maps) => {
            let raw: Vec<f64> = row
                .iter()
                .zip(maps)
                .map(|(&p, map)| map.as_ref().map_or(p, |m| m.predict(p)))
                .collect();
            let sum: f64 = raw.iter().sum();
            if sum > 0.0 {
                raw.into_iter().map(|p| p / sum).collect()
            } else {
                vec![1.0 / row.len() as f64; row.len()]
            }
        }
    }
}

fn measure(
    method: CalibrationMethod,
    temperature: Option<f64>,
    table: &ProbabilityTable,
    bins: usize,
) -> MethodResult {
    let n = table.truth.len().max(1) as f64;
    let brier = table
        .probabilities
        .iter()
        .zip(&table.truth)
        .map(|(row, &truth)| {
            row.iter()
                .enumerate()
                .map(|(k, &p)| (p - (k == truth) as u8 as f64).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / n;
    let correct = table
        .probabilities
        .iter()
        .zip(&table.truth)
        .filter(|(row, &truth)| argmax(row) == truth)
        .count();
    let (events, confidence) = table.events();
    let diagram = reliability(&events, &confidence, bins);
    MethodResult {
        method,
        temperature,
        negative_log_likelihood: negative_log_likelihood(&table.probabilities, &table.truth, 1.0),
        brier_score: brier,
        expected_calibration_error: diagram.expected_calibration_error,
        accuracy: correct as f64 / n,
        reliability: diagram,
    }
}

/// Fits each method on `validation` and measures it on `test`. Without a validation table the
/// test rows are split into two seeded folds and each fold is calibrated by a map fitted on the
/// other (cross-fitting), so no row is scored by a map that saw it.
pub fn compare(
    validation: Option<&ProbabilityTable>,
    test: &ProbabilityTable,
    bins: usize,
    seed: u64,
) -> CalibrationReport {
    let methods = [
        CalibrationMethod::Uncalibrated,
        CalibrationMethod::Temperature,
        CalibrationMethod::Isotonic,
    ];
    let mut results = Vec::new();
    for method in methods {
        let (calibrated, temperature) = match validation {
            Some(validation) => {
                let fitted = fit(method, validation);
                let temperature = match &fitted {
                    Some(Fitted::Temperature(t)) => Some(*t),
                    _ => None,
                };
                let rows = test
                    .probabilities
                    .iter()
                    .map(|row| {
                        fitted
                            .as_ref()
                            .map_or_else(|| row.clone(), |f| apply(f, row))
                    })
                    .collect();
                (test.with(rows), temperature)
            }
            None => cross_fit(method, test, seed),
        };
        results.push(measure(method, temperature, &calibrated, bins));
    }
    CalibrationReport {
        fitted_on: if validation.is_some() {
            "validation file".into()
        } else {
            "2-fold cross-fitting on the test rows".into()
        },
        validation_samples: validation.map_or(0, |v| v.truth.len()),
        test_samples: test.truth.len(),
        methods: results,
    }
}

fn cross_fit(
    method: CalibrationMethod,
    table: &ProbabilityTable,
    seed: u64,
) -> (ProbabilityTable, Option<f64>) {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let n = table.truth.len();
    if method == CalibrationMethod::Uncalibrated || n < 4 {
        return (table.clone(), None);
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let folds = [&order[..n / 2], &order[n / 2..]];
    let subset = |indices: &[usize]| ProbabilityTable {
        probabilities: indices
            .iter()
            .map(|&i| table.probabilities[i].clone())
            .collect(),
        truth: indices.iter().map(|&i| table.truth[i]).collect(),
        event_label: table.event_label,
    };
    let mut rows = table.probabilities.clone();
    let mut temperatures = Vec::new();
    for (fit_fold, apply_fold) in [(0, 1), (1, 0)] {
        let Some(fitted) = fit(method, &subset(folds[fit_fold])) else {
            continue;
        };
        if let Fitted::Temperature(t) = fitted {
            temperatures.push(t);
        }
        for &i in folds[apply_fold] {
            rows[i] = apply(&fitted, &table.probabilities[i]);
        }
    }
    let temperature = (!temperatures.is_empty())
        .then(|| temperatures.iter().sum::<f64>() / temperatures.len() as f64);
    (table.with(rows), temperature)
}
