//! A task's workspace: where each data artifact lives, and the data stages that fill it.
//!
//! ```text
//! work/
//!   data/manifest.jsonl         imported + validated samples (never the user's input file)
//!   data/rejects.jsonl          rows left out, each with its problems
//!   data/splits.jsonl           every sample with its split
//!   data/split/<split>.jsonl    one file per split, plus mini_train.jsonl
//!   benchmarks/v<N>/            sealed benchmarks (benchmark.jsonl + benchmark.lock.json)
//! ```
//! Each manifest gets a `.provenance.json` sidecar with the task, seed, tool version, command and
//! input hashes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{CoreError, Result};
use crate::fsio::{atomic_write, sha256_bytes, sha256_file};
use crate::import::{import_task, resolve_source_path, Reject};
use crate::manifest::{read_manifest_strict, write_manifest, Sample, Split};
use crate::provenance::{InputHash, Provenance};
use crate::seal;
use crate::split::{split_by_fractions, stratified_take};
use crate::task::{SourceSpec, TaskSpec};
use crate::validate::validate;

pub struct Workspace {
    pub task: TaskSpec,
    pub task_path: PathBuf,
    pub root: PathBuf,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    pub imported: usize,
    pub rejected: usize,
    pub manifest: PathBuf,
    pub rejects: PathBuf,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SplitReport {
    /// The sealed benchmark in use, and whether this run sealed it.
    pub benchmark: Option<(PathBuf, bool)>,
    pub counts: Vec<(Split, usize)>,
    pub mini_train: Option<usize>,
    pub splits: PathBuf,
}

impl Workspace {
    pub fn open(task_path: &Path, data_dir: &Path) -> Result<Self> {
        // Absolute, so that a bare `task.toml` still has a folder that relative sources,
        // image references and the workdir resolve against from anywhere.
        let task_path = &std::path::absolute(task_path).map_err(|e| CoreError::io(task_path, e))?;
        let task = TaskSpec::load(task_path)?;
        let task_dir = task_path.parent().unwrap_or(Path::new("."));
        Ok(Workspace {
            root: task.workdir(task_dir),
            task,
            task_path: task_path.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
        })
    }

    pub fn task_dir(&self) -> &Path {
        self.task_path.parent().unwrap_or(Path::new("."))
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("data/manifest.jsonl")
    }

    pub fn rejects_path(&self) -> PathBuf {
        self.root.join("data/rejects.jsonl")
    }

    pub fn splits_path(&self) -> PathBuf {
        self.root.join("data/splits.jsonl")
    }

    pub fn split_path(&self, split: &str) -> PathBuf {
        self.root.join("data/split").join(format!("{split}.jsonl"))
    }

    pub fn benchmarks_dir(&self) -> PathBuf {
        self.root.join("benchmarks")
    }

    fn provenance(&self) -> Result<Provenance> {
        Provenance::now().with_task(&self.task.name, &self.task_path, self.task.seed)
    }

