//! CLIP (`CLIPModel`): a ViT image tower with a class token, a causal text transformer pooled
//! at the end-of-text token, linear projections into a shared space and a learned temperature.

pub mod config;
pub mod model;

pub use config::{ClipConfig, ClipTextConfig, ClipVisionConfig};
pub use model::{ClipModel, ClipTextTransformer, ClipVisionTransformer};
