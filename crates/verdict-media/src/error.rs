//! Typed errors for the media layer. Each names the file, URL or object it is about.

use std::path::PathBuf;

pub type Result<T, E = MediaError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{url}: {message}")]
    Download { url: String, message: String },
    #[error("object store {location}: {message}")]
    Store { location: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Core(#[from] verdict_core::CoreError),
}

impl MediaError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MediaError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        MediaError::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn store(location: impl Into<String>, message: impl std::fmt::Display) -> Self {
        MediaError::Store {
            location: location.into(),
            message: message.to_string(),
        }
    }
}
