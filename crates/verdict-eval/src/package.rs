//! `verdict package RUN_DIR`: one zip of a run's artifacts, to hand over or archive.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{EvalError, Result};

/// What was packaged.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageSummary {
    pub archive: PathBuf,
    pub files: usize,
    pub bytes: u64,
}

/// Files under `dir`, recursively, sorted, as (path, name inside the archive with `/`).
fn collect(dir: &Path, prefix: &str, skip: &Path, out: &mut Vec<(PathBuf, String)>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| EvalError::io(dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| EvalError::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let kind = entry.file_type().map_err(|e| EvalError::io(&path, e))?;
        if path == skip || name.starts_with('.') && name.ends_with(".tmp") {
            continue;
        }
        if kind.is_dir() {
            collect(&path, &format!("{name}/"), skip, out)?;
        } else if kind.is_file() {
            out.push((path, name));
        }
    }
    Ok(())
}

/// Zips every file under `run_dir` into `archive` (default: `<run_dir>.zip` beside it), with
/// paths relative to the run folder's parent so unzipping recreates the folder. Written to a
/// temporary file first and renamed.
pub fn package(run_dir: &Path, archive: Option<&Path>) -> Result<PackageSummary> {
    if !run_dir.is_dir() {
        return Err(EvalError::file(
            run_dir,
            "not a folder: give the run folder to package",
        ));
    }
    let folder_name = run_dir
        .canonicalize()
        .map_err(|e| EvalError::io(run_dir, e))?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let archive = archive.map(Path::to_path_buf).unwrap_or_else(|| {
        let parent = run_dir.parent().unwrap_or(Path::new("."));
        parent.join(format!("{folder_name}.zip"))
    });
    let mut files = Vec::new();
    collect(run_dir, &format!("{folder_name}/"), &archive, &mut files)?;
    if files.is_empty() {
        return Err(EvalError::file(
            run_dir,
            "the run folder has no files to package",
        ));
    }
    let directory = archive
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temporary = directory.join(format!(".{folder_name}.zip.{}.tmp", std::process::id()));
    let zip_error =
        |e: zip::result::ZipError| EvalError::file(&archive, format!("cannot write zip: {e}"));
    let file = std::fs::File::create(&temporary).map_err(|e| EvalError::io(&temporary, e))?;
    let mut writer = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut bytes = 0u64;
    for (path, name) in &files {
        let content = std::fs::read(path).map_err(|e| EvalError::io(path, e))?;
        bytes += content.len() as u64;
        writer
            .start_file(name.as_str(), options)
            .map_err(zip_error)?;
        writer
            .write_all(&content)
            .map_err(|e| EvalError::io(&temporary, e))?;
    }
    writer.finish().map_err(zip_error)?;
    std::fs::rename(&temporary, &archive).map_err(|e| EvalError::io(&archive, e))?;
    Ok(PackageSummary {
        archive,
        files: files.len(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn package_zips_every_file_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run-1");
        std::fs::create_dir_all(run.join("eval")).unwrap();
        std::fs::write(run.join("run_metadata.json"), b"{\"task\":\"x\"}").unwrap();
        std::fs::write(run.join("eval/metrics.json"), b"{}").unwrap();
        let summary = package(&run, None).unwrap();
        assert_eq!(summary.archive, dir.path().join("run-1.zip"));
        assert_eq!(summary.files, 2);
        let mut archive =
            zip::ZipArchive::new(std::fs::File::open(&summary.archive).unwrap()).unwrap();
        let mut text = String::new();
        archive
            .by_name("run-1/run_metadata.json")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"task\":\"x\"}");
        assert!(archive.by_name("run-1/eval/metrics.json").is_ok());
        assert!(package(&dir.path().join("missing"), None).is_err());
    }
}
