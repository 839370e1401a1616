//! Retrieval over embeddings: the Parquet "master vector file" ([`vectors`]), cosine top-k
//! search, exact or with an HNSW index ([`search`]), and recall@k / mAP ([`metrics`]).
//!
//! Nothing here knows about models: embeddings come in as `f32` rows, L2-normalised by the
//! producer, so cosine similarity is a dot product.

pub mod error;
pub mod metrics;
pub mod search;
pub mod vectors;

pub use error::{Error, Result};
pub use metrics::{retrieval_metrics, RetrievalMetrics};
pub use search::{CosineIndex, Hit};
pub use vectors::{EmbeddingRecord, VectorFile, VectorFileWriter};
