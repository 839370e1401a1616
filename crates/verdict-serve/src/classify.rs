//! `POST /v1/classify` (one item, JSON or multipart with image and mesh files) and
//! `POST /v1/classify/batch` (many JSON items, one result or error each).

use std::time::Instant;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::Json;
use tokio::sync::oneshot;

use crate::api::{
    BatchClassifyRequest, BatchClassifyResponse, BatchItemResult, ClassifyRequest,
    ClassifyResponse, LabelProbability, PolicyDecision,
};
use crate::batcher::{ClassifyReply, Job, Slot, SubmitError};
use crate::error::{AppError, ErrorBody};
use crate::inputs::{decode_base64, decode_image, fetch_url};
use crate::model::{ClassifyInput, ClassifyOutput, ModelError, PreparedInput};
use crate::state::{AppState, Engine};

/// Classify one item.
///
/// JSON body: [`ClassifyRequest`]. Multipart body: fields `text`, `id`, `reason`
/// (`true`/`false`), any number of `image` files and `mesh` files (`.stl`, `.obj`, `.3mf`,
/// rendered with the task's views).
#[utoipa::path(
    post,
    path = "/v1/classify",
    request_body(content = ClassifyRequest, description = "JSON item, or multipart/form-data with `text`, `image` and `mesh` parts"),
    responses(
        (status = 200, body = ClassifyResponse),
        (status = 400, body = ErrorBody, description = "invalid_request, invalid_json, invalid_image, invalid_mesh, invalid_input, ..."),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 413, body = ErrorBody, description = "body_too_large, image_too_large, mesh_too_large, url_too_large"),
        (status = 503, body = ErrorBody, description = "overloaded (with Retry-After) or not_ready"),
        (status = 504, body = ErrorBody, description = "timeout"),
    ),
    security((), ("bearer" = [])),
)]
pub async fn classify(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<ClassifyResponse>, AppError> {
    let started = Instant::now();
    let engine = state.ready_engine()?;
    // Admitted before the body is decoded: a full queue refuses before any work is spent on
    // the request, and the batcher knows it is coming while it is decoded and prepared.
    let slot = match engine.batcher.reserve() {
        Ok(slot) => slot,
        Err(error) => {
            // The upload is still read to its end: answering while the client is sending
            // closes the connection under it, and it sees a broken pipe instead of the 503.
            let limit = state.config().max_body_bytes;
            let _ = axum::body::to_bytes(request.into_body(), limit).await;
            return Err(submit_error(&state, error));
        }
    };
    let is_multipart = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (id, input) = if is_multipart {
        let multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| AppError::bad_request("invalid_multipart", e.body_text()))?;
        read_multipart(&state, engine, multipart).await?
    } else {
        let Json(item) = Json::<ClassifyRequest>::from_request(request, &state).await?;
        let id = item.id.clone();
        (id, prepare(&state, engine, item, "item").await?)
    };
    let input = encode(engine, input).await?;
    let receiver = submit(&state, slot, input)?;
    let output = receive(receiver).await?;
    Ok(Json(respond(&state, engine, id, output, started)))
}

