//! Text baselines: TF-IDF + logistic regression and sentence embeddings + logistic
//! regression, numerically matching scikit-learn and sentence-transformers.
//!
//! - [`tfidf`]: scikit-learn's `TfidfVectorizer` (vocabulary, idf, n-grams, stop words).
//! - [`logistic`]: `LogisticRegression` (L2, lbfgs optimum, binary and multinomial).
//! - [`embed`]: a BERT-family sentence-transformers encoder on candle.
//! - [`Baseline`]: features + classifier, fitted, saved and loaded as one model.

pub mod error;
pub mod logistic;
pub mod sparse;
pub mod tfidf;

pub use error::{BaselineError, Result};
pub use sparse::CsrMatrix;

pub mod baseline;
pub mod embed;
mod store;

pub use baseline::{
    Baseline, BaselineConfig, FeatureConfig, FitReport, Head, LabelModel, Probabilities, Targets,
};
pub mod io;
pub mod metrics;
mod train;

pub use train::{
    train_multilabel_baseline, train_text_baseline, BaselineReport, MULTI_LABEL_THRESHOLD,
};
