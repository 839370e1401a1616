//! Qwen3-VL: vision tower, language model, multimodal rotary positions and generation.

pub mod chat;
pub mod classify;
pub mod config;
pub mod generation;
pub mod inputs;
pub mod model;
pub mod processor;
pub mod resize;
pub mod rope;
pub mod text;
pub mod vision;
pub mod weights;

pub use config::Config;
pub use model::{Batch, ForwardOutput, Logits, Qwen3VL};
pub use text::KvCache;
