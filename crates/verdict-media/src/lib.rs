//! Data plumbing between Verdict and the tools teams already run.
//!
//! - [`cache`]: downloads listing images by URL into a content cache (`sha1(url)` + extension),
//!   refusing anything that is not an image, and writes a per-URL status CSV.
//! - [`shards`]: WebDataset tar shards (the layout the Python `webdataset` library reads and
//!   writes) and a streaming reader with a shuffle buffer and worker sharding.
//! - [`store`]: every path may be local or an object-store URL (`s3://bucket/prefix`); copies
//!   stream with progress and use multipart uploads for large files.
//! - [`dvc`]: a content-addressed cache and `.dvc` pointer files in DVC's own format, so
//!   `dvc status`, `dvc checkout`, `dvc pull` and `dvc push` work on what Verdict records.

pub mod cache;
pub mod dvc;
pub mod error;
pub mod shards;
pub mod store;

pub use error::{MediaError, Result};
