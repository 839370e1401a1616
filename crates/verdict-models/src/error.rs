//! Error type of the model crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (shape mismatch, dtype, device).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// Reading a checkpoint file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (config, index) is malformed.
    #[error("cannot parse {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A configuration value is missing or out of range.
    #[error("invalid config: {0}")]
    Config(String),

    /// Inputs do not fit the model (wrong shapes, image tokens without images, ...).
    #[error("invalid input: {0}")]
    Input(String),

    /// A token constraint rejected a token or allowed nothing.
    #[error("constraint: {0}")]
    Constraint(String),

    /// An image file cannot be opened or decoded.
    #[error("cannot decode image {path}: {source}")]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },

    /// An image cannot be preprocessed (size out of range, extreme aspect ratio, ...).
    #[error("cannot preprocess image: {0}")]
    Preprocess(String),

    /// The tokenizer file cannot be loaded or text cannot be encoded/decoded.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// The chat template is missing, does not parse or fails to render.
    #[error("chat template: {0}")]
    Template(String),
}

/// Result alias of the model crate.
pub type Result<T> = std::result::Result<T, Error>;
