//! Error type of the scale-out crate.

use std::path::PathBuf;

/// Everything that can go wrong selecting, merging or communicating.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A `--shard` value or a part name is malformed.
    #[error("{0}")]
    Shard(String),

    /// The parts handed to a merge do not form one complete, consistent set.
    #[error("merge: {0}")]
    Parts(String),

    /// A file's content is malformed; `line` is 1-based when known.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Format {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },

    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The launch environment (`RANK`, `WORLD_SIZE`, ...) is incomplete or inconsistent.
    #[error("launch environment: {0}")]
    Launch(String),

    /// A collective operation failed or the ranks disagreed about it.
    #[error("collective: {0}")]
    Collective(String),

    /// Rank 0 could not write a checkpoint.
    #[error("checkpoint: {0}")]
    Checkpoint(String),

    /// A run cannot be resumed with the requested layout.
    #[error("resume: {0}")]
    Resume(String),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// Result alias of the scale-out crate.
pub type Result<T> = std::result::Result<T, DistError>;

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DistError {
    let path = path.into();
    move |source| DistError::Io { path, source }
}
