//! What the raters judge: queries, each with what method A and method B answer, and the only
//! image files the server may ever send.
//!
//! A contest is built once at start (from embeddings or predictions files) and never changes
//! while the server runs; votes refer to queries by id, so a restart that rebuilds the same
//! contest finds every stored vote again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ArenaError, Result};

/// Retrieval (query image -> top-k gallery items) or classification (one sample -> a prediction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContestKind {
    Retrieval,
    Classification,
}

/// One of the two compared methods, as the results name it (never shown to raters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodInfo {
    /// Short name, e.g. `emb.parquet#finetuned_embedding` or a model id.
    pub name: String,
    /// The argument it was made from.
    pub spec: String,
}

/// Something shown on the page: a query, a retrieved item or a model's answer.
///
/// Retrieval results carry no score: the two methods' cosine scales differ and would tell the
/// rater which side is which.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Card {
    /// Id of an image in the contest's [`ImageRegistry`]; served at `/image/<id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The item's label (retrieval) or the predicted labels (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Confidence of a classification answer, 0..1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// A classification model's explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One judgement to make: the prompt and each method's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub id: String,
    pub prompt: Card,
    /// `answers[0]` is method A's, `answers[1]` method B's.
    pub answers: [Vec<Card>; 2],
}

/// A complete, immutable contest.
#[derive(Debug, Clone)]
pub struct Contest {
    pub kind: ContestKind,
    pub methods: [MethodInfo; 2],
    pub queries: Vec<Query>,
    pub images: ImageRegistry,
}

/// Identifies a contest in the vote store, so votes are never mixed between contests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContestIdentity {
    pub kind: ContestKind,
    pub methods: [MethodInfo; 2],
    pub queries: usize,
    /// sha256 over the sorted query ids.
    pub query_ids_sha256: String,
}

impl Contest {
    pub fn identity(&self) -> ContestIdentity {
        let mut ids: Vec<&str> = self.queries.iter().map(|q| q.id.as_str()).collect();
        ids.sort_unstable();
        let mut hasher = Sha256::new();
        for id in ids {
            hasher.update(id.as_bytes());
            hasher.update([0u8]);
        }
        ContestIdentity {
            kind: self.kind,
            methods: self.methods.clone(),
            queries: self.queries.len(),
            query_ids_sha256: hex::encode(hasher.finalize()),
        }
    }

    pub fn query(&self, id: &str) -> Option<&Query> {
        self.queries.iter().find(|query| query.id == id)
    }
}

/// The image files a contest may serve, each under an opaque numeric id.
///
/// The page only ever sees ids; the server maps an id back to a path registered at start, so no
/// request can name a file, and `..` or absolute paths from a browser mean nothing.
#[derive(Debug, Clone, Default)]
pub struct ImageRegistry {
    paths: Vec<PathBuf>,
    index: HashMap<PathBuf, usize>,
}

impl ImageRegistry {
    /// Registers an existing file (checked now, not when first requested) and returns its id.
    pub fn register(&mut self, path: &Path) -> Result<String> {
        let canonical = path.canonicalize().map_err(|source| {
            ArenaError::file(path, format!("image file cannot be opened: {source}"))
        })?;
        if !canonical.is_file() {
            return Err(ArenaError::file(path, "image path is not a file"));
        }
        let next = self.paths.len();
        let id = *self.index.entry(canonical.clone()).or_insert(next);
        if id == next {
            self.paths.push(canonical);
        }
        Ok(id.to_string())
    }

    /// The file behind `id`, if `id` was registered.
    pub fn path(&self, id: &str) -> Option<&Path> {
        // Only plain decimal numbers are ids: `parse` would also take `+1`.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let index: usize = id.parse().ok()?;
        self.paths.get(index).map(PathBuf::as_path)
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// Resolves an image path from a data file: absolute as is, else under `images_root` when given,
/// else next to the data file.
pub fn resolve_image(raw: &str, data_file: &Path, images_root: Option<&Path>) -> PathBuf {
    let path = Path::new(raw);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match images_root {
        Some(root) => root.join(path),
        None => data_file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_serves_only_registered_ids() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.png");
        std::fs::write(&file, b"x").unwrap();
        let mut registry = ImageRegistry::default();
        let id = registry.register(&file).unwrap();
        assert_eq!(id, "0");
        assert_eq!(registry.register(&dir.path().join("./a.png")).unwrap(), "0");
        assert_eq!(
            registry.path("0"),
            Some(file.canonicalize().unwrap().as_path())
        );
        for bad in ["1", "+0", "-0", "../a.png", "", "0/../../etc/passwd", "00x"] {
            assert_eq!(registry.path(bad), None, "{bad}");
        }
        assert!(registry.register(&dir.path().join("missing.png")).is_err());
        assert!(registry.register(dir.path()).is_err());
    }
}
