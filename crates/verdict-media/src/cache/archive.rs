//! Moving a cache between machines as one zip: export everything, import entry by entry.
//!
//! Import trusts nothing in the archive: an entry must carry a cache file name (no folders, no
//! `..`) and be a complete image, or it is reported and skipped; existing files are kept.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::name::is_cache_file_name;
use super::status::STATUS_FILE_NAME;
use super::validate::check_image;
use crate::error::{MediaError, Result};

/// What an import did, entry by entry.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ZipImportReport {
    pub imported: usize,
    /// Already in the cache (names are derived from URLs, so the same name is the same image).
    pub existing: usize,
    /// `(entry name, reason)` for every refused entry.
    pub rejected: Vec<(String, String)>,
}

/// Writes every cache file (and the status CSV, if present) into `archive`. Images are stored
/// without recompression: they are compressed already.
pub fn export_zip(cache_dir: &Path, archive: &Path) -> Result<usize> {
    let mut names: Vec<String> = std::fs::read_dir(cache_dir)
        .map_err(|e| MediaError::io(cache_dir, e))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| is_cache_file_name(name) || name == STATUS_FILE_NAME)
        .collect();
    names.sort();
    let parent = match archive.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(|e| MediaError::io(parent, e))?;
    let temp = tempfile::NamedTempFile::new_in(parent).map_err(|e| MediaError::io(parent, e))?;
    let zip_error = |e: zip::result::ZipError| MediaError::format(archive, e.to_string());
    let mut writer = zip::ZipWriter::new(std::io::BufWriter::new(temp));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    let mut count = 0;
    for name in &names {
        let source = cache_dir.join(name);
        let mut file = std::fs::File::open(&source).map_err(|e| MediaError::io(&source, e))?;
        writer
            .start_file(name.as_str(), options)
            .map_err(zip_error)?;
        std::io::copy(&mut file, &mut writer).map_err(|e| MediaError::io(archive, e))?;
        count += 1;
    }
    let buffered = writer.finish().map_err(zip_error)?;
    let temp = buffered
        .into_inner()
        .map_err(|e| MediaError::io(archive, e.into_error()))?;
    temp.persist(archive)
        .map_err(|e| MediaError::io(archive, e.error))?;
    Ok(count)
}

/// Imports the images of `archive` into `cache_dir`, refusing entries one by one.
pub fn import_zip(archive: &Path, cache_dir: &Path) -> Result<ZipImportReport> {
    let file = std::fs::File::open(archive).map_err(|e| MediaError::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| MediaError::format(archive, format!("not a readable zip: {e}")))?;
    std::fs::create_dir_all(cache_dir).map_err(|e| MediaError::io(cache_dir, e))?;
    let mut report = ZipImportReport::default();
    for index in 0..zip.len() {
        let mut entry = match zip.by_index(index) {
            Ok(entry) => entry,
            Err(e) => {
                report.rejected.push((format!("#{index}"), e.to_string()));
                continue;
            }
        };
        let name = match entry.name() {
            Ok(name) => name.to_string(),
            Err(e) => {
                report
                    .rejected
                    .push((format!("#{index}"), format!("unreadable entry name: {e}")));
                continue;
            }
        };
        if name == STATUS_FILE_NAME || entry.is_dir() {
            continue;
        }
        if !is_cache_file_name(&name) {
            report
                .rejected
                .push((name, "not a cache file name (sha1 hex + extension)".into()));
            continue;
        }
        let target: PathBuf = cache_dir.join(&name);
        if target.exists() {
            report.existing += 1;
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        if let Err(e) = entry.read_to_end(&mut bytes) {
            report
                .rejected
                .push((name, format!("cannot read entry: {e}")));
            continue;
        }
        if let Err(problem) = check_image(&bytes, None) {
            report.rejected.push((name, problem.to_string()));
            continue;
        }
        verdict_core::fsio::atomic_write(&target, |w| w.write_all(&bytes))?;
        report.imported += 1;
    }
    Ok(report)
}
