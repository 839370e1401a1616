//! Quantised frozen base weights for memory-lean fine-tuning (QLoRA).
//!
//! - [`nf4`]: 4-bit NormalFloat in blocks of 64 with double-quantised scales, bitsandbytes'
//!   layout and arithmetic.
//! - [`int8`]: 8-bit integers with one absmax scale per output row.
//! - [`dynamic`]: bitsandbytes' dynamic 8-bit map and block-wise 8-bit quantisation (used for
//!   the NF4 scales and for 8-bit optimiser states).
//! - [`QuantFactory`]: a [`verdict_models::nn::LinearFactory`] building [`QuantLinear`]
//!   layers that dequantise on the fly; hand it to
//!   `verdict_lora::LoraFactory::with_base_factory` to train adapters on a quantised base.
//!
//! ```no_run
//! # use std::path::Path;
//! # use verdict_models::{DType, Device, qwen3_vl::Qwen3VL};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let quant = verdict_quant::QuantFactory::new(verdict_quant::Scheme::Nf4);
//! let lora = verdict_lora::LoraFactory::with_base_factory(
//!     verdict_lora::LoraConfig::default(), &Device::Cpu, DType::F32, 0, quant.clone())?;
//! let model = Qwen3VL::load(Path::new("base"), DType::F32, &Device::Cpu, Some(lora.clone()))?;
//! println!("{}", quant.report()); // dense vs quantised bytes
//! # Ok(()) }
//! ```

pub mod dynamic;
mod dynamic_table;
pub mod error;
pub mod factory;
pub mod int8;
pub mod linear;
pub mod memory;
pub mod nf4;
pub mod optim8;

pub use error::{Error, Result};
pub use factory::{QuantFactory, Scheme};
pub use linear::QuantLinear;
pub use memory::MemoryReport;
