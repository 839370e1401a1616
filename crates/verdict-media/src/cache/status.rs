//! `image_download_status.csv`: one row per URL (url, path, ok, http_status, bytes, error), the
//! record of what the cache holds and why an image is missing.

use std::path::Path;

use super::download::FetchOutcome;
use crate::error::{MediaError, Result};

pub const STATUS_FILE_NAME: &str = "image_download_status.csv";

#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    url: String,
    path: String,
    ok: bool,
    http_status: Option<u16>,
    bytes: u64,
    error: String,
}

/// Writes the status CSV atomically.
pub fn write_status_csv(path: &Path, outcomes: &[FetchOutcome]) -> Result<()> {
    verdict_core::fsio::atomic_write(path, |w| {
        let mut writer = csv::Writer::from_writer(w);
        for outcome in outcomes {
            writer
                .serialize(Row {
                    url: outcome.url.clone(),
                    path: outcome
                        .path
                        .as_ref()
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    ok: outcome.ok,
                    http_status: outcome.http_status,
                    bytes: outcome.bytes,
                    error: outcome.error.clone().unwrap_or_default(),
                })
                .map_err(std::io::Error::other)?;
        }
        writer.flush()
    })?;
    Ok(())
}

/// Reads a status CSV back (attempt counts are not stored and read as 0).
pub fn read_status_csv(path: &Path) -> Result<Vec<FetchOutcome>> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| MediaError::format(path, e.to_string()))?;
    let mut outcomes = Vec::new();
    for (index, row) in reader.deserialize::<Row>().enumerate() {
        let row = row.map_err(|e| MediaError::format(path, format!("line {}: {e}", index + 2)))?;
        outcomes.push(FetchOutcome {
            url: row.url,
            path: (!row.path.is_empty()).then(|| row.path.into()),
            ok: row.ok,
            http_status: row.http_status,
            bytes: row.bytes,
            error: (!row.error.is_empty()).then_some(row.error),
            attempts: 0,
        });
    }
    Ok(outcomes)
}
