//! Model definitions (Qwen3-VL, ...) on candle: configs read from checkpoints, gradient-safe layers.

pub mod constraint;
pub mod device;
pub mod error;
pub mod json_constraint;
pub mod nn;
pub mod qwen3_vl;
pub mod token_bytes;

/// Tensor types callers need to pick a precision and device without depending on candle.
pub use candle_core::{DType, Device};
pub use device::parse_device;
pub use error::{Error, Result};
