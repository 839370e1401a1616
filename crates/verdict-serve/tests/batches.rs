//! The batch API (`/v1/files`, `/v1/batches`) over the tiny Qwen3-VL checkpoint: a batch of
//! chat requests with a labelling schema runs to `completed` and every answer fits the
//! schema; bad input files fail with line numbers; a zero completion window expires the
//! batch with `batch_expired` errors; state survives a new service on the same folder.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{json, Value};
use verdict_serve::{AppState, LabelSet, ModelInfo, ServeConfig, ServedModel, TaskSettings};

fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

fn state(dir: &Path, window: Duration) -> AppState {
    let labels = LabelSet {
        names: vec!["sfw".into(), "nsfw".into()],
        descriptions: Vec::new(),
    };
    AppState::with_model(
        ServeConfig {
            batch_dir: Some(dir.to_path_buf()),
            max_batch_window: window,
            ..ServeConfig::default()
        },
        ModelInfo::from_path(&tiny_dir()),
        &TaskSettings::without_task(Some(labels.clone())),
        ServedModel::load(&tiny_dir(), Some(labels)).expect("tiny model"),
    )
    .expect("state")
}

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "style": {"type": "string", "enum": ["modern", "rustic"]},
            "title": {"type": "string", "maxLength": 10},
            "seats": {"type": "integer", "minimum": 1, "maximum": 6},
            "indoor": {"type": "boolean"}
        },
        "required": ["style", "title", "seats", "indoor"],
        "additionalProperties": false
    })
}

fn line(custom_id: &str, text: &str) -> String {
    json!({
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "messages": [{"role": "user", "content": text}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema(), "strict": true}}
        }
    })
    .to_string()
}

fn upload(bytes: &[u8], purpose: &str) -> Request<Body> {
    let boundary = "b0undary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Request::post("/v1/files")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .expect("request")
}

async fn create(state: &AppState, lines: &[String]) -> Value {
    let file = call(state, upload(lines.join("\n").as_bytes(), "batch")).await;
    assert_eq!(file.status, StatusCode::OK, "{}", file.text);
    assert_eq!(file.body["purpose"], "batch");
    let batch = call(
        state,
        post_json(
            "/v1/batches",
            &json!({"input_file_id": file.body["id"], "endpoint": "/v1/chat/completions",
                    "completion_window": "24h", "metadata": {"job": "t"}}),
        ),
    )
    .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.text);
    batch.body
}

async fn wait_final(state: &AppState, id: &str) -> Value {
    for _ in 0..600 {
        let batch = call(state, get(&format!("/v1/batches/{id}"))).await;
        let status = batch.body["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if ["completed", "failed", "expired", "cancelled"].contains(&status.as_str()) {
            return batch.body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("batch {id} did not finish");
}

async fn content(state: &AppState, file_id: &Value) -> Vec<Value> {
    let answer = call(
        state,
        get(&format!(
            "/v1/files/{}/content",
            file_id.as_str().expect("id")
        )),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    answer
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect()
}

#[tokio::test]
async fn a_batch_runs_to_schema_valid_answers() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), Duration::from_secs(3600));
    let lines: Vec<String> = (0..5)
        .map(|i| line(&format!("req-{i}"), &format!("chair {i}")))
        .collect();
    let batch = create(&state, &lines).await;
    assert_eq!(batch["metadata"]["job"], "t");
    let done = wait_final(&state, batch["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"]["completed"], 5);
    assert!(done["error_file_id"].is_null());
    let output = content(&state, &done["output_file_id"]).await;
    let mut ids: Vec<&str> = output
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["req-0", "req-1", "req-2", "req-3", "req-4"]);
    for line in &output {
        assert_eq!(line["response"]["status_code"], 200);
        let text = line["response"]["body"]["choices"][0]["message"]["content"]
            .as_str()
            .unwrap();
        let answer: Value = serde_json::from_str(text).expect("constrained answers parse");
        assert!(["modern", "rustic"].contains(&answer["style"].as_str().unwrap()));
        assert!(answer["title"].as_str().unwrap().chars().count() <= 10);
        assert!((1..=6).contains(&answer["seats"].as_i64().unwrap()));
        assert!(answer["indoor"].is_boolean());
    }
    // A new service on the same folder knows the batch and its files.
    let again = state_again(dir.path());
    let listed = call(&again, get("/v1/batches?limit=5")).await;
    assert_eq!(listed.body["data"][0]["id"], batch["id"]);
    assert_eq!(listed.body["data"][0]["status"], "completed");
    assert_eq!(content(&again, &done["output_file_id"]).await.len(), 5);
}

fn state_again(dir: &Path) -> AppState {
    AppState::new(
        ServeConfig {
            batch_dir: Some(dir.to_path_buf()),
            ..ServeConfig::default()
        },
        ModelInfo::from_path(&tiny_dir()),
        &TaskSettings::without_task(None),
    )
    .expect("state")
}

#[tokio::test]
async fn zero_window_expires_and_bad_files_fail() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), Duration::ZERO);
    let lines = vec![line("a", "one"), line("b", "two")];
    let batch = create(&state, &lines).await;
    let done = wait_final(&state, batch["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "expired");
    assert_eq!(done["request_counts"]["failed"], 2);
    assert!(done["output_file_id"].is_null());
    let errors = content(&state, &done["error_file_id"]).await;
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e["error"]["code"] == "batch_expired"));

    let bad = vec![line("a", "one"), "not json".to_string(), line("a", "dup")];
    let batch = create(&state, &bad).await;
    let done = wait_final(&state, batch["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    let errors = done["errors"]["data"].as_array().unwrap();
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[1]["code"], "duplicate_custom_id");
}

#[tokio::test]
async fn requests_that_cannot_work_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), Duration::from_secs(60));
    let wrong_purpose = call(&state, upload(b"{}", "fine-tune")).await;
    assert_error(&wrong_purpose, StatusCode::BAD_REQUEST, "invalid_request");
    let missing = call(
        &state,
        post_json(
            "/v1/batches",
            &json!({"input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h"}),
        ),
    )
    .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    let file = call(&state, upload(line("a", "x").as_bytes(), "batch")).await;
    let endpoint = call(
        &state,
        post_json(
            "/v1/batches",
            &json!({"input_file_id": file.body["id"], "endpoint": "/v1/embeddings", "completion_window": "24h"}),
        ),
    )
    .await;
    assert_error(&endpoint, StatusCode::BAD_REQUEST, "invalid_request");
    assert_error(
        &call(&state, get("/v1/batches/batch_nope")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // The same schema through chat completions directly: constrained, so it parses.
    let chat = call(
        &state,
        post_json(
            "/v1/chat/completions",
            &json!({"messages": [{"role": "user", "content": "a stool"}],
                    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema()}}}),
        ),
    )
    .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.text);
    let text = chat.body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    let answer: Value = serde_json::from_str(text).expect("parses");
    assert_eq!(answer.as_object().unwrap().len(), 4);
}
