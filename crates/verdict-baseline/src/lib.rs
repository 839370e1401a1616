//! Text baselines: TF-IDF + logistic regression and sentence embeddings + logistic
//! regression, numerically matching scikit-learn and sentence-transformers.
//!
//! - [`tfidf`]: scikit-learn's `TfidfVectorizer` (vocabulary, idf, n-grams, stop words,
//!   document-frequency bounds, `max_features`), on a small [`CsrMatrix`].
//! - [`logistic`]: `LogisticRegression` (L2, `C`, intercept, balanced class weights, sample
//!   weights; binary and multinomial), solved with L-BFGS to the same optimum as lbfgs.
//! - [`embed`]: a BERT-family sentence-transformers directory run on candle (mean pooling,
//!   normalisation, explicit truncation at `max_seq_length`).
//! - [`Baseline`]: features + classifier fitted on training texts only, saved to and loaded
//!   from a directory; [`train_text_baseline`] / [`train_multilabel_baseline`] fit, evaluate on
//!   validation texts and write `baseline_metrics.json`.
//!
//! Parity tests: `tests/sklearn_parity.rs` (committed fixture, always runs) and
//! `tests/minilm_parity.rs` (needs the model from `scripts/fetch-data`). Benchmark against
//! scikit-learn and sentence-transformers:
//! `cargo run --release -p verdict-baseline --example bench_sklearn`.

pub mod baseline;
pub mod embed;
pub mod error;
pub mod io;
pub mod logistic;
pub mod metrics;
pub mod sparse;
mod store;
pub mod tfidf;
mod train;

pub use baseline::{
    Baseline, BaselineConfig, FeatureConfig, FitReport, Head, LabelModel, Probabilities, Targets,
};
pub use error::{BaselineError, Result};
pub use sparse::CsrMatrix;
pub use train::{
    train_multilabel_baseline, train_text_baseline, BaselineReport, MULTI_LABEL_THRESHOLD,
};
