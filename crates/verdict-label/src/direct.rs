//! Direct mode: concurrent `/v1/chat/completions` calls under a rate limit, for small jobs
//! or endpoints without a batch API. Same journal and state file as batch mode: each answer
//! is journalled as it arrives, so a crash loses at most the calls in flight.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{ChatAnswer, Client};
use crate::error::Result;
use crate::job::{Job, Progress};
use crate::journal::Outcome;
use crate::request::{Attempt, RequestBuilder};
use crate::state::Status;

impl Job {
    pub(crate) async fn run_direct(&mut self, progress: &dyn Progress) -> Result<()> {
        let client = Arc::new(Client::new(&self.spec.endpoint, &self.spec.retry)?);
        let concurrency = self.spec.direct.concurrency.max(1);
        let rate = self.spec.direct.requests_per_second;
        let spacing = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        loop {
            if self.cancel_requested() {
                self.write_table()?;
                return Err(crate::LabelError::Cancelled(self.state.name.clone()));
            }
            let pending = self.pending_attempts();
            if pending.is_empty() {
                return Ok(());
            }
            if self.state.status != Status::InProgress {
                self.state.status = Status::InProgress;
                self.save()?;
            }
            let spec = self.spec.clone();
            let builder = RequestBuilder::new(&spec);
            let mut queue = pending.into_iter();
            let mut calls: JoinSet<(Attempt, Result<ChatAnswer>)> = JoinSet::new();
            let mut next_start = Instant::now();
            loop {
                let room = calls.len() < concurrency;
                let waiting = queue.len() > 0;
                if room && waiting && Instant::now() >= next_start {
                    let Some(attempt) = queue.next() else { break };
                    let body = builder.body(&self.table.items[attempt.item], attempt.strict)?;
                    let client = client.clone();
                    calls.spawn(async move { (attempt, client.chat(&body).await) });
                    if let Some(spacing) = spacing {
                        next_start = Instant::now() + spacing;
                    }
                    continue;
                }
                if calls.is_empty() && !waiting {
                    break;
                }
                let joined = if room && waiting {
                    tokio::select! {
                        joined = calls.join_next(), if !calls.is_empty() => joined,
                        () = tokio::time::sleep_until(next_start) => continue,
                    }
                } else {
                    calls.join_next().await
                };
                let Some(joined) = joined else { continue };
                let (attempt, answer) = joined.map_err(|e| {
                    crate::LabelError::Protocol(format!("a chat call task failed: {e}"))
                })?;
                let outcome = match answer {
                    Ok(ChatAnswer::Text(text)) => self.judge(&text),
                    Ok(ChatAnswer::Refused { status, message }) => Outcome::Failed {
                        error: format!("HTTP {status}: {message}"),
                    },
                    // The endpoint is gone past the retries: stop, keep what is journalled.
                    Err(error) => {
                        calls.abort_all();
                        return Err(error);
                    }
                };
                self.record(attempt, outcome)?;
                let counts = self.counts();
                progress.update(
                    counts.labelled + counts.invalid + counts.failed,
                    self.state.items,
                    "in_progress",
                );
            }
            if self.cancel_requested() {
                continue;
            }
        }
    }
}