    /// Imports and validates every source. With `strict`, any problem fails the stage and
    /// nothing is written; otherwise bad rows go to the rejects file.
    pub fn import(&self, strict: bool) -> Result<ImportReport> {
        let outcome = import_task(&self.task, self.task_dir(), &self.data_dir)?;
        let validated = validate(outcome.samples, &self.task);
        let mut rejects: Vec<Reject> = outcome.rejects;
        rejects.extend(validated.rejects);
        if strict && !rejects.is_empty() {
            return Err(CoreError::Invalid(
                rejects.into_iter().flat_map(|r| r.problems).collect(),
            ));
        }
        let mut provenance = self.provenance()?;
        for source in &self.task.sources {
            provenance.inputs.push(self.source_hash(source)?);
        }
        let manifest = self.manifest_path();
        write_manifest(&manifest, &validated.samples)?;
        provenance.write_sidecar(&manifest)?;
        let rejects_path = self.rejects_path();
        atomic_write(&rejects_path, |w| {
            for reject in &rejects {
                serde_json::to_writer(&mut *w, reject).map_err(std::io::Error::other)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        })?;
        Ok(ImportReport {
            imported: validated.samples.len(),
            rejected: rejects.len(),
            manifest,
            rejects: rejects_path,
        })
    }

    /// A file source is hashed whole; a folder source by a digest of its sorted file list with
    /// sizes and per-file hashes.
    pub fn source_hash(&self, source: &SourceSpec) -> Result<InputHash> {
        let path = match source {
            SourceSpec::Manifest { path }
            | SourceSpec::Listings { path, .. }
            | SourceSpec::FolderTree { path, .. }
            | SourceSpec::MetaJson { path } => {
                resolve_source_path(path, self.task_dir(), &self.data_dir)
            }
        };
        if path.is_file() {
            let (sha256, size) = sha256_file(&path)?;
            return Ok(InputHash {
                path: path.to_string_lossy().into_owned(),
                sha256,
                size,
            });
        }
        let mut listing = String::new();
        let mut size = 0;
        for entry in walkdir::WalkDir::new(&path).sort_by_file_name() {
            let entry = entry.map_err(|e| CoreError::format(&path, e.to_string()))?;
            if entry.file_type().is_file() {
                let (sha256, bytes) = sha256_file(entry.path())?;
                let relative = entry.path().strip_prefix(&path).unwrap_or(entry.path());
                listing.push_str(&format!("{}\t{bytes}\t{sha256}\n", relative.display()));
                size += bytes;
            }
        }
        Ok(InputHash {
            path: path.to_string_lossy().into_owned(),
            sha256: sha256_bytes(listing.as_bytes()),
            size,
        })
    }

    /// Assigns splits. A sealed benchmark is reused (after verifying it) unless `new_benchmark`;
    /// a new one is drawn and sealed when the task asks for one and none exists.
    pub fn split(&self, new_benchmark: bool) -> Result<SplitReport> {
        let manifest = self.manifest_path();
        if !manifest.is_file() {
            return Err(CoreError::format(
                &manifest,
                "no imported manifest; run `verdict data import` first",
            ));
        }
        let mut samples = read_manifest_strict(&manifest)?;
        let spec = &self.task.split;
        let group_key = spec.group_key.as_deref();
        let seed = self.task.seed;

        let mut benchmark: Option<(PathBuf, bool)> = None;
        let mut benchmark_ids = BTreeSet::new();
        let existing = seal::latest(&self.benchmarks_dir());
        if let (Some(dir), false) = (&existing, new_benchmark) {
            let sealed = seal::load_verified(dir)?;
            benchmark_ids = sealed.iter().map(|s| s.sample_id.clone()).collect();
            benchmark = Some((dir.clone(), false));
        } else if let Some(size) = spec.benchmark_size {
            let refs: Vec<&Sample> = samples.iter().collect();
            benchmark_ids = stratified_take(&refs, size, group_key, seed)?;
            let mut drawn: Vec<Sample> = samples
                .iter()
                .filter(|s| benchmark_ids.contains(&s.sample_id))
                .cloned()
                .collect();
            for sample in &mut drawn {
                sample.split = Some(Split::Benchmark);
            }
            let provenance = self.provenance()?.with_input(&manifest)?;
            let dir = seal::seal(&self.benchmarks_dir(), &drawn, provenance)?;
            benchmark = Some((dir, true));
        } else if new_benchmark {
            return Err(CoreError::Split(
                "--new-benchmark needs `split.benchmark_size` in the task".into(),
            ));
        }

        let pool: Vec<&Sample> = samples
            .iter()
            .filter(|s| !benchmark_ids.contains(&s.sample_id))
            .collect();
        let fractions: Vec<(Split, f64)> = [
            (Split::Train, spec.train),
            (Split::Val, spec.val),
            (Split::Test, spec.test),
        ]
        .into_iter()
        .filter(|(_, f)| *f > 0.0)
        .collect();
        // Seed-000 flow: with a benchmark and everything else for training, the rest is a pool.
        let keep_pool = benchmark.is_some() && spec.train >= 1.0;
        let assigned = if keep_pool {
            Default::default()
        } else {
            split_by_fractions(&pool, &fractions, group_key, seed)
        };
        for sample in &mut samples {
            sample.split = Some(if benchmark_ids.contains(&sample.sample_id) {
                Split::Benchmark
            } else if keep_pool {
                Split::TrainPool
            } else {
                assigned[&sample.sample_id]
            });
        }

        let provenance = self.provenance()?.with_input(&manifest)?;
        let splits_path = self.splits_path();
        write_manifest(&splits_path, &samples)?;
        provenance.write_sidecar(&splits_path)?;
        let mut counts = Vec::new();
        for split in Split::ALL {
            let members: Vec<&Sample> = samples.iter().filter(|s| s.split == Some(split)).collect();
            let path = self.split_path(split.name());
            if members.is_empty() {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            write_manifest(&path, members.iter().copied())?;
            counts.push((split, members.len()));
        }
        let mut mini_train = None;
        if let Some(size) = spec.mini_train {
            let train: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.split == Some(Split::Train))
                .collect();
            let size = size.min(train.len());
            let ids = stratified_take(&train, size, group_key, seed)?;
            let path = self.split_path("mini_train");
            write_manifest(
                &path,
                train.into_iter().filter(|s| ids.contains(&s.sample_id)),
            )?;
            mini_train = Some(ids.len());
        }
        Ok(SplitReport {
            benchmark,
            counts,
            mini_train,
            splits: splits_path,
        })
    }

    /// The samples with splits if `data split` ran, else the imported manifest.
    pub fn current_samples(&self) -> Result<Vec<Sample>> {
        let splits = self.splits_path();
        let path = if splits.is_file() {
            splits
        } else {
            self.manifest_path()
        };
        if !path.is_file() {
            return Err(CoreError::format(
                &path,
                "no data yet; run `verdict data import` first",
            ));
        }
        read_manifest_strict(&path)
    }
}
