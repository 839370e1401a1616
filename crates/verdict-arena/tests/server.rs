//! The HTTP layer without a socket: routes, token, image ids, votes, undo and restarts.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use verdict_arena::server::{router, AppState};
use verdict_arena::{Arena, VoteStore};

struct Fixture {
    _dir: tempfile::TempDir,
    parquet: std::path::PathBuf,
    store: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let parquet = support::data::write_retrieval_fixture(&dir.path().join("data"));
    let store = dir.path().join("votes/arena.sqlite3");
    Fixture {
        _dir: dir,
        parquet,
        store,
    }
}

fn state(arena: Arena, token: Option<&str>) -> AppState {
    AppState {
        arena: Arc::new(arena),
        token: token.map(Arc::from),
        local_only: true,
    }
}

async fn send(
    state: &AppState,
    method: &str,
    uri: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => request.body(Body::empty()).unwrap(),
    };
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, bytes)
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(bytes)))
}

#[tokio::test]
async fn images_only_by_registered_id() {
    let f = fixture();
    let state = state(support::data::open_arena(&f.parquet, &f.store), None);
    let (status, page) = send(&state, "GET", "/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&page).contains("Which side is better?"));
    let (status, bytes) = send(&state, "GET", "/image/0", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&bytes[1..4], b"PNG");
    for uri in [
        "/image/999",
        "/image/..%2F..%2Fetc%2Fpasswd",
        "/image/%2Fetc%2Fpasswd",
        "/image/-1",
        "/image/0%2F..",
        "/image/../Cargo.toml",
        "/images/0",
        "/emb.parquet",
    ] {
        let (status, _) = send(&state, "GET", uri, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn token_guards_every_route() {
    let f = fixture();
    let state = state(
        support::data::open_arena(&f.parquet, &f.store),
        Some("s3cret"),
    );
    for uri in ["/", "/api/next?rater=x", "/api/results", "/image/0"] {
        let (status, _) = send(&state, "GET", uri, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        let (status, _) = send(&state, "GET", uri, None, Some("wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        let (status, _) = send(&state, "GET", uri, None, Some("s3cret")).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    let separator = |uri: &str| if uri.contains('?') { '&' } else { '?' };
    for uri in ["/", "/api/next?rater=x", "/image/0"] {
        let (status, _) = send(
            &state,
            "GET",
            &format!("{uri}{}token=s3cret", separator(uri)),
            None,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    let (status, _) = send(
        &state,
        "POST",
        "/api/vote",
        Some(json!({"rater": "x", "query_id": "q0", "choice": "tie"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn votes_are_checked_kept_and_undone() {
    let f = fixture();
    let state = state(support::data::open_arena(&f.parquet, &f.store), None);
    let (status, bytes) = send(&state, "GET", "/api/next?rater=ann", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let first = json(&bytes);
    assert_eq!(first["done"], 0);
    assert_eq!(first["total"], support::data::QUERIES);
    assert_eq!(first["can_undo"], false);
    let query = first["query"]["id"].as_str().unwrap().to_owned();
    assert_eq!(first["query"]["left"].as_array().unwrap().len(), 4);
    // Nothing on the page names a method or a score.
    let text = String::from_utf8_lossy(&bytes);
    for secret in ["base", "finetuned", "score", "emb.parquet"] {
        assert!(
            !text.contains(secret),
            "page data mentions `{secret}`: {text}"
        );
    }

    let bad = [
        (
            json!({"rater": "ann", "query_id": &query, "choice": "maybe"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"rater": "ann", "query_id": "nope", "choice": "tie"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"rater": "", "query_id": &query, "choice": "tie"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"rater": "x".repeat(65), "query_id": &query, "choice": "tie"}),
            StatusCode::BAD_REQUEST,
        ),
        // Never shown to bob: voting blind on it is refused.
        (
            json!({"rater": "bob", "query_id": &query, "choice": "left"}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (body, expected) in bad {
        let (status, _) = send(&state, "POST", "/api/vote", Some(body.clone()), None).await;
        assert_eq!(status, expected, "{body}");
    }
    let (status, _) = send(
        &state,
        "POST",
        "/api/vote",
        Some(json!({"rater": "x", "query_id": &query})),
        None,
    )
    .await;
    assert!(status.is_client_error());

    let body = json!({"rater": "ann", "query_id": &query, "choice": "left"});
    let (status, bytes) = send(&state, "POST", "/api/vote", Some(body.clone()), None).await;
    assert_eq!(status, StatusCode::OK);
    let second = json(&bytes);
    assert_eq!(second["done"], 1);
    assert_ne!(second["query"]["id"], first["query"]["id"]);
    let (status, _) = send(&state, "POST", "/api/vote", Some(body), None).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, bytes) = send(
        &state,
        "POST",
        "/api/undo",
        Some(json!({"rater": "ann"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let undone = json(&bytes);
    assert_eq!(undone["done"], 0);
    assert_eq!(
        undone["query"], first["query"],
        "undo shows the same query with the same sides"
    );
    let (_, bytes) = send(
        &state,
        "POST",
        "/api/undo",
        Some(json!({"rater": "ann"})),
        None,
    )
    .await;
    assert_eq!(
        json(&bytes)["done"],
        0,
        "nothing left to undo is not an error"
    );

    let (status, bytes) = send(&state, "GET", "/api/results", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&bytes)["votes"], 0);
}

#[test]
fn every_query_once_per_rater_across_restarts() {
    let f = fixture();
    let mut seen = std::collections::BTreeSet::new();
    let mut sides = std::collections::BTreeMap::new();
    for round in 0..support::data::QUERIES {
        // A fresh arena each time: the contest is rebuilt from the files, the store reopened.
        let arena = support::data::open_arena(&f.parquet, &f.store);
        let view = arena.next("cy").unwrap();
        assert_eq!(view.done, round);
        let query = view.query.unwrap();
        let again = arena.next("cy").unwrap().query.unwrap();
        assert_eq!(again, query, "reloading shows the same query and sides");
        assert!(seen.insert(query.id.clone()), "{} shown twice", query.id);
        let left_is_good = query.left[0].text.as_deref().unwrap().starts_with("good");
        sides.insert(query.id.clone(), left_is_good);
        let choice = if round % 3 == 0 {
            verdict_arena::Choice::Tie
        } else {
            verdict_arena::Choice::Left
        };
        arena.vote("cy", &query.id, choice).unwrap();
    }
    let arena = support::data::open_arena(&f.parquet, &f.store);
    let view = arena.next("cy").unwrap();
    assert_eq!(
        (view.done, view.total),
        (support::data::QUERIES, support::data::QUERIES)
    );
    assert!(view.query.is_none());
    // Another rater starts from zero, in an order of their own.
    assert_eq!(arena.next("dee").unwrap().done, 0);

    let store = VoteStore::open_existing(&f.store).unwrap();
    let votes = store.live_votes().unwrap();
    assert_eq!(votes.len(), support::data::QUERIES);
    for vote in &votes {
        // Left was "good" (B, finetuned) exactly when A was not on the left.
        assert_eq!(sides[&vote.query_id], !vote.left_is_a, "{}", vote.query_id);
        assert_eq!(vote.verdict, vote.choice.verdict(vote.left_is_a));
    }
    let results = verdict_arena::results_from_store(&f.store).unwrap();
    assert_eq!(results.counts.ties, 3);
    assert_eq!(results.counts.a + results.counts.b, 5);
    assert_eq!(results.methods[1].name, "emb.parquet#finetuned_embedding");
}

#[test]
fn a_store_from_another_contest_is_refused() {
    let f = fixture();
    drop(support::data::open_arena(&f.parquet, &f.store));
    let spec_a = format!("{}#finetuned_embedding", f.parquet.display());
    let spec_b = format!("{}#base_embedding", f.parquet.display());
    let options = verdict_arena::ContestOptions::default();
    let a = verdict_arena::parse_method(&spec_a, "test").unwrap();
    let b = verdict_arena::parse_method(&spec_b, "test").unwrap();
    let contest = verdict_arena::build_contest(&a, &b, [&spec_a, &spec_b], &options).unwrap();
    let error = Arena::open(contest, &f.store).err().unwrap().to_string();
    assert!(error.contains("another contest"), "{error}");
}
