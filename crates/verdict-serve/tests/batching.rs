//! Dynamic batching under concurrency: results are never mixed between callers, concurrent
//! requests share model calls, and a full queue answers 503 with Retry-After.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use serde_json::json;
use verdict_serve::{
    AppState, BatchModel, ClassifyInput, ClassifyOutput, ModelError, ServeConfig, ServedModel,
};

/// A model whose answer is a function of the input text (`"n"` -> probabilities
/// `[1/(n+2), 1 - 1/(n+2)]`), that records every batch and can be held closed.
struct EchoModel {
    batches: Mutex<Vec<Vec<String>>>,
    gate: Arc<(Mutex<bool>, Condvar)>,
    /// Model calls entered so far (also those waiting at the gate).
    started: Arc<AtomicUsize>,
}

impl EchoModel {
    fn new(open: bool) -> Self {
        Self {
            batches: Mutex::new(Vec::new()),
            gate: Arc::new((Mutex::new(open), Condvar::new())),
            started: Arc::new(AtomicUsize::new(0)),
        }
    }
}

fn expected(n: u64) -> f64 {
    1.0 / (n as f64 + 2.0)
}

impl BatchModel for EchoModel {
    fn labels(&self) -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn accepts_images(&self) -> bool {
        false
    }

    fn classify_batch(&self, inputs: &[ClassifyInput]) -> Vec<Result<ClassifyOutput, ModelError>> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let (lock, condvar) = &*self.gate;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = condvar.wait(open).unwrap();
        }
        drop(open);
        self.batches.lock().unwrap().push(
            inputs
                .iter()
                .map(|i| i.text.clone().unwrap_or_default())
                .collect(),
        );
        inputs
            .iter()
            .map(|input| {
                let n: u64 = input
                    .text
                    .as_deref()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| ModelError::Input("not a number".into()))?;
                Ok(ClassifyOutput {
                    probabilities: vec![expected(n), 1.0 - expected(n)],
                    multi_label: false,
                    reason: None,
                })
            })
            .collect()
    }
}

fn echo_state(config: ServeConfig, model: EchoModel) -> AppState {
    AppState::with_model(
        config,
        info(),
        &verdict_serve::TaskSettings::without_task(None),
        ServedModel::Custom(Box::new(model)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_each_get_their_own_answer() {
    let state = echo_state(
        ServeConfig {
            max_batch_size: 8,
            max_wait: Duration::from_millis(20),
            ..ServeConfig::default()
        },
        EchoModel::new(true),
    );
    let mut tasks = Vec::new();
    for n in 0..200u64 {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            let answer = call(
                &state,
                post_json(
                    "/v1/classify",
                    &json!({"id": n.to_string(), "text": n.to_string()}),
                ),
            )
            .await;
            (n, answer)
        }));
    }
    for task in tasks {
        let (n, answer) = task.await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.body["id"], n.to_string());
        let a = answer.body["probabilities"][0]["probability"]
            .as_f64()
            .unwrap();
        // Neighbouring callers' answers differ by far more than JSON float rounding.
        assert!(
            (a - expected(n)).abs() < 1e-12,
            "caller {n} got someone else's answer: {a}"
        );
    }
    let text = call(&state, get("/metrics")).await.text;
    assert!(text.contains("verdict_batched_items_total 200"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_requests_share_one_model_call() {
    let model = EchoModel::new(false);
    let gate = model.gate.clone();
    let started = model.started.clone();
    let state = echo_state(
        ServeConfig {
            max_batch_size: 16,
            ..ServeConfig::default()
        },
        model,
    );
    // The first request occupies the (closed) model; the next ones queue behind it.
    let mut tasks = Vec::new();
    for n in 0..9u64 {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            call(
                &state,
                post_json("/v1/classify", &json!({"text": n.to_string()})),
            )
            .await
        }));
        if n == 0 {
            wait_until_started(&started).await;
        }
    }
    wait_for_depth(&state, 8).await;
    {
        let (lock, condvar) = &*gate;
        *lock.lock().unwrap() = true;
        condvar.notify_all();
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().status, StatusCode::OK);
    }
    let text = call(&state, get("/metrics")).await.text;
    // One call for the first request, one for the eight that waited together.
    assert!(text.contains("verdict_batch_size_count 2"), "{text}");
    assert!(
        text.contains("verdict_batch_size_bucket{le=\"8\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("verdict_batch_size_bucket{le=\"4\"} 1"),
        "{text}"
    );
}

