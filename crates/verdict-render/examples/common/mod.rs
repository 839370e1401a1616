//! The mesh corpus both examples read: every STL file under `$VERDICT_DATA_DIR/meshes`
//! (default `.cache/data/meshes`, filled by `scripts/fetch/meshes.sh`).

use std::path::{Path, PathBuf};

/// The corpus folder and its STL files, sorted; an error naming the folder when there are
/// none.
pub fn corpus_stl_files() -> Result<(PathBuf, Vec<PathBuf>), String> {
    let data = std::env::var_os("VERDICT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/data"))
        .join("meshes");
    let mut files = Vec::new();
    collect_stl(&data, &mut files);
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "no STL under {} (run scripts/fetch-data)",
            data.display()
        ));
    }
    Ok((data, files))
}

fn collect_stl(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // Packages link folders into each other (doc/examples -> examples): skip links.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            continue;
        }
        if kind.is_dir() {
            collect_stl(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("stl"))
        {
            out.push(path);
        }
    }
}
