//! Gradient-safe building blocks shared by every model in this crate.
//!
//! Several fused candle-nn ops (`softmax_last_dim`, `rms_norm`, `LayerNorm`, `rope`) have no
//! backward pass and silently drop gradients. Everything here is written with elementary,
//! differentiable tensor ops so the same code serves inference and training. When no input of
//! an op tracks gradients (inference), the op takes the fused kernel instead: same result up to
//! rounding, one launch instead of several, which matters on accelerators.

pub mod attention;
pub mod builder;
pub mod custom_backward;
pub mod frozen;
pub mod gpu;
pub mod linear;
pub mod norm;
pub mod ops;
pub mod recompute;
pub mod seeded;

pub use attention::{attention_mask, merge_heads, scaled_dot_product_attention};
pub use builder::LayerBuilder;
pub use custom_backward::{custom_backward, custom_backward2};
pub use linear::{DefaultLinearFactory, Linear, LinearFactory, LinearLayer, LinearSpec};
pub use norm::{LayerNorm, RmsNorm};
pub use recompute::{checkpoint, grad_enabled, GradSink, NoGrad};
