//! Errors of a labelling job: what failed, on which file / line / field, and what to do.

use std::path::PathBuf;

/// Everything that can stop a labelling job. A job stopped by any of these keeps its state
/// on disk; `resume` continues from the last saved transition.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("{path}: {message}")]
    Spec { path: PathBuf, message: String },
    #[error("{path}, line {line}: {message}")]
    Input {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("job state {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("image {path}: {message}")]
    Image { path: String, message: String },
    /// The endpoint answered with an error that retrying will not fix (4xx other than 429).
    #[error("{method} {url}: HTTP {status}: {message}")]
    Http {
        method: String,
        url: String,
        status: u16,
        message: String,
    },
    /// Retries ran out on a transient failure (connection refused, 5xx, 429).
    #[error("{method} {url}: gave up after {attempts} attempts: {message} (run `verdict label resume` once the endpoint is back)")]
    Unavailable {
        method: String,
        url: String,
        attempts: usize,
        message: String,
    },
    #[error("{0}")]
    Protocol(String),
    /// The job was cancelled; `resume --reopen` continues it.
    #[error("job {0} was cancelled (resume it with --reopen)")]
    Cancelled(String),
    /// Fault injection in tests: the job stopped on purpose after a saved transition.
    #[error("interrupted after step {0}")]
    Interrupted(u64),
}

pub type Result<T, E = LabelError> = std::result::Result<T, E>;

impl LabelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
