//! The arena over HTTP: one page, a small JSON API and images by id.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /api/next?rater=R` | what rater R sees now ([`NextView`]) |
//! | `POST /api/vote` `{rater, query_id, choice}` | store a vote (`left`, `right`, `tie`, `skip`), answer the next view |
//! | `POST /api/undo` `{rater}` | undo R's last vote, answer the next view |
//! | `GET /api/results` | [`Results`](crate::stats::Results) so far |
//! | `GET /image/{id}` | an image registered by the contest, nothing else |
//!
//! With a token set, every route wants it as `Authorization: Bearer T` or `?token=T` (image
//! tags cannot send headers).

mod error;
mod run;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::arena::{Arena, NextView};
use crate::stats::Results;
use crate::store::Choice;
pub use error::AppError;
pub use run::serve_until_signal;

const PAGE: &str = include_str!("page.html");

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub arena: Arc<Arena>,
    /// Required on every request when set.
    pub token: Option<Arc<str>>,
    /// Answer only requests addressed to a loopback name (`localhost`, `127.0.0.1`, `[::1]`).
    /// A page elsewhere could otherwise point its own domain at 127.0.0.1 (DNS rebinding)
    /// and script the arena from the rater's browser.
    pub local_only: bool,
}

/// The arena's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/next", get(next))
        .route("/api/vote", post(vote))
        .route("/api/undo", post(undo))
        .route("/api/results", get(results))
        .route("/image/{id}", get(image))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `address`; refuses addresses other than loopback unless `allow_remote` (the arena
/// has no accounts, so it is not meant to face a network by accident).
pub async fn bind(
    address: SocketAddr,
    allow_remote: bool,
) -> std::io::Result<tokio::net::TcpListener> {
    if !address.ip().is_loopback() && !allow_remote {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{address} is not a loopback address; pass --allow-remote (and set --token) to listen on it"),
        ));
    }
    tokio::net::TcpListener::bind(address).await
}

fn presented_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let from_query = query.and_then(|query| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == "token")
            .map(|(_, value)| value)
    });
    from_header.or(from_query)
}

/// Compares without stopping at the first difference, so timing says nothing about the token.
fn same_secret(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    let mut difference = given.len() ^ expected.len();
    for (i, byte) in expected.iter().enumerate() {
        difference |= usize::from(given.get(i).copied().unwrap_or(0) ^ byte);
    }
    difference == 0
}

/// Whether a `Host` header names this machine; a missing header is not a browser's request.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|name| format!("{name}]"))
            .unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default().to_owned()
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "[::1]"
    )
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.local_only && !loopback_host(request.headers()) {
        return AppError::Forbidden.into_response();
    }
    if let Some(expected) = &state.token {
        let given = presented_token(request.headers(), request.uri().query());
        // Tokens are URL-safe by construction (see the CLI); no percent-decoding needed.
        if !given.is_some_and(|given| same_secret(given, expected)) {
            return AppError::Unauthorized.into_response();
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn page() -> impl IntoResponse {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
        )],
        Html(PAGE),
    )
}

#[derive(Deserialize)]
struct RaterQuery {
    rater: String,
}

#[derive(Deserialize)]
struct VoteBody {
    rater: String,
    query_id: String,
    choice: String,
}

#[derive(Deserialize)]
struct UndoBody {
    rater: String,
}

/// Runs store work off the async threads: votes wait for an fsync.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| AppError::Internal(error.to_string()))?
        .map_err(AppError::from)
}

async fn next(
    State(state): State<AppState>,
    Query(query): Query<RaterQuery>,
) -> Result<Json<NextView>, AppError> {
    let arena = state.arena.clone();
    Ok(Json(blocking(move || arena.next(&query.rater)).await?))
}

async fn vote(
    State(state): State<AppState>,
    Json(body): Json<VoteBody>,
) -> Result<Json<NextView>, AppError> {
    let choice = Choice::parse(&body.choice).ok_or_else(|| {
        AppError::BadRequest(format!(
            "choice `{}` is not left, right, tie or skip",
            body.choice
        ))
    })?;
    let arena = state.arena.clone();
    Ok(Json(
        blocking(move || arena.vote(&body.rater, &body.query_id, choice)).await?,
    ))
}

async fn undo(
    State(state): State<AppState>,
    Json(body): Json<UndoBody>,
) -> Result<Json<NextView>, AppError> {
    let arena = state.arena.clone();
    Ok(Json(blocking(move || arena.undo(&body.rater)).await?))
}

async fn results(State(state): State<AppState>) -> Result<Json<Results>, AppError> {
    let arena = state.arena.clone();
    Ok(Json(blocking(move || arena.results()).await?))
}

fn content_type(path: &std::path::Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("bmp") => "image/bmp",
        _ => "application/octet-stream",
    }
}

async fn image(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let path: PathBuf = state
        .arena
        .contest()
        .images
        .path(&id)
        .ok_or(AppError::NotFound)?
        .to_path_buf();
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|error| AppError::Internal(format!("{}: {error}", path.display())))?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&path)),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_and_lookup() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("abcd", "abc"));
        assert!(!same_secret("", "abc"));
        let headers = HeaderMap::new();
        assert_eq!(
            presented_token(&headers, Some("rater=x&token=t1")),
            Some("t1")
        );
        assert_eq!(presented_token(&headers, Some("tokens=t1")), None);
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t2"));
        assert_eq!(presented_token(&headers, None), Some("t2"));
    }

    #[test]
    fn loopback_hosts_only() {
        let host = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_static(value));
            loopback_host(&headers)
        };
        for good in [
            "127.0.0.1:8090",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8090",
            "[::1]",
        ] {
            assert!(host(good), "{good}");
        }
        for bad in [
            "attacker.test",
            "127.0.0.1.attacker.test:80",
            "localhost.attacker.test",
            "[::2]:1",
        ] {
            assert!(!host(bad), "{bad}");
        }
        assert!(loopback_host(&HeaderMap::new()));
    }
}
