//! Paths that may be local or in object storage: `s3://bucket/prefix` (and anything else the
//! `object_store` crate was built for), with streaming copies, progress and multipart uploads.
//!
//! S3 credentials and endpoint come from the usual `AWS_*` variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL` for S3-compatible servers).

mod layout;
mod location;
mod transfer;

pub use layout::BucketLayout;
pub use location::Location;
pub use transfer::{copy, CopyOptions, CopyReport, TransferProgress};

/// Runs an async store operation from synchronous code (the CLI, trainers, tests).
pub fn block_on<F: std::future::Future>(future: F) -> crate::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| crate::MediaError::Invalid(format!("cannot start the async runtime: {e}")))?;
    Ok(runtime.block_on(future))
}
