//! Errors: [`ServeError`] for setting a service up (loading a model, reading a task), and
//! [`AppError`], what a request gets back.
//!
//! Every failed request answers JSON `{"error": {"code", "message", "type"}}` (the shape
//! OpenAI clients read). `code` is stable and documented in the OpenAPI document; `message`
//! is for people. Internal failures (a model error, a panicked batch) are logged with their
//! detail and answered with a generic message, so internals never leak to callers.

use std::path::PathBuf;

use axum::extract::multipart::MultipartError;
use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Failures while setting up the service.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("loading model from {path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("task {path}: {message}")]
    Task { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = ServeError> = std::result::Result<T, E>;

/// A request failure with its HTTP status and stable code.
#[derive(Debug, Clone)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for the `Retry-After` header (overload, not ready).
    pub retry_after: Option<u64>,
    /// Logged, never sent.
    pub internal: Option<String>,
}

/// Body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_request`, `overloaded`, `image_too_large`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Error family (`invalid_request_error`, `authentication_error`, `server_error`, ...).
    #[serde(rename = "type")]
    pub kind: String,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            internal: None,
        }
    }

    /// 400 with a specific code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::bad_request("invalid_request", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token: send `Authorization: Bearer <token>`",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    /// 503 + `Retry-After`: the queue is full; the caller should come back.
    pub fn overloaded(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the request queue is full; retry later",
            )
        }
    }

    pub fn not_ready() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the model is still loading",
            )
        }
    }

    pub fn timeout(seconds: f64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("the request did not finish within {seconds:.1} s"),
        )
    }

    /// 500 whose detail is only logged.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self {
            internal: Some(detail.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the server failed to process the request",
            )
        }
    }

    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => "overloaded_error",
            status if status.is_server_error() => "server_error",
            _ => "invalid_request_error",
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                kind: self.kind().to_string(),
            },
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Some(detail) = &self.internal {
            tracing::error!(code = self.code, "{detail}");
        } else if self.status.is_server_error() {
            tracing::warn!(code = self.code, "{}", self.message);
        }
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let message = rejection.body_text();
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Self::too_large("body_too_large", message),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(
                status,
                "unsupported_media_type",
                "send `Content-Type: application/json` (or multipart/form-data on /v1/classify)",
            ),
            _ => Self::bad_request("invalid_json", message),
        }
    }
}

impl From<MultipartError> for AppError {
    fn from(error: MultipartError) -> Self {
        let status = error.status();
        let message = error.body_text();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Self::too_large("body_too_large", message)
        } else {
            Self::bad_request("invalid_multipart", message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_detail_stays_out_of_the_body() {
        let error = AppError::internal("tensor shape mismatch in layer 3");
        let body = serde_json::to_string(&error.body()).unwrap();
        assert!(!body.contains("tensor"), "{body}");
        assert!(body.contains("internal_error"));
    }

    #[test]
    fn overload_carries_retry_after() {
        let response = AppError::overloaded(2).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
