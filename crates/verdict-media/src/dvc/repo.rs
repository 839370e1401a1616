//! A DVC project on disk: adding outputs to the cache, status and checkout.
//!
//! Objects enter the cache through a temporary file whose md5 is checked before the rename,
//! and are made read-only as DVC does, so a bad copy or a later edit never changes an object.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::hash::{dir_listing_json, DirEntry, Hashed};
use super::object_relative_path;
use super::pointer::{DvcFile, DvcOut};
use crate::error::{MediaError, Result};

#[derive(Debug, Clone)]
pub struct DvcRepo {
    root: PathBuf,
    cache: PathBuf,
}

/// How an output compares with its pointer and the cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum OutStatus {
    UpToDate,
    Modified,
    Deleted,
    /// Objects the pointer needs that the cache lacks (relative object paths).
    NotInCache(Vec<String>),
}

impl DvcRepo {
    /// The project whose `.dvc` folder is at or above `start`.
    pub fn find(start: &Path) -> Result<DvcRepo> {
        let start = if start.as_os_str().is_empty() {
            Path::new(".")
        } else {
            start
        };
        let start = std::path::absolute(start).map_err(|e| MediaError::io(start, e))?;
        let mut dir: Option<&Path> = Some(&start);
        while let Some(current) = dir {
            if current.join(".dvc").is_dir() {
                return Ok(DvcRepo::at(current));
            }
            dir = current.parent();
        }
        Err(MediaError::format(
            &start,
            "not inside a DVC project (no .dvc folder here or above); run `dvc init` or `verdict media version init`",
        ))
    }

    fn at(root: &Path) -> DvcRepo {
        DvcRepo {
            root: root.to_path_buf(),
            cache: root.join(".dvc/cache"),
        }
    }

