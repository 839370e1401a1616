//! Shared test helpers: a small fitted TF-IDF baseline, states around it, and a `oneshot`
//! caller that returns status, headers and the JSON body.

#![allow(dead_code)] // each test file uses a different subset

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use verdict_baseline::{Baseline, BaselineConfig, Targets};
use verdict_eval::PolicyThresholds;
use verdict_serve::{AppState, ModelInfo, ServeConfig, ServePolicy, ServedModel, TaskSettings};

pub const HAM: [&str; 8] = [
    "meeting notes for the project review on monday",
    "can you send the quarterly report before friday",
    "lunch with the team next week at noon",
    "the build is green again after the fix",
    "please review my pull request about the parser",
    "minutes of the budget meeting are attached",
    "the conference call moved to thursday morning",
    "thanks for the feedback on the design document",
];

pub const SPAM: [&str; 8] = [
    "win a free prize now click here to claim cash",
    "cheap pills online buy now limited offer",
    "you won the lottery send your bank details",
    "free money fast click the link to win",
    "limited time offer buy cheap watches now",
    "claim your free cash prize winner click now",
    "lose weight fast with these cheap pills",
    "urgent winner claim your lottery prize money",
];

/// A TF-IDF + logistic regression spam filter fitted on the sentences above.
pub fn spam_baseline() -> Baseline {
    let texts: Vec<&str> = HAM.iter().chain(SPAM.iter()).copied().collect();
    let labels: Vec<String> = HAM
        .iter()
        .map(|_| "ham".to_string())
        .chain(SPAM.iter().map(|_| "spam".to_string()))
        .collect();
    let (baseline, _) = Baseline::fit(
        &texts,
        &Targets::SingleLabel(labels),
        None,
        &BaselineConfig::default(),
    )
    .expect("fit baseline");
    baseline
}

pub fn spam_policy() -> TaskSettings {
    TaskSettings {
        policy: Some(ServePolicy {
            positive: "spam".into(),
            thresholds: PolicyThresholds {
                review: 0.4,
                demote: 0.6,
            },
        }),
        ..TaskSettings::without_task(None)
    }
}

pub fn info() -> ModelInfo {
    ModelInfo {
        id: "spam-tfidf".into(),
        path: PathBuf::from("spam-tfidf"),
        adapter: None,
    }
}

pub fn baseline_state(config: ServeConfig) -> AppState {
    AppState::with_model(
        config,
        info(),
        &spam_policy(),
        ServedModel::Baseline(Box::new(spam_baseline())),
    )
    .expect("state")
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    pub text: String,
}

pub async fn call(state: &AppState, request: Request<Body>) -> Answer {
    let response = verdict_serve::router(state.clone())
        .oneshot(request)
        .await
        .expect("infallible router");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

pub fn post_json(path: &str, body: &serde_json::Value) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

/// Asserts a JSON error with `status` and `code`, and returns its message.
pub fn assert_error(answer: &Answer, status: StatusCode, code: &str) -> String {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.body["error"]["code"], code, "{}", answer.text);
    let message = answer.body["error"]["message"]
        .as_str()
        .expect("error message")
        .to_string();
    assert!(!message.is_empty());
    message
}

/// A `multipart/form-data` body from `(name, file name, bytes)` parts.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Request<Body> {
    let boundary = "verdict-test-boundary";
    let mut body = Vec::new();
    for (name, file_name, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file_name {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Request::post("/v1/classify")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .expect("request")
}

/// A PNG of one colour.
pub fn png(width: u32, height: u32, colour: [u8; 3]) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb(colour));
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("png");
    bytes
}
