//! Prometheus metrics in the text exposition format: request counts by route and status,
//! request latency histograms by route, batch sizes, queue depth and rejections.
//!
//! A handful of series do not need a metrics framework; plain mutex-guarded maps keep the
//! output exactly what `/metrics` documents.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the batch size histogram buckets.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (i, bound) in bounds.iter().enumerate() {
            if value <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let separator = if labels.is_empty() { "" } else { "," };
        for (i, bound) in bounds.iter().enumerate() {
            let count = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct State {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    batch_sizes: Histogram,
    rejected: u64,
    items: u64,
}

/// Counters and histograms of one service.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<State>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = match self.state.lock() {
            Ok(guard) => guard,
            // A panic while holding the lock leaves counters that are still usable.
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// One finished request: its route pattern (never the raw path, to bound cardinality),
    /// status and latency.
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        self.with(|state| {
            *state
                .requests
                .entry((route.to_string(), status))
                .or_default() += 1;
            state
                .latency
                .entry(route.to_string())
                .or_default()
                .observe(&LATENCY_BUCKETS, seconds);
        });
    }

    /// One model call over `size` items.
    pub fn observe_batch(&self, size: usize) {
        self.with(|state| {
            state.batch_sizes.observe(&BATCH_BUCKETS, size as f64);
            state.items += size as u64;
        });
    }

    /// One job refused because the queue was full.
    pub fn observe_rejection(&self) {
        self.with(|state| state.rejected += 1);
    }

    /// Text exposition of every series; `queue_depth` is sampled by the caller.
    pub fn render(&self, queue_depth: usize, ready: bool) -> String {
        self.with(|state| {
            let mut out = String::new();
            out.push_str("# HELP verdict_requests_total HTTP requests by route and status.\n");
            out.push_str("# TYPE verdict_requests_total counter\n");
            for ((route, status), count) in &state.requests {
                let _ = writeln!(
                    out,
                    "verdict_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
            out.push_str(
                "# HELP verdict_request_duration_seconds Time from request to response head.\n",
            );
            out.push_str("# TYPE verdict_request_duration_seconds histogram\n");
            for (route, histogram) in &state.latency {
                histogram.write(
                    &mut out,
                    "verdict_request_duration_seconds",
                    &format!("route=\"{route}\""),
                    &LATENCY_BUCKETS,
                );
            }
            out.push_str("# HELP verdict_batch_size Items per model call.\n");
            out.push_str("# TYPE verdict_batch_size histogram\n");
            state
                .batch_sizes
                .write(&mut out, "verdict_batch_size", "", &BATCH_BUCKETS);
            out.push_str("# HELP verdict_batched_items_total Items classified by the model.\n");
            out.push_str("# TYPE verdict_batched_items_total counter\n");
            let _ = writeln!(out, "verdict_batched_items_total {}", state.items);
            out.push_str("# HELP verdict_queue_depth Jobs waiting for the model.\n");
            out.push_str("# TYPE verdict_queue_depth gauge\n");
            let _ = writeln!(out, "verdict_queue_depth {queue_depth}");
            out.push_str("# HELP verdict_rejected_total Jobs refused with 503 (queue full).\n");
            out.push_str("# TYPE verdict_rejected_total counter\n");
            let _ = writeln!(out, "verdict_rejected_total {}", state.rejected);
            out.push_str("# HELP verdict_model_ready 1 once the model is loaded.\n");
            out.push_str("# TYPE verdict_model_ready gauge\n");
            let _ = writeln!(out, "verdict_model_ready {}", u8::from(ready));
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.observe_batch(1);
        metrics.observe_batch(3);
        metrics.observe_batch(3);
        let text = metrics.render(0, true);
        assert!(
            text.contains("verdict_batch_size_bucket{le=\"1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("verdict_batch_size_bucket{le=\"4\"} 3"),
            "{text}"
        );
        assert!(text.contains("verdict_batch_size_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("verdict_batch_size_sum 7"));
        assert!(text.contains("verdict_batched_items_total 7"));
    }
}
