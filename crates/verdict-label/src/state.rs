//! The persisted state machine of a job and of each request file.
//!
//! Every request file moves `prepared` -> `dispatched` -> `in_progress` ->
//! `completed` | `failed` | `expired` | `cancelled` -> `finalized`; the job's own status
//! follows its least advanced file and ends `finalized` once the output table is written.
//! The state is saved after every transition by writing a temporary file, syncing it and
//! renaming it over the old one, so a crash at any instant leaves either the old or the new
//! state, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{LabelError, Result};
use crate::request::{Attempt, RequestFile};
use crate::spec::Mode;

pub const STATE_VERSION: u32 = 1;

/// Where a request file (or the whole job) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Written locally (and maybe uploaded), no batch yet.
    Prepared,
    /// A batch exists for it.
    Dispatched,
    /// The endpoint is working on it.
    InProgress,
    Completed,
    Failed,
    Expired,
    Cancelled,
    /// Its results are downloaded and recorded (for the job: the output table is written).
    Finalized,
}

impl Status {
    /// A batch in this state will not change any more on the server.
    pub fn is_remote_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Failed | Status::Expired | Status::Cancelled
        )
    }

    /// The file status for a batch API status string.
    pub fn from_remote(status: &str) -> Option<Self> {
        Some(match status {
            "validating" | "in_progress" | "finalizing" | "cancelling" => Status::InProgress,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
            "expired" => Status::Expired,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Prepared => "prepared",
            Status::Dispatched => "dispatched",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
            Status::Finalized => "finalized",
        }
    }
}

/// One request file and its batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileState {
    pub name: String,
    pub status: Status,
    pub attempts: Vec<Attempt>,
    pub bytes: u64,
    pub sha256: String,
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default)]
    pub batch_id: Option<String>,
    /// The batch API's own status word, as last seen.
    #[serde(default)]
    pub remote_status: Option<String>,
    #[serde(default)]
    pub output_file_id: Option<String>,
    #[serde(default)]
    pub error_file_id: Option<String>,
    #[serde(default)]
    pub completed_requests: usize,
    #[serde(default)]
    pub failed_requests: usize,
    pub updated_at: u64,
}

impl FileState {
    pub fn prepared(file: RequestFile) -> Self {
        Self {
            name: file.name,
            status: Status::Prepared,
            attempts: file.attempts,
            bytes: file.bytes,
            sha256: file.sha256,
            file_id: None,
            batch_id: None,
            remote_status: None,
            output_file_id: None,
            error_file_id: None,
            completed_requests: 0,
            failed_requests: 0,
            updated_at: now(),
        }
    }
}

/// The whole job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    pub version: u32,
    /// Random id, sent as batch metadata so a batch created just before a crash is found
    /// again instead of being created twice.
    pub job_id: String,
    pub name: String,
    pub mode: Mode,
    pub status: Status,
    pub items: usize,
    /// sha256 of the input file when the job started; a changed input is refused.
    pub input_sha256: String,
    pub next_file_number: usize,
    pub files: Vec<FileState>,
    #[serde(default)]
    pub output: Option<PathBuf>,
    /// Saved transitions so far.
    pub transitions: u64,
    pub created_at: u64,
    pub updated_at: u64,
}

impl JobState {
    /// The job's status from its files: the least advanced one still open; `prepared` when
    /// there is nothing to send yet.
    pub fn derived_status(&self) -> Status {
        let open: Vec<Status> = self
            .files
            .iter()
            .map(|f| f.status)
            .filter(|s| *s != Status::Finalized)
            .collect();
        let order = [
            Status::Prepared,
            Status::Dispatched,
            Status::InProgress,
            Status::Failed,
            Status::Expired,
            Status::Cancelled,
            Status::Completed,
        ];
        order
            .into_iter()
            .find(|s| open.contains(s))
            .unwrap_or(Status::Prepared)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| LabelError::io(path, e))?;
        let state: JobState = serde_json::from_slice(&bytes).map_err(|e| LabelError::State {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if state.version != STATE_VERSION {
            return Err(LabelError::State {
                path: path.to_path_buf(),
                message: format!(
                    "version {} is not the supported {STATE_VERSION}",
                    state.version
                ),
            });
        }
        Ok(state)
    }

    /// Saves atomically and counts the transition.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.transitions += 1;
        self.updated_at = now();
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| LabelError::State {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        write_atomic(path, &bytes)
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = parent.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // The rename itself must reach the disk before the transition counts.
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| LabelError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"a long first version").unwrap();
        write_atomic(&path, b"short").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1);
    }

    #[test]
    fn remote_words_map_to_file_states() {
        assert_eq!(Status::from_remote("finalizing"), Some(Status::InProgress));
        assert_eq!(Status::from_remote("expired"), Some(Status::Expired));
        assert_eq!(Status::from_remote("weird"), None);
        assert!(Status::Cancelled.is_remote_terminal());
        assert!(!Status::Dispatched.is_remote_terminal());
    }
}
