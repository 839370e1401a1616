//! CLIP and SigLIP dual encoders on candle: model code read from `transformers` checkpoints
//! (`CLIPModel`, `SiglipModel`), the reference image preprocessing and tokenisation, zero-shot
//! classification by label prompts, linear heads on embeddings, and contrastive fine-tuning of
//! projections and LoRA adapters.
//!
//! Every linear layer is built through [`verdict_models::nn::LinearFactory`], so an adapter
//! factory (`verdict_lora::LoraFactory`) wraps e.g. the `q_proj`/`v_proj` layers of one tower
//! without forking the model, and every op backpropagates (no fused kernel without a backward
//! pass; `tests/gradients.rs` checks that every parameter receives a gradient).
//!
//! # Use as a classifier
//!
//! ```no_run
//! use std::path::Path;
//! use verdict_encoders::zero_shot::{Scoring, DEFAULT_TEMPLATES};
//! use verdict_encoders::{DualEncoderClassifier, Embedder};
//! use verdict_models::Device;
//!
//! # fn main() -> verdict_encoders::Result<()> {
//! let device = Device::Cpu;
//! let embedder = Embedder::load(Path::new("clip-vit-base-patch32"), &device, None)?;
//! let labels = vec!["safe".to_string(), "not_safe".to_string()];
//! let prompts = ["safe content", "explicit content"];
//! let classifier = DualEncoderClassifier::zero_shot(
//!     embedder,
//!     &labels,
//!     &prompts,
//!     &DEFAULT_TEMPLATES,
//!     Scoring::Softmax, // Sigmoid for multi-label tasks
//! )?;
//! let probabilities = classifier.predict_proba_paths(&["a.jpg".into()])?; // [[p_safe, p_not_safe]]
//! # Ok(()) }
//! ```
//!
//! A trained head instead: [`DualEncoderClassifier::with_head`] (a head saved by the
//! `linear_probe` scenario) or [`DualEncoderClassifier::fit_head`]; a fine-tuned model:
//! [`load_finetuned`] (base checkpoint + an `epoch-N` folder written by [`train::run`]).
//!
//! # Checkpoints
//!
//! A directory as published: `config.json` (`model_type` `"clip"` or `"siglip"`),
//! `model.safetensors` (or shards), `preprocessor_config.json` (or `processor_config.json`),
//! `tokenizer.json`. SigLIP checkpoints that only ship a SentencePiece `spiece.model` need a
//! `tokenizer.json` converted from it. CLIP texts are padded to the longest with a mask,
//! SigLIP texts to the full context without one, as each family was trained.

pub mod classify;
pub mod clip;
pub mod dual;
pub mod error;
pub mod head;
pub mod loss;
pub mod preprocess;
pub mod siglip;
pub mod tokenize;
pub mod train;
pub mod transformer;
pub mod zero_shot;

pub use classify::{load_finetuned, DualEncoderClassifier};
pub use dual::{DualEncoder, Embedder, EncoderKind};
pub use error::{Error, Result};
pub use verdict_models::{DType, Device};
