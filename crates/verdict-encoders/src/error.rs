//! Error type of the dual-encoder crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading, running or training a dual encoder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (shape mismatch, dtype, device).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A shared building block (linear layer, norm, checkpoint reader) failed.
    #[error(transparent)]
    Model(#[from] verdict_models::Error),

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (config, preprocessor config, training state) is malformed.
    #[error("cannot parse {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A configuration value is missing, unsupported or out of range.
    #[error("invalid config: {0}")]
    Config(String),

    /// Inputs do not fit the model or the task (empty batch, unknown label, ...).
    #[error("invalid input: {0}")]
    Input(String),

    /// The tokenizer file cannot be loaded or text cannot be encoded.
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },

    /// An image file cannot be opened or decoded.
    #[error("cannot decode image {path}: {source}")]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}

/// Result alias of the dual-encoder crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Reads a JSON file into `T`, naming the file in every error.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}
