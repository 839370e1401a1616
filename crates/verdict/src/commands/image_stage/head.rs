//! The trained candidate of the image stage: logistic regression on OpenNSFW's penultimate
//! features, on the task's own labels.
//!
//! Features are standardised with train means and deviations (the pooled ReLU activations
//! range from 0 to about 8 with many exact zeros; unscaled, one `C` would regularise the
//! features very unevenly). `C` is chosen from a small grid by validation macro-F1, ties going
//! to the smaller `C`, since image tasks here are small and the features are 1024-d. Classes
//! are weighted by inverse frequency so a rare label still counts.

use anyhow::Context;
use verdict_baseline::logistic::{ClassWeight, LogisticConfig, LogisticRegression};
use verdict_baseline::CsrMatrix;

/// Values of `C` tried on validation.
pub const C_GRID: [f64; 6] = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0];
/// Deviations below this are treated as constant features (left unscaled).
const MIN_DEVIATION: f64 = 1e-8;

/// What the head's fit found, saved as `head.json` next to its predictions.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeadReport {
    pub c: f64,
    pub val_macro_f1: f64,
    /// `(C, validation macro-F1)` for every `C` tried; empty when there was no validation set.
    pub sweep: Vec<(f64, f64)>,
    pub train_samples: usize,
    pub val_samples: usize,
    /// Labels seen in train (the head can only predict these).
    pub classes: Vec<String>,
}

/// A fitted head: standardisation, the regression, and the answer for samples without image.
pub struct Head {
    model: LogisticRegression,
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// Task labels in task order.
    labels: Vec<String>,
    /// Train label frequencies in task order, the answer when a sample has no usable image.
    pub prior: Vec<f32>,
    pub report: HeadReport,
}

impl Head {
    /// Probabilities over the task's labels (task order) for one feature vector; labels absent
    /// from train get 0.
    ///
    /// # Shapes
    /// `features`: 1024 values.
    pub fn probabilities(&self, features: &[f32]) -> anyhow::Result<Vec<f32>> {
        let row = standardise(features, &self.mean, &self.scale);
        let x = CsrMatrix::from_dense(1, row.len(), row);
        let proba = self.model.predict_proba(&x)?;
        Ok(self
            .labels
            .iter()
            .map(|label| {
                self.model
                    .classes
                    .iter()
                    .position(|c| c == label)
                    .map_or(0.0, |i| proba[i] as f32)
            })
            .collect())
    }
}

fn standardise(features: &[f32], mean: &[f64], scale: &[f64]) -> Vec<f64> {
    features
        .iter()
        .zip(mean.iter().zip(scale))
        .map(|(&x, (m, s))| (f64::from(x) - m) / s)
        .collect()
}

fn matrix(rows: &[(Vec<f32>, String)], mean: &[f64], scale: &[f64]) -> CsrMatrix {
    let width = mean.len();
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|(features, _)| standardise(features, mean, scale))
        .collect();
    CsrMatrix::from_dense(rows.len(), width, values)
}

