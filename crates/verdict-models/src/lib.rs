//! Model definitions (Qwen3-VL, ...) on candle: configs read from checkpoints, gradient-safe layers.

pub mod constraint;
pub mod error;
pub mod nn;
pub mod qwen3_vl;

pub use error::{Error, Result};
