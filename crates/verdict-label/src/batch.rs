//! Batch mode: request files through `/v1/files` and `/v1/batches`, polled to the end.
//!
//! Each pass of the loop moves every open file one step: `prepared` files are uploaded and
//! get a batch, batches in flight are polled, finished ones are finalized (outputs and error
//! files downloaded into `results/`, every answer journalled, tries without an answer
//! recorded as failed). Once every file is finalized, items still open (errors, expired
//! requests, schema-invalid answers) go into a new request file, until every item is
//! labelled or out of tries. Each step is saved before the next starts, so a crash repeats
//! at most the step in progress, and repeating a step is harmless: uploads are re-done, a
//! batch created just before a crash is found again by its metadata, and results read twice
//! are journalled once.

use std::time::Duration;

use serde_json::{json, Value};

use crate::client::{error_message, message_text, Client};
use crate::error::{LabelError, Result};
use crate::job::{Job, Progress};
use crate::journal::Outcome;
use crate::request::{write_request_files, Attempt, RequestBuilder};
use crate::state::{now, write_atomic, FileState, Status};

impl Job {
    pub(crate) async fn run_batches(&mut self, progress: &dyn Progress) -> Result<()> {
        let client = Client::new(&self.spec.endpoint, &self.spec.retry)?;
        let interval = Duration::from_secs_f64(self.spec.polling.interval_seconds);
        loop {
            let mut in_flight = false;
            for index in 0..self.state.files.len() {
                match self.state.files[index].status {
                    // A cancel request stops dispatching at once; batches out still drain.
                    Status::Prepared if !self.cancel_requested() => {
                        self.dispatch(&client, index).await?
                    }
                    Status::Dispatched | Status::InProgress => self.poll(&client, index).await?,
                    status if status.is_remote_terminal() => {
                        self.finalize_file(&client, index).await?
                    }
                    _ => {}
                }
                in_flight |= matches!(
                    self.state.files[index].status,
                    Status::Dispatched | Status::InProgress
                );
            }
            self.report(progress);
            let cancelling = self.cancel_requested();
            if in_flight {
                tokio::time::sleep(interval).await;
                continue;
            }
            // Finished batches are finalized (results downloaded) in the next pass.
            if self
                .state
                .files
                .iter()
                .any(|f| f.status.is_remote_terminal())
            {
                continue;
            }
            if cancelling {
                self.write_table()?;
                return Err(LabelError::Cancelled(self.state.name.clone()));
            }
            if self
                .state
                .files
                .iter()
                .all(|f| f.status == Status::Finalized)
            {
                let pending = self.pending_attempts();
                if pending.is_empty() {
                    return Ok(());
                }
                self.prepare_files(&pending)?;
            }
        }
    }

    fn report(&self, progress: &dyn Progress) {
        let counts = self.counts();
        let done = counts.labelled + counts.invalid + counts.failed;
        let flying: usize = self
            .state
            .files
            .iter()
            .filter(|f| matches!(f.status, Status::Dispatched | Status::InProgress))
            .map(|f| f.completed_requests + f.failed_requests)
            .sum();
        progress.update(
            (done + flying).min(self.state.items),
            self.state.items,
            self.state.derived_status().name(),
        );
    }

    /// Writes the open tries as new request files and records them as `prepared`.
    fn prepare_files(&mut self, pending: &[Attempt]) -> Result<()> {
        let builder = RequestBuilder::new(&self.spec);
        let files = write_request_files(
            &self.paths.requests(),
            self.state.next_file_number,
            pending,
            &self.table.items,
            &builder,
            &self.spec.limits,
        )?;
        self.state.next_file_number += files.len();
        self.state
            .files
            .extend(files.into_iter().map(FileState::prepared));
        self.state.status = self.state.derived_status();
        self.save()
    }

    /// Uploads the file (if not yet) and creates its batch (or finds the one created before
    /// a crash).
    async fn dispatch(&mut self, client: &Client, index: usize) -> Result<()> {
        let name = self.state.files[index].name.clone();
        if self.state.files[index].file_id.is_none() {
            let path = self.paths.requests().join(&name);
            let bytes = std::fs::read(&path).map_err(|e| LabelError::io(&path, e))?;
            if crate::job::file_sha256(&path)? != self.state.files[index].sha256 {
                return Err(LabelError::State {
                    path,
                    message: "the request file changed since it was written".into(),
                });
            }
            let file_id = client.upload(&name, &bytes).await?;
            self.state.files[index].file_id = Some(file_id);
            self.state.files[index].updated_at = now();
            self.save()?;
        }
        let file_id = self.state.files[index].file_id.clone().unwrap_or_default();
        let metadata = json!({"verdict_job": self.state.job_id, "verdict_file": name});
        let existing = client.list_batches(5).await?.into_iter().find(|b| {
            b.input_file_id.as_deref() == Some(file_id.as_str())
                && b.metadata.as_ref().is_some_and(|m| {
                    m.get("verdict_job") == Some(&metadata["verdict_job"])
                        && m.get("verdict_file") == Some(&metadata["verdict_file"])
                })
        });
        let batch = match existing {
            Some(batch) => batch,
            None => {
                client
                    .create_batch(&file_id, &self.spec.polling.completion_window, metadata)
                    .await?
            }
        };
        let file = &mut self.state.files[index];
        file.batch_id = Some(batch.id);
        file.status = Status::Dispatched;
        file.remote_status = Some(batch.status);
        file.updated_at = now();
        self.state.status = self.state.derived_status();
        self.save()
    }

