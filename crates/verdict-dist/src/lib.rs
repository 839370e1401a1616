//! Scale-out for Verdict.
//!
//! - [`shard`]: `--shard i/N` work selection (by position or by stable key hash) and part
//!   naming, for embarrassingly parallel stages run as Kubernetes Indexed Jobs or Slurm
//!   arrays; [`merge`] checks and combines their parts.
//! - [`launch`]: the torchrun environment (`RANK`, `WORLD_SIZE`, ...).
//! - [`comm`]: the [`Communicator`] collectives, in-process ([`LocalWorld`]), multi-process
//!   over TCP ([`TcpWorld`]) and NCCL (feature `nccl`).
//! - [`grads`]: bucketed gradient averaging for data-parallel training; [`layout`]: how a
//!   global batch is split over ranks and resumed on another number of ranks;
//!   [`checkpoint`]: rank-0-only checkpoint writing.

pub mod checkpoint;
pub mod comm;
pub mod error;
pub mod grads;
pub mod launch;
pub mod layout;
pub mod merge;
pub mod shard;

pub use comm::{Communicator, LocalComm, LocalWorld, TcpComm, TcpWorld};
pub use error::{DistError, Result};
pub use grads::{GradientBuckets, DEFAULT_BUCKET_BYTES};
pub use launch::LaunchEnv;
pub use layout::{BatchLayout, Progress};
pub use merge::{merge, MergeKind, MergeOptions, MergeSummary};
pub use shard::{key_bucket, ShardSpec};
