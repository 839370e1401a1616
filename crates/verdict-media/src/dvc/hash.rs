//! DVC's hashes: plain md5 of a file's bytes (DVC 3 dropped the dos2unix normalisation of
//! DVC 2), and for a folder the md5 of its `.dir` listing serialised the way Python's
//! `json.dumps(listing, sort_keys=True)` does, plus the `.dir` suffix.

use std::io::Read;
use std::path::Path;

use md5::{Digest, Md5};

use crate::error::{MediaError, Result};

/// One file of a folder output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DirEntry {
    /// Slash-separated path below the folder.
    pub relpath: String,
    pub md5: String,
    pub size: u64,
}

/// The hash of an output: a file, or a folder with its listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Hashed {
    /// Hex md5; folders end in `.dir`.
    pub md5: String,
    pub size: u64,
    /// Folders only.
    pub entries: Option<Vec<DirEntry>>,
}

impl Hashed {
    pub fn of(path: &Path) -> Result<Hashed> {
        if path.is_dir() {
            let entries = hash_dir(path)?;
            let listing = dir_listing_json(&entries);
            Ok(Hashed {
                md5: format!("{}.dir", hex::encode(Md5::digest(listing.as_bytes()))),
                size: entries.iter().map(|e| e.size).sum(),
                entries: Some(entries),
            })
        } else {
            let (md5, size) = md5_file(path)?;
            Ok(Hashed {
                md5,
                size,
                entries: None,
            })
        }
    }
}

/// Hex md5 and size of a file, streamed.
pub fn md5_file(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(|e| MediaError::io(path, e))?;
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| MediaError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Every regular file below `dir`, sorted by relative path. `.git`, `.hg` and `.dvc` folders
/// are skipped, as DVC's default ignore list does.
fn hash_dir(dir: &Path) -> Result<Vec<DirEntry>> {
    let mut entries = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0 || !matches!(e.file_name().to_str(), Some(".git" | ".hg" | ".dvc"))
        });
    for entry in walker {
        let entry = entry.map_err(|e| MediaError::format(dir, e.to_string()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let relpath = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let (md5, size) = md5_file(entry.path())?;
        entries.push(DirEntry { relpath, md5, size });
    }
    entries.sort();
    Ok(entries)
}

/// The `.dir` object: `[{"md5": "...", "relpath": "..."}, ...]` sorted by relpath, with
/// Python's default separators and ASCII escaping, byte for byte.
pub fn dir_listing_json(entries: &[DirEntry]) -> String {
    let mut sorted: Vec<&DirEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.relpath.cmp(&b.relpath));
    let items: Vec<String> = sorted
        .iter()
        .map(|e| {
            format!(
                "{{\"md5\": {}, \"relpath\": {}}}",
                python_json_string(&e.md5),
                python_json_string(&e.relpath)
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// A JSON string as `json.dumps` writes it with `ensure_ascii=True`.
fn python_json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_matches_python_json_dumps() {
        // json.dumps([{"relpath": "sub/b.bin", "md5": "m2"}, {"relpath": "a.txt", "md5": "m1"}],
        //            sort_keys=True) after sorting by relpath:
        let entries = vec![
            DirEntry {
                relpath: "sub/b.bin".into(),
                md5: "m2".into(),
                size: 1,
            },
            DirEntry {
                relpath: "a.txt".into(),
                md5: "m1".into(),
                size: 6,
            },
        ];
        assert_eq!(
            dir_listing_json(&entries),
            r#"[{"md5": "m1", "relpath": "a.txt"}, {"md5": "m2", "relpath": "sub/b.bin"}]"#
        );
        // json.dumps("é😀\"\x7f") == '"\\u00e9\\ud83d\\ude00\\"\\u007f"'
        assert_eq!(
            python_json_string("é😀\"\x7f"),
            r#""\u00e9\ud83d\ude00\"\u007f""#
        );
    }

    #[test]
    fn folder_hash_matches_dvc() {
        // The same tree `dvc add data` hashed to eaf8a86d902a6817a4a031e3cbd7c606.dir
        // (DVC 3.67): data/a.txt = "hello\n", data/sub/b.bin = "x".
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("a.txt"), "hello\n").unwrap();
        std::fs::write(data.join("sub/b.bin"), "x").unwrap();
        let hashed = Hashed::of(&data).unwrap();
        assert_eq!(hashed.md5, "eaf8a86d902a6817a4a031e3cbd7c606.dir");
        assert_eq!(hashed.size, 7);
        assert_eq!(
            hashed.entries.unwrap()[0].md5,
            "b1946ac92492d2347c6235b4d2611184"
        );
    }
}
