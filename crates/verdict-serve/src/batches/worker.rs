//! Running a batch: every request line goes through the chat-completions handler itself
//! (same validation, queue and constrained decoding as a direct call), a few at a time so
//! the batcher can group them.
//!
//! Result lines are appended and synced as they arrive. After a restart the worker reads
//! the lines already kept (cutting a torn last one) and runs only the rest, so no request is
//! answered twice. Between requests it checks the expiry and a cancel request; what was
//! not run then goes into the error file as `batch_expired` / `batch_cancelled`, and the
//! answers so far stay available as the (partial) output file.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::store::{new_id, now_millis, now_seconds, BatchError, BatchErrors, BatchRecord};
use crate::api::ChatCompletionRequest;
use crate::state::AppState;

/// One parsed input line.
struct Line {
    custom_id: String,
    body: Value,
}

/// Drives batch `id` to a final status; errors are logged and leave the batch to be
/// resumed on the next start.
pub async fn run(state: AppState, id: String) {
    if let Err(error) = drive(&state, &id).await {
        tracing::error!("batch {id}: {error}");
    }
}

async fn drive(state: &AppState, id: &str) -> Result<(), String> {
    let store = state.batches();
    let record = store.batch(id).ok_or("batch vanished")?;
    if record.batch.status == "finalizing" {
        return finish(state, id);
    }
    let input = store.file_data_path(&record.batch.input_file_id);
    let lines = match parse_input(&input, &record.batch.endpoint) {
        Ok(lines) => lines,
        Err(errors) => {
            store
                .update_batch(id, |r| {
                    r.batch.status = "failed".into();
                    r.batch.failed_at = Some(now_seconds());
                    r.batch.errors = Some(BatchErrors {
                        object: "list".into(),
                        data: errors,
                    });
                })
                .map_err(|e| e.to_string())?;
            return Ok(());
        }
    };
    let total = lines.len();
    store
        .update_batch(id, |r| {
            if r.batch.status == "validating" {
                r.batch.status = "in_progress".into();
                r.batch.in_progress_at = Some(now_seconds());
            }
            r.batch.request_counts.total = total;
        })
        .map_err(|e| e.to_string())?;
    let output_path = store.partial_path(id, "output");
    let errors_path = store.partial_path(id, "errors");
    let mut done = HashSet::new();
    let completed = kept_lines(&output_path, &mut done)?;
    let failed = kept_lines(&errors_path, &mut done)?;
    store
        .update_batch(id, |r| {
            r.batch.request_counts.completed = completed;
            r.batch.request_counts.failed = failed;
        })
        .map_err(|e| e.to_string())?;
    let mut output = append(&output_path)?;
    let mut errors = append(&errors_path)?;
    let concurrency = state.config().batch_concurrency.max(1);
    let mut todo = lines.into_iter().filter(|l| !done.contains(&l.custom_id));
    let mut running: JoinSet<(String, u16, Value)> = JoinSet::new();
    let mut stop: Option<&'static str> = None;
    loop {
        if stop.is_none() {
            let record = store.batch(id).ok_or("batch vanished")?;
            if record.batch.status == "cancelling" {
                stop = Some("batch_cancelled");
            } else if now_millis() >= record.expires_at_ms {
                stop = Some("batch_expired");
            }
        }
        while stop.is_none() && running.len() < concurrency {
            let Some(line) = todo.next() else { break };
            let state = state.clone();
            running.spawn(async move {
                let (status, body) = call_chat(&state, line.body).await;
                (line.custom_id, status, body)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (custom_id, status, body) = joined.map_err(|e| format!("request task: {e}"))?;
        let line = json!({
            "id": new_id("batch_req_"),
            "custom_id": custom_id,
            "response": {"status_code": status, "request_id": new_id("req_"), "body": body},
            "error": null,
        });
        let ok = status == 200;
        write_line(if ok { &mut output } else { &mut errors }, &line)?;
        store
            .update_batch(id, |r| {
                if ok {
                    r.batch.request_counts.completed += 1;
                } else {
                    r.batch.request_counts.failed += 1;
                }
            })
            .map_err(|e| e.to_string())?;
    }
    let code = stop.unwrap_or("");
    let mut skipped = 0;
    for line in todo {
        let message = if code == "batch_cancelled" {
            "the batch was cancelled before this request ran"
        } else {
            "the batch expired before this request ran"
        };
        let entry = json!({
            "id": new_id("batch_req_"),
            "custom_id": line.custom_id,
            "response": null,
            "error": {"code": code, "message": message},
        });
        write_line(&mut errors, &entry)?;
        skipped += 1;
    }
    store
        .update_batch(id, |r| {
            r.batch.request_counts.failed += skipped;
            r.batch.status = "finalizing".into();
            r.batch.finalizing_at = Some(now_seconds());
            r.stop = stop.map(String::from);
        })
        .map_err(|e| e.to_string())?;
    finish(state, id)
}

/// Registers the result files and sets the final status. Repeatable: a file already
/// registered is not registered again, and the partial files go only at the very end.
fn finish(state: &AppState, id: &str) -> Result<(), String> {
    let store = state.batches();
    for kind in ["output", "errors"] {
        let record = store.batch(id).ok_or("batch vanished")?;
        let registered = match kind {
            "output" => record.batch.output_file_id.is_some(),
            _ => record.batch.error_file_id.is_some(),
        };
        let path = store.partial_path(id, kind);
        if registered || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) == 0 {
            continue;
        }
        let file = store
            .add_file(&path, &format!("{id}_{kind}.jsonl"), "batch_output", true)
            .map_err(|e| e.to_string())?;
        store
            .update_batch(id, |r| match kind {
                "output" => r.batch.output_file_id = Some(file.id),
                _ => r.batch.error_file_id = Some(file.id),
            })
            .map_err(|e| e.to_string())?;
    }
    store
        .update_batch(id, |r| {
            let now = now_seconds();
            match r.stop.as_deref() {
                Some("batch_cancelled") => {
                    r.batch.status = "cancelled".into();
                    r.batch.cancelled_at = Some(now);
                }
                Some(_) => {
                    r.batch.status = "expired".into();
                    r.batch.expired_at = Some(now);
                }
                None => {
                    r.batch.status = "completed".into();
                    r.batch.completed_at = Some(now);
                }
            }
        })
        .map_err(|e| e.to_string())?;
    for kind in ["output", "errors"] {
        let _ = std::fs::remove_file(store.partial_path(id, kind));
    }
    Ok(())
}

/// Runs one request through the chat handler; waits while the model is loading or the
/// queue is full (those are not answers).
async fn call_chat(state: &AppState, body: Value) -> (u16, Value) {
    loop {
        let request: ChatCompletionRequest = match serde_json::from_value(body.clone()) {
            Ok(request) => request,
            Err(error) => {
                let body = json!({"error": {"code": "invalid_json", "message": error.to_string(), "type": "invalid_request_error"}});
                return (400, body);
            }
        };
        let response =
            match crate::chat::chat_completions(State(state.clone()), Ok(Json(request))).await {
                Ok(response) => response,
                Err(error) => axum::response::IntoResponse::into_response(error),
            };
        let status = response.status();
        let bytes = match axum::body::to_bytes(response.into_body(), usize::MAX).await {
            Ok(bytes) => bytes,
            Err(error) => {
                return (
                    500,
                    json!({"error": {"code": "internal_error", "message": error.to_string(), "type": "server_error"}}),
                )
            }
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            json!({"error": {"code": "internal_error", "message": String::from_utf8_lossy(&bytes), "type": "server_error"}})
        });
        return (status.as_u16(), body);
    }
}

/// Checks every input line; all problems are reported at once, by line number.
fn parse_input(path: &Path, endpoint: &str) -> Result<Vec<Line>, Vec<BatchError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![BatchError {
            code: "invalid_file".into(),
            message: format!("the input file cannot be read: {e}"),
            line: None,
        }]
    })?;
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for (index, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let number = Some(index + 1);
        let mut fail = |code: &str, message: String| {
            errors.push(BatchError {
                code: code.into(),
                message,
                line: number,
            })
        };
        let value: Value = match serde_json::from_str(raw) {
            Ok(value) => value,
            Err(e) => {
                fail("invalid_json_line", format!("not JSON: {e}"));
                continue;
            }
        };
        let custom_id = value["custom_id"].as_str().unwrap_or_default().to_string();
        if custom_id.is_empty() {
            fail("missing_custom_id", "each line needs a `custom_id`".into());
            continue;
        }
        if !seen.insert(custom_id.clone()) {
            fail(
                "duplicate_custom_id",
                format!("custom_id {custom_id:?} is used twice"),
            );
            continue;
        }
        if value["method"] != "POST" || value["url"] != endpoint {
            fail(
                "invalid_url",
                format!("each line must be `\"method\": \"POST\", \"url\": \"{endpoint}\"`"),
            );
            continue;
        }
        if !value["body"].is_object() {
            fail("invalid_body", "`body` must be a JSON object".into());
            continue;
        }
        lines.push(Line {
            custom_id,
            body: value["body"].clone(),
        });
    }
    if lines.is_empty() && errors.is_empty() {
        errors.push(BatchError {
            code: "empty_file".into(),
            message: "the input file has no requests".into(),
            line: None,
        });
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

/// Custom ids of the complete lines kept in `path` (a torn last line is cut off).
fn kept_lines(path: &Path, done: &mut HashSet<String>) -> Result<usize, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(_) => return Ok(0),
    };
    let complete = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    if complete < bytes.len() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| e.to_string())?;
        file.set_len(complete as u64).map_err(|e| e.to_string())?;
    }
    let mut count = 0;
    for line in bytes[..complete].split(|&b| b == b'\n') {
        if let Ok(value) = serde_json::from_slice::<Value>(line) {
            if let Some(id) = value["custom_id"].as_str() {
                if done.insert(id.to_string()) {
                    count += 1;
                }
            }
        }
    }
    Ok(count)
}

