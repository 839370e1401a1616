//! Parallel downloads into the cache: a concurrency limit, retries with exponential backoff and
//! jitter, timeouts, size caps, and validation before anything is renamed into place.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;

use super::name::cache_file_name;
use super::validate::{check_image, sniff, ImageProblem};
use crate::error::{MediaError, Result};

/// How downloads behave. The defaults suit listing images on public CDNs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FetchOptions {
    /// Downloads in flight at once.
    pub concurrency: usize,
    /// Extra attempts after the first for failures that may pass (5xx, 429, timeouts, cut bodies).
    pub retries: u32,
    /// First backoff; each retry doubles it, up to `backoff_max`, with random jitter.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    pub connect_timeout_ms: u64,
    /// Whole request, headers and body.
    pub timeout_ms: u64,
    /// Bodies larger than this are refused (checked on `Content-Length` and while streaming).
    pub max_bytes: u64,
    pub user_agent: String,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            concurrency: 16,
            retries: 3,
            backoff_base_ms: 500,
            backoff_max_ms: 10_000,
            connect_timeout_ms: 10_000,
            timeout_ms: 30_000,
            max_bytes: 20 * 1024 * 1024,
            user_agent: format!("verdict/{}", verdict_core::TOOL_VERSION),
        }
    }
}

/// The result for one URL; one row of `image_download_status.csv`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FetchOutcome {
    pub url: String,
    /// The cache file, when `ok`.
    pub path: Option<PathBuf>,
    pub ok: bool,
    /// Status of the last HTTP response (none when the cache already had it, or no response).
    pub http_status: Option<u16>,
    pub bytes: u64,
    pub error: Option<String>,
    /// Requests made (0 when served from the cache).
    pub attempts: u32,
}

/// A folder of cached images.
#[derive(Debug, Clone)]
pub struct ImageCache {
    dir: PathBuf,
}

/// One failed attempt: whether another attempt may succeed.
struct Failure {
    status: Option<u16>,
    message: String,
    retryable: bool,
}

impl ImageCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ImageCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `url`'s image lives (whether or not it was downloaded).
    pub fn path_for(&self, url: &str) -> PathBuf {
        self.dir.join(cache_file_name(url))
    }

    /// The cached image of `url`, if present and still an image.
    pub fn lookup(&self, url: &str) -> Option<PathBuf> {
        let path = self.path_for(url);
        let mut head = [0u8; 16];
        let mut file = std::fs::File::open(&path).ok()?;
        let read = std::io::Read::read(&mut file, &mut head).ok()?;
        sniff(&head[..read]).map(|_| path)
    }

    /// Downloads every URL not yet cached (duplicates once). Outcomes come back in input
    /// order, one per distinct URL; `on_done` is called as each finishes (for progress bars).
    pub fn fetch_all(
        &self,
        urls: &[String],
        options: &FetchOptions,
        on_done: &(dyn Fn(&FetchOutcome) + Sync),
    ) -> Result<Vec<FetchOutcome>> {
        std::fs::create_dir_all(&self.dir).map_err(|e| MediaError::io(&self.dir, e))?;
        let mut seen = HashSet::new();
        let unique: Vec<&String> = urls.iter().filter(|u| seen.insert(u.as_str())).collect();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(options.connect_timeout_ms))
            .timeout(Duration::from_millis(options.timeout_ms))
            .user_agent(options.user_agent.clone())
            .build()
            .map_err(|e| MediaError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| MediaError::Invalid(format!("cannot start the async runtime: {e}")))?;
        let concurrency = options.concurrency.max(1);
        let mut outcomes: Vec<(usize, FetchOutcome)> = runtime.block_on(async {
            futures::stream::iter(unique.iter().enumerate())
                .map(|(index, url)| {
                    let client = client.clone();
                    async move {
                        let outcome = self.fetch_one(&client, url, options).await;
                        on_done(&outcome);
                        (index, outcome)
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await
        });
        outcomes.sort_by_key(|(index, _)| *index);
        Ok(outcomes.into_iter().map(|(_, outcome)| outcome).collect())
    }

    async fn fetch_one(
        &self,
        client: &reqwest::Client,
        url: &str,
        options: &FetchOptions,
    ) -> FetchOutcome {
        let mut outcome = FetchOutcome {
            url: url.to_string(),
            path: None,
            ok: false,
            http_status: None,
            bytes: 0,
            error: None,
            attempts: 0,
        };
        if let Some(path) = self.lookup(url) {
            outcome.bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            outcome.path = Some(path);
            outcome.ok = true;
            return outcome;
        }
        if !verdict_core::manifest::is_url(url) {
            outcome.error = Some("not an http(s) URL".to_string());
            return outcome;
        }
        loop {
            outcome.attempts += 1;
            match attempt(client, url, options).await {
                Ok((status, body)) => {
                    outcome.http_status = Some(status);
                    match self.store(url, body).await {
                        Ok((path, bytes)) => {
                            outcome.path = Some(path);
                            outcome.bytes = bytes;
                            outcome.ok = true;
                            outcome.error = None;
                        }
                        Err(error) => outcome.error = Some(error.to_string()),
                    }
                    return outcome;
                }
                Err(failure) => {
                    outcome.http_status = failure.status;
                    outcome.error = Some(failure.message);
                    if !failure.retryable || outcome.attempts > options.retries {
                        return outcome;
                    }
                    tokio::time::sleep(backoff(outcome.attempts - 1, options)).await;
                }
            }
        }
    }

    /// Temp file in the cache folder, verified by size, then renamed: a crash or a full disk
    /// never leaves a partial image under a cache name.
    async fn store(&self, url: &str, body: Vec<u8>) -> Result<(PathBuf, u64)> {
        let path = self.path_for(url);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut temp =
                tempfile::NamedTempFile::new_in(&dir).map_err(|e| MediaError::io(&dir, e))?;
            temp.write_all(&body)
                .map_err(|e| MediaError::io(&path, e))?;
            temp.flush().map_err(|e| MediaError::io(&path, e))?;
            let written = temp
                .as_file()
                .metadata()
                .map_err(|e| MediaError::io(&path, e))?
                .len();
            if written != body.len() as u64 {
                return Err(MediaError::format(
                    &path,
                    format!("wrote {written} of {} bytes", body.len()),
                ));
            }
            temp.persist(&path)
                .map_err(|e| MediaError::io(&path, e.error))?;
            Ok((path, written))
        })
        .await
        .map_err(|e| MediaError::Invalid(format!("cache write task failed: {e}")))?
    }
}

