//! SigLIP (`SiglipModel`): a ViT without class token pooled by a multi-head attention probe,
//! a bidirectional text transformer pooled at its last position, and a sigmoid (not softmax)
//! image-text objective with a learned scale and bias.

pub mod config;
pub mod model;

pub use config::{SiglipConfig, SiglipTextConfig, SiglipVisionConfig};
pub use model::{SiglipModel, SiglipTextTransformer, SiglipVisionTransformer};
