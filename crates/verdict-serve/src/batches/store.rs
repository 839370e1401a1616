//! Files and batches on disk, with an in-memory index.
//!
//! Layout under the batch folder: `files/<id>.json` (the file object) and `files/<id>.data`
//! (its bytes); `batches/<id>.json` (the batch record), and while a batch runs,
//! `batches/<id>.output.jsonl` / `.errors.jsonl` (result lines, appended and synced one by
//! one). Objects are written through a temporary file and a rename, so a restart finds
//! each either as it was or as it became, and a running batch continues after the last
//! result line it kept.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, ServeError};

/// A file as the files API describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileObject {
    pub id: String,
    pub object: String,
    pub bytes: u64,
    pub created_at: u64,
    pub filename: String,
    /// `batch` for uploads, `batch_output` for results.
    pub purpose: String,
    pub status: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub total: usize,
    pub completed: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchError {
    pub code: String,
    pub message: String,
    pub line: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchErrors {
    pub object: String,
    pub data: Vec<BatchError>,
}

/// A batch as the batch API describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchObject {
    pub id: String,
    pub object: String,
    pub endpoint: String,
    pub errors: Option<BatchErrors>,
    pub input_file_id: String,
    pub completion_window: String,
    /// validating, in_progress, finalizing, completed, failed, expired, cancelling, cancelled.
    pub status: String,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub created_at: u64,
    pub in_progress_at: Option<u64>,
    pub expires_at: u64,
    pub finalizing_at: Option<u64>,
    pub completed_at: Option<u64>,
    pub failed_at: Option<u64>,
    pub expired_at: Option<u64>,
    pub cancelling_at: Option<u64>,
    pub cancelled_at: Option<u64>,
    pub request_counts: RequestCounts,
    pub metadata: Option<Value>,
}

impl BatchObject {
    pub fn is_open(&self) -> bool {
        matches!(
            self.status.as_str(),
            "validating" | "in_progress" | "finalizing" | "cancelling"
        )
    }
}

/// A batch with what only the server needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub batch: BatchObject,
    /// Expiry in milliseconds since the epoch (the API's `expires_at` is in seconds).
    pub expires_at_ms: u64,
    /// Why the run stopped early (`batch_expired`, `batch_cancelled`), once it has.
    #[serde(default)]
    pub stop: Option<String>,
}

struct Index {
    files: HashMap<String, FileObject>,
    batches: HashMap<String, BatchRecord>,
}

/// The files and batches of one service.
pub struct BatchStore {
    dir: PathBuf,
    /// Holds a temporary folder when no batch folder is configured.
    _temporary: Option<tempfile::TempDir>,
    index: Mutex<Index>,
    /// Set once the batches left open by a previous run have workers again.
    resumed: AtomicBool,
}

