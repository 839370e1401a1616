//! The crate's error type: every failure names what was being read or fitted.

use std::path::PathBuf;

/// Errors from fitting, applying, saving and loading baselines.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// A setting is out of range or settings contradict each other.
    #[error("invalid setting `{field}`: {reason}")]
    InvalidConfig { field: &'static str, reason: String },

    /// The training data cannot produce a model (empty, one class, mismatched lengths...).
    #[error("cannot fit: {0}")]
    Data(String),

    /// A token pattern given by the user is not a valid regular expression.
    #[error("token pattern {pattern:?} is not a valid regular expression: {source}")]
    TokenPattern {
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },

    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file exists but its content is not what was expected.
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },

    /// A line of a labelled-text file is malformed.
    #[error("{path}:{line}: {reason}")]
    Record {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// The sentence encoder failed (tensor shapes, missing weights, tokenizer).
    #[error("sentence encoder: {0}")]
    Encoder(String),

    /// Tensor operation failed inside the encoder.
    #[error("sentence encoder: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result alias for this crate.
pub type Result<T, E = BaselineError> = std::result::Result<T, E>;

impl BaselineError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }
}
