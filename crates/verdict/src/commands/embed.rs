//! `verdict embed`: image embeddings of a CLIP/SigLIP checkpoint (and optionally a fine-tuned
//! version of it) into the Parquet "master vector file" that `verdict search` and the arena read.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use verdict_core::manifest::{is_url, read_manifest_strict, Sample};
use verdict_encoders::preprocess::load_image;
use verdict_encoders::{load_finetuned, Embedder};
use verdict_models::Device;
use verdict_retrieval::vectors::BATCH_ROWS;
use verdict_retrieval::{EmbeddingRecord, VectorFileWriter};

use super::progress;

/// Embed images into a Parquet vector file (`image_id`, `path`, `text`, `label`, `split`,
/// `base_embedding`, `finetuned_embedding`), 128 images per batch.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Images: a manifest (.jsonl, each sample's first image), image files or folders of images.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,

    /// Base CLIP or SigLIP checkpoint directory.
    #[arg(long)]
    pub model: PathBuf,

    /// A checkpoint written by `verdict encoders train` (an `epoch-N` folder with `adapter/`);
    /// adds the `finetuned_embedding` column.
    #[arg(long)]
    pub finetuned: Option<PathBuf>,

    /// Output Parquet file.
    #[arg(long, short)]
    pub out: PathBuf,
}

/// One image to embed with its metadata.
struct Item {
    id: String,
    path: PathBuf,
    text: Option<String>,
    label: Option<String>,
    split: Option<String>,
}

fn from_manifest(path: &Path) -> anyhow::Result<Vec<Item>> {
    let samples: Vec<Sample> = read_manifest_strict(path)
        .with_context(|| format!("reading manifest {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut items = Vec::new();
    for sample in samples {
        let Some(reference) = sample.images.first() else {
            continue;
        };
        if is_url(reference) {
            bail!(
                "{}: sample {} has a URL image; cache it first (`verdict media`)",
                path.display(),
                sample.sample_id
            );
        }
        items.push(Item {
            path: Sample::resolve(base, reference),
            text: sample.text.clone(),
            label: sample
                .label
                .as_ref()
                .and_then(|l| l.as_single())
                .map(str::to_string),
            split: sample.split.map(|s| s.name().to_string()),
            id: sample.sample_id,
        });
    }
    Ok(items)
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| {
            matches!(
                e.to_ascii_lowercase().as_str(),
                "png" | "jpg" | "jpeg" | "webp"
            )
        })
        .unwrap_or(false)
}

fn collect(inputs: &[PathBuf]) -> anyhow::Result<Vec<Item>> {
    let mut items = Vec::new();
    for input in inputs {
        if input.extension().is_some_and(|e| e == "jsonl") {
            items.extend(from_manifest(input)?);
            continue;
        }
        let mut files = Vec::new();
        if input.is_dir() {
            for entry in
                std::fs::read_dir(input).with_context(|| format!("listing {}", input.display()))?
            {
                let path = entry?.path();
                if is_image(&path) {
                    files.push(path);
                }
            }
            files.sort();
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            bail!("{} does not exist", input.display());
        }
        for path in files {
            let id = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            items.push(Item {
                id,
                path,
                text: None,
                label: None,
                split: None,
            });
        }
    }
    if items.is_empty() {
        bail!("no images found in the inputs");
    }
    Ok(items)
}

/// Rows of a batch: absolute paths, so the file is valid wherever it is moved.
fn embed_batch(
    items: &[Item],
    base: &Embedder,
    finetuned: Option<&Embedder>,
) -> anyhow::Result<Vec<EmbeddingRecord>> {
    let images = items
        .iter()
        .map(|item| load_image(&item.path))
        .collect::<Result<Vec<_>, _>>()?;
    let base_rows = base.embed_images(&images)?.to_vec2::<f32>()?;
    let tuned_rows = match finetuned {
        Some(model) => Some(model.embed_images(&images)?.to_vec2::<f32>()?),
        None => None,
    };
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, item)| EmbeddingRecord {
            image_id: item.id.clone(),
            path: std::fs::canonicalize(&item.path)
                .unwrap_or_else(|_| item.path.clone())
                .to_string_lossy()
                .to_string(),
            text: item.text.clone(),
            label: item.label.clone(),
            split: item.split.clone(),
            base_embedding: base_rows[i].clone(),
            finetuned_embedding: tuned_rows.as_ref().map(|rows| rows[i].clone()),
        })
        .collect())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = Device::Cpu;
    let items = collect(&args.inputs)?;
    let base = Embedder::load(&args.model, &device, None)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let finetuned = match &args.finetuned {
        Some(dir) => Some(
            load_finetuned(&args.model, dir, &device)
                .with_context(|| format!("loading fine-tuned checkpoint {}", dir.display()))?,
        ),
        None => None,
    };
    let started = std::time::Instant::now();
    let mut writer = None;
    let bar = progress::bar(items.len() as u64, "embedding");
    for batch in items.chunks(BATCH_ROWS) {
        let rows = embed_batch(batch, &base, finetuned.as_ref())?;
        if writer.is_none() {
            let dim = rows.first().map(|r| r.base_embedding.len()).unwrap_or(0);
            writer = Some(VectorFileWriter::create(
                &args.out,
                dim,
                finetuned.is_some(),
            )?);
        }
        if let Some(writer) = writer.as_mut() {
            writer.write(rows)?;
        }
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    let Some(writer) = writer else {
        bail!("nothing to write");
    };
    let rows = writer.rows();
    let path = writer.finish()?;
    progress::report_done(started, &format!("{rows} embeddings -> {}", path.display()));
    Ok(())
}