    /// Creates a project without git, like `dvc init --no-scm` (an existing one is kept).
    pub fn init(root: &Path) -> Result<DvcRepo> {
        let dvc = root.join(".dvc");
        std::fs::create_dir_all(dvc.join("tmp")).map_err(|e| MediaError::io(&dvc, e))?;
        let config = dvc.join("config");
        if !config.exists() {
            verdict_core::fsio::atomic_write(&config, |w| {
                w.write_all(b"[core]\n    no_scm = True\n")
            })?;
        }
        DvcRepo::find(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The local cache folder (`.dvc/cache`).
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    pub fn object_path(&self, md5: &str) -> PathBuf {
        self.cache.join(object_relative_path(md5))
    }

    /// Records `output` (a file or folder inside the project): objects into the cache, and
    /// `<output>.dvc` beside it. Returns the pointer's path.
    pub fn add(&self, output: &Path) -> Result<PathBuf> {
        let output = std::path::absolute(output).map_err(|e| MediaError::io(output, e))?;
        if !output.starts_with(&self.root) {
            return Err(MediaError::format(
                &output,
                format!("is outside the DVC project {}", self.root.display()),
            ));
        }
        if !output.exists() {
            return Err(MediaError::format(&output, "does not exist"));
        }
        let hashed = Hashed::of(&output)?;
        match &hashed.entries {
            Some(entries) => {
                for entry in entries {
                    self.insert_file(&output.join(&entry.relpath), &entry.md5)?;
                }
                let listing = dir_listing_json(entries);
                self.insert_bytes(listing.as_bytes(), &hashed.md5)?;
            }
            None => self.insert_file(&output, &hashed.md5)?,
        }
        let name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| MediaError::format(&output, "has no file name"))?;
        let pointer = DvcFile {
            outs: vec![DvcOut {
                md5: hashed.md5.clone(),
                size: Some(hashed.size),
                nfiles: hashed.entries.as_ref().map(|e| e.len() as u64),
                hash: Some("md5".into()),
                path: name,
            }],
        };
        let pointer_path = DvcFile::path_for(&output);
        pointer.write(&pointer_path)?;
        Ok(pointer_path)
    }

    fn insert_file(&self, source: &Path, md5: &str) -> Result<()> {
        let target = self.object_path(md5);
        if target.is_file() {
            return Ok(());
        }
        let mut file = std::fs::File::open(source).map_err(|e| MediaError::io(source, e))?;
        self.insert_verified(&mut file, md5, &source.display().to_string())
    }

    pub(crate) fn insert_bytes(&self, bytes: &[u8], md5: &str) -> Result<()> {
        if self.object_path(md5).is_file() {
            return Ok(());
        }
        self.insert_verified(&mut &bytes[..], md5, md5)
    }

    /// Streams `reader` into a temp file beside the object, checks its md5 against the name it
    /// will get, then renames it into place read-only.
    pub(crate) fn insert_verified(
        &self,
        reader: &mut dyn Read,
        md5: &str,
        what: &str,
    ) -> Result<()> {
        let target = self.object_path(md5);
        let dir = target.parent().unwrap_or(&self.cache).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| MediaError::io(&dir, e))?;
        let mut temp =
            tempfile::NamedTempFile::new_in(&dir).map_err(|e| MediaError::io(&dir, e))?;
        let mut hasher = Md5::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = reader
                .read(&mut buffer)
                .map_err(|e| MediaError::io(&target, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            temp.write_all(&buffer[..n])
                .map_err(|e| MediaError::io(&target, e))?;
        }
        let actual = hex::encode(hasher.finalize());
        let expected = md5.trim_end_matches(".dir");
        if actual != expected {
            return Err(MediaError::format(
                &target,
                format!(
                    "{what}: content hashes to {actual}, not {expected}; the object was not stored"
                ),
            ));
        }
        temp.flush().map_err(|e| MediaError::io(&target, e))?;
        set_read_only(temp.path())?;
        temp.persist(&target)
            .map_err(|e| MediaError::io(&target, e.error))?;
        Ok(())
    }

    /// The listing of a folder object, from the cache.
    pub fn read_listing(&self, md5: &str) -> Result<Vec<DirEntry>> {
        let path = self.object_path(md5);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                MediaError::format(
                    &path,
                    format!("folder listing {md5} is not in the cache; pull it first"),
                )
            } else {
                MediaError::io(&path, e)
            }
        })?;
        #[derive(serde::Deserialize)]
        struct Item {
            md5: String,
            relpath: String,
        }
        let items: Vec<Item> = serde_json::from_str(&text)
            .map_err(|e| MediaError::format(&path, format!("corrupt folder listing: {e}")))?;
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            let escapes = item.relpath.starts_with('/')
                || item.relpath.split('/').any(|p| p == ".." || p.is_empty());
            if escapes {
                return Err(MediaError::format(
                    &path,
                    format!("listing entry `{}` leaves its folder", item.relpath),
                ));
            }
            entries.push(DirEntry {
                relpath: item.relpath,
                md5: item.md5,
                size: 0,
            });
        }
        Ok(entries)
    }

    /// Every object `out` needs (the listing and its files for folders), as md5 ids.
    pub fn objects_of(&self, out: &DvcOut) -> Result<Vec<String>> {
        let mut ids = vec![out.md5.clone()];
        if out.is_dir() {
            ids.extend(self.read_listing(&out.md5)?.into_iter().map(|e| e.md5));
        }
        Ok(ids)
    }

    fn output_path(pointer: &Path, out: &DvcOut) -> PathBuf {
        pointer.parent().unwrap_or(Path::new(".")).join(&out.path)
    }

    pub fn status(&self, pointer: &Path) -> Result<Vec<(PathBuf, OutStatus)>> {
        let file = DvcFile::read(pointer)?;
        let mut result = Vec::new();
        for out in &file.outs {
            let output = Self::output_path(pointer, out);
            let missing = self.missing_objects(out);
            let status = if !missing.is_empty() {
                OutStatus::NotInCache(missing)
            } else if !output.exists() {
                OutStatus::Deleted
            } else if Hashed::of(&output)?.md5 != out.md5 {
                OutStatus::Modified
            } else {
                OutStatus::UpToDate
            };
            result.push((output, status));
        }
        Ok(result)
    }

    fn missing_objects(&self, out: &DvcOut) -> Vec<String> {
        let mut missing = Vec::new();
        if !self.object_path(&out.md5).is_file() {
            missing.push(object_relative_path(&out.md5));
            return missing;
        }
        match self.objects_of(out) {
            Ok(ids) => missing.extend(
                ids.into_iter()
                    .filter(|id| !self.object_path(id).is_file())
                    .map(|id| object_relative_path(&id)),
            ),
            Err(_) => missing.push(object_relative_path(&out.md5)),
        }
        missing
    }

    /// Restores the outputs of `pointer` from the cache. Every object is checked first: with
    /// any missing, nothing in the workspace is touched.
    pub fn checkout(&self, pointer: &Path) -> Result<usize> {
        let file = DvcFile::read(pointer)?;
        let mut restored = 0;
        for out in &file.outs {
            let missing = self.missing_objects(out);
            if !missing.is_empty() {
                return Err(MediaError::format(
                    pointer,
                    format!(
                        "`{}` needs {} object(s) missing from {} (first: {}); run `verdict media version pull` or `dvc pull`",
                        out.path,
                        missing.len(),
                        self.cache.display(),
                        missing[0]
                    ),
                ));
            }
            let output = Self::output_path(pointer, out);
            if out.is_dir() {
                for entry in self.read_listing(&out.md5)? {
                    restored += self.place(&entry.md5, &output.join(&entry.relpath))? as usize;
                }
            } else {
                restored += self.place(&out.md5, &output)? as usize;
            }
        }
        Ok(restored)
    }

    /// Copies an object to `target` unless it already holds that content.
    fn place(&self, md5: &str, target: &Path) -> Result<bool> {
        if target.is_file() && super::hash::md5_file(target)?.0 == md5 {
            return Ok(false);
        }
        let object = self.object_path(md5);
        let mut source = std::fs::File::open(&object).map_err(|e| MediaError::io(&object, e))?;
        verdict_core::fsio::atomic_write(target, |w| std::io::copy(&mut source, w).map(|_| ()))?;
        Ok(true)
    }
}

#[cfg(unix)]
fn set_read_only(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444))
        .map_err(|e| MediaError::io(path, e))
}

#[cfg(not(unix))]
fn set_read_only(path: &Path) -> Result<()> {
    let mut permissions = std::fs::metadata(path)
        .map_err(|e| MediaError::io(path, e))?
        .permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(path, permissions).map_err(|e| MediaError::io(path, e))
}
