//! Serving a Verdict model over HTTP: `POST /v1/classify` (single, batch, multipart with image
//! and mesh uploads), OpenAI-compatible `POST /v1/chat/completions` (whole or streamed, JSON
//! schema answers by constrained decoding, log-probabilities), `GET /healthz`, `/readyz`,
//! `/metrics` (Prometheus) and `/openapi.json`.
//!
//! - [`router`] builds the axum `Router` over an [`AppState`]; tests drive it with
//!   `tower::ServiceExt::oneshot`, no socket needed.
//! - [`batcher`]: one model thread behind a bounded queue; concurrent requests are grouped
//!   into batches and a full queue answers `503` with `Retry-After`. Each request's host
//!   work (prompt, tokens, image patches copied to the model's device) is done before it is
//!   queued ([`ServedModel::prepare`]), so the model thread only pads and runs.
//! - Limits ([`ServeConfig`]): body size, image pixels (checked from the header, before
//!   decoding), mesh triangles, items per batch request, per-request timeout, URL download
//!   size and time, optional bearer token.
//! - Errors are JSON with a stable `code` ([`AppError`]); internal details are only logged.
//! - [`serve`] runs the router on a listener until a shutdown signal, then finishes the
//!   requests in flight.
//! - [`Placement`]: the device (`cpu`, `cuda`, `cuda:N`; CUDA needs the `cuda` feature) and
//!   weight precision of a Qwen3-VL model; text baselines run on the CPU only.
//!
//! Load generator: `cargo run --release -p verdict-serve --example bench_serve -- --help`.

mod api;
pub mod app;
pub mod batcher;
pub mod batches;
mod chat;
mod classify;
pub mod config;
pub mod decode;
pub mod error;
pub mod inputs;
pub mod launch;
pub mod metrics;
pub mod model;
pub mod object_schema;
pub mod placement;
pub mod qwen;
pub mod schema;
pub mod state;

pub use api::*;
pub use app::{router, ApiDoc};
pub use config::ServeConfig;
pub use error::{AppError, ErrorBody, ErrorDetail, Result, ServeError};
pub use launch::{run_service, LaunchOptions};
pub use model::{
    BatchModel, ClassifyInput, ClassifyOutput, LabelSet, ModelError, ModelInfo, ModelKind,
    PreparedInput, ServedModel,
};
pub use placement::{Placement, Precision};
pub use state::{AppState, ServePolicy, TaskSettings};

/// Serves `state` on `listener` until `shutdown` completes; requests already in flight
/// finish before this returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on Ctrl-C or SIGTERM (what process managers send to stop a service).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {error}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!("cannot listen for SIGTERM: {error}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
