//! Error type of the adapter crate.

use std::path::PathBuf;

/// Everything that can go wrong while building, saving, loading or merging adapters.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (shape mismatch, dtype, device).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// The wrapped model failed to load or build.
    #[error(transparent)]
    Model(#[from] verdict_models::Error),

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (adapter config, checkpoint index) is malformed.
    #[error("cannot parse {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A safetensors file cannot be read or written.
    #[error("safetensors {path}: {message}")]
    Safetensors { path: PathBuf, message: String },

    /// The adapter configuration is invalid or asks for something not supported.
    #[error("invalid adapter config: {0}")]
    Config(String),

    /// Adapter tensors do not fit the model (unknown layer, wrong shape, unused tensors).
    #[error("adapter does not fit the model: {0}")]
    Mismatch(String),
}

/// Result alias of the adapter crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
