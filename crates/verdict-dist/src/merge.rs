//! The final step of a sharded stage: check that all `N` parts arrived exactly once, then
//! combine them into one output.
//!
//! Parts are the `part-<i>-of-<N>[.ext]` files or folders that shards wrote
//! ([`ShardSpec::part_name`]). Three kinds are merged:
//! - `.jsonl` (predictions, manifests): records concatenated in shard order, or, with a
//!   key field, sorted by that key (stable) and refusing a key seen twice, since a duplicate
//!   means two shards did the same item;
//! - `.parquet` (embeddings): rows concatenated in shard order, schemas must agree;
//! - folders (render outputs): file trees copied together; a relative path present in
//!   several parts is merged if it is JSONL, kept once if the copies are identical, and
//!   refused otherwise.
//!
//! The output is written next to its final place and renamed into it, so a failed merge never
//! leaves a half-written result where a finished one is expected.

use std::path::{Path, PathBuf};

use crate::error::{io_error, DistError, Result};
use crate::shard::ShardSpec;

mod jsonl;
mod parquet_parts;
mod tree;

pub use jsonl::merge_jsonl;
pub use parquet_parts::merge_parquet;
pub use tree::merge_trees;

/// One shard's output found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub spec: ShardSpec,
    pub path: PathBuf,
    /// The extension after the part name (`jsonl`, `parquet`), empty for folders.
    pub extension: String,
    pub is_dir: bool,
}

/// How parts are combined, decided by what the parts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeKind {
    Jsonl,
    Parquet,
    Tree,
}

/// Settings of a merge.
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// JSONL field to sort records by and to check for duplicates (e.g. `id`).
    pub key: Option<String>,
    /// Replace an existing output instead of refusing.
    pub overwrite: bool,
}

/// What a merge produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MergeSummary {
    pub kind: MergeKind,
    pub parts: usize,
    /// JSONL records, parquet rows, or files of a tree.
    pub items: usize,
    pub output: PathBuf,
}

/// Finds parts: each input is a part itself (named `part-<i>-of-<N>...`) or a folder whose
/// direct entries with part names are taken (other entries are ignored).
pub fn discover_parts(inputs: &[PathBuf]) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    for input in inputs {
        let name = file_name(input);
        if let Some(parsed) = ShardSpec::parse_part_name(&name) {
            parts.push(make_part(input, parsed?)?);
            continue;
        }
        if !input.is_dir() {
            return Err(DistError::Parts(format!(
                "{} is neither a part (`part-<i>-of-<N>`) nor a folder of parts",
                input.display()
            )));
        }
        let entries = std::fs::read_dir(input).map_err(io_error(input))?;
        for entry in entries {
            let path = entry.map_err(io_error(input))?.path();
            if let Some(parsed) = ShardSpec::parse_part_name(&file_name(&path)) {
                parts.push(make_part(&path, parsed?)?);
            }
        }
    }
    Ok(parts)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn make_part(path: &Path, (spec, extension): (ShardSpec, String)) -> Result<Part> {
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    Ok(Part {
        spec,
        path: path.to_path_buf(),
        extension,
        is_dir: meta.is_dir(),
    })
}

/// Checks that `parts` are exactly shards `0..N` of one `N`, all of one kind; returns them
/// in shard order with that kind.
pub fn check_complete(mut parts: Vec<Part>) -> Result<(Vec<Part>, MergeKind)> {
    let Some(first) = parts.first().cloned() else {
        return Err(DistError::Parts(
            "no parts found (expected entries named `part-<i>-of-<N>`)".into(),
        ));
    };
    let count = first.spec.count();
    if let Some(other) = parts.iter().find(|p| p.spec.count() != count) {
        return Err(DistError::Parts(format!(
            "parts of different shard counts: {} is of {} shards, {} of {}; merge one run's parts",
            first.path.display(),
            count,
            other.path.display(),
            other.spec.count()
        )));
    }
    if let Some(other) = parts
        .iter()
        .find(|p| p.extension != first.extension || p.is_dir != first.is_dir)
    {
        return Err(DistError::Parts(format!(
            "parts of different kinds: {} and {}",
            first.path.display(),
            other.path.display()
        )));
    }
    parts.sort_by(|a, b| {
        a.spec
            .index()
            .cmp(&b.spec.index())
            .then(a.path.cmp(&b.path))
    });
    for pair in parts.windows(2) {
        if pair[0].spec == pair[1].spec {
            return Err(DistError::Parts(format!(
                "shard {} appears twice: {} and {}; remove the stale one",
                pair[0].spec,
                pair[0].path.display(),
                pair[1].path.display()
            )));
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !parts.iter().any(|p| p.spec.index() == *i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        let shown = missing
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = if missing.len() > 20 { ", ..." } else { "" };
        return Err(DistError::Parts(format!(
            "{} of {count} parts missing (shards {shown}{more}); rerun them with `--shard i/N` before merging",
            missing.len()
        )));
    }
    let kind = match (first.is_dir, first.extension.as_str()) {
        (true, _) => MergeKind::Tree,
        (false, "jsonl") => MergeKind::Jsonl,
        (false, "parquet") => MergeKind::Parquet,
        (false, other) => {
            return Err(DistError::Parts(format!(
                "cannot merge `.{other}` parts (known: .jsonl, .parquet, folders)"
            )))
        }
    };
    Ok((parts, kind))
}

/// Discovers, checks and merges parts into `out`.
pub fn merge(inputs: &[PathBuf], out: &Path, options: &MergeOptions) -> Result<MergeSummary> {
    let (parts, kind) = check_complete(discover_parts(inputs)?)?;
    if out.exists() && !options.overwrite {
        return Err(DistError::Parts(format!(
            "{} already exists; choose another output or allow overwriting",
            out.display()
        )));
    }
    let paths: Vec<PathBuf> = parts.iter().map(|p| p.path.clone()).collect();
    let items = match kind {
        MergeKind::Jsonl => merge_jsonl(&paths, out, options.key.as_deref())?,
        MergeKind::Parquet => merge_parquet(&paths, out)?,
        MergeKind::Tree => merge_trees(&paths, out, options.key.as_deref())?,
    };
    Ok(MergeSummary {
        kind,
        parts: parts.len(),
        items,
        output: out.to_path_buf(),
    })
}

/// A sibling of `path` to write into before renaming (same folder, so the rename is atomic).
pub(crate) fn temporary_sibling(path: &Path) -> PathBuf {
    let name = file_name(path);
    path.with_file_name(format!(".{name}.merging-{}", std::process::id()))
}

/// Moves a finished `temporary` into `out`, replacing what was there.
pub(crate) fn commit(temporary: &Path, out: &Path) -> Result<()> {
    if out.is_dir() {
        let old = out.with_file_name(format!(".{}.old-{}", file_name(out), std::process::id()));
        std::fs::rename(out, &old).map_err(io_error(out))?;
        std::fs::rename(temporary, out).map_err(io_error(out))?;
        std::fs::remove_dir_all(&old).map_err(io_error(&old))?;
        return Ok(());
    }
    std::fs::rename(temporary, out).map_err(io_error(out))
}
