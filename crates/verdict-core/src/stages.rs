//! Stage cache of the main job: a stage reruns only when what it reads or how it is set up
//! changed.
//!
//! Each stage computes a [`Fingerprint`] of its inputs (settings as JSON, files by content)
//! and finds the one recorded the last time it completed under `<workdir>/stages/<name>.json`.
//! Same fingerprint and every recorded output still present: the stage is up to date. The
//! record is written (atomically) only after the stage succeeded, so a stage that fails or is
//! killed leaves the previous record, and reruns next time. The fingerprint is taken again
//! after the stage ran, because a stage may legitimately rewrite one of its own inputs (the
//! render stage annotates the manifest); the next run then sees what this one left.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};
use crate::fsio::{read_json, sha256_file, write_json};

/// Digest of everything a stage depends on, built part by part.
#[derive(Debug, Clone, Default)]
pub struct Fingerprint {
    parts: BTreeMap<String, String>,
}

impl Fingerprint {
    pub fn new() -> Self {
        Self::default()
    }

    /// Settings, hashed through their JSON form (field order as declared, so stable).
    pub fn setting<T: Serialize>(mut self, name: &str, value: &T) -> Result<Self> {
        let json = serde_json::to_vec(value)
            .map_err(|e| CoreError::Stage(format!("cannot fingerprint `{name}`: {e}")))?;
        self.parts.insert(
            format!("setting:{name}"),
            hex::encode(Sha256::digest(&json)),
        );
        Ok(self)
    }

    /// A file by content; a missing file counts as its own distinct value.
    pub fn file(mut self, path: &Path) -> Result<Self> {
        let value = if path.is_file() {
            sha256_file(path)?.0
        } else {
            "missing".to_string()
        };
        self.parts.insert(format!("file:{}", path.display()), value);
        Ok(self)
    }

    /// Every file under `dir` by relative path and content (sorted, so order-independent).
    pub fn tree(mut self, dir: &Path) -> Result<Self> {
        let mut listing = Sha256::new();
        if dir.is_dir() {
            for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
                let entry = entry.map_err(|e| CoreError::format(dir, e.to_string()))?;
                if entry.file_type().is_file() {
                    let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
                    listing.update(relative.to_string_lossy().as_bytes());
                    listing.update(b"\t");
                    listing.update(sha256_file(entry.path())?.0.as_bytes());
                    listing.update(b"\n");
                }
            }
        } else {
            listing.update(b"missing");
        }
        self.parts.insert(
            format!("tree:{}", dir.display()),
            hex::encode(listing.finalize()),
        );
        Ok(self)
    }

    /// A precomputed digest (e.g. a source's content hash).
    pub fn digest(mut self, name: &str, value: impl Into<String>) -> Self {
        self.parts.insert(format!("digest:{name}"), value.into());
        self
    }

    /// The combined digest.
    pub fn key(&self) -> String {
        let mut hasher = Sha256::new();
        for (name, value) in &self.parts {
            hasher.update(name.as_bytes());
            hasher.update(b"=");
            hasher.update(value.as_bytes());
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())
    }
}

/// What the cache remembers about one completed stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub stage: String,
    pub key: String,
    pub outputs: Vec<PathBuf>,
    pub finished_at: String,
    pub seconds: f64,
}

/// Why a stage runs or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Up to date: same inputs as last time and its outputs are there.
    Cached,
    /// Before `--from` or after `--until`.
    Skipped,
    /// First run, changed inputs, missing outputs or forced; the reason says which.
    Run(String),
}

/// Which stages the caller wants: `--from`, `--until`, `--force`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub from: Option<String>,
    pub until: Option<String>,
    pub force: Vec<String>,
}

impl Selection {
    /// Checks stage names against the pipeline's `order`; an unknown name is an error that
    /// lists the known ones.
    pub fn validate(&self, order: &[&str]) -> Result<()> {
        let named = self
            .from
            .iter()
            .chain(self.until.iter())
            .chain(self.force.iter());
        for name in named {
            if !order.contains(&name.as_str()) {
                return Err(CoreError::Stage(format!(
                    "unknown stage `{name}`; stages are: {}",
                    order.join(", ")
                )));
            }
        }
        let position = |name: &Option<String>| {
            name.as_ref()
                .and_then(|n| order.iter().position(|s| s == n))
        };
        if let (Some(from), Some(until)) = (position(&self.from), position(&self.until)) {
            if from > until {
                return Err(CoreError::Stage(format!(
                    "--from {} comes after --until {}",
                    order[from], order[until]
                )));
            }
        }
        Ok(())
    }

    fn in_range(&self, stage: &str, order: &[&str]) -> bool {
        let index = |name: &str| order.iter().position(|s| *s == name);
        let here = index(stage);
        let after_from = match (&self.from, here) {
            (Some(from), Some(here)) => index(from).is_none_or(|f| here >= f),
            _ => true,
        };
        let before_until = match (&self.until, here) {
            (Some(until), Some(here)) => index(until).is_none_or(|u| here <= u),
            _ => true,
        };
        after_from && before_until
    }

    /// `--from S` reruns S itself even when cached; later stages rerun only if their inputs
    /// changed (which they usually do, since S rewrote them).
    fn forces(&self, stage: &str) -> bool {
        self.force.iter().any(|f| f == stage) || self.from.as_deref() == Some(stage)
    }
}

/// The on-disk stage records of one task workdir.
#[derive(Debug, Clone)]
pub struct StageCache {
    dir: PathBuf,
    order: Vec<String>,
    selection: Selection,
}

