//! The one error type of this crate.

use std::path::PathBuf;

/// What can go wrong loading or running a pretrained ONNX model, or managing the model store.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The model file is not on disk; the message says how to get it.
    #[error("model file {} not found: run `verdict models fetch` (or scripts/fetch-data) first", path.display())]
    ModelMissing { path: PathBuf },

    /// No store holds the model.
    #[error("model `{name}` not found (looked at {looked}): run `verdict models fetch {name}` or scripts/fetch-data")]
    NotInStores { name: String, looked: String },

    /// The file exists but is not the pinned model.
    #[error("{} has sha256 {actual}, expected {expected}: delete it and run `verdict models fetch` again", path.display())]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    /// tract could not parse, optimise or run the graph.
    #[error("ONNX runtime error with {}: {message}", path.display())]
    Runtime { path: PathBuf, message: String },

    /// An image file that could not be decoded.
    #[error("cannot decode image {}: {message}", path.display())]
    Image { path: PathBuf, message: String },

    /// An output tensor had a shape other than the one the model documents.
    #[error("unexpected output `{output}` shape {shape:?}, expected {expected}")]
    OutputShape {
        output: String,
        shape: Vec<usize>,
        expected: String,
    },

    /// A registry name that no default model has.
    #[error("unknown model `{name}`; known models: {known}")]
    UnknownModel { name: String, known: String },

    /// The task's labels do not allow a zero-shot mapping.
    #[error("zero-shot labels: {0}")]
    Labels(String),

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Fetch(#[from] verdict_core::CoreError),
}

impl OnnxError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        OnnxError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = OnnxError> = std::result::Result<T, E>;
