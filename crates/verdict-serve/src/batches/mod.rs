//! The files and batch endpoints of the OpenAI batch API, on top of this service's own
//! chat completions: `POST /v1/files` (multipart, `purpose=batch`), `GET /v1/files`,
//! `GET /v1/files/{id}`, `GET /v1/files/{id}/content`, `POST /v1/batches`,
//! `GET /v1/batches`, `GET /v1/batches/{id}`, `POST /v1/batches/{id}/cancel`.
//!
//! Every request line runs through `/v1/chat/completions`, so a `json_schema` response format
//! is enforced by constrained decoding and answers always parse. Files and batches live in
//! [`crate::ServeConfig::batch_dir`] and survive a restart; a batch left running continues
//! where its kept results end. The completion window is capped by
//! [`crate::ServeConfig::max_batch_window`], after which the batch ends `expired` with its
//! partial results.

mod handlers;
pub mod store;
mod worker;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use store::{BatchObject, BatchStore, FileObject};

use crate::state::AppState;

/// The routes, for the router's authenticated `/v1` part.
pub fn routes(max_file_bytes: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/v1/files",
            post(handlers::upload_file)
                .layer(DefaultBodyLimit::max(max_file_bytes))
                .get(handlers::list_files),
        )
        .route("/v1/files/{id}", get(handlers::retrieve_file))
        .route("/v1/files/{id}/content", get(handlers::file_content))
        .route(
            "/v1/batches",
            post(handlers::create_batch).get(handlers::list_batches),
        )
        .route("/v1/batches/{id}", get(handlers::retrieve_batch))
        .route("/v1/batches/{id}/cancel", post(handlers::cancel_batch))
}
