//! A text baseline: a feature extractor (TF-IDF or sentence embeddings) followed by logistic
//! regression — multinomial/binary for single-label tasks, one-vs-rest for multi-label ones.

use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::embed::{SentenceEncoder, DEFAULT_BATCH_SIZE};
use crate::error::{BaselineError, Result};
use crate::logistic::{LogisticConfig, LogisticRegression};
use crate::sparse::CsrMatrix;
use crate::tfidf::{StopWords, TfidfConfig, TfidfVectorizer};

/// Which features feed the classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureConfig {
    /// Sparse TF-IDF fitted on the training texts.
    Tfidf(TfidfConfig),
    /// Frozen sentence embeddings from a local sentence-transformers directory.
    Embedding {
        model_dir: PathBuf,
        #[serde(default = "default_batch_size")]
        batch_size: usize,
    },
}

fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}

/// Everything that decides how a baseline is fitted; saved beside the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BaselineConfig {
    pub features: FeatureConfig,
    pub logistic: LogisticConfig,
}

impl Default for BaselineConfig {
    /// TF-IDF with English stop words and the 10,000 most frequent terms, then
    /// `LogisticRegression()` (the usual scikit-learn text baseline).
    fn default() -> Self {
        Self {
            features: FeatureConfig::Tfidf(TfidfConfig {
                stop_words: StopWords::English,
                max_features: Some(10_000),
                ..TfidfConfig::default()
            }),
            logistic: LogisticConfig::default(),
        }
    }
}

/// Training targets: one label per text, or a set of labels per text.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    SingleLabel(Vec<String>),
    MultiLabel(Vec<Vec<String>>),
}

impl Targets {
    fn len(&self) -> usize {
        match self {
            Self::SingleLabel(labels) => labels.len(),
            Self::MultiLabel(sets) => sets.len(),
        }
    }
}

/// A fitted feature extractor.
#[allow(clippy::large_enum_variant)] // one per model, never in collections
pub enum Features {
    Tfidf(TfidfVectorizer),
    Embedding(SentenceEncoder),
}

impl Features {
    /// Feature rows for texts.
    ///
    /// # Shapes
    /// Output: `texts.len() x n_features` (vocabulary size, or embedding size).
    pub fn transform<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<CsrMatrix> {
        match self {
            Self::Tfidf(vectorizer) => Ok(vectorizer.transform(texts)),
            Self::Embedding(encoder) => {
                let values = encoder.encode(texts)?;
                let dimension = encoder.dimension();
                Ok(CsrMatrix::from_dense(
                    texts.len(),
                    dimension,
                    values.into_iter().map(f64::from).collect(),
                ))
            }
        }
    }
}

/// One label of a multi-label head.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelModel {
    /// Binary logistic regression; classes are `["absent", "present"]`.
    Logistic(LogisticRegression),
    /// The label was present in all or none of the training texts: a constant probability
    /// (what scikit-learn's `OneVsRestClassifier` does too).
    Constant(f64),
}

/// The classifier on top of the features.
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    SingleLabel(LogisticRegression),
    MultiLabel {
        labels: Vec<String>,
        models: Vec<LabelModel>,
    },
}

pub(crate) const ABSENT: &str = "absent";
pub(crate) const PRESENT: &str = "present";

/// Probabilities for a batch of texts.
///
/// # Shapes
/// `values`: `n_texts x columns.len()`, row-major. Single-label: class probabilities that
/// sum to 1 per row. Multi-label: independent probabilities that each label applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Probabilities {
    pub columns: Vec<String>,
    pub values: Vec<f64>,
}

