//! Direct mode against a scripted endpoint: 503 / 429 answers retried with backoff, a
//! schema-invalid answer retried once with the stricter prompt, an always-invalid answer
//! recorded with its raw text, a refused request given up after its tries, the concurrency
//! cap kept, and a client stopped mid-job resumed without asking twice.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use common::read_rows;
use serde_json::{json, Value};
use verdict_label::{Hooks, Job, LabelError, NoProgress};

#[derive(Default)]
struct Script {
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    by_prompt: Mutex<HashMap<String, usize>>,
}

async fn chat(State(script): State<Arc<Script>>, Json(body): Json<Value>) -> Response {
    let call = script.calls.fetch_add(1, Ordering::SeqCst);
    let now = script.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    script.max_in_flight.fetch_max(now, Ordering::SeqCst);
    // Decremented even when the client hangs up mid-call (the future is dropped).
    struct Leave<'a>(&'a AtomicUsize);
    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let leave = Leave(&script.in_flight);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    drop(leave);
    let prompt = body["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let error = |status: StatusCode, code: &str| {
        let body = json!({"error": {"code": code, "message": code, "type": "x"}});
        let mut response = (status, Json(body)).into_response();
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
        response
    };
    match call {
        0 | 1 => return error(StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        2 => return error(StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        _ => {}
    }
    *script
        .by_prompt
        .lock()
        .unwrap()
        .entry(prompt.clone())
        .or_default() += 1;
    let strict = prompt.contains("did not match the required format");
    let content = if prompt.contains("refused") {
        return error(StatusCode::BAD_REQUEST, "invalid_request");
    } else if prompt.contains("junk-always") {
        r#"{"style": "baroque"}"#.to_string()
    } else if prompt.contains("junk-once") && !strict {
        "Sure! It is a modern chair.".to_string()
    } else {
        r#"{"style": "modern", "seats": 4}"#.to_string()
    };
    Json(json!({
        "id": "x", "object": "chat.completion", "created": 0, "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    }))
    .into_response()
}

fn spec(dir: &std::path::Path, base_url: &str) -> std::path::PathBuf {
    let names = [
        "plain a",
        "junk-once",
        "junk-always",
        "refused",
        "plain b",
        "plain c",
        "plain d",
        "plain e",
    ];
    let mut csv = String::from("sku,name\n");
    for (i, name) in names.iter().enumerate() {
        csv.push_str(&format!("{i},{name}\n"));
    }
    std::fs::write(dir.join("items.jsonl.csv"), csv).unwrap();
    let spec = format!(
        r#"
input = "items.jsonl.csv"
id_column = "sku"
prompt = "Item {{name}}"
mode = "direct"
output = "out/labelled.csv"
max_item_attempts = 3

[[fields]]
name = "style"
type = "string"
enum = ["modern", "rustic"]

[[fields]]
name = "seats"
type = "integer"
minimum = 1
maximum = 8

[endpoint]
base_url = "{base_url}"

[direct]
concurrency = 3
requests_per_second = 200

[retry]
max_attempts = 5
initial_backoff_ms = 5
max_backoff_ms = 20
"#
    );
    let path = dir.join("job.toml");
    std::fs::write(&path, spec).unwrap();
    path
}

#[test]
fn direct_mode_retries_validates_and_resumes() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let script = Arc::new(Script::default());
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(script.clone());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), &format!("http://{address}/v1"));
    let job_dir = dir.path().join("job");
    // Stop after three journalled answers, then resume.
    let mut job = Job::create(&spec, &job_dir).unwrap().with_hooks(Hooks {
        stop_after_step: Some(4),
        ..Hooks::default()
    });
    let first = runtime.block_on(job.run(&NoProgress));
    assert!(
        matches!(first, Err(LabelError::Interrupted(_))),
        "{first:?}"
    );
    drop(job);
    let mut job = Job::open(&job_dir, false).unwrap();
    let (output, counts) = runtime.block_on(job.run(&NoProgress)).unwrap();
    assert_eq!(output, dir.path().join("out/labelled.csv"));
    assert_eq!((counts.labelled, counts.invalid, counts.failed), (6, 1, 1));

    let rows = read_rows(&output);
    let by_name: HashMap<&str, &HashMap<String, String>> =
        rows.iter().map(|r| (r["name"].as_str(), r)).collect();
    assert_eq!(by_name["plain a"]["style"], "modern");
    assert_eq!(by_name["plain a"]["seats"], "4");
    assert_eq!(by_name["junk-once"]["label_status"], "labelled");
    let always = by_name["junk-always"];
    assert_eq!(always["label_status"], "invalid");
    assert!(
        always["label_error"].contains("baroque"),
        "raw answer kept: {always:?}"
    );
    assert_eq!(always["style"], "");
    assert_eq!(by_name["refused"]["label_status"], "failed");
    assert!(by_name["refused"]["label_error"].contains("HTTP 400"));

    // Three transient errors were retried; the invalid answers got exactly one strict retry;
    // the refused item was tried max_item_attempts times. Only calls in flight when the
    // client stopped (at most `concurrency`) may have been asked again after the resume.
    let asked = script.by_prompt.lock().unwrap().clone();
    let count = |needle: &str, strict: bool| -> usize {
        asked
            .iter()
            .filter(|(p, _)| p.contains(needle) && p.contains("did not match") == strict)
            .map(|(_, n)| *n)
            .sum()
    };
    assert_eq!(count("junk-once", true), 1);
    assert_eq!(count("junk-always", true), 1);
    let mut repeated = count("refused", false).checked_sub(3).expect("three tries");
    for name in [
        "plain a",
        "plain b",
        "plain c",
        "plain d",
        "plain e",
        "junk-once",
        "junk-always",
    ] {
        repeated += count(name, false).checked_sub(1).expect("asked");
    }
    assert!(repeated <= 3, "{repeated} repeated calls: {asked:?}");
    let answered: usize = asked.values().sum();
    // Calls cut off by the stop never reached the script's count.
    let calls = script.calls.load(Ordering::SeqCst);
    assert!(
        (answered + 3..=answered + 6).contains(&calls),
        "{calls} calls, {answered} answered"
    );
    assert!(script.max_in_flight.load(Ordering::SeqCst) <= 3);
    // The input is read, never written.
    assert!(!std::fs::read_to_string(dir.path().join("items.jsonl.csv"))
        .unwrap()
        .contains("label_status"));
}
