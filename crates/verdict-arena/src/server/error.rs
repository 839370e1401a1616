//! HTTP errors: a status and a short message; internal details go to the log, not the page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::ArenaError;

#[derive(Debug)]
pub enum AppError {
    BadRequest(String),
    Conflict(String),
    NotFound,
    Unauthorized,
    Forbidden,
    Internal(String),
}

impl From<ArenaError> for AppError {
    fn from(error: ArenaError) -> Self {
        match error {
            ArenaError::BadRequest(message) => AppError::BadRequest(message),
            error @ ArenaError::AlreadyVoted { .. } => AppError::Conflict(error.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            AppError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            AppError::Conflict(message) => (StatusCode::CONFLICT, message),
            AppError::NotFound => (StatusCode::NOT_FOUND, "not found".to_owned()),
            AppError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "this arena needs its token: open the link with ?token=...".to_owned(),
            ),
            AppError::Forbidden => (
                StatusCode::FORBIDDEN,
                "this arena only answers requests for localhost or 127.0.0.1".to_owned(),
            ),
            AppError::Internal(detail) => {
                tracing::error!(%detail, "arena request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the server log".to_owned(),
                )
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}
