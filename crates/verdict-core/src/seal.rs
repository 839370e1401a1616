//! Sealed benchmarks: once drawn, a benchmark never changes.
//!
//! Sealing writes `benchmark.jsonl` and `benchmark.lock.json` into a new version folder
//! (`benchmarks/v1`, `v2`, ...). The lock records the sha256 and size of the manifest and of every
//! local file its samples reference, a digest of every sample record, when it was made and by
//! which command. [`verify`] recomputes all of it and names each added, removed, relabelled or
//! modified sample and each changed or missing file. Sealing refuses to overwrite a version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::fsio::{read_json, sha256_bytes, sha256_file, write_json};
use crate::manifest::{is_url, read_manifest_strict, write_manifest, LabelValue, Sample};
use crate::provenance::Provenance;

pub const MANIFEST_NAME: &str = "benchmark.jsonl";
pub const LOCK_NAME: &str = "benchmark.lock.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedSample {
    pub sample_id: String,
    pub label: Option<LabelValue>,
    /// sha256 of the sample's canonical JSON record.
    pub record_sha256: String,
    pub files: Vec<LockedFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkLock {
    pub version: String,
    pub manifest_sha256: String,
    pub manifest_size: u64,
    pub samples: Vec<LockedSample>,
    pub provenance: Provenance,
}

/// One difference between a sealed benchmark and what is on disk now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    ManifestChanged {
        expected: String,
        found: String,
    },
    SampleAdded {
        sample_id: String,
    },
    SampleRemoved {
        sample_id: String,
    },
    SampleRelabelled {
        sample_id: String,
        sealed: Option<LabelValue>,
        found: Option<LabelValue>,
    },
    SampleModified {
        sample_id: String,
    },
    FileModified {
        sample_id: String,
        path: String,
    },
    FileMissing {
        sample_id: String,
        path: String,
    },
    FileAdded {
        sample_id: String,
        path: String,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = |l: &Option<LabelValue>| match l {
            Some(value) => serde_json::to_string(value).unwrap_or_default(),
            None => "(none)".into(),
        };
        match self {
            Finding::ManifestChanged { expected, found } => {
                write!(f, "manifest changed: sha256 {found}, sealed {expected}")
            }
            Finding::SampleAdded { sample_id } => write!(f, "sample `{sample_id}` was added"),
            Finding::SampleRemoved { sample_id } => write!(f, "sample `{sample_id}` was removed"),
            Finding::SampleRelabelled {
                sample_id,
                sealed,
                found,
            } => write!(
                f,
                "sample `{sample_id}` was relabelled: {} -> {}",
                label(sealed),
                label(found)
            ),
            Finding::SampleModified { sample_id } => {
                write!(
                    f,
                    "sample `{sample_id}` was modified (fields other than the label)"
                )
            }
            Finding::FileModified { sample_id, path } => {
                write!(f, "file `{path}` of sample `{sample_id}` was modified")
            }
            Finding::FileMissing { sample_id, path } => {
                write!(f, "file `{path}` of sample `{sample_id}` is missing")
            }
            Finding::FileAdded { sample_id, path } => {
                write!(f, "file `{path}` was added to sample `{sample_id}`")
            }
        }
    }
}

fn local_references(sample: &Sample) -> impl Iterator<Item = &String> {
    sample
        .files
        .iter()
        .chain(&sample.images)
        .filter(|r| !is_url(r))
}

fn record_digest(sample: &Sample) -> String {
    sha256_bytes(&serde_json::to_vec(sample).unwrap_or_default())
}

fn lock_sample(sample: &Sample, base: &Path) -> Result<LockedSample> {
    let mut files = Vec::new();
    for reference in local_references(sample) {
        let (sha256, size) = sha256_file(&Sample::resolve(base, reference))?;
        files.push(LockedFile {
            path: reference.clone(),
            sha256,
            size,
        });
    }
    Ok(LockedSample {
        sample_id: sample.sample_id.clone(),
        label: sample.label.clone(),
        record_sha256: record_digest(sample),
        files,
    })
}

