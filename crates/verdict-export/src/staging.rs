//! Building an output directory next to its final place and renaming it in at the end, so an
//! export that fails half-way never replaces (or half-writes) an existing directory.

use std::path::{Path, PathBuf};

use crate::error::io_error;
use crate::{Error, Result};

/// Removes a directory when dropped (staging for intermediate results).
pub(crate) struct Cleanup(pub PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `build` on a fresh temporary sibling of `out`, then swaps it into place.
pub(crate) fn build_dir<T>(out: &Path, build: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Unsupported(format!("{} is not a directory name", out.display())))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_error(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
    let guard = Cleanup(tmp.clone());
    let value = build(&tmp)?;
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io_error(out))?;
    }
    std::fs::rename(&tmp, out).map_err(io_error(out))?;
    std::mem::forget(guard);
    Ok(value)
}
