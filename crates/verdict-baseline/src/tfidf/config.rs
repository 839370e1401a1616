//! TF-IDF settings, named and defaulted as scikit-learn's `TfidfVectorizer` parameters.

use serde::{Deserialize, Serialize};

use super::analyzer::DEFAULT_TOKEN_PATTERN;
use crate::error::{BaselineError, Result};

/// Which stop words to drop after tokenising (`stop_words=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StopWords {
    /// Keep every token (`None`, the default).
    #[default]
    None,
    /// scikit-learn's built-in English list (`"english"`).
    English,
    /// An explicit list.
    List(Vec<String>),
}

/// Row normalisation (`norm=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// Euclidean norm (`"l2"`, the default).
    #[default]
    L2,
    /// Sum of absolute values (`"l1"`).
    L1,
    /// No normalisation (`None`).
    None,
}

/// A document-frequency bound: an absolute count (Python `int`) or a proportion of the
/// training documents (Python `float`), as in `min_df=` / `max_df=`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DocumentFrequency {
    Count(u64),
    Proportion(f64),
}

impl DocumentFrequency {
    /// The bound in documents for a corpus of `n_documents`.
    pub fn resolve(self, n_documents: usize) -> f64 {
        match self {
            Self::Count(count) => count as f64,
            Self::Proportion(p) => p * n_documents as f64,
        }
    }

    fn validate(self, field: &'static str) -> Result<()> {
        match self {
            Self::Proportion(p) if !(0.0..=1.0).contains(&p) => Err(BaselineError::config(
                field,
                format!("a proportion must be in [0, 1], got {p}"),
            )),
            _ => Ok(()),
        }
    }
}

/// Settings of [`super::TfidfVectorizer`]; `Default` is scikit-learn's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TfidfConfig {
    pub lowercase: bool,
    /// Regular expression for tokens. The default `(?u)\b\w\w+\b` is executed natively with
    /// Python's definition of `\w`; other patterns run on the `regex` crate, whose `\w` also
    /// includes combining marks.
    pub token_pattern: String,
    pub stop_words: StopWords,
    /// `(min_n, max_n)` word n-grams.
    pub ngram_range: (usize, usize),
    pub max_df: DocumentFrequency,
    pub min_df: DocumentFrequency,
    /// Keep the `max_features` terms with the highest corpus count. Ties are broken
    /// alphabetically; scikit-learn breaks them with numpy's unstable sort, so on ties exactly
    /// at the cut-off its choice among equal counts is arbitrary.
    pub max_features: Option<usize>,
    /// Term presence (1) instead of counts.
    pub binary: bool,
    pub norm: Norm,
    pub use_idf: bool,
    pub smooth_idf: bool,
    /// `1 + ln(tf)` instead of `tf`.
    pub sublinear_tf: bool,
}

impl Default for TfidfConfig {
    fn default() -> Self {
        Self {
            lowercase: true,
            token_pattern: DEFAULT_TOKEN_PATTERN.to_owned(),
            stop_words: StopWords::None,
            ngram_range: (1, 1),
            max_df: DocumentFrequency::Proportion(1.0),
            min_df: DocumentFrequency::Count(1),
            max_features: None,
            binary: false,
            norm: Norm::L2,
            use_idf: true,
            smooth_idf: true,
            sublinear_tf: false,
        }
    }
}

impl TfidfConfig {
    /// Checks ranges that scikit-learn's parameter validation checks.
    pub fn validate(&self) -> Result<()> {
        self.max_df.validate("max_df")?;
        self.min_df.validate("min_df")?;
        if self.max_features == Some(0) {
            return Err(BaselineError::config("max_features", "must be at least 1"));
        }
        Ok(())
    }
}
