//! Error type of the training crate.

use std::path::PathBuf;

/// Everything that can go wrong while building data, training or checkpointing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error(transparent)]
    Model(#[from] verdict_models::Error),

    #[error(transparent)]
    Lora(#[from] verdict_lora::Error),

    #[error(transparent)]
    Core(#[from] verdict_core::CoreError),

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON or JSONL file is malformed; `line` is 1-based when known.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Format {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },

    /// The task, data or settings cannot be trained on as given.
    #[error("{0}")]
    Invalid(String),

    /// A checkpoint does not belong to this run or is incomplete.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
}

/// Result alias of the training crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
