//! The data spine of Verdict: what a task is, what a sample is, and how samples are imported,
//! validated, split and sealed.
//!
//! Everything here is plain data and file handling; no ML dependencies. Later stages
//! (rendering, training, evaluation, serving) read the types defined here.

pub mod candidates;
pub mod error;
pub mod fetch;
pub mod fsio;
pub mod import;
pub mod manifest;
pub mod provenance;
pub mod seal;
pub mod split;
pub mod stages;
pub mod stats;
pub mod task;
pub mod templates;
pub mod validate;
pub mod workspace;

pub use error::{CoreError, Problem, Result};
pub use manifest::{LabelValue, Sample, Split};
pub use task::TaskSpec;

/// The tool version recorded in every artifact.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
