//! The client side of the load generator: callers that each send their next request as soon
//! as the previous one returns, and what they saw (status codes, latency percentiles).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use verdict_serve::AppState;

pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

pub struct Level {
    pub concurrency: usize,
    pub ok: usize,
    pub rejected: usize,
    pub other: usize,
    /// What the other errors were (`500 internal`, `transport: connect`, ...) and how many.
    pub errors: BTreeMap<String, usize>,
    pub seconds: f64,
    pub p50: f64,
    pub p99: f64,
    /// Items per model call over the level, from the server's metrics (NaN if unreadable).
    pub mean_batch: f64,
}

pub async fn drive(
    url: &str,
    bodies: Arc<Vec<serde_json::Value>>,
    concurrency: usize,
    requests: usize,
) -> Level {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let metrics = url.replace("/v1/classify", "/metrics");
    let before = batch_totals(&client, &metrics).await;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, bodies, next, url) = (
            client.clone(),
            bodies.clone(),
            next.clone(),
            url.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= requests {
                    break;
                }
                let body = &bodies[i % bodies.len()];
                let sent = Instant::now();
                let (status, error) = match client.post(&url).json(body).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.bytes().await.unwrap_or_default();
                        let error = (status != 200 && status != 503).then(|| {
                            let code = serde_json::from_slice::<serde_json::Value>(&body)
                                .ok()
                                .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
                                .unwrap_or_default();
                            format!("{status} {code}")
                        });
                        (status, error)
                    }
                    Err(error) => (0, Some(transport_error(&error))),
                };
                seen.push((status, sent.elapsed().as_secs_f64() * 1000.0, error));
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    let seconds = started.elapsed().as_secs_f64();
    let mean_batch = match (before, batch_totals(&client, &metrics).await) {
        (Some((items0, calls0)), Some((items1, calls1))) if calls1 > calls0 => {
            (items1 - items0) / (calls1 - calls0)
        }
        _ => f64::NAN,
    };
    let mut latencies: Vec<f64> = all
        .iter()
        .filter(|(s, _, _)| *s == 200)
        .map(|(_, l, _)| *l)
        .collect();
    let mut errors = BTreeMap::new();
    for (_, _, error) in &all {
        if let Some(error) = error {
            *errors.entry(error.clone()).or_insert(0) += 1;
        }
    }
    latencies.sort_by(f64::total_cmp);
    Level {
        concurrency,
        ok: latencies.len(),
        rejected: all.iter().filter(|(s, _, _)| *s == 503).count(),
        other: all
            .iter()
            .filter(|(s, _, _)| *s != 200 && *s != 503)
            .count(),
        errors,
        seconds,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        mean_batch,
    }
}

/// Items classified and model calls so far (`verdict_batch_size_sum` and `_count`).
async fn batch_totals(client: &reqwest::Client, url: &str) -> Option<(f64, f64)> {
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    parse_batch_totals(&text)
}

fn parse_batch_totals(text: &str) -> Option<(f64, f64)> {
    let value = |name: &str| {
        text.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
    };
    Some((
        value("verdict_batch_size_sum")?,
        value("verdict_batch_size_count")?,
    ))
}

/// A request that got no answer, by what failed (the client's view).
fn transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else {
        "request"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    format!("transport {kind}: {cause}")
}

/// `" (500 internal x3, transport connect: ... x1)"`, or nothing without such errors.
pub fn describe_errors(errors: &BTreeMap<String, usize>) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = errors.iter().map(|(e, n)| format!("{e} x{n}")).collect();
    format!(" ({})", parts.join(", "))
}

pub async fn start(state: AppState) -> anyhow::Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/classify", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(verdict_serve::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Ok((url, stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_totals_come_from_the_histogram_lines() {
        let text = "verdict_batch_size_bucket{le=\"4\"} 3\nverdict_batch_size_sum 7\n\
                    verdict_batch_size_count 3\nverdict_batched_items_total 7\n";
        assert_eq!(parse_batch_totals(text), Some((7.0, 3.0)));
        assert_eq!(parse_batch_totals("verdict_batch_size_sum 7\n"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.5), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&sorted[..1], 0.99), 1.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
