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
//!
//! # A data-parallel step
//! ```text
//! let env = LaunchEnv::from_env()?.unwrap_or_else(LaunchEnv::single);
//! let comm = TcpWorld::connect(&env, timeout)?;            // or NcclComm::init(&env, &comm)
//! let layout = BatchLayout::new(global_batch, env.world_size, micro_batch)?;
//! let buckets = GradientBuckets::new(&trainable_vars, DEFAULT_BUCKET_BYTES);
//! // each step:
//! let mine = layout.rank_samples(&epoch_order, position, comm.rank());
//! let mut grads = /* gradient of the mean loss over `mine`, micro-batches weighted by size */;
//! buckets.average(&comm, &mut grads, mine.len() as f64)?; // before clipping: all ranks clip alike
//! clip_grad_norm(&mut grads, max_norm)?; optimizer.step(&grads, lr)?;
//! position += layout.global_batch;
//! // checkpoints: checkpoint::write_on_rank_zero(&comm, || save(..))?, with a `Progress`.
//! ```

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
