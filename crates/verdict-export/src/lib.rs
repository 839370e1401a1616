//! Publishing fine-tuned models in the formats other tools load.
//!
//! - [`merged`]: a Hugging Face checkpoint directory with the adapter folded in
//!   (`transformers`, vLLM).
//! - [`peft`]: the adapter alone in PEFT's layout.
//! - [`gguf`]: the language model as a GGUF v3 file for llama.cpp, in F16, Q8_0 or Q4_K_M.
//! - [`card`]: a model card (`README.md`) built from the training run's files.
//!
//! Every export is built beside its destination and renamed into place, so a failed export
//! leaves the previous output untouched.

pub mod card;
pub mod error;
pub mod gguf;
pub mod merged;
pub mod peft;
mod staging;

pub use error::{Error, Result};
