//! Fine-tuning of Verdict classifiers: supervised data from a task, and a LoRA trainer.
//!
//! - [`sft`] turns a task and its samples into chat conversations (system prompt with the
//!   labels and the strict answer format, images then text, the answer) and reads/writes them
//!   as `messages` JSONL, the format other trainers read too.
//! - [`trainer::run`] fine-tunes the adapters of a [`session::Session`] (a base checkpoint
//!   loaded with `verdict_lora` adapters) on the answer tokens only, with AdamW, warmup and
//!   cosine/linear decay, gradient accumulation and clipping, left-padded micro-batches,
//!   validation by label scoring (macro-F1 from `verdict_eval`), early stopping that keeps
//!   the best adapter, metrics JSONL and atomic checkpoints that `resume` continues exactly.
//! - [`hints::plan`] suggests micro-batch and accumulation for the device's free memory.
//!
//! Every layer of the model keeps its activations for the backward pass (there is no
//! per-layer recomputation), so long image sequences need a small micro-batch with more
//! accumulation; the hint accounts for that.
//!
//! ```no_run
//! use std::path::Path;
//! use verdict_train::{session::Session, trainer, TrainConfig};
//! use verdict_models::Device;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (train, val): (Vec<verdict_train::sft::SftRecord>, Vec<_>) = (vec![], vec![]);
//! let config = TrainConfig::default();
//! let device = Device::Cpu;
//! let session = Session::load(Path::new("base"), &config.lora, &device,
//!     config.precision.dtype(&device), config.seed)?;
//! let data = trainer::Data { train, val, labels: vec!["spam".into(), "ham".into()] };
//! let outcome = trainer::run(&session, &data, &config, Path::new("out"), false, &mut trainer::Silent)?;
//! println!("{:?}", outcome.best);
//! # Ok(()) }
//! ```

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod hints;
pub mod optim;
pub mod schedule;
pub mod session;
pub mod sft;
pub mod trainer;
pub mod validate;

pub use config::{Precision, TrainConfig};
pub use error::{Error, Result};