impl StageCache {
    /// Records live in `dir`; `order` is the pipeline's stage order.
    pub fn new(dir: impl Into<PathBuf>, order: &[&str], selection: Selection) -> Result<Self> {
        selection.validate(order)?;
        Ok(Self {
            dir: dir.into(),
            order: order.iter().map(|s| s.to_string()).collect(),
            selection,
        })
    }

    fn record_path(&self, stage: &str) -> PathBuf {
        self.dir.join(format!("{stage}.json"))
    }

    /// The last record of `stage`, if any (an unreadable record counts as none).
    pub fn record(&self, stage: &str) -> Option<StageRecord> {
        let path = self.record_path(stage);
        path.is_file()
            .then(|| read_json::<StageRecord>(&path).ok())
            .flatten()
    }

    /// Whether `stage` must run given its current fingerprint.
    pub fn decide(&self, stage: &str, fingerprint: &Fingerprint) -> Decision {
        let order: Vec<&str> = self.order.iter().map(String::as_str).collect();
        if !self.selection.in_range(stage, &order) {
            return Decision::Skipped;
        }
        if self.selection.forces(stage) {
            return Decision::Run("forced".into());
        }
        let Some(record) = self.record(stage) else {
            return Decision::Run("first run".into());
        };
        if record.key != fingerprint.key() {
            return Decision::Run("inputs or settings changed".into());
        }
        if let Some(missing) = record.outputs.iter().find(|p| !p.exists()) {
            return Decision::Run(format!("output {} is missing", missing.display()));
        }
        Decision::Cached
    }

    /// Records a completed stage (call only after it succeeded).
    pub fn complete(
        &self,
        stage: &str,
        fingerprint: &Fingerprint,
        outputs: Vec<PathBuf>,
        seconds: f64,
    ) -> Result<()> {
        let record = StageRecord {
            stage: stage.to_string(),
            key: fingerprint.key(),
            outputs,
            finished_at: chrono::Utc::now().to_rfc3339(),
            seconds,
        };
        write_json(&self.record_path(stage), &record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: [&str; 3] = ["import", "split", "baseline"];

    fn cache(dir: &Path, selection: Selection) -> StageCache {
        StageCache::new(dir.join("stages"), &ORDER, selection).unwrap()
    }

    #[test]
    fn a_completed_stage_is_cached_until_an_input_or_output_changes() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        let output = dir.path().join("out.txt");
        std::fs::write(&input, "a").unwrap();
        let stages = cache(dir.path(), Selection::default());
        let fp = || {
            Fingerprint::new()
                .setting("c", &1.0)
                .unwrap()
                .file(&input)
                .unwrap()
        };
        assert_eq!(
            stages.decide("split", &fp()),
            Decision::Run("first run".into())
        );
        std::fs::write(&output, "x").unwrap();
        stages
            .complete("split", &fp(), vec![output.clone()], 0.1)
            .unwrap();
        assert_eq!(stages.decide("split", &fp()), Decision::Cached);

        std::fs::write(&input, "b").unwrap();
        assert!(matches!(stages.decide("split", &fp()), Decision::Run(r) if r.contains("changed")));
        stages
            .complete("split", &fp(), vec![output.clone()], 0.1)
            .unwrap();
        let other = Fingerprint::new()
            .setting("c", &2.0)
            .unwrap()
            .file(&input)
            .unwrap();
        assert!(matches!(stages.decide("split", &other), Decision::Run(_)));

        std::fs::remove_file(&output).unwrap();
        assert!(matches!(stages.decide("split", &fp()), Decision::Run(r) if r.contains("missing")));
    }

    #[test]
    fn from_until_and_force_select_stages() {
        let dir = tempfile::tempdir().unwrap();
        let fp = Fingerprint::new().digest("x", "1");
        let all = cache(dir.path(), Selection::default());
        for stage in ORDER {
            all.complete(stage, &fp, vec![], 0.0).unwrap();
        }
        let selection = Selection {
            from: Some("split".into()),
            until: Some("split".into()),
            force: vec![],
        };
        let some = cache(dir.path(), selection);
        assert_eq!(some.decide("import", &fp), Decision::Skipped);
        assert_eq!(some.decide("split", &fp), Decision::Run("forced".into()));
        assert_eq!(some.decide("baseline", &fp), Decision::Skipped);

        let forced = cache(
            dir.path(),
            Selection {
                force: vec!["baseline".into()],
                ..Selection::default()
            },
        );
        assert_eq!(forced.decide("import", &fp), Decision::Cached);
        assert_eq!(
            forced.decide("baseline", &fp),
            Decision::Run("forced".into())
        );
    }

    #[test]
    fn unknown_or_reversed_stage_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad = Selection {
            force: vec!["trian".into()],
            ..Selection::default()
        };
        let error = StageCache::new(dir.path(), &ORDER, bad)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("unknown stage `trian`") && error.contains("import, split, baseline")
        );
        let reversed = Selection {
            from: Some("baseline".into()),
            until: Some("import".into()),
            force: vec![],
        };
        assert!(StageCache::new(dir.path(), &ORDER, reversed).is_err());
    }

    #[test]
    fn tree_fingerprints_depend_on_names_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("t");
        std::fs::create_dir_all(tree.join("a")).unwrap();
        std::fs::write(tree.join("a/1.txt"), "one").unwrap();
        let first = Fingerprint::new().tree(&tree).unwrap().key();
        std::fs::write(tree.join("a/1.txt"), "uno").unwrap();
        let second = Fingerprint::new().tree(&tree).unwrap().key();
        std::fs::rename(tree.join("a/1.txt"), tree.join("a/2.txt")).unwrap();
        let third = Fingerprint::new().tree(&tree).unwrap().key();
        assert_ne!(first, second);
        assert_ne!(second, third);
    }
}
