//! TF-IDF features with scikit-learn's `TfidfVectorizer` semantics.

mod analyzer;
mod config;
mod vectorizer;

pub use analyzer::{
    english_stop_words, is_python_word_char, lowercase_like_python, Analyzer, DEFAULT_TOKEN_PATTERN,
};
pub use config::{DocumentFrequency, Norm, StopWords, TfidfConfig};
pub use vectorizer::TfidfVectorizer;
