//! Every endpoint and error path on a fitted text baseline, through `router(..).oneshot(..)`.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::json;
use verdict_serve::{AppState, ServeConfig};

#[tokio::test]
async fn health_and_readiness() {
    let state = baseline_state(ServeConfig::default());
    let health = call(&state, get("/healthz")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, json!({"status": "ok"}));
    let ready = call(&state, get("/readyz")).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["ready"], true);
    assert_eq!(ready.body["kind"], "text_baseline");
    assert_eq!(ready.body["labels"], json!(["ham", "spam"]));
}

#[tokio::test]
async fn before_the_model_loads_only_health_answers() {
    let state = AppState::new(ServeConfig::default(), info(), &spam_policy()).unwrap();
    assert_eq!(call(&state, get("/healthz")).await.status, StatusCode::OK);
    let ready = call(&state, get("/readyz")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["ready"], false);
    let answer = call(&state, post_json("/v1/classify", &json!({"text": "hi"}))).await;
    assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    assert!(answer.headers.contains_key("retry-after"));
    // Installing the model flips readiness.
    state
        .install(verdict_serve::ServedModel::Baseline(Box::new(
            spam_baseline(),
        )))
        .unwrap();
    assert_eq!(call(&state, get("/readyz")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn classify_gives_the_model_probabilities_and_the_policy_decision() {
    let state = baseline_state(ServeConfig::default());
    let baseline = spam_baseline();
    for text in [
        "claim your free lottery prize now",
        "notes from the design review",
    ] {
        let answer = call(
            &state,
            post_json("/v1/classify", &json!({"id": "a1", "text": text})),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let expected = baseline.predict_proba(&[text]).unwrap();
        let p_spam = expected.row(0)[1];
        let body = &answer.body;
        assert_eq!(body["id"], "a1");
        assert_eq!(body["model"], "spam-tfidf");
        assert_eq!(body["probabilities"][0]["label"], "ham");
        assert_eq!(body["probabilities"][1]["label"], "spam");
        let served = body["probabilities"][1]["probability"].as_f64().unwrap();
        assert!((served - p_spam).abs() < 1e-12, "{served} vs {p_spam}");
        let label = if p_spam >= 0.5 { "spam" } else { "ham" };
        assert_eq!(body["label"], label);
        let decision = if p_spam >= 0.6 {
            "demote"
        } else if p_spam >= 0.4 {
            "review"
        } else {
            "keep"
        };
        assert_eq!(body["decision"]["decision"], decision, "{}", answer.text);
        assert_eq!(body["decision"]["review_threshold"], 0.4);
        assert_eq!(body["decision"]["demote_threshold"], 0.6);
        assert!(body["latency_ms"].as_f64().unwrap() >= 0.0);
    }
}

#[tokio::test]
async fn multipart_text_is_classified_like_json() {
    let state = baseline_state(ServeConfig::default());
    let text = "free cash prize click now";
    let json_answer = call(&state, post_json("/v1/classify", &json!({"text": text}))).await;
    let form = call(
        &state,
        multipart(&[("text", None, text.as_bytes()), ("id", None, b"m1")]),
    )
    .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert_eq!(form.body["id"], "m1");
    assert_eq!(
        form.body["probabilities"],
        json_answer.body["probabilities"]
    );
}

#[tokio::test]
async fn batch_answers_each_item_in_order_and_isolates_bad_items() {
    let state = baseline_state(ServeConfig::default());
    let items = json!({"items": [
        {"id": "0", "text": SPAM[0]},
        {"id": "1", "images": []},
        {"id": "2", "text": HAM[0]},
        {"id": "3", "text": HAM[1], "images": [{"base64": "aGk="}]},
    ]});
    let answer = call(&state, post_json("/v1/classify/batch", &items)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let results = answer.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["result"]["id"], "0");
    assert_eq!(results[0]["result"]["label"], "spam");
    assert_eq!(results[1]["error"]["code"], "invalid_request");
    assert_eq!(results[2]["result"]["id"], "2");
    assert_eq!(results[2]["result"]["label"], "ham");
    assert_eq!(results[3]["error"]["code"], "unsupported_input");
}

#[tokio::test]
async fn request_errors_are_json_with_stable_codes() {
    let config = ServeConfig {
        max_body_bytes: 4096,
        max_batch_items: 3,
        ..ServeConfig::default()
    };
    let state = baseline_state(config);
    let raw = |body: &'static str| {
        Request::post("/v1/classify")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    assert_error(
        &call(&state, raw("{not json")).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    let message = assert_error(
        &call(&state, raw(r#"{"txt": "typo"}"#)).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    assert!(message.contains("txt"), "{message}");
    assert_error(
        &call(&state, post_json("/v1/classify", &json!({}))).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let no_type = Request::post("/v1/classify")
        .body(Body::from(r#"{"text": "x"}"#))
        .unwrap();
    assert_error(
        &call(&state, no_type).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let huge = json!({"text": "spam ".repeat(2000)});
    assert_error(
        &call(&state, post_json("/v1/classify", &huge)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    let images = json!({"text": "x", "images": [{"base64": "aGk="}]});
    assert_error(
        &call(&state, post_json("/v1/classify", &images)).await,
        StatusCode::BAD_REQUEST,
        "unsupported_input",
    );
    let reason = json!({"text": "x", "reason": true});
    assert_error(
        &call(&state, post_json("/v1/classify", &reason)).await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    let many = json!({"items": [{"text": "a"}, {"text": "b"}, {"text": "c"}, {"text": "d"}]});
    assert_error(
        &call(&state, post_json("/v1/classify/batch", &many)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_items",
    );
    assert_error(
        &call(
            &state,
            post_json("/v1/classify/batch", &json!({"items": []})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_error(
        &call(&state, multipart(&[("colour", None, b"red")])).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_error(
        &call(&state, get("/v2/nothing")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &call(&state, get("/v1/classify")).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    assert_error(
        &call(&state, post_json("/v1/chat/completions", &chat)).await,
        StatusCode::BAD_REQUEST,
        "unsupported_model",
    );
}

#[tokio::test]
async fn bearer_token_guards_the_model_endpoints_only() {
    let state = baseline_state(ServeConfig {
        bearer_token: Some("s3cret".into()),
        ..ServeConfig::default()
    });
    let body = json!({"text": "hello"});
    assert_error(
        &call(&state, post_json("/v1/classify", &body)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let mut wrong = post_json("/v1/classify", &body);
    wrong
        .headers_mut()
        .insert("authorization", "Bearer s3creT".parse().unwrap());
    assert_error(
        &call(&state, wrong).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let mut right = post_json("/v1/classify", &body);
    right
        .headers_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert_eq!(call(&state, right).await.status, StatusCode::OK);
    assert_eq!(call(&state, get("/healthz")).await.status, StatusCode::OK);
    assert_eq!(call(&state, get("/metrics")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_504() {
    let state = baseline_state(ServeConfig {
        request_timeout: Duration::from_millis(200),
        ..ServeConfig::default()
    });
    // A multipart body that never finishes arriving keeps the handler waiting.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    sender
        .send(Ok(
            b"--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhel".to_vec(),
        ))
        .await
        .unwrap();
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
    let request = Request::post("/v1/classify")
        .header("content-type", "multipart/form-data; boundary=b")
        .body(body)
        .unwrap();
    let answer = call(&state, request).await;
    assert_error(&answer, StatusCode::GATEWAY_TIMEOUT, "timeout");
    drop(sender);
}

#[tokio::test]
async fn metrics_count_requests_batches_and_queue() {
    let state = baseline_state(ServeConfig::default());
    call(&state, post_json("/v1/classify", &json!({"text": "hello"}))).await;
    call(&state, post_json("/v1/classify", &json!({}))).await;
    let answer = call(&state, get("/metrics")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = answer.text;
    assert!(
        text.contains("verdict_requests_total{route=\"/v1/classify\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("verdict_requests_total{route=\"/v1/classify\",status=\"400\"} 1"));
    assert!(text.contains("verdict_request_duration_seconds_count{route=\"/v1/classify\"} 2"));
    assert!(text.contains("verdict_batch_size_count 1"));
    assert!(text.contains("verdict_queue_depth 0"));
    assert!(text.contains("verdict_model_ready 1"));
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_error_schema() {
    let state = baseline_state(ServeConfig::default());
    let answer = call(&state, get("/openapi.json")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let paths = answer.body["paths"].as_object().unwrap();
    for path in [
        "/v1/classify",
        "/v1/classify/batch",
        "/v1/chat/completions",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
    let schemas = answer.body["components"]["schemas"].as_object().unwrap();
    for schema in [
        "ClassifyRequest",
        "ClassifyResponse",
        "ErrorBody",
        "ChatCompletionRequest",
    ] {
        assert!(schemas.contains_key(schema), "missing schema {schema}");
    }
    assert!(answer.body["components"]["securitySchemes"]["bearer"].is_object());
}
