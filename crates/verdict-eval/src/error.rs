//! The one error type of this crate: every variant says which file (and row) is at fault.

use std::path::PathBuf;

/// Everything that can go wrong while reading predictions, computing metrics or writing reports.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A single row of a predictions file is wrong; `location` is "line N" or "row N".
    #[error("{path}, {location}: {message}")]
    Row {
        path: PathBuf,
        location: String,
        message: String,
    },
    /// The file as a whole is wrong (missing column, unreadable format, ids that do not match).
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// Inputs that do not come from a file (spec, thresholds, empty data).
    #[error("{0}")]
    Invalid(String),
    #[error("plotting failed: {0}")]
    Plot(String),
}

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        EvalError::File {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, EvalError>;