/// Classify many items: every item is queued on its own (the batcher regroups them with
/// other callers' items) and answers with a result or an error in request order.
#[utoipa::path(
    post,
    path = "/v1/classify/batch",
    request_body = BatchClassifyRequest,
    responses(
        (status = 200, body = BatchClassifyResponse),
        (status = 400, body = ErrorBody, description = "invalid_request, invalid_json"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 413, body = ErrorBody, description = "body_too_large, too_many_items"),
        (status = 503, body = ErrorBody, description = "overloaded (with Retry-After) or not_ready"),
        (status = 504, body = ErrorBody, description = "timeout"),
    ),
    security((), ("bearer" = [])),
)]
pub async fn classify_batch(
    State(state): State<AppState>,
    body: Result<Json<BatchClassifyRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<BatchClassifyResponse>, AppError> {
    let started = Instant::now();
    let engine = state.ready_engine()?;
    let Json(request) = body?;
    let limit = state.config().max_batch_items;
    if request.items.len() > limit {
        return Err(AppError::too_large(
            "too_many_items",
            format!(
                "{} items; the limit is {limit} per request",
                request.items.len()
            ),
        ));
    }
    if request.items.is_empty() {
        return Err(AppError::invalid("`items` is empty"));
    }
    // Inputs first, so a bad item answers for itself and never takes a queue slot.
    let mut ids = Vec::with_capacity(request.items.len());
    let mut decoded = Vec::with_capacity(request.items.len());
    for (index, item) in request.items.into_iter().enumerate() {
        ids.push(item.id.clone());
        decoded.push(prepare(&state, engine, item, &format!("items[{index}]")).await);
    }
    // All or nothing against the queue: a half-queued batch would answer partly with 503s.
    let valid = decoded.iter().filter(|item| item.is_ok()).count();
    let slots = (0..valid)
        .map(|_| reserve(&state, engine))
        .collect::<Result<Vec<_>, _>>()?;
    let encoded = encode_all(engine, decoded).await?;
    // One place per decoded item; those whose encoding failed go back unused.
    let mut slots = slots.into_iter();
    let mut waiting = Vec::with_capacity(encoded.len());
    for (id, prepared) in ids.into_iter().zip(encoded) {
        let slot = match prepared {
            Ok(input) => match slots.next() {
                Some(slot) => Ok(submit(&state, slot, input)?),
                None => Err(AppError::internal("a queue place went missing")),
            },
            Err(error) => Err(error),
        };
        waiting.push((id, slot));
    }
    let mut results = Vec::with_capacity(waiting.len());
    for (id, slot) in waiting {
        let item_started = Instant::now();
        let outcome = match slot {
            Ok(receiver) => receive(receiver).await,
            Err(error) => Err(error),
        };
        results.push(match outcome {
            Ok(output) => BatchItemResult {
                result: Some(respond(&state, engine, id, output, item_started)),
                error: None,
            },
            Err(error) => BatchItemResult {
                result: None,
                error: Some(error.body().error),
            },
        });
    }
    Ok(Json(BatchClassifyResponse {
        results,
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
    }))
}

/// Decodes images (base64 or URL) and checks the item suits the model.
async fn prepare(
    state: &AppState,
    engine: &Engine,
    item: ClassifyRequest,
    what: &str,
) -> Result<ClassifyInput, AppError> {
    let config = state.config();
    if item.text.is_none() && item.images.is_empty() {
        return Err(AppError::invalid(format!(
            "{what}: nothing to classify; give `text` and/or `images`"
        )));
    }
    if !item.images.is_empty() && !engine.model.accepts_images() {
        return Err(AppError::bad_request(
            "unsupported_input",
            format!("{what}: this model reads text only; remove `images`"),
        ));
    }
    if item.images.len() > config.max_images_per_item {
        return Err(AppError::too_large(
            "too_many_images",
            format!(
                "{what}: {} images; the limit is {}",
                item.images.len(),
                config.max_images_per_item
            ),
        ));
    }
    let mut images = Vec::with_capacity(item.images.len());
    for (index, image) in item.images.into_iter().enumerate() {
        let label = format!("{what}.images[{index}]");
        let bytes = match (image.base64, image.url) {
            (Some(data), None) => decode_base64(&data, &label)?,
            (None, Some(url)) => {
                fetch_url(state.http(), &url, config.url_timeout, config.max_url_bytes).await?
            }
            _ => {
                return Err(AppError::invalid(format!(
                    "{label}: give exactly one of `base64` and `url`"
                )))
            }
        };
        let max_pixels = config.max_image_pixels;
        let decoded = tokio::task::spawn_blocking(move || decode_image(&bytes, max_pixels, &label))
            .await
            .map_err(|e| AppError::internal(format!("image decoding task: {e}")))??;
        images.push(decoded);
    }
    Ok(ClassifyInput {
        text: item.text,
        images,
        reason: item.reason,
    })
}

async fn read_multipart(
    state: &AppState,
    engine: &Engine,
    mut multipart: Multipart,
) -> Result<(Option<String>, ClassifyInput), AppError> {
    let config = state.config();
    let mut id = None;
    let mut input = ClassifyInput::default();
    let mut meshes = Vec::new();
    let mut images = Vec::new();
    while let Some(field) = multipart.next_field().await? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "text" => input.text = Some(field.text().await?),
            "id" => id = Some(field.text().await?),
            "reason" => {
                input.reason = match field.text().await?.trim() {
                    "true" | "1" => true,
                    "false" | "0" | "" => false,
                    other => {
                        return Err(AppError::invalid(format!(
                            "field `reason`: expected true or false, got {other:?}"
                        )))
                    }
                }
            }
            "image" => images.push(field.bytes().await?),
            "mesh" => {
                let file_name = field.file_name().unwrap_or("upload").to_string();
                meshes.push((file_name, field.bytes().await?));
            }
            other => {
                return Err(AppError::invalid(format!(
                    "unknown multipart field {other:?}; expected text, id, reason, image or mesh"
                )))
            }
        }
    }
    if (!images.is_empty() || !meshes.is_empty()) && !engine.model.accepts_images() {
        return Err(AppError::bad_request(
            "unsupported_input",
            "this model reads text only; remove the image and mesh parts",
        ));
    }
    if images.len() + meshes.len() > config.max_images_per_item {
        return Err(AppError::too_large(
            "too_many_images",
            format!("the limit is {} files per item", config.max_images_per_item),
        ));
    }
    let mesh_views = if meshes.is_empty() {
        None
    } else {
        Some(state.mesh()?.clone())
    };
    let max_pixels = config.max_image_pixels;
    let decoded = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (index, bytes) in images.iter().enumerate() {
            out.push(decode_image(
                bytes,
                max_pixels,
                &format!("image part {index}"),
            )?);
        }
        if let Some(views) = mesh_views {
            for (file_name, bytes) in &meshes {
                out.extend(views.render(file_name, bytes)?);
            }
        }
        Ok::<_, AppError>(out)
    })
    .await
    .map_err(|e| AppError::internal(format!("decoding task: {e}")))??;
    input.images = decoded;
    if input.text.is_none() && input.images.is_empty() {
        return Err(AppError::invalid(
            "nothing to classify; send a `text`, `image` or `mesh` part",
        ));
    }
    Ok((id, input))
}