    async fn poll(&mut self, client: &Client, index: usize) -> Result<()> {
        let Some(batch_id) = self.state.files[index].batch_id.clone() else {
            return Err(LabelError::Protocol(format!(
                "file {} is dispatched without a batch id",
                self.state.files[index].name
            )));
        };
        let batch = match client.batch(&batch_id).await {
            Ok(batch) => batch,
            // The endpoint lost the batch (e.g. restarted without its batch folder): its
            // tries count as failed and are sent again.
            Err(LabelError::Http { status: 404, .. }) => {
                tracing::warn!(
                    "batch {batch_id} is gone from the endpoint; re-sending its requests"
                );
                let file = &mut self.state.files[index];
                file.status = Status::Failed;
                file.remote_status = Some("lost".into());
                file.output_file_id = None;
                file.error_file_id = None;
                file.updated_at = now();
                self.state.status = self.state.derived_status();
                return self.save();
            }
            Err(other) => return Err(other),
        };
        let status = Status::from_remote(&batch.status).ok_or_else(|| {
            LabelError::Protocol(format!(
                "batch {batch_id} has the unknown status {:?}",
                batch.status
            ))
        })?;
        let counts = batch.request_counts.unwrap_or_default();
        let file = &mut self.state.files[index];
        let changed = file.status != status
            || file.remote_status.as_deref() != Some(batch.status.as_str())
            || file.completed_requests != counts.completed
            || file.failed_requests != counts.failed;
        if changed {
            file.status = status;
            file.remote_status = Some(batch.status);
            file.output_file_id = batch.output_file_id;
            file.error_file_id = batch.error_file_id;
            file.completed_requests = counts.completed;
            file.failed_requests = counts.failed;
            file.updated_at = now();
            self.state.status = self.state.derived_status();
            self.save()?;
        }
        Ok(())
    }

    /// Downloads what a finished batch produced, journals every answer and marks the tries
    /// it did not answer as failed.
    async fn finalize_file(&mut self, client: &Client, index: usize) -> Result<()> {
        let file = self.state.files[index].clone();
        let results = self.paths.results();
        std::fs::create_dir_all(&results).map_err(|e| LabelError::io(&results, e))?;
        let stem = file.name.trim_end_matches(".jsonl").to_string();
        for (file_id, kind) in [
            (&file.output_file_id, "output"),
            (&file.error_file_id, "errors"),
        ] {
            let Some(file_id) = file_id else { continue };
            let path = results.join(format!("{stem}.{kind}.jsonl"));
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(_) => match client.content(file_id).await {
                    Ok(bytes) => {
                        write_atomic(&path, &bytes)?;
                        bytes
                    }
                    Err(LabelError::Http { status: 404, .. }) => {
                        tracing::warn!("{kind} file {file_id} is gone; its tries are re-sent");
                        continue;
                    }
                    Err(other) => return Err(other),
                },
            };
            for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let value: Value = serde_json::from_slice(line).map_err(|e| {
                    LabelError::Protocol(format!(
                        "{}, line {}: not JSON ({e})",
                        path.display(),
                        number + 1
                    ))
                })?;
                let custom_id = value["custom_id"].as_str().unwrap_or_default();
                let Some(attempt) = file
                    .attempts
                    .iter()
                    .find(|a| a.custom_id() == custom_id)
                    .copied()
                else {
                    tracing::warn!(
                        "{}: ignoring unknown custom_id {custom_id:?}",
                        path.display()
                    );
                    continue;
                };
                if self.journal.has(attempt.item, attempt.attempt) {
                    continue;
                }
                let outcome = self.outcome_of_line(&value);
                self.record(attempt, outcome)?;
            }
        }
        // A cancelled job's unanswered tries were never really tried.
        let skip_missing = file.status == Status::Cancelled && self.cancel_requested();
        if !skip_missing {
            for attempt in &file.attempts {
                if !self.journal.has(attempt.item, attempt.attempt) {
                    let error = format!(
                        "batch {} ended {} without an answer",
                        file.batch_id.as_deref().unwrap_or("?"),
                        file.status.name()
                    );
                    self.record(*attempt, Outcome::Failed { error })?;
                }
            }
        }
        let file = &mut self.state.files[index];
        file.status = Status::Finalized;
        file.updated_at = now();
        self.state.status = self.state.derived_status();
        self.save()
    }

    /// The outcome of one line of a batch output or error file.
    fn outcome_of_line(&self, line: &Value) -> Outcome {
        let response = &line["response"];
        let status = response["status_code"].as_u64();
        if status == Some(200) {
            let body = &response["body"];
            return match message_text(body) {
                Some(text) => self.judge(&text),
                None => Outcome::Invalid {
                    raw: body.to_string(),
                    error: "the response has no message content".into(),
                },
            };
        }
        let message = line["error"]["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| error_message(&response["body"].to_string()));
        let error = match status {
            Some(status) => format!("HTTP {status}: {message}"),
            None => message,
        };
        Outcome::Failed { error }
    }
}
