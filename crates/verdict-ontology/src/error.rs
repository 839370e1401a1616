//! Errors of ontology loading, dataset building and ontology-constrained classification.
//!
//! Every variant names the file (and where it applies the line and concept IRI) so that a
//! broken ontology can be fixed without guessing.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = OntologyError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum OntologyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: unknown RDF format (use .ttl, .nt, .rdf, .owl or .xml)")]
    UnknownFormat { path: PathBuf },
    #[error("{path}:{line}:{column}: RDF syntax error: {message}")]
    Syntax {
        path: PathBuf,
        /// 1-based.
        line: u64,
        /// 1-based, in characters.
        column: u64,
        message: String,
    },
    #[error("{path}: concept <{concept}> has parent <{parent}>, which is not declared as an owl:Class or skos:Concept in the ontology")]
    UnknownParent {
        path: PathBuf,
        concept: String,
        parent: String,
    },
    #[error("{path}: the hierarchy has a cycle: {}", cycle.join(" -> "))]
    Cycle {
        path: PathBuf,
        /// IRIs along the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    #[error("{path}: label {label:?} is used by two concepts, <{first}> and <{second}>; concept names must be unique")]
    DuplicateLabel {
        path: PathBuf,
        label: String,
        first: String,
        second: String,
    },
    #[error("{path}: {message}")]
    Ontology { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid answer: {0}")]
    Answer(String),
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Model(#[from] verdict_models::Error),
    #[error(transparent)]
    Core(#[from] verdict_core::CoreError),
    #[error("image {path}: {message}")]
    Image { path: PathBuf, message: String },
}

impl OntologyError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn ontology(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Ontology {
            path: path.into(),
            message: message.into(),
        }
    }
}