async fn wait_until_started(started: &AtomicUsize) {
    for _ in 0..500 {
        if started.load(Ordering::SeqCst) > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the model was never called");
}

async fn wait_for_depth(state: &AppState, depth: usize) {
    for _ in 0..500 {
        let text = call(state, get("/metrics")).await.text;
        if text.contains(&format!("verdict_queue_depth {depth}\n")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("queue never reached depth {depth}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_answers_503_with_retry_after_and_recovers() {
    let model = EchoModel::new(false);
    let gate = model.gate.clone();
    let started = model.started.clone();
    let state = echo_state(
        ServeConfig {
            queue_capacity: 2,
            retry_after_seconds: 3,
            ..ServeConfig::default()
        },
        model,
    );
    let mut held = Vec::new();
    for n in 0..3u64 {
        let caller = state.clone();
        held.push(tokio::spawn(async move {
            call(
                &caller,
                post_json("/v1/classify", &json!({"text": n.to_string()})),
            )
            .await
        }));
        // Request 0 is taken by the model thread (and blocks there); 1 and 2 fill the queue.
        if n == 0 {
            wait_until_started(&started).await;
        } else {
            wait_for_depth(&state, n as usize).await;
        }
    }
    let rejected = call(&state, post_json("/v1/classify", &json!({"text": "7"}))).await;
    assert_error(&rejected, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    assert_eq!(rejected.headers["retry-after"], "3");
    let batch = json!({"items": [{"text": "1"}]});
    assert_error(
        &call(&state, post_json("/v1/classify/batch", &batch)).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
    );
    {
        let (lock, condvar) = &*gate;
        *lock.lock().unwrap() = true;
        condvar.notify_all();
    }
    for task in held {
        assert_eq!(task.await.unwrap().status, StatusCode::OK);
    }
    let after = call(&state, post_json("/v1/classify", &json!({"text": "7"}))).await;
    assert_eq!(after.status, StatusCode::OK);
    assert!(call(&state, get("/metrics"))
        .await
        .text
        .contains("verdict_rejected_total 2"));
}

/// Over a real socket: a request refused by a full queue is read to its end before the 503,
/// so the connection stays open for the client's next request (a pooled connection closed
/// under a client shows up as a transport error, not as the 503 it was sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_upload_leaves_the_connection_usable() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let model = EchoModel::new(false);
    let gate = model.gate.clone();
    let started = model.started.clone();
    let state = echo_state(
        ServeConfig {
            queue_capacity: 1,
            ..ServeConfig::default()
        },
        model,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(verdict_serve::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    // One request in the model (held at the gate), one in the queue: the queue is full.
    let url = format!("http://{address}/v1/classify");
    let mut held = Vec::new();
    for n in 0..2u64 {
        let url = url.clone();
        held.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(&url)
                .json(&json!({"text": n.to_string()}))
                .send()
                .await
                .unwrap()
                .status()
        }));
        if n == 0 {
            wait_until_started(&started).await;
        } else {
            wait_for_depth(&state, 1).await;
        }
    }
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = json!({"text": "7".repeat(256 << 10)}).to_string();
    let request = format!(
        "POST /v1/classify HTTP/1.1\r\nhost: verdict\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let refused = read_response(&mut stream).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: verdict\r\n\r\n")
        .await
        .unwrap();
    let health = read_response(&mut stream).await;
    assert!(
        health.starts_with("HTTP/1.1 200"),
        "second request: {health:?}"
    );
    {
        let (lock, condvar) = &*gate;
        *lock.lock().unwrap() = true;
        condvar.notify_all();
    }
    for task in held {
        assert_eq!(task.await.unwrap(), 200);
    }
    drop(stream);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    /// One HTTP/1.1 response with a `content-length` body, as text ("" if the connection
    /// closed first).
    async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&bytes).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_string)
                    })
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if bytes.len() >= end + 4 + length {
                    return text;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return String::new(),
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_real_baseline_under_concurrency_matches_one_by_one_answers() {
    let state = baseline_state(ServeConfig {
        max_batch_size: 4,
        max_wait: Duration::from_millis(10),
        ..ServeConfig::default()
    });
    let baseline = spam_baseline();
    let texts: Vec<String> = (0..64)
        .map(|i| {
            let pool = if i % 2 == 0 { &SPAM } else { &HAM };
            format!("{} {}", pool[i % 8], pool[(i * 3) % 8])
        })
        .collect();
    let mut tasks = Vec::new();
    for text in texts.clone() {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            call(&state, post_json("/v1/classify", &json!({"text": text}))).await
        }));
    }
    for (text, task) in texts.iter().zip(tasks) {
        let answer = task.await.unwrap();
        let alone = baseline.predict_proba(&[text.as_str()]).unwrap();
        let served = answer.body["probabilities"][1]["probability"]
            .as_f64()
            .unwrap();
        assert!((served - alone.row(0)[1]).abs() < 1e-12, "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let model = EchoModel::new(false);
    let gate = model.gate.clone();
    let started = model.started.clone();
    let state = echo_state(ServeConfig::default(), model);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/classify", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(verdict_serve::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(&url)
            .json(&json!({"text": "5"}))
            .send()
            .await
            .unwrap()
    });
    wait_until_started(&started).await;
    stop.send(()).unwrap();
    // The server is draining: it must not finish while the request is still in the model.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!server.is_finished());
    {
        let (lock, condvar) = &*gate;
        *lock.lock().unwrap() = true;
        condvar.notify_all();
    }
    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        (body["probabilities"][0]["probability"].as_f64().unwrap() - expected(5)).abs() < 1e-12
    );
    server.await.unwrap().unwrap();
}
