//! Batch labelling jobs: structured attribute extraction with a vision-language model
//! through an OpenAI-compatible API, as a crash-safe, resumable job.
//!
//! A [`JobSpec`] names the input table, the prompt, the fields to extract (types and allowed
//! values, sent as a JSON schema) and the endpoint (Verdict's own server by default). A
//! [`Job`] turns the items into request files in the batch API's JSONL format, uploads them,
//! creates and polls batches, downloads the results, validates every answer against the
//! schema, retries what failed, and finally writes a new table with one column per field and
//! a status column. [`Mode::Direct`] sends concurrent chat completions under a rate limit
//! instead.
//!
//! Crash safety: the job's state machine (`state.json`) is replaced atomically after every
//! transition, and every answer is appended to a synced journal (`answers.jsonl`) keyed by
//! item and try, so a process killed at any instant resumes where it stopped, without
//! losing or double-counting an item.

mod batch;
pub mod client;
pub mod control;
mod direct;
pub mod error;
pub mod input;
pub mod job;
pub mod journal;
pub mod merge;
pub mod request;
pub mod spec;
pub mod state;

pub use control::{cancel, status, StatusReport};
pub use error::{LabelError, Result};
pub use job::{Counts, Hooks, Job, NoProgress, Progress};
pub use spec::{FieldSpec, FieldType, JobSpec, Mode};
pub use state::Status;

/// Runs `future` on a runtime of its own, for callers without one (the CLI).
pub fn block_on<T>(future: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| LabelError::Protocol(format!("starting the async runtime: {e}")))?;
    runtime.block_on(future)
}
