//! Fine-tuning a dual encoder: the five scenarios of the ablation
//! (`zero_shot`, `linear_probe`, `vision_lora`, `text_lora`, `dual_lora`), the optimiser,
//! schedule, checkpoints and the loop ([`run`]).

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod optim;
pub mod run;
pub mod schedule;
pub mod trainable;

pub use config::{Scenario, TrainConfig};
pub use data::PairExample;
pub use run::{run, ScenarioReport, TrainProgress};