/// A place in the queue for one item, taken before any work is spent on it.
fn reserve(state: &AppState, engine: &Engine) -> Result<Slot, AppError> {
    engine
        .batcher
        .reserve()
        .map_err(|error| submit_error(state, error))
}

/// The item's host work ahead of the queue ([`crate::ServedModel::prepare`]: prompt, tokens,
/// image patches on the model's device), on a blocking thread: the model thread meanwhile
/// runs other callers' batches, and an input the model refuses answers at once.
async fn encode(engine: &Engine, input: ClassifyInput) -> Result<PreparedInput, AppError> {
    let model = engine.model.clone();
    tokio::task::spawn_blocking(move || model.prepare(input))
        .await
        .map_err(|e| AppError::internal(format!("input preparation task: {e}")))?
        .map_err(model_error)
}

/// [`encode`] of every item of a batch request, on several threads at once; items that
/// already failed keep their error. One result per item, in order.
async fn encode_all(
    engine: &Engine,
    items: Vec<Result<ClassifyInput, AppError>>,
) -> Result<Vec<Result<PreparedInput, AppError>>, AppError> {
    let mut inputs = Vec::with_capacity(items.len());
    let failed: Vec<Option<AppError>> = items
        .into_iter()
        .map(|item| match item {
            Ok(input) => {
                inputs.push(input);
                None
            }
            Err(error) => Some(error),
        })
        .collect();
    let model = engine.model.clone();
    let mut prepared = tokio::task::spawn_blocking(move || model.prepare_all(inputs))
        .await
        .map_err(|e| AppError::internal(format!("input preparation task: {e}")))?
        .into_iter();
    Ok(failed
        .into_iter()
        .map(|failure| match failure {
            Some(error) => Err(error),
            None => prepared
                .next()
                .unwrap_or_else(|| Err(ModelError::Internal("an item went unprepared".into())))
                .map_err(model_error),
        })
        .collect())
}

fn submit(
    state: &AppState,
    slot: Slot,
    input: PreparedInput,
) -> Result<oneshot::Receiver<ClassifyReply>, AppError> {
    let (reply, receiver) = oneshot::channel();
    slot.submit(Job::Classify { input, reply })
        .map_err(|error| submit_error(state, error))?;
    Ok(receiver)
}

fn submit_error(state: &AppState, error: SubmitError) -> AppError {
    match error {
        SubmitError::Full => {
            state.metrics().observe_rejection();
            AppError::overloaded(state.config().retry_after_seconds)
        }
        SubmitError::Closed => AppError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the service is shutting down",
        ),
    }
}

async fn receive(receiver: oneshot::Receiver<ClassifyReply>) -> Result<ClassifyOutput, AppError> {
    match receiver.await {
        Ok(result) => result.map_err(model_error),
        Err(_) => Err(AppError::internal("the model thread dropped a request")),
    }
}

fn model_error(error: ModelError) -> AppError {
    match error {
        ModelError::Input(message) => AppError::bad_request("invalid_input", message),
        ModelError::Internal(detail) => AppError::internal(detail),
    }
}

/// Labels, policy decision and identity around the model's probabilities.
fn respond(
    state: &AppState,
    engine: &Engine,
    id: Option<String>,
    output: ClassifyOutput,
    started: Instant,
) -> ClassifyResponse {
    let labels = &engine.labels;
    let probabilities: Vec<LabelProbability> = labels
        .iter()
        .zip(&output.probabilities)
        .map(|(label, &probability)| LabelProbability {
            label: label.clone(),
            probability,
        })
        .collect();
    let (label, multi) = if output.multi_label {
        let threshold = engine.model.multi_label_threshold();
        let chosen = probabilities
            .iter()
            .filter(|p| p.probability >= threshold)
            .map(|p| p.label.clone())
            .collect();
        (None, Some(chosen))
    } else {
        let best = probabilities
            .iter()
            .max_by(|a, b| a.probability.total_cmp(&b.probability))
            .map(|p| p.label.clone());
        (best, None)
    };
    let decision = match (state.policy(), output.multi_label) {
        (Some(policy), false) => probabilities
            .iter()
            .find(|p| p.label == policy.positive)
            .map(|p| PolicyDecision {
                decision: policy.thresholds.decide(p.probability).as_str().to_string(),
                positive_label: policy.positive.clone(),
                probability: p.probability,
                review_threshold: policy.thresholds.review,
                demote_threshold: policy.thresholds.demote,
            }),
        _ => None,
    };
    ClassifyResponse {
        id,
        label,
        labels: multi,
        probabilities,
        decision,
        reason: output.reason,
        model: state.info().id.clone(),
        adapter: state.info().adapter.clone(),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}
