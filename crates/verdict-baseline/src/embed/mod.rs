//! Sentence embeddings from a local sentence-transformers directory, on candle (CPU).
//! The BERT code is this crate's own (`bert.rs`), written against Hugging Face `BertModel`.

mod bert;
mod encoder;
mod fused;
mod kernels;
mod matmul;
mod ops;

pub use bert::{l2_normalize, mean_pool, BertConfig, BertModel};
pub use encoder::{Kernels, Pooling, SentenceEncoder, DEFAULT_BATCH_SIZE};
pub use ops::{bias_gelu_erf, erf_f32, exp_f32, softmax_last_dim};