impl BatchStore {
    /// Opens (or creates) the store in `dir`, else in `$VERDICT_BATCH_DIR`, else in a
    /// temporary folder (batches then end with the process).
    pub fn open(dir: Option<&Path>) -> Result<Self> {
        let from_environment = std::env::var_os("VERDICT_BATCH_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let (dir, temporary) = match dir.map(Path::to_path_buf).or(from_environment) {
            Some(dir) => (dir, None),
            None => {
                let temporary = tempfile::Builder::new()
                    .prefix("verdict-batches")
                    .tempdir()?;
                (temporary.path().to_path_buf(), Some(temporary))
            }
        };
        let config = |e: String| ServeError::Config(format!("batch folder {}: {e}", dir.display()));
        std::fs::create_dir_all(dir.join("files"))?;
        std::fs::create_dir_all(dir.join("batches"))?;
        let mut files = HashMap::new();
        let mut batches = HashMap::new();
        for entry in std::fs::read_dir(dir.join("files"))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let file: FileObject = serde_json::from_slice(&std::fs::read(&path)?)
                    .map_err(|e| config(format!("{}: {e}", path.display())))?;
                files.insert(file.id.clone(), file);
            }
        }
        for entry in std::fs::read_dir(dir.join("batches"))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let record: BatchRecord = serde_json::from_slice(&std::fs::read(&path)?)
                    .map_err(|e| config(format!("{}: {e}", path.display())))?;
                batches.insert(record.batch.id.clone(), record);
            }
        }
        Ok(Self {
            dir,
            _temporary: temporary,
            index: Mutex::new(Index { files, batches }),
            resumed: AtomicBool::new(false),
        })
    }

    /// True the first time it is called: the caller restarts the open batches.
    pub fn take_resume(&self) -> bool {
        !self.resumed.swap(true, Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panicked holder leaves plain data behind; keep serving it.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn file_data_path(&self, id: &str) -> PathBuf {
        self.dir.join("files").join(format!("{id}.data"))
    }

    /// Where a running batch appends its `kind` (`output` or `errors`) lines.
    pub fn partial_path(&self, batch_id: &str, kind: &str) -> PathBuf {
        self.dir
            .join("batches")
            .join(format!("{batch_id}.{kind}.jsonl"))
    }

    /// A fresh temporary path in the store (same file system, so it can be renamed in).
    pub fn scratch_path(&self) -> PathBuf {
        self.dir
            .join("files")
            .join(format!(".upload-{:016x}", rand::rng().random::<u64>()))
    }

    /// Registers `data` (already on disk, in the store) as a file; with `keep`, `data` is
    /// copied rather than moved.
    pub fn add_file(
        &self,
        data: &Path,
        filename: &str,
        purpose: &str,
        keep: bool,
    ) -> Result<FileObject> {
        let bytes = std::fs::metadata(data)?.len();
        let file = FileObject {
            id: new_id("file-"),
            object: "file".into(),
            bytes,
            created_at: now_seconds(),
            filename: filename.to_string(),
            purpose: purpose.to_string(),
            status: "processed".into(),
        };
        if keep {
            std::fs::copy(data, self.file_data_path(&file.id))?;
        } else {
            std::fs::rename(data, self.file_data_path(&file.id))?;
        }
        write_json(
            &self.dir.join("files").join(format!("{}.json", file.id)),
            &file,
        )?;
        self.lock().files.insert(file.id.clone(), file.clone());
        Ok(file)
    }

    pub fn file(&self, id: &str) -> Option<FileObject> {
        self.lock().files.get(id).cloned()
    }

    pub fn files(&self) -> Vec<FileObject> {
        let mut files: Vec<FileObject> = self.lock().files.values().cloned().collect();
        files.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        files
    }

    pub fn batch(&self, id: &str) -> Option<BatchRecord> {
        self.lock().batches.get(id).cloned()
    }

    /// Every batch, newest first.
    pub fn batches(&self) -> Vec<BatchObject> {
        let mut batches: Vec<BatchObject> = self
            .lock()
            .batches
            .values()
            .map(|r| r.batch.clone())
            .collect();
        batches.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        batches
    }

    /// Saves a batch record (new or changed).
    pub fn put_batch(&self, record: &BatchRecord) -> Result<()> {
        write_json(
            &self
                .dir
                .join("batches")
                .join(format!("{}.json", record.batch.id)),
            record,
        )?;
        self.lock()
            .batches
            .insert(record.batch.id.clone(), record.clone());
        Ok(())
    }

    /// Applies `change` to a stored batch and saves it, under the lock so concurrent
    /// changes (a worker's counts, a cancel request) never undo each other.
    pub fn update_batch(
        &self,
        id: &str,
        change: impl FnOnce(&mut BatchRecord),
    ) -> Result<Option<BatchRecord>> {
        let mut index = self.lock();
        let Some(record) = index.batches.get(id) else {
            return Ok(None);
        };
        let mut record = record.clone();
        change(&mut record);
        write_json(
            &self
                .dir
                .join("batches")
                .join(format!("{}.json", record.batch.id)),
            &record,
        )?;
        index
            .batches
            .insert(record.batch.id.clone(), record.clone());
        Ok(Some(record))
    }
}

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::rng().random::<u64>())
}

pub fn now_seconds() -> u64 {
    now_millis() / 1000
}

pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// JSON through a synced temporary file and a rename.
fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| ServeError::Config(format!("encoding {}: {e}", path.display())))?;
    let temporary = path.with_extension(format!("tmp-{:08x}", rand::rng().random::<u32>()));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}
