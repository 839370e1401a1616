//! The router: routes, the layers every request passes (body cap, bearer auth, per-request
//! timeout, metrics) and the small endpoints (health, readiness, metrics, OpenAPI).

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::api::{HealthResponse, ReadyResponse};
use crate::error::AppError;
use crate::state::AppState;

/// Every route of the service, with its layers, over `state`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config().max_body_bytes;
    let api = Router::new()
        .route("/v1/classify", post(crate::classify::classify))
        .route("/v1/classify/batch", post(crate::classify::classify_batch))
        .route("/v1/chat/completions", post(crate::chat::chat_completions))
        .merge(crate::batches::routes(state.config().max_file_bytes))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// `Authorization: Bearer <token>` on `/v1/*` when a token is configured. The comparison
/// takes the same time wherever the first difference is.
async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(expected) = &state.config().bearer_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return AppError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Per-request timeout up to the response head (a stream then bounds itself).
async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.config().request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::timeout(limit.as_secs_f64()).into_response(),
    }
}

/// Request count and latency by route pattern and status.
async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics().observe_request(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = HealthResponse)))]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
    })
}

/// Readiness: 200 once the model is loaded, 503 before.
#[utoipa::path(
    get,
    path = "/readyz",
    responses((status = 200, body = ReadyResponse), (status = 503, body = ReadyResponse))
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let engine = state.engine();
    let body = ReadyResponse {
        ready: engine.is_some(),
        model: state.info().id.clone(),
        kind: engine.map(|e| e.model.kind()),
        labels: engine.map(|e| e.labels.clone()).unwrap_or_default(),
        adapter: state.info().adapter.clone(),
    };
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, content_type = "text/plain; version=0.0.4", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let engine = state.engine();
    let depth = engine.map(|e| e.batcher.queue_depth()).unwrap_or(0);
    let text = state.metrics().render(depth, engine.is_some());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, body = Object)))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found(request: Request) -> AppError {
    AppError::not_found(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document, generated from the handlers and API types.
#[derive(OpenApi)]
#[openapi(
    info(title = "Verdict classification service", description = "Content classification with dynamic batching, an OpenAI-compatible chat endpoint, metrics and hard limits. Errors are JSON `{\"error\": {\"code\", \"message\", \"type\"}}` with stable codes."),
    paths(
        crate::classify::classify,
        crate::classify::classify_batch,
        crate::chat::chat_completions,
        healthz,
        readyz,
        metrics,
        openapi,
    ),
    components(schemas(
        crate::api::ChatCompletionChunk,
        crate::error::ErrorBody,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;
