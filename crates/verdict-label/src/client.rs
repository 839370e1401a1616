//! HTTP client for an OpenAI-compatible endpoint: files, batches and chat completions, each
//! call retried with exponential backoff (and `Retry-After`) on connection errors, timeouts,
//! 429 and 5xx. Other 4xx answers are not retried: they will not change.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{LabelError, Result};
use crate::spec::{EndpointSpec, RetrySpec};

/// A batch as the batch API describes it (the fields this client reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteBatch {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub input_file_id: Option<String>,
    #[serde(default)]
    pub output_file_id: Option<String>,
    #[serde(default)]
    pub error_file_id: Option<String>,
    #[serde(default)]
    pub request_counts: Option<RequestCounts>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub total: usize,
    pub completed: usize,
    pub failed: usize,
}

/// The answer of one chat completion call.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatAnswer {
    /// The assistant message text.
    Text(String),
    /// The endpoint refused this request for good (a 4xx other than 429).
    Refused { status: u16, message: String },
}

pub struct Client {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    retry: RetrySpec,
}

impl Client {
    /// A client for `endpoint`; the API key comes from the environment variable it names.
    pub fn new(endpoint: &EndpointSpec, retry: &RetrySpec) -> Result<Self> {
        let api_key = match &endpoint.api_key_env {
            Some(variable) => Some(std::env::var(variable).map_err(|_| {
                LabelError::Protocol(format!(
                    "the endpoint's API key variable {variable} is not set"
                ))
            })?),
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(retry.timeout_seconds.max(0.001)))
            .build()
            .map_err(|e| LabelError::Protocol(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base_url: endpoint.base_url.trim_end_matches('/').to_string(),
            api_key,
            retry: retry.clone(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends the request built by `build` until it succeeds, fails for good or the retries
    /// run out.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let url = self.url(path);
        let attempts = self.retry.max_attempts.max(1);
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            let mut request = build(self.http.request(method.clone(), &url));
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key);
            }
            let mut wait = None;
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        return Ok(response);
                    }
                    wait = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .filter(|s| s.is_finite())
                        .map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)));
                    let body = response.text().await.unwrap_or_default();
                    let message = error_message(&body);
                    if status.as_u16() != 429 && !status.is_server_error() {
                        return Err(LabelError::Http {
                            method: method.to_string(),
                            url,
                            status: status.as_u16(),
                            message,
                        });
                    }
                    last_error = format!("HTTP {}: {message}", status.as_u16());
                }
                Err(error) => last_error = error.to_string(),
            }
            if attempt == attempts {
                break;
            }
            let backoff = self.backoff(attempt);
            let wait = wait
                .map(|w| w.min(Duration::from_millis(self.retry.max_backoff_ms)))
                .unwrap_or(backoff);
            tracing::warn!(
                "{method} {url}: {last_error}; retry {attempt}/{} in {:.1} s",
                attempts - 1,
                wait.as_secs_f64()
            );
            tokio::time::sleep(wait).await;
        }
        Err(LabelError::Unavailable {
            method: method.to_string(),
            url,
            attempts,
            message: last_error,
        })
    }

    /// `initial * 2^(attempt-1)`, capped, with jitter in [50 %, 100 %] so many clients that
    /// failed together do not come back together.
    fn backoff(&self, attempt: usize) -> Duration {
        let exponent = (attempt.saturating_sub(1)).min(30) as u32;
        let base = self
            .retry
            .initial_backoff_ms
            .saturating_mul(1u64 << exponent)
            .min(self.retry.max_backoff_ms);
        let jitter = rand::rng().random_range(0.5..=1.0);
        Duration::from_secs_f64(base as f64 / 1000.0 * jitter)
    }

    async fn json(&self, response: reqwest::Response, what: &str) -> Result<Value> {
        response
            .json()
            .await
            .map_err(|e| LabelError::Protocol(format!("{what}: the answer is not JSON ({e})")))
    }

    /// Uploads a request file (`purpose=batch`) and returns its file id.
    pub async fn upload(&self, name: &str, bytes: &[u8]) -> Result<String> {
        let boundary = format!("verdict-{:016x}", rand::rng().random::<u64>());
        let mut body = Vec::with_capacity(bytes.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: application/jsonl\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let response = self
            .send(reqwest::Method::POST, "/files", |r| {
                r.header(reqwest::header::CONTENT_TYPE, &content_type)
                    .body(body.clone())
            })
            .await?;
        let value = self.json(response, "file upload").await?;
        value["id"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| LabelError::Protocol(format!("file upload answered no id: {value}")))
    }

    pub async fn create_batch(
        &self,
        input_file_id: &str,
        completion_window: &str,
        metadata: Value,
    ) -> Result<RemoteBatch> {
        let body = json!({
            "input_file_id": input_file_id,
            "endpoint": crate::request::CHAT_PATH,
            "completion_window": completion_window,
            "metadata": metadata,
        });
        let response = self
            .send(reqwest::Method::POST, "/batches", |r| r.json(&body))
            .await?;
        self.batch_from(response).await
    }

    pub async fn batch(&self, id: &str) -> Result<RemoteBatch> {
        let response = self
            .send(reqwest::Method::GET, &format!("/batches/{id}"), |r| r)
            .await?;
        self.batch_from(response).await
    }

    pub async fn cancel_batch(&self, id: &str) -> Result<RemoteBatch> {
        let response = self
            .send(
                reqwest::Method::POST,
                &format!("/batches/{id}/cancel"),
                |r| r,
            )
            .await?;
        self.batch_from(response).await
    }

    /// The most recent batches (newest first), up to `pages` pages of 100.
    pub async fn list_batches(&self, pages: usize) -> Result<Vec<RemoteBatch>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..pages {
            let path = match &after {
                Some(after) => format!("/batches?limit=100&after={after}"),
                None => "/batches?limit=100".to_string(),
            };
            let response = self.send(reqwest::Method::GET, &path, |r| r).await?;
            let value = self.json(response, "batch list").await?;
            let data: Vec<RemoteBatch> = serde_json::from_value(value["data"].clone())
                .map_err(|e| LabelError::Protocol(format!("batch list: {e}")))?;
            after = data.last().map(|b| b.id.clone());
            out.extend(data);
            if !value["has_more"].as_bool().unwrap_or(false) || after.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// The bytes of a file (batch output or errors).
    pub async fn content(&self, file_id: &str) -> Result<Vec<u8>> {
        let path = format!("/files/{file_id}/content");
        let response = self.send(reqwest::Method::GET, &path, |r| r).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| LabelError::Protocol(format!("downloading {file_id}: {e}")))?;
        Ok(bytes.to_vec())
    }

    /// One chat completion; a final 4xx comes back as [`ChatAnswer::Refused`], transient
    /// failures past the retries as an error.
    pub async fn chat(&self, body: &Value) -> Result<ChatAnswer> {
        let sent = self
            .send(
                reqwest::Method::POST,
                crate::request::CHAT_PATH.trim_start_matches("/v1"),
                |r| r.json(body),
            )
            .await;
        match sent {
            Ok(response) => {
                let value = self.json(response, "chat completion").await?;
                Ok(ChatAnswer::Text(message_text(&value).ok_or_else(|| {
                    LabelError::Protocol(format!("chat completion without a message: {value}"))
                })?))
            }
            Err(LabelError::Http {
                status, message, ..
            }) => Ok(ChatAnswer::Refused { status, message }),
            Err(other) => Err(other),
        }
    }

    async fn batch_from(&self, response: reqwest::Response) -> Result<RemoteBatch> {
        let value = self.json(response, "batch").await?;
        serde_json::from_value(value.clone())
            .map_err(|e| LabelError::Protocol(format!("unexpected batch object ({e}): {value}")))
    }
}

/// `choices[0].message.content` of a chat completion.
pub fn message_text(completion: &Value) -> Option<String> {
    completion["choices"][0]["message"]["content"]
        .as_str()
        .map(String::from)
}

/// The `error.message` of an error body, or the body itself.
pub fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(String::from))
        .unwrap_or_else(|| body.chars().take(300).collect())
}