/// Fits the head on `train` and picks `C` on `val` (rows: features, true label). `None` when
/// train holds fewer than two labels, where no classifier can be fitted.
pub fn fit(
    train: &[(Vec<f32>, String)],
    val: &[(Vec<f32>, String)],
    labels: &[String],
) -> anyhow::Result<Option<Head>> {
    let mut classes: Vec<String> = train.iter().map(|(_, label)| label.clone()).collect();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        return Ok(None);
    }
    let width = train[0].0.len();
    let count = train.len() as f64;
    let mut mean = vec![0.0; width];
    for (features, _) in train {
        for (m, &x) in mean.iter_mut().zip(features) {
            *m += f64::from(x) / count;
        }
    }
    let mut scale = vec![0.0; width];
    for (features, _) in train {
        for ((s, &x), m) in scale.iter_mut().zip(features).zip(&mean) {
            *s += (f64::from(x) - m).powi(2) / count;
        }
    }
    for s in &mut scale {
        let deviation = s.sqrt();
        *s = if deviation > MIN_DEVIATION {
            deviation
        } else {
            1.0
        };
    }
    let x_train = matrix(train, &mean, &scale);
    let y_train: Vec<&str> = train.iter().map(|(_, l)| l.as_str()).collect();
    let config = |c: f64| LogisticConfig {
        c,
        class_weight: ClassWeight::Balanced,
        ..LogisticConfig::default()
    };
    let fitted = |c: f64| -> anyhow::Result<LogisticRegression> {
        Ok(
            LogisticRegression::fit(&x_train, &y_train, None, &config(c))
                .with_context(|| format!("fitting the head with C = {c}"))?
                .0,
        )
    };

    let (model, c, val_macro_f1, sweep) = if val.is_empty() {
        (fitted(1.0)?, 1.0, f64::NAN, Vec::new())
    } else {
        let x_val = matrix(val, &mean, &scale);
        let y_val: Vec<&str> = val.iter().map(|(_, l)| l.as_str()).collect();
        let mut best: Option<(LogisticRegression, f64, f64)> = None;
        let mut sweep = Vec::new();
        for c in C_GRID {
            let model = fitted(c)?;
            let proba = model.predict_proba(&x_val)?;
            let k = model.classes.len();
            let predicted: Vec<&str> = proba
                .chunks(k)
                .map(|row| {
                    let best = (0..k)
                        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                        .unwrap_or(0);
                    model.classes[best].as_str()
                })
                .collect();
            let score = verdict_baseline::metrics::macro_f1(&y_val, &predicted);
            sweep.push((c, score));
            // Strictly better only: on a tie the smaller (earlier) C stays.
            if best.as_ref().is_none_or(|(_, _, s)| score > *s) {
                best = Some((model, c, score));
            }
        }
        let (model, c, score) = best.context("empty C grid")?;
        (model, c, score, sweep)
    };

    let prior = labels
        .iter()
        .map(|label| {
            y_train.iter().filter(|l| **l == label.as_str()).count() as f32 / train.len() as f32
        })
        .collect();
    Ok(Some(Head {
        report: HeadReport {
            c,
            val_macro_f1,
            sweep,
            train_samples: train.len(),
            val_samples: val.len(),
            classes: model.classes.clone(),
        },
        model,
        mean,
        scale,
        labels: labels.to_vec(),
        prior,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: [f32; 3], label: &str) -> (Vec<f32>, String) {
        (values.to_vec(), label.to_string())
    }

    #[test]
    fn separable_features_are_learned_and_mapped_to_task_order() {
        let train = vec![
            row([0.0, 5.0, 1.0], "part"),
            row([0.2, 4.0, 1.0], "part"),
            row([3.0, 0.5, 1.0], "test_shape"),
            row([2.5, 0.0, 1.0], "test_shape"),
        ];
        let val = vec![
            row([0.1, 4.5, 1.0], "part"),
            row([2.8, 0.2, 1.0], "test_shape"),
        ];
        let labels: Vec<String> = ["broken", "part", "test_shape"].map(String::from).to_vec();
        let head = fit(&train, &val, &labels).unwrap().unwrap();
        assert_eq!(head.report.val_macro_f1, 1.0);
        assert_eq!(head.report.sweep.len(), C_GRID.len());
        // The constant third feature has no spread and must not become NaN.
        let p = head.probabilities(&[0.0, 6.0, 1.0]).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0], 0.0, "a label absent from train gets no probability");
        assert!(p[1] > p[2], "{p:?}");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(head.prior, vec![0.0, 0.5, 0.5]);
    }

    #[test]
    fn one_label_in_train_gives_no_head() {
        let train = vec![row([0.0, 1.0, 2.0], "part"), row([1.0, 1.0, 2.0], "part")];
        let labels = vec!["part".to_string(), "test_shape".to_string()];
        assert!(fit(&train, &[], &labels).unwrap().is_none());
    }
}
