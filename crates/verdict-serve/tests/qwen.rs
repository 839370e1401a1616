//! The tiny committed Qwen3-VL checkpoint behind the service: image classification (base64,
//! URL, multipart, meshes), batched scoring against one-by-one scoring, reasons, and chat
//! completions with JSON-schema answers, log-probabilities and streaming.

mod common;

use std::path::PathBuf;

use axum::http::StatusCode;
use base64::Engine as _;
use common::*;
use serde_json::json;
use verdict_models::qwen3_vl::classify::Query;
use verdict_serve::{
    AppState, ClassifyInput, LabelSet, ModelInfo, ServeConfig, ServedModel, TaskSettings,
};

fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

fn labels(names: &[&str]) -> LabelSet {
    LabelSet {
        names: names.iter().map(|s| s.to_string()).collect(),
        descriptions: Vec::new(),
    }
}

fn load(names: &[&str]) -> ServedModel {
    ServedModel::load(&tiny_dir(), Some(labels(names))).expect("tiny model")
}

fn qwen_state(config: ServeConfig, names: &[&str]) -> AppState {
    AppState::with_model(
        config,
        ModelInfo::from_path(&tiny_dir()),
        &TaskSettings::without_task(Some(labels(names))),
        load(names),
    )
    .expect("state")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

const THREE: [&str; 3] = ["nsfw", "sfw", "grey_area"];
/// Both are single tokens of the tiny tokenizer: batches run as one padded forward pass.
const TWO: [&str; 2] = ["sfw", "nsfw"];

#[tokio::test]
async fn image_classification_matches_the_classifier_directly() {
    // Multi-token labels: scored one by one through the classifier's own path.
    served_item_matches_the_classifier(&THREE, 1e-9).await;
    // Single-token labels: encoded before the queue, scored in a padded pass of one.
    served_item_matches_the_classifier(&TWO, 1e-6).await;
}

async fn served_item_matches_the_classifier(names: &[&str], tolerance: f64) {
    let state = qwen_state(ServeConfig::default(), names);
    let image = png(40, 30, [200, 30, 30]);
    let answer = call(
        &state,
        post_json(
            "/v1/classify",
            &json!({"text": "a red square", "images": [{"base64": b64(&image)}]}),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["model"], "tiny_a");
    let ServedModel::Qwen(engine) = load(names) else {
        unreachable!()
    };
    let query = Query {
        system: None,
        text: engine.instruction(Some("a red square"), false),
        images: vec![image::load_from_memory(&image).unwrap().to_rgb8()],
    };
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let direct = engine.classifier().score(&query, &names).unwrap();
    for (i, label) in names.iter().enumerate() {
        assert_eq!(answer.body["probabilities"][i]["label"], *label);
        let served = answer.body["probabilities"][i]["probability"]
            .as_f64()
            .unwrap();
        assert!(
            (served - direct.probabilities[i]).abs() < tolerance,
            "{label}: served {served}, classifier {}",
            direct.probabilities[i]
        );
    }
}

#[tokio::test]
async fn an_image_the_processor_refuses_is_the_callers_error() {
    for names in [&TWO[..], &THREE[..]] {
        let state = qwen_state(ServeConfig::default(), names);
        let thin = png(250, 1, [10, 10, 10]);
        let answer = call(
            &state,
            post_json("/v1/classify", &json!({"images": [{"base64": b64(&thin)}]})),
        )
        .await;
        let message = assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
        assert!(message.contains("aspect ratio"), "{names:?}: {message}");
    }
}

#[test]
fn padded_batches_score_like_single_prompts() {
    let model = load(&TWO);
    let ServedModel::Qwen(engine) = &model else {
        unreachable!()
    };
    assert!(engine.batches_in_one_pass());
    let inputs = vec![
        ClassifyInput {
            text: Some("short".into()),
            ..ClassifyInput::default()
        },
        ClassifyInput {
            text: Some("a much longer text so that the prompts differ in length".into()),
            images: vec![image::RgbImage::from_pixel(
                32,
                32,
                image::Rgb([10, 200, 10]),
            )],
            reason: false,
        },
        ClassifyInput {
            text: None,
            images: vec![
                image::RgbImage::from_pixel(48, 24, image::Rgb([0, 0, 250])),
                image::RgbImage::from_pixel(24, 24, image::Rgb([250, 250, 0])),
            ],
            reason: false,
        },
        ClassifyInput::default(),
    ];
    let batched = model.classify_batch(&inputs);
    assert!(matches!(
        batched[3],
        Err(verdict_serve::ModelError::Input(_))
    ));
    for (i, input) in inputs.iter().enumerate().take(3) {
        let alone = model.classify_batch(std::slice::from_ref(input));
        let (a, b) = (
            &batched[i].as_ref().unwrap().probabilities,
            &alone[0].as_ref().unwrap().probabilities,
        );
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() < 1e-4,
                "item {i}: batched {a:?} vs alone {b:?}"
            );
        }
    }
}

