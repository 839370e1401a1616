//! Handlers of the files and batches endpoints.

use std::io::Write;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::store::{now_seconds, BatchObject, FileObject};
use super::worker;
use crate::error::AppError;
use crate::state::AppState;

fn store_error(error: impl std::fmt::Display) -> AppError {
    AppError::internal(format!("batch store: {error}"))
}

/// `POST /v1/files`: multipart with `purpose=batch` and `file`.
pub async fn upload_file(
    State(state): State<AppState>,
    mut multipart: Multipart,
) -> Result<Json<FileObject>, AppError> {
    worker::resume_open(&state);
    let store = state.batches();
    let mut purpose = None;
    let mut uploaded = None;
    while let Some(mut field) = multipart.next_field().await? {
        match field.name() {
            Some("purpose") => purpose = Some(field.text().await?),
            Some("file") => {
                let filename = field.file_name().unwrap_or("upload.jsonl").to_string();
                let path = store.scratch_path();
                let mut file = std::fs::File::create(&path).map_err(store_error)?;
                while let Some(chunk) = field.chunk().await? {
                    file.write_all(&chunk).map_err(store_error)?;
                }
                file.sync_all().map_err(store_error)?;
                uploaded = Some((path, filename));
            }
            _ => {}
        }
    }
    let Some((path, filename)) = uploaded else {
        return Err(AppError::invalid("the upload needs a `file` part"));
    };
    if purpose.as_deref() != Some("batch") {
        let _ = std::fs::remove_file(&path);
        return Err(AppError::invalid(format!(
            "purpose must be `batch` (got {purpose:?})"
        )));
    }
    let file = store
        .add_file(&path, &filename, "batch", false)
        .map_err(store_error)?;
    Ok(Json(file))
}

pub async fn list_files(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"object": "list", "data": state.batches().files()}))
}

pub async fn retrieve_file(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<FileObject>, AppError> {
    state
        .batches()
        .file(&id)
        .map(Json)
        .ok_or_else(|| AppError::not_found(format!("no file {id}")))
}

pub async fn file_content(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let store = state.batches();
    if store.file(&id).is_none() {
        return Err(AppError::not_found(format!("no file {id}")));
    }
    let bytes = tokio::fs::read(store.file_data_path(&id))
        .await
        .map_err(store_error)?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

#[derive(Debug, Deserialize)]
pub struct CreateBatch {
    pub input_file_id: String,
    pub endpoint: String,
    pub completion_window: String,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// `24h`, `30m`, `90s`.
fn parse_window(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "h" => number * 3600,
        "m" => number * 60,
        "s" => number,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

pub async fn create_batch(
    State(state): State<AppState>,
    body: Result<Json<CreateBatch>, JsonRejection>,
) -> Result<Json<BatchObject>, AppError> {
    worker::resume_open(&state);
    let Json(request) = body?;
    if request.endpoint != "/v1/chat/completions" {
        return Err(AppError::invalid(format!(
            "endpoint {:?} is not supported: use /v1/chat/completions",
            request.endpoint
        )));
    }
    let window = parse_window(&request.completion_window).ok_or_else(|| {
        AppError::invalid(format!(
            "completion_window {:?}: write a number with h, m or s (e.g. 24h)",
            request.completion_window
        ))
    })?;
    let store = state.batches();
    match store.file(&request.input_file_id) {
        Some(file) if file.purpose == "batch" => {}
        Some(_) => return Err(AppError::invalid("the input file's purpose is not `batch`")),
        None => {
            return Err(AppError::not_found(format!(
                "no file {}",
                request.input_file_id
            )))
        }
    }
    let record = worker::new_record(
        request.input_file_id,
        request.endpoint,
        request.completion_window,
        window.min(state.config().max_batch_window),
        request.metadata,
    );
    store.put_batch(&record).map_err(store_error)?;
    tokio::spawn(worker::run(state.clone(), record.batch.id.clone()));
    Ok(Json(record.batch))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Newest first, `limit` (default 20, at most 100) after the batch `after`.
pub async fn list_batches(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Json<Value> {
    worker::resume_open(&state);
    let batches = state.batches().batches();
    let start = match &query.after {
        Some(after) => batches
            .iter()
            .position(|b| &b.id == after)
            .map(|i| i + 1)
            .unwrap_or(batches.len()),
        None => 0,
    };
    let limit = query.limit.unwrap_or(20).clamp(1, 100);
    let page: Vec<&BatchObject> = batches.iter().skip(start).take(limit).collect();
    Json(json!({
        "object": "list",
        "data": page,
        "first_id": page.first().map(|b| b.id.clone()),
        "last_id": page.last().map(|b| b.id.clone()),
        "has_more": start + page.len() < batches.len(),
    }))
}

pub async fn retrieve_batch(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BatchObject>, AppError> {
    worker::resume_open(&state);
    state
        .batches()
        .batch(&id)
        .map(|r| Json(r.batch))
        .ok_or_else(|| AppError::not_found(format!("no batch {id}")))
}

pub async fn cancel_batch(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BatchObject>, AppError> {
    worker::resume_open(&state);
    let store = state.batches();
    let record = store
        .batch(&id)
        .ok_or_else(|| AppError::not_found(format!("no batch {id}")))?;
    match record.batch.status.as_str() {
        "validating" | "in_progress" => {
            let record = store
                .update_batch(&id, |r| {
                    r.batch.status = "cancelling".into();
                    r.batch.cancelling_at = Some(now_seconds());
                })
                .map_err(store_error)?
                .ok_or_else(|| AppError::not_found(format!("no batch {id}")))?;
            Ok(Json(record.batch))
        }
        "cancelling" | "cancelled" => Ok(Json(record.batch)),
        other => Err(AppError::bad_request(
            "invalid_state",
            format!("batch {id} is {other} and cannot be cancelled"),
        )),
    }
}
