//! `status` and `cancel`: read a job without taking it over, and stop its batches.
//!
//! Neither touches `state.json` (a running process owns it): `status` only reads, and
//! `cancel` cancels the batches in flight on the endpoint and leaves a `cancel-requested`
//! marker, which the running process (or the next `resume --reopen`) acts on.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::client::Client;
use crate::error::{LabelError, Result};
use crate::job::{read_json, Counts, JobPaths};
use crate::journal::{next_step, Journal, Next};
use crate::spec::{JobSpec, Mode};
use crate::state::{write_atomic, JobState, Status};

/// What `verdict label status` prints.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub name: String,
    pub mode: Mode,
    pub status: Status,
    pub items: usize,
    pub counts: Counts,
    pub cancel_requested: bool,
    pub output: Option<PathBuf>,
    pub files: Vec<FileReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub name: String,
    pub status: Status,
    pub requests: usize,
    pub batch_id: Option<String>,
    pub remote_status: Option<String>,
    pub completed_requests: usize,
    pub failed_requests: usize,
}

/// Reads a job's state and journal.
pub fn status(dir: &Path) -> Result<StatusReport> {
    let paths = JobPaths {
        dir: dir.to_path_buf(),
    };
    if !paths.state().exists() {
        return Err(LabelError::State {
            path: paths.state(),
            message: "no job here".into(),
        });
    }
    let spec: JobSpec = read_json(&paths.spec())?;
    let state = JobState::load(&paths.state())?;
    let records = Journal::read(&paths.journal())?;
    let mut counts = Counts::default();
    for item in 0..state.items {
        let records = records.get(&item).map(Vec::as_slice).unwrap_or(&[]);
        match next_step(records, spec.max_item_attempts) {
            Next::Done(_) => counts.labelled += 1,
            Next::GiveUp {
                status: "invalid", ..
            } => counts.invalid += 1,
            Next::GiveUp { .. } => counts.failed += 1,
            Next::Retry { .. } => counts.pending += 1,
        }
    }
    Ok(StatusReport {
        name: state.name.clone(),
        mode: state.mode,
        status: state.status,
        items: state.items,
        counts,
        cancel_requested: paths.cancel_marker().exists(),
        output: state.output.clone(),
        files: state
            .files
            .iter()
            .map(|f| FileReport {
                name: f.name.clone(),
                status: f.status,
                requests: f.attempts.len(),
                batch_id: f.batch_id.clone(),
                remote_status: f.remote_status.clone(),
                completed_requests: f.completed_requests,
                failed_requests: f.failed_requests,
            })
            .collect(),
    })
}

/// Cancels the job's batches in flight and marks the job cancelled.
pub async fn cancel(dir: &Path) -> Result<StatusReport> {
    let paths = JobPaths {
        dir: dir.to_path_buf(),
    };
    let spec: JobSpec = read_json(&paths.spec())?;
    let state = JobState::load(&paths.state())?;
    write_atomic(&paths.cancel_marker(), b"cancel requested\n")?;
    let client = Client::new(&spec.endpoint, &spec.retry)?;
    for file in &state.files {
        if !matches!(file.status, Status::Dispatched | Status::InProgress) {
            continue;
        }
        if let Some(batch_id) = &file.batch_id {
            match client.cancel_batch(batch_id).await {
                Ok(_) => {}
                // Finished in the meantime: nothing left to cancel.
                Err(LabelError::Http {
                    status, message, ..
                }) if status < 500 => {
                    tracing::info!("batch {batch_id}: {message}");
                }
                Err(other) => return Err(other),
            }
        }
    }
    status(dir)
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::Batch => "batch",
            Mode::Direct => "direct",
        };
        writeln!(
            f,
            "job {} ({mode} mode): {}{}",
            self.name,
            self.status.name(),
            if self.cancel_requested {
                ", cancel requested"
            } else {
                ""
            }
        )?;
        let c = &self.counts;
        writeln!(
            f,
            "items: {} labelled, {} invalid, {} failed, {} pending (of {})",
            c.labelled, c.invalid, c.failed, c.pending, self.items
        )?;
        for file in &self.files {
            writeln!(
                f,
                "  {:<16} {:<12} {:>6} requests  batch {} ({}), {} done, {} failed",
                file.name,
                file.status.name(),
                file.requests,
                file.batch_id.as_deref().unwrap_or("-"),
                file.remote_status.as_deref().unwrap_or("-"),
                file.completed_requests,
                file.failed_requests
            )?;
        }
        if let Some(output) = &self.output {
            writeln!(f, "output: {}", output.display())?;
        }
        Ok(())
    }
}
