//! Typed errors for the data layer.
//!
//! Validation does not stop at the first problem: it collects [`Problem`]s, each naming the file,
//! line and field, what is wrong and what to do, so a user can fix a whole file in one pass.

use std::fmt;
use std::path::PathBuf;

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid task spec: {message}")]
    Task { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{} problem(s) found:\n{}", .0.len(), ProblemList(.0))]
    Invalid(Vec<Problem>),
    #[error("split: {0}")]
    Split(String),
    #[error("benchmark {path} is sealed; {message}")]
    Sealed { path: PathBuf, message: String },
    #[error("fetch {what}: {message}")]
    Fetch { what: String, message: String },
    #[error("stages: {0}")]
    Stage(String),
}

impl CoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        CoreError::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// One thing wrong with one input row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line (JSONL) or record number (CSV, counting the header as line 1).
    pub line: Option<usize>,
    pub sample_id: Option<String>,
    pub field: Option<String>,
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Problem {
            file: file.into(),
            line: None,
            sample_id: None,
            field: None,
            message: message.into(),
            hint: None,
        }
    }

    pub fn line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn sample(mut self, sample_id: impl Into<String>) -> Self {
        self.sample_id = Some(sample_id.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(id) = &self.sample_id {
            write!(f, " [{id}]")?;
        }
        if let Some(field) = &self.field {
            write!(f, " field `{field}`")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 50;
        for problem in self.0.iter().take(SHOWN) {
            writeln!(f, "  - {problem}")?;
        }
        if self.0.len() > SHOWN {
            writeln!(f, "  ... and {} more", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}
