//! The crate's one error type: every variant names the file it is about, so a batch run can
//! report "which sample, which file, what is wrong" without extra context.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = RenderError> = std::result::Result<T, E>;

/// What went wrong while loading, rendering or writing one file.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: file is empty (0 bytes)")]
    EmptyFile { path: PathBuf },

    #[error("{path}: unsupported mesh format (expected .stl, .obj or .3mf)")]
    UnsupportedFormat { path: PathBuf },

    #[error("{path}: line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error("{path}: {message}")]
    Malformed { path: PathBuf, message: String },

    #[error(
        "{path}: binary STL is truncated: header announces {announced} triangles \
         ({expected} bytes) but the file has {actual} bytes"
    )]
    Truncated {
        path: PathBuf,
        announced: u64,
        expected: u64,
        actual: u64,
    },

    #[error("{path}: triangle {triangle} has a NaN or infinite coordinate")]
    NonFinite { path: PathBuf, triangle: usize },

    #[error("{path}: mesh has no triangles{detail}")]
    NoTriangles { path: PathBuf, detail: String },

    #[error(
        "{path}: more than {limit} triangles; raise `max_triangles` in the load limits \
         if this mesh is expected"
    )]
    TooManyTriangles { path: PathBuf, limit: u64 },

    #[error(
        "{path}: {what} is {size} bytes, over the limit of {limit} bytes \
         (possible zip bomb); raise the load limits if this file is expected"
    )]
    TooLarge {
        path: PathBuf,
        what: String,
        size: u64,
        limit: u64,
    },

    #[error("{path}: 3MF archive: {message}")]
    Archive { path: PathBuf, message: String },

    #[error("{path}: cannot encode PNG: {message}")]
    Encode { path: PathBuf, message: String },

    #[error("invalid view `{spec}`: {message}")]
    InvalidView { spec: String, message: String },

    #[error("invalid render settings: {0}")]
    InvalidSettings(String),
}

impl RenderError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Malformed {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Self::Parse {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}