fn append(path: &Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn write_line(file: &mut std::fs::File, value: &Value) -> Result<(), String> {
    let mut line = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    line.push(b'\n');
    file.write_all(&line).map_err(|e| e.to_string())?;
    file.sync_data().map_err(|e| e.to_string())
}

/// Restarts the batches a previous run left open (once per service).
pub fn resume_open(state: &AppState) {
    let store = state.batches();
    if !store.take_resume() {
        return;
    }
    for batch in store.batches() {
        if batch.is_open() {
            tracing::info!("resuming batch {} ({})", batch.id, batch.status);
            tokio::spawn(run(state.clone(), batch.id));
        }
    }
}

/// A new batch record over `input_file_id`.
pub fn new_record(
    input_file_id: String,
    endpoint: String,
    completion_window: String,
    window: Duration,
    metadata: Option<Value>,
) -> BatchRecord {
    let created_ms = now_millis();
    let expires_at_ms = created_ms + window.as_millis() as u64;
    BatchRecord {
        batch: super::store::BatchObject {
            id: new_id("batch_"),
            object: "batch".into(),
            endpoint,
            errors: None,
            input_file_id,
            completion_window,
            status: "validating".into(),
            output_file_id: None,
            error_file_id: None,
            created_at: created_ms / 1000,
            in_progress_at: None,
            expires_at: expires_at_ms / 1000,
            finalizing_at: None,
            completed_at: None,
            failed_at: None,
            expired_at: None,
            cancelling_at: None,
            cancelled_at: None,
            request_counts: Default::default(),
            metadata,
        },
        expires_at_ms,
        stop: None,
    }
}