impl Probabilities {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        let k = self.columns.len();
        &self.values[i * k..(i + 1) * k]
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.values.len() / self.columns.len().max(1)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Timings and solver outcome of a fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitReport {
    pub n_texts: usize,
    pub n_features: usize,
    pub feature_seconds: f64,
    pub classifier_seconds: f64,
    /// L-BFGS iterations, per fitted logistic regression.
    pub iterations: Vec<usize>,
    pub converged: bool,
}

/// A fitted baseline: features + head + the settings that produced them.
pub struct Baseline {
    pub config: BaselineConfig,
    pub features: Features,
    pub head: Head,
}

impl Baseline {
    /// Fits on training texts only (vocabulary and idf never see validation or test text).
    /// `weights` are per-text sample weights (e.g. label confidence).
    pub fn fit<S: AsRef<str> + Sync>(
        texts: &[S],
        targets: &Targets,
        weights: Option<&[f64]>,
        config: &BaselineConfig,
    ) -> Result<(Self, FitReport)> {
        if texts.len() != targets.len() {
            return Err(BaselineError::Data(format!(
                "{} texts but {} targets",
                texts.len(),
                targets.len()
            )));
        }
        if texts.is_empty() {
            return Err(BaselineError::Data("no training texts".into()));
        }
        let started = Instant::now();
        let (features, x) = match &config.features {
            FeatureConfig::Tfidf(tfidf) => {
                let (vectorizer, x) = TfidfVectorizer::fit_transform(texts, tfidf)?;
                (Features::Tfidf(vectorizer), x)
            }
            FeatureConfig::Embedding {
                model_dir,
                batch_size,
            } => {
                let encoder = SentenceEncoder::load(model_dir)?.with_batch_size(*batch_size);
                let features = Features::Embedding(encoder);
                let x = features.transform(texts)?;
                (features, x)
            }
        };
        let feature_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut iterations = Vec::new();
        let mut converged = true;
        let head = match targets {
            Targets::SingleLabel(labels) => {
                let (model, report) =
                    LogisticRegression::fit(&x, labels, weights, &config.logistic)?;
                iterations.push(report.iterations);
                converged &= report.converged;
                Head::SingleLabel(model)
            }
            Targets::MultiLabel(sets) => {
                let mut labels: Vec<String> = sets.iter().flatten().cloned().collect();
                labels.sort_unstable();
                labels.dedup();
                if labels.is_empty() {
                    return Err(BaselineError::Data(
                        "no labels in the training targets".into(),
                    ));
                }
                let fitted: Vec<(LabelModel, Option<(usize, bool)>)> = labels
                    .par_iter()
                    .map(|label| {
                        let binary: Vec<&str> = sets
                            .iter()
                            .map(|set| if set.contains(label) { PRESENT } else { ABSENT })
                            .collect();
                        let present = binary.iter().filter(|&&b| b == PRESENT).count();
                        if present == 0 || present == binary.len() {
                            tracing::warn!(label, "label present in all or no training texts");
                            let p = if present == 0 { 0.0 } else { 1.0 };
                            return Ok((LabelModel::Constant(p), None));
                        }
                        let (model, report) =
                            LogisticRegression::fit(&x, &binary, weights, &config.logistic)?;
                        Ok((
                            LabelModel::Logistic(model),
                            Some((report.iterations, report.converged)),
                        ))
                    })
                    .collect::<Result<_>>()?;
                let mut models = Vec::with_capacity(fitted.len());
                for (model, report) in fitted {
                    if let Some((n, ok)) = report {
                        iterations.push(n);
                        converged &= ok;
                    }
                    models.push(model);
                }
                Head::MultiLabel { labels, models }
            }
        };
        let report = FitReport {
            n_texts: texts.len(),
            n_features: x.n_cols,
            feature_seconds,
            classifier_seconds: started.elapsed().as_secs_f64(),
            iterations,
            converged,
        };
        Ok((
            Self {
                config: config.clone(),
                features,
                head,
            },
            report,
        ))
    }

    /// Probabilities for new texts.
    pub fn predict_proba<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Probabilities> {
        let x = self.features.transform(texts)?;
        self.predict_proba_features(&x)
    }

    /// Probabilities from already computed feature rows.
    pub fn predict_proba_features(&self, x: &CsrMatrix) -> Result<Probabilities> {
        match &self.head {
            Head::SingleLabel(model) => Ok(Probabilities {
                columns: model.classes.clone(),
                values: model.predict_proba(x)?,
            }),
            Head::MultiLabel { labels, models } => {
                let k = labels.len();
                let mut values = vec![0.0; x.n_rows * k];
                for (c, model) in models.iter().enumerate() {
                    let column: Vec<f64> = match model {
                        LabelModel::Constant(p) => vec![*p; x.n_rows],
                        LabelModel::Logistic(model) => model
                            .predict_proba(x)?
                            .chunks(2)
                            .map(|pair| pair[1])
                            .collect(),
                    };
                    for (i, p) in column.into_iter().enumerate() {
                        values[i * k + c] = p;
                    }
                }
                Ok(Probabilities {
                    columns: labels.clone(),
                    values,
                })
            }
        }
    }

    /// Single-label prediction: the most probable class per text (ties: first class).
    pub fn predict<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<String>> {
        let probabilities = self.predict_proba(texts)?;
        Ok(argmax_labels(&probabilities))
    }
}

/// The column with the highest probability, per row.
pub fn argmax_labels(probabilities: &Probabilities) -> Vec<String> {
    (0..probabilities.len())
        .map(|i| {
            let row = probabilities.row(i);
            let best = row
                .iter()
                .enumerate()
                .fold(0, |best, (c, &p)| if p > row[best] { c } else { best });
            probabilities.columns[best].clone()
        })
        .collect()
}
