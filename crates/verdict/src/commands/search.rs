//! `verdict search`: nearest images of a vector file to a query image or text.

use std::path::PathBuf;

use anyhow::{bail, Context};
use verdict_encoders::preprocess::load_image;
use verdict_encoders::{load_finetuned, Embedder};
use verdict_models::Device;
use verdict_retrieval::search::HNSW_THRESHOLD;
use verdict_retrieval::{CosineIndex, VectorFile};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    /// Exact below 20,000 vectors, HNSW above.
    Auto,
    Exact,
    Hnsw,
}

/// Top-k neighbours by cosine similarity in a vector file written by `verdict embed`; prints
/// one JSON object per hit.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Vector file (.parquet).
    pub vectors: PathBuf,

    /// Query image.
    #[arg(long, conflicts_with = "text")]
    pub image: Option<PathBuf>,

    /// Query text.
    #[arg(long)]
    pub text: Option<String>,

    /// The checkpoint that produced the base embeddings.
    #[arg(long)]
    pub model: PathBuf,

    /// Search the fine-tuned embeddings with this `verdict encoders train` checkpoint.
    #[arg(long)]
    pub finetuned: Option<PathBuf>,

    /// Number of neighbours.
    #[arg(long, short, default_value_t = 10)]
    pub k: usize,

    #[arg(long, value_enum, default_value_t = IndexKind::Auto)]
    pub index: IndexKind,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = Device::Cpu;
    let file = VectorFile::read(&args.vectors)
        .with_context(|| format!("reading {}", args.vectors.display()))?;
    let embedder = match &args.finetuned {
        Some(dir) => {
            if !file.has_finetuned {
                bail!(
                    "{} has no finetuned_embedding column",
                    args.vectors.display()
                );
            }
            load_finetuned(&args.model, dir, &device)?
        }
        None => Embedder::load(&args.model, &device, None)?,
    };
    let query = match (&args.image, &args.text) {
        (Some(path), None) => embedder.embed_images(&[load_image(path)?])?,
        (None, Some(text)) => embedder.embed_texts(&[text.as_str()])?,
        _ => bail!("give exactly one of --image or --text"),
    };
    let query = query.squeeze(0)?.to_vec1::<f32>()?;
    if query.len() != file.dim {
        bail!(
            "the model embeds in {} dimensions, {} holds {}; use the checkpoint that wrote it",
            query.len(),
            args.vectors.display(),
            file.dim
        );
    }
    let matrix = file.matrix(args.finetuned.is_some())?;
    let index = match args.index {
        IndexKind::Auto => CosineIndex::auto(matrix, file.dim)?,
        IndexKind::Exact => CosineIndex::exact(matrix, file.dim)?,
        IndexKind::Hnsw => CosineIndex::hnsw(matrix, file.dim)?,
    };
    tracing::debug!(
        "searching {} vectors ({}; HNSW from {HNSW_THRESHOLD})",
        index.len(),
        if index.is_hnsw() { "HNSW" } else { "exact" }
    );
    for (rank, hit) in index.top_k(&query, args.k)?.into_iter().enumerate() {
        let record = &file.records[hit.index];
        println!(
            "{}",
            serde_json::json!({
                "rank": rank + 1,
                "score": hit.score,
                "image_id": record.image_id,
                "path": record.path,
                "label": record.label,
                "text": record.text,
            })
        );
    }
    Ok(())
}
