//! `.dvc` pointer files, written in the field order and layout DVC itself writes:
//!
//! ```yaml
//! outs:
//! - md5: eaf8a86d902a6817a4a031e3cbd7c606.dir
//!   size: 7
//!   nfiles: 2
//!   hash: md5
//!   path: data
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{MediaError, Result};

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DvcOut {
    pub md5: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub nfiles: Option<u64>,
    /// `md5` for DVC 3 hashes; absent (DVC 2) means `md5-dos2unix`.
    #[serde(default)]
    pub hash: Option<String>,
    /// Relative to the `.dvc` file's folder.
    pub path: String,
}

impl DvcOut {
    pub fn is_dir(&self) -> bool {
        self.md5.ends_with(".dir")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DvcFile {
    pub outs: Vec<DvcOut>,
}

impl DvcFile {
    pub fn read(path: &Path) -> Result<DvcFile> {
        let text = std::fs::read_to_string(path).map_err(|e| MediaError::io(path, e))?;
        let file: DvcFile = serde_yaml::from_str(&text)
            .map_err(|e| MediaError::format(path, format!("not a .dvc file: {e}")))?;
        for (index, out) in file.outs.iter().enumerate() {
            let hex = out.md5.trim_end_matches(".dir");
            if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(MediaError::format(
                    path,
                    format!("outs[{index}].md5 `{}` is not an md5 hash", out.md5),
                ));
            }
            if out.hash.as_deref().is_some_and(|h| h != "md5") || out.hash.is_none() {
                return Err(MediaError::format(
                    path,
                    format!(
                        "outs[{index}] uses `{}` hashes from DVC 2; run `dvc cache migrate` with DVC 3 first",
                        out.hash.as_deref().unwrap_or("md5-dos2unix")
                    ),
                ));
            }
            let escapes = Path::new(&out.path).is_absolute()
                || out.path.split(['/', '\\']).any(|part| part == "..");
            if escapes {
                return Err(MediaError::format(
                    path,
                    format!(
                        "outs[{index}].path `{}` leaves the .dvc file's folder",
                        out.path
                    ),
                ));
            }
        }
        Ok(file)
    }

    /// The text DVC would write for these outputs.
    pub fn to_yaml(&self) -> String {
        let mut text = String::from("outs:\n");
        for out in &self.outs {
            text.push_str(&format!("- md5: {}\n", out.md5));
            if let Some(size) = out.size {
                text.push_str(&format!("  size: {size}\n"));
            }
            if let Some(nfiles) = out.nfiles {
                text.push_str(&format!("  nfiles: {nfiles}\n"));
            }
            text.push_str(&format!(
                "  hash: {}\n",
                out.hash.as_deref().unwrap_or("md5")
            ));
            text.push_str(&format!("  path: {}\n", yaml_scalar(&out.path)));
        }
        text
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let text = self.to_yaml();
        verdict_core::fsio::atomic_write(path, |w| w.write_all(text.as_bytes()))?;
        Ok(())
    }

    /// The `.dvc` file that tracks `output`: `<output>.dvc` beside it.
    pub fn path_for(output: &Path) -> PathBuf {
        let mut name = output.file_name().unwrap_or_default().to_os_string();
        name.push(".dvc");
        output.with_file_name(name)
    }
}

/// Plain when unambiguous, else a quoted YAML string.
fn yaml_scalar(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !value.starts_with(['-', '.'])
        && !matches!(
            value,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        )
        && value.parse::<f64>().is_err();
    if plain {
        value.to_string()
    } else {
        serde_json::to_string(value).unwrap_or_else(|_| format!("'{value}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_matches_dvc_and_reads_back() {
        let file = DvcFile {
            outs: vec![DvcOut {
                md5: "eaf8a86d902a6817a4a031e3cbd7c606.dir".into(),
                size: Some(7),
                nfiles: Some(2),
                hash: Some("md5".into()),
                path: "data".into(),
            }],
        };
        let text = file.to_yaml();
        // Byte for byte what `dvc add data` wrote (DVC 3.67).
        assert_eq!(
            text,
            "outs:\n- md5: eaf8a86d902a6817a4a031e3cbd7c606.dir\n  size: 7\n  nfiles: 2\n  hash: md5\n  path: data\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.dvc");
        file.write(&path).unwrap();
        assert_eq!(DvcFile::read(&path).unwrap(), file);
        assert_eq!(yaml_scalar("my data: v2"), "\"my data: v2\"");
        assert_eq!(yaml_scalar("123"), "\"123\"");
    }

    #[test]
    fn bad_pointers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.dvc");
        for (text, needle) in [
            (
                "outs:\n- md5: nothex\n  hash: md5\n  path: x\n",
                "not an md5",
            ),
            (
                "outs:\n- md5: 5bbf5a52328e7439ae6e719dfe712200\n  path: x\n",
                "DVC 2",
            ),
            (
                "outs:\n- md5: 5bbf5a52328e7439ae6e719dfe712200\n  hash: md5\n  path: ../x\n",
                "leaves",
            ),
            ("garbage: [", "not a .dvc file"),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = DvcFile::read(&path).unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
        }
    }
}