#[tokio::test]
async fn reasons_come_from_the_constrained_answer() {
    let state = qwen_state(
        ServeConfig {
            max_reason_bytes: 24,
            ..ServeConfig::default()
        },
        &THREE,
    );
    let answer = call(
        &state,
        post_json("/v1/classify", &json!({"text": "explain", "reason": true})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let reason = answer.body["reason"].as_str().expect("reason");
    assert!(reason.len() <= 24 + 5, "{reason:?}");
}

#[tokio::test]
async fn image_limits_and_bad_images() {
    let state = qwen_state(
        ServeConfig {
            max_image_pixels: 1000,
            max_images_per_item: 2,
            ..ServeConfig::default()
        },
        &THREE,
    );
    let big = png(40, 30, [0, 0, 0]);
    let answer = call(
        &state,
        post_json("/v1/classify", &json!({"images": [{"base64": b64(&big)}]})),
    )
    .await;
    let message = assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "image_too_large");
    assert!(message.contains("40x30"), "{message}");
    let garbage = json!({"images": [{"base64": b64(b"not an image at all")}]});
    assert_error(
        &call(&state, post_json("/v1/classify", &garbage)).await,
        StatusCode::BAD_REQUEST,
        "invalid_image",
    );
    let both = json!({"images": [{"base64": "aGk=", "url": "http://127.0.0.1:1/x.png"}]});
    assert_error(
        &call(&state, post_json("/v1/classify", &both)).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let three = json!({"images": [{"base64": "aGk="}, {"base64": "aGk="}, {"base64": "aGk="}]});
    assert_error(
        &call(&state, post_json("/v1/classify", &three)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_images",
    );
    let scheme = json!({"images": [{"url": "file:///etc/passwd"}]});
    assert_error(
        &call(&state, post_json("/v1/classify", &scheme)).await,
        StatusCode::BAD_REQUEST,
        "invalid_url",
    );
}

/// Serves `/small.png` and `/large.png` on loopback.
async fn image_server() -> String {
    let small = png(16, 16, [10, 20, 30]);
    let large = vec![0u8; 64 * 1024];
    let app = axum::Router::new()
        .route(
            "/small.png",
            axum::routing::get(move || async move { small }),
        )
        .route(
            "/large.png",
            axum::routing::get(move || async move { large }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

#[tokio::test]
async fn images_by_url_are_fetched_with_a_size_cap() {
    let base = image_server().await;
    let state = qwen_state(
        ServeConfig {
            max_url_bytes: 32 * 1024,
            ..ServeConfig::default()
        },
        &THREE,
    );
    let ok = json!({"images": [{"url": format!("{base}/small.png")}]});
    let answer = call(&state, post_json("/v1/classify", &ok)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let large = json!({"images": [{"url": format!("{base}/large.png")}]});
    assert_error(
        &call(&state, post_json("/v1/classify", &large)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "url_too_large",
    );
    let missing = json!({"images": [{"url": format!("{base}/missing.png")}]});
    assert_error(
        &call(&state, post_json("/v1/classify", &missing)).await,
        StatusCode::BAD_REQUEST,
        "url_fetch_failed",
    );
}

const TETRAHEDRON: &str = "solid t
facet normal 0 0 -1
outer loop
vertex 0 0 0
vertex 0 1 0
vertex 1 0 0
endloop
endfacet
facet normal 0 -1 0
outer loop
vertex 0 0 0
vertex 1 0 0
vertex 0 0 1
endloop
endfacet
facet normal -1 0 0
outer loop
vertex 0 0 0
vertex 0 0 1
vertex 0 1 0
endloop
endfacet
facet normal 1 1 1
outer loop
vertex 1 0 0
vertex 0 1 0
vertex 0 0 1
endloop
endfacet
endsolid t
";

#[tokio::test]
async fn mesh_uploads_are_rendered_and_classified() {
    let mut task = TaskSettings::without_task(Some(labels(&THREE)));
    task.views = vec!["front".into(), "iso".into()];
    task.view_size = 64;
    let state = AppState::with_model(
        ServeConfig::default(),
        ModelInfo::from_path(&tiny_dir()),
        &task,
        load(&THREE),
    )
    .unwrap();
    let answer = call(
        &state,
        multipart(&[
            ("text", None, b"a 3D print".as_slice()),
            ("mesh", Some("part.stl"), TETRAHEDRON.as_bytes()),
        ]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["probabilities"].as_array().unwrap().len(), 3);

    let capped = AppState::with_model(
        ServeConfig {
            max_triangles: 3,
            ..ServeConfig::default()
        },
        ModelInfo::from_path(&tiny_dir()),
        &task,
        load(&THREE),
    )
    .unwrap();
    let answer = call(
        &capped,
        multipart(&[("mesh", Some("part.stl"), TETRAHEDRON.as_bytes())]),
    )
    .await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "mesh_too_large");
    let answer = call(
        &state,
        multipart(&[(
            "mesh",
            Some("part.stl"),
            b"solid x\nfacet oops\n".as_slice(),
        )]),
    )
    .await;
    let message = assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_mesh");
    assert!(message.starts_with("part.stl"), "{message}");
    let answer = call(
        &state,
        multipart(&[("mesh", Some("part.step"), b"x".as_slice())]),
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "unsupported_mesh");
}

fn label_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["sfw", "nsfw"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string", "maxLength": 30}
        },
        "required": ["label", "confidence", "reason"],
        "additionalProperties": false
    })
}

#[tokio::test]
async fn chat_with_a_json_schema_returns_valid_json_and_logprobs() {
    let state = qwen_state(ServeConfig::default(), &THREE);
    let request = json!({
        "model": "tiny",
        "messages": [
            {"role": "system", "content": "Moderate content."},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", b64(&png(20, 20, [9, 9, 9])))}},
                {"type": "text", "text": "Is this safe?"}
            ]}
        ],
        "response_format": {"type": "json_schema", "json_schema": {"name": "verdict", "schema": label_schema(), "strict": true}},
        "logprobs": true,
        "top_logprobs": 3
    });
    let answer = call(&state, post_json("/v1/chat/completions", &request)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let body = &answer.body;
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    let parsed: serde_json::Value = serde_json::from_str(content).expect(content);
    assert!(["sfw", "nsfw"].contains(&parsed["label"].as_str().unwrap()));
    let confidence = parsed["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence));
    assert!(parsed["reason"].as_str().unwrap().chars().count() <= 30);
    let tokens = body["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap();
    // The constraint ends the answer at its closing brace: every generated token is text.
    assert_eq!(
        tokens.len(),
        body["usage"]["completion_tokens"].as_u64().unwrap() as usize
    );
    // Tokens may split characters; their bytes join into the text exactly.
    let joined: Vec<u8> = tokens
        .iter()
        .flat_map(|t| {
            t["bytes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u8)
        })
        .collect();
    assert_eq!(String::from_utf8(joined).unwrap(), content);
    for token in tokens {
        assert!(token["logprob"].as_f64().unwrap() <= 0.0);
        let top = token["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert!(top[0]["logprob"].as_f64() >= top[2]["logprob"].as_f64());
    }
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn chat_streams_server_sent_events() {
    let state = qwen_state(ServeConfig::default(), &THREE);
    let request = json!({
        "messages": [{"role": "user", "content": "Is this safe?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "v", "schema": label_schema()}},
        "stream": true
    });
    let whole = call(
        &state,
        post_json(
            "/v1/chat/completions",
            &json!({"messages": request["messages"], "response_format": request["response_format"]}),
        ),
    )
    .await;
    let answer = call(&state, post_json("/v1/chat/completions", &request)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let data: Vec<&str> = answer
        .text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    // Greedy decoding: the stream says exactly what the whole answer says.
    assert_eq!(
        streamed,
        whole.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
    );
    serde_json::from_str::<serde_json::Value>(&streamed).expect("streamed JSON");
}

#[tokio::test]
async fn free_text_chat_stops_at_max_tokens() {
    let state = qwen_state(ServeConfig::default(), &THREE);
    let request = json!({"messages": [{"role": "user", "content": "hello"}], "max_tokens": 3, "temperature": 0.7, "seed": 5});
    let answer = call(&state, post_json("/v1/chat/completions", &request)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let usage = &answer.body["usage"];
    assert!(usage["completion_tokens"].as_u64().unwrap() <= 3);
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
}

#[tokio::test]
async fn chat_request_errors() {
    let state = qwen_state(ServeConfig::default(), &THREE);
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (
            json!({"messages": user, "response_format": {"type": "json_object"}}),
            "unsupported_response_format",
        ),
        (
            json!({"messages": user, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"answer": {"type": "string"}}}}}}),
            "unsupported_response_format",
        ),
        (json!({"messages": user, "n": 2}), "unsupported_parameter"),
        (
            json!({"messages": user, "top_logprobs": 50, "logprobs": true}),
            "unsupported_parameter",
        ),
        (json!({"messages": []}), "invalid_request"),
        (
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            "invalid_request",
        ),
        (
            json!({"messages": user, "temperature": 5.0}),
            "invalid_request",
        ),
        (
            json!({"messages": user, "max_tokens": 0}),
            "invalid_request",
        ),
        (json!({"messages": "hi"}), "invalid_json"),
    ];
    for (request, code) in cases {
        let answer = call(&state, post_json("/v1/chat/completions", &request)).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, code);
    }
}

#[test]
fn an_adapter_serves_like_its_merged_checkpoint() {
    let adapter =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../verdict-lora/tests/fixtures/peft/names");
    let merged = tempfile::tempdir().unwrap();
    verdict_lora::merge_into_checkpoint(&tiny_dir(), &adapter, merged.path()).unwrap();
    let adapted =
        ServedModel::load_with_adapter(&tiny_dir(), Some(labels(&THREE)), Some(&adapter)).unwrap();
    let merged = ServedModel::load(merged.path(), Some(labels(&THREE))).unwrap();
    let base = load(&THREE);
    let input = ClassifyInput {
        text: Some("adapted?".into()),
        images: vec![image::RgbImage::from_pixel(
            32,
            32,
            image::Rgb([90, 10, 200]),
        )],
        reason: false,
    };
    let p = |model: &ServedModel| {
        model.classify_batch(std::slice::from_ref(&input))[0]
            .as_ref()
            .unwrap()
            .probabilities
            .clone()
    };
    let (with_adapter, with_merge, without) = (p(&adapted), p(&merged), p(&base));
    for (a, m) in with_adapter.iter().zip(&with_merge) {
        assert!(
            (a - m).abs() < 1e-4,
            "{with_adapter:?} vs merged {with_merge:?}"
        );
    }
    let moved: f64 = with_adapter
        .iter()
        .zip(&without)
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(
        moved > 1e-6,
        "the adapter changed nothing: {with_adapter:?}"
    );
    let error =
        ServedModel::load_with_adapter(&tiny_dir(), Some(labels(&THREE)), Some(&tiny_dir()))
            .unwrap_err()
            .to_string();
    assert!(error.contains("adapter"), "{error}");
}
