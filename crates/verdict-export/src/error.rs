//! Error type of the export crate.

use std::path::PathBuf;

/// Everything that can go wrong while exporting a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (dtype conversion, quantisation).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// The checkpoint could not be read as a model.
    #[error(transparent)]
    Model(#[from] verdict_models::Error),

    /// Merging or reading the adapter failed.
    #[error(transparent)]
    Lora(#[from] verdict_lora::Error),

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (config, tokenizer, metrics) is malformed.
    #[error("cannot parse {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A required field is missing or has the wrong type; names the file and field.
    #[error("{path}: field \"{field}\": {message}")]
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },

    /// The checkpoint holds something the target format cannot express.
    #[error("cannot export: {0}")]
    Unsupported(String),
}

/// Result alias of the export crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// Reads and parses a JSON file, naming the file in every error.
pub(crate) fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}
