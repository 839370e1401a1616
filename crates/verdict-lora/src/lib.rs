//! LoRA adapters for any model built through [`verdict_models::nn::LayerBuilder`].
//!
//! LoRA learns a low-rank update of selected linear layers, `W + (alpha / r) * B @ A`, while
//! the base weights stay frozen under their checkpoint names. The adapter attaches by
//! swapping the model's linear-layer constructor ([`verdict_models::nn::LinearFactory`]), so
//! no model code is forked and any model of the workspace (Qwen3-VL, CLIP, SigLIP, ...) can be
//! adapted the same way.
//!
//! # Use
//!
//! ```no_run
//! use std::path::Path;
//! use verdict_lora::{LoraConfig, LoraFactory, ModuleSwitches, QWEN3_VL_LINEAR_NAMES};
//! use verdict_models::qwen3_vl::Qwen3VL;
//! use verdict_models::{DType, Device};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = Device::Cpu;
//! let config = LoraConfig {
//!     // Unsloth's switches; or `TargetModules::names(&["q_proj", "v_proj"])`, a regex, "all-linear".
//!     target_modules: ModuleSwitches::default().target_modules(&QWEN3_VL_LINEAR_NAMES)?,
//!     ..LoraConfig::default() // r = 16, alpha = 32, dropout = 0.05
//! };
//! let factory = LoraFactory::new(config, &device, DType::F32)?;
//! let model = Qwen3VL::load(Path::new("base"), DType::F32, &device, Some(factory.clone()))?;
//! let vars = factory.trainable_vars(); // give these (only) to the optimiser
//! factory.set_training(true); // dropout on
//! // ... train ...
//! factory.save_peft(Path::new("adapter"), "Qwen/Qwen3-VL-2B-Instruct")?;
//!
//! // Later, or with an adapter made by PEFT:
//! let loaded = LoraFactory::load_peft(Path::new("adapter"), &device, DType::F32)?;
//! let model = Qwen3VL::load(Path::new("base"), DType::F32, &device, Some(loaded.clone()))?;
//! loaded.ensure_all_loaded()?;
//! verdict_lora::merge_into_checkpoint(Path::new("base"), Path::new("adapter"), Path::new("merged"))?;
//! # Ok(()) }
//! ```
//!
//! # Format
//!
//! Adapters are saved exactly as PEFT saves them (see [`peft`]), so PEFT and vLLM load them,
//! and adapters trained with PEFT load here. Options that change the computation beyond
//! plain LoRA (DoRA, per-layer rank/alpha patterns, `modules_to_save`, bias training) are
//! refused with an error naming the field rather than silently ignored.

pub mod config;
pub mod error;
pub mod factory;
pub mod layer;
pub mod merge;
pub mod peft;
pub mod st;

pub use config::{LoraConfig, ModuleSwitches, TargetModules, ALL_LINEAR, QWEN3_VL_LINEAR_NAMES};
pub use error::{Error, Result};
pub use factory::LoraFactory;
pub use layer::{Adapter, LoraLinear, RngState};
pub use merge::merge_into_checkpoint;
