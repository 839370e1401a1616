//! One error type for the arena library; the binary adds context with `anyhow`.

use std::path::PathBuf;

/// What went wrong, with the file, row or field the user has to look at.
#[derive(Debug, thiserror::Error)]
pub enum ArenaError {
    /// A `--a` / `--b` argument that names no method.
    #[error("method `{spec}`: {message}")]
    Method { spec: String, message: String },

    /// A file that cannot be read or does not have the expected layout.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },

    /// One row of an input file is unusable.
    #[error("{path}: row {row}: {message}")]
    Row {
        path: PathBuf,
        row: usize,
        message: String,
    },

    /// The two methods cannot be compared (different query sets, nothing to compare).
    #[error("{0}")]
    Mismatch(String),

    /// The vote store belongs to another contest or cannot be opened.
    #[error("vote store {path}: {message}")]
    Store { path: PathBuf, message: String },

    /// The rater already has a vote on this query (undo it first).
    #[error("rater `{rater}` already voted on query `{query}`")]
    AlreadyVoted { rater: String, query: String },

    /// A request that names a query the contest does not have or the rater was never shown.
    #[error("{0}")]
    BadRequest(String),

    #[error("vote store: {0}")]
    Sqlite(#[from] rusqlite::Error),

    #[error("predictions: {0}")]
    Predictions(#[from] verdict_eval::EvalError),

    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ArenaError {
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ArenaError::File {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ArenaError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn method(spec: impl Into<String>, message: impl Into<String>) -> Self {
        ArenaError::Method {
            spec: spec.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = ArenaError> = std::result::Result<T, E>;