/// Versions present under `root` (`v1`, `v2`, ...), in order.
pub fn versions(root: &Path) -> Vec<(u32, PathBuf)> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let number = name.strip_prefix('v')?.parse().ok()?;
            entry
                .path()
                .join(LOCK_NAME)
                .is_file()
                .then(|| (number, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// The newest sealed version under `root`, if any.
pub fn latest(root: &Path) -> Option<PathBuf> {
    versions(root).pop().map(|(_, path)| path)
}

/// Seals `samples` as the next version under `root` and returns its folder.
pub fn seal(root: &Path, samples: &[Sample], provenance: Provenance) -> Result<PathBuf> {
    let next = versions(root).last().map_or(1, |(n, _)| n + 1);
    let dir = root.join(format!("v{next}"));
    if dir.exists() {
        return Err(CoreError::Sealed {
            path: dir,
            message: "a folder of that version exists without a lock; remove it by hand".into(),
        });
    }
    let manifest = dir.join(MANIFEST_NAME);
    write_manifest(&manifest, samples)?;
    let (manifest_sha256, manifest_size) = sha256_file(&manifest)?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let locked = samples
        .iter()
        .map(|sample| lock_sample(sample, base))
        .collect::<Result<Vec<_>>>()?;
    let lock = BenchmarkLock {
        version: format!("v{next}"),
        manifest_sha256,
        manifest_size,
        samples: locked,
        provenance,
    };
    write_json(&dir.join(LOCK_NAME), &lock)?;
    for path in [&manifest, &dir.join(LOCK_NAME)] {
        if let Ok(metadata) = std::fs::metadata(path) {
            let mut permissions = metadata.permissions();
            permissions.set_readonly(true);
            // Read-only is a guard against accidents, not a security boundary.
            let _ = std::fs::set_permissions(path, permissions);
        }
    }
    Ok(dir)
}

/// Loads a sealed benchmark's samples after checking that nothing changed.
pub fn load_verified(dir: &Path) -> Result<Vec<Sample>> {
    let findings = verify(dir)?;
    if !findings.is_empty() {
        let list: Vec<String> = findings.iter().map(|f| format!("  - {f}")).collect();
        return Err(CoreError::Sealed {
            path: dir.to_path_buf(),
            message: format!("it no longer matches its lock:\n{}", list.join("\n")),
        });
    }
    read_manifest_strict(&dir.join(MANIFEST_NAME))
}

/// Recomputes every hash of a sealed benchmark and lists each difference (empty: intact).
pub fn verify(dir: &Path) -> Result<Vec<Finding>> {
    let lock: BenchmarkLock = read_json(&dir.join(LOCK_NAME))?;
    let manifest = dir.join(MANIFEST_NAME);
    let mut findings = Vec::new();
    let (sha256, _) = sha256_file(&manifest)?;
    if sha256 != lock.manifest_sha256 {
        findings.push(Finding::ManifestChanged {
            expected: lock.manifest_sha256.clone(),
            found: sha256,
        });
    }
    let current: BTreeMap<String, Sample> = read_manifest_strict(&manifest)?
        .into_iter()
        .map(|s| (s.sample_id.clone(), s))
        .collect();
    let sealed: BTreeMap<&str, &LockedSample> = lock
        .samples
        .iter()
        .map(|s| (s.sample_id.as_str(), s))
        .collect();
    for (id, locked) in &sealed {
        let Some(sample) = current.get(*id) else {
            findings.push(Finding::SampleRemoved {
                sample_id: id.to_string(),
            });
            continue;
        };
        if sample.label != locked.label {
            findings.push(Finding::SampleRelabelled {
                sample_id: id.to_string(),
                sealed: locked.label.clone(),
                found: sample.label.clone(),
            });
        } else if record_digest(sample) != locked.record_sha256 {
            findings.push(Finding::SampleModified {
                sample_id: id.to_string(),
            });
        }
        let locked_paths: BTreeMap<&str, &LockedFile> =
            locked.files.iter().map(|f| (f.path.as_str(), f)).collect();
        for file in &locked.files {
            let path = Sample::resolve(dir, &file.path);
            if !path.is_file() {
                findings.push(Finding::FileMissing {
                    sample_id: id.to_string(),
                    path: file.path.clone(),
                });
                continue;
            }
            let (sha256, size) = sha256_file(&path)?;
            if sha256 != file.sha256 || size != file.size {
                findings.push(Finding::FileModified {
                    sample_id: id.to_string(),
                    path: file.path.clone(),
                });
            }
        }
        for reference in local_references(sample) {
            if !locked_paths.contains_key(reference.as_str()) {
                findings.push(Finding::FileAdded {
                    sample_id: id.to_string(),
                    path: reference.clone(),
                });
            }
        }
    }
    for id in current.keys() {
        if !sealed.contains_key(id.as_str()) {
            findings.push(Finding::SampleAdded {
                sample_id: id.clone(),
            });
        }
    }
    Ok(findings)
}
