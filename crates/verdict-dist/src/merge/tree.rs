//! Folder parts (render outputs): file trees copied together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{commit, jsonl::merge_jsonl, temporary_sibling};
use crate::error::{io_error, DistError, Result};

/// Copies the files of `parts` (folders) into `out`; returns the number of files written.
///
/// A relative path found in one part is copied. Found in several: `.jsonl` files are merged
/// with [`merge_jsonl`] (by `key` when given), byte-identical copies are kept once (a config
/// every shard writes), anything else is refused naming both parts.
pub fn merge_trees(parts: &[PathBuf], out: &Path, key: Option<&str>) -> Result<usize> {
    let mut files: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for part in parts {
        let mut stack = vec![part.clone()];
        while let Some(folder) = stack.pop() {
            for entry in std::fs::read_dir(&folder).map_err(io_error(&folder))? {
                let path = entry.map_err(io_error(&folder))?.path();
                let kind = std::fs::metadata(&path).map_err(io_error(&path))?;
                if kind.is_dir() {
                    stack.push(path);
                } else if let Ok(relative) = path.strip_prefix(part) {
                    files
                        .entry(relative.to_path_buf())
                        .or_default()
                        .push(path.clone());
                }
            }
        }
    }
    let temporary = temporary_sibling(out);
    let result = (|| -> Result<usize> {
        std::fs::create_dir_all(&temporary).map_err(io_error(&temporary))?;
        for (relative, sources) in &files {
            let target = temporary.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io_error(parent))?;
            }
            let is_jsonl = relative.extension().is_some_and(|e| e == "jsonl");
            match sources.as_slice() {
                [single] => copy(single, &target)?,
                _ if is_jsonl => {
                    merge_jsonl(sources, &target, key)?;
                }
                [first, rest @ ..] => {
                    let content = std::fs::read(first).map_err(io_error(first))?;
                    for other in rest {
                        if std::fs::read(other).map_err(io_error(other))? != content {
                            return Err(DistError::Parts(format!(
                                "{} exists in several parts with different content ({} and {}); \
                                 shards must write distinct files",
                                relative.display(),
                                first.display(),
                                other.display()
                            )));
                        }
                    }
                    copy(first, &target)?;
                }
                [] => {}
            }
        }
        Ok(files.len())
    })();
    match result {
        Ok(count) => {
            commit(&temporary, out)?;
            Ok(count)
        }
        Err(error) => {
            let _ = std::fs::remove_dir_all(&temporary);
            Err(error)
        }
    }
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map_err(io_error(from))?;
    Ok(())
}
