//! Data helpers shared by the benchmark examples.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The repository root (examples run from the crate directory).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fetched real data: `VERDICT_DATA_DIR`, else `<repo>/.cache/data`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("VERDICT_DATA_DIR").map_or_else(|| repo().join(".cache/data"), PathBuf::from)
}

/// Every SpamAssassin email as `(text, "spam" | "ham")`, in group/id order.
pub fn spamassassin_emails() -> Result<Vec<(String, String)>> {
    let root = data_dir().join("spamassassin/package/data");
    if !root.is_dir() {
        bail!(
            "{} missing: run scripts/fetch-data (or scripts/fetch/spamassassin.sh)",
            root.display()
        );
    }
    let mut emails = Vec::new();
    for group in ["easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(group))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        let label = if group.starts_with("spam") {
            "spam"
        } else {
            "ham"
        };
        for file in files {
            let value: Value = serde_json::from_slice(&std::fs::read(&file)?)
                .with_context(|| format!("parsing {}", file.display()))?;
            let text = value["text"].as_str().context("text field")?.to_owned();
            emails.push((text, label.to_owned()));
        }
    }
    Ok(emails)
}
