//! CLIP and SigLIP dual encoders on candle: model code read from `transformers` checkpoints,
//! the reference image preprocessing and tokenisation, zero-shot classification by label
//! prompts, linear heads on embeddings, and contrastive fine-tuning (projections and adapters).
//!
//! Every linear layer is built through [`verdict_models::nn::LinearFactory`], so an adapter
//! factory wraps e.g. all `q_proj`/`v_proj` of one tower without forking the model, and every
//! op backpropagates (no fused kernels without a backward pass).
//!
//! Entry points: [`Embedder`] (checkpoint directory -> normalised embeddings),
//! [`zero_shot::ZeroShotClassifier`] and [`head::LinearHead`] (per-label probabilities),
//! [`train::run`] (the five fine-tuning scenarios).

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