/// `base * 2^retry`, capped, with "equal jitter": half fixed, half random, so clients that
/// failed together do not retry together.
fn backoff(retry: u32, options: &FetchOptions) -> Duration {
    let exponential = options
        .backoff_base_ms
        .saturating_mul(1u64 << retry.min(20))
        .min(options.backoff_max_ms);
    let half = exponential / 2;
    let jitter = if half > 0 {
        rand::rng().random_range(0..=half)
    } else {
        0
    };
    Duration::from_millis(half + jitter)
}

async fn attempt(
    client: &reqwest::Client,
    url: &str,
    options: &FetchOptions,
) -> std::result::Result<(u16, Vec<u8>), Failure> {
    let transport = |error: reqwest::Error, status: Option<u16>| Failure {
        status,
        message: if error.is_timeout() {
            "timed out".to_string()
        } else if error.is_body() || error.is_decode() {
            format!("truncated body: {}", error_chain(&error))
        } else {
            format!("request failed: {}", error_chain(&error))
        },
        retryable: true,
    };
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| transport(e, None))?;
    let status = response.status().as_u16();
    if !response.status().is_success() {
        let reason = response.status().canonical_reason().unwrap_or("");
        return Err(Failure {
            status: Some(status),
            message: format!("HTTP {status} {reason}").trim_end().to_string(),
            retryable: status >= 500 || status == 429 || status == 408,
        });
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let refuse = |message: String| Failure {
        status: Some(status),
        message,
        retryable: false,
    };
    let declared = response.content_length();
    if let Some(length) = declared {
        if length > options.max_bytes {
            return Err(refuse(format!(
                "too large: {length} bytes declared, cap is {}",
                options.max_bytes
            )));
        }
    }
    // Refuse HTML before downloading all of it.
    if let Some(content_type) = &content_type {
        if let Err(problem @ ImageProblem::NotImageContentType(_)) =
            check_image(b"", Some(content_type))
        {
            return Err(refuse(problem.to_string()));
        }
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(options.max_bytes) as usize);
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| transport(e, Some(status)))?;
        if (body.len() + chunk.len()) as u64 > options.max_bytes {
            return Err(refuse(format!(
                "too large: body exceeds the cap of {} bytes",
                options.max_bytes
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if let Some(length) = declared {
        if body.len() as u64 != length {
            return Err(Failure {
                status: Some(status),
                message: format!("truncated body: {} of {length} bytes", body.len()),
                retryable: true,
            });
        }
    }
    match check_image(&body, content_type.as_deref()) {
        Ok(_) => Ok((status, body)),
        Err(problem) => Err(Failure {
            status: Some(status),
            retryable: matches!(problem, ImageProblem::Truncated(_)),
            message: problem.to_string(),
        }),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let options = FetchOptions {
            backoff_base_ms: 100,
            backoff_max_ms: 1000,
            ..FetchOptions::default()
        };
        for retry in 0..8u32 {
            let full = (100u64 << retry).min(1000);
            let wait = backoff(retry, &options).as_millis() as u64;
            assert!(wait >= full / 2 && wait <= full, "retry {retry}: {wait} ms");
        }
    }
}
