//! A dual encoder as a classifier candidate: per-label probabilities for images, either by
//! prompts (zero-shot) or from a trained linear head.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use image::RgbImage;

use crate::dual::Embedder;
use crate::head::{HeadConfig, HeadTargets, LinearHead};
use crate::preprocess::load_image;
use crate::zero_shot::{Scoring, ZeroShotClassifier};
use crate::{Error, Result};

/// Images embedded per forward pass.
const BATCH: usize = 64;

enum Scorer {
    ZeroShot(ZeroShotClassifier),
    Head(LinearHead),
}

/// An [`Embedder`] plus a way to turn image embeddings into label probabilities.
pub struct DualEncoderClassifier {
    embedder: Embedder,
    scorer: Scorer,
}

impl std::fmt::Debug for DualEncoderClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DualEncoderClassifier")
            .field("model", &self.embedder.dir)
            .field("labels", &self.labels())
            .finish()
    }
}

impl DualEncoderClassifier {
    /// Zero-shot by prompts: `label_prompts[i]` is put into every template for `labels[i]`.
    /// `Scoring::Softmax` for single-label / binary tasks, `Scoring::Sigmoid` for multi-label.
    pub fn zero_shot<S: AsRef<str>>(
        embedder: Embedder,
        labels: &[String],
        label_prompts: &[S],
        templates: &[S],
        scoring: Scoring,
    ) -> Result<Self> {
        let classifier =
            ZeroShotClassifier::new(&embedder, labels, label_prompts, templates, scoring)?;
        Ok(Self {
            embedder,
            scorer: Scorer::ZeroShot(classifier),
        })
    }

    /// A head saved by [`LinearHead::save`] (e.g. by the `linear_probe` scenario).
    pub fn with_head(embedder: Embedder, head_dir: &Path) -> Result<Self> {
        let head = LinearHead::load(head_dir, &embedder.device)?;
        Ok(Self {
            embedder,
            scorer: Scorer::Head(head),
        })
    }

    /// Trains a head on `images` (embedded by `embedder`, which stays frozen).
    pub fn fit_head(
        embedder: Embedder,
        labels: Vec<String>,
        images: &[RgbImage],
        targets: &HeadTargets,
        config: &HeadConfig,
    ) -> Result<Self> {
        let embeddings = embed(&embedder, images)?;
        let head = LinearHead::fit(labels, &embeddings, targets, config)?;
        Ok(Self {
            embedder,
            scorer: Scorer::Head(head),
        })
    }

    pub fn labels(&self) -> &[String] {
        match &self.scorer {
            Scorer::ZeroShot(c) => c.labels(),
            Scorer::Head(h) => &h.labels,
        }
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// `probabilities[i][j]`: probability of label `j` for image `i`, labels in
    /// [`DualEncoderClassifier::labels`] order.
    pub fn predict_proba(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let embeddings = embed(&self.embedder, images)?;
        let probabilities = match &self.scorer {
            Scorer::ZeroShot(c) => c.probabilities(&self.embedder, &embeddings)?,
            Scorer::Head(h) => h.probabilities(&embeddings)?,
        };
        Ok(probabilities.to_dtype(DType::F32)?.to_vec2::<f32>()?)
    }

    /// As [`DualEncoderClassifier::predict_proba`] for image files.
    pub fn predict_proba_paths(&self, paths: &[PathBuf]) -> Result<Vec<Vec<f32>>> {
        let images = paths
            .iter()
            .map(|p| load_image(p))
            .collect::<Result<Vec<_>>>()?;
        self.predict_proba(&images)
    }
}

/// Normalised embeddings of `images`, in batches.
///
/// # Shapes
/// Returns `(images.len(), dim)`.
pub fn embed(embedder: &Embedder, images: &[RgbImage]) -> Result<Tensor> {
    if images.is_empty() {
        return Err(Error::Input("no images".into()));
    }
    let parts = images
        .chunks(BATCH)
        .map(|chunk| Ok(embedder.embed_images(chunk)?.detach()))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0)?)
}

/// Loads a model fine-tuned by [`crate::train::run`]: the base checkpoint with the tuned
/// projections of `checkpoint_dir/projections.safetensors` and the PEFT adapter of
/// `checkpoint_dir/adapter`.
pub fn load_finetuned(base_dir: &Path, checkpoint_dir: &Path, device: &Device) -> Result<Embedder> {
    let files = verdict_models::qwen3_vl::weights::safetensors_files(base_dir)?;
    let mut tensors = verdict_models::qwen3_vl::weights::load_tensors(&files, device)?;
    let projections = checkpoint_dir.join("projections.safetensors");
    if projections.exists() {
        tensors.extend(candle_core::safetensors::load(&projections, device)?);
    }
    let adapter_dir = checkpoint_dir.join("adapter");
    let factory = verdict_lora::LoraFactory::load_peft(&adapter_dir, device, DType::F32)
        .map_err(|e| Error::Config(format!("{}: {e}", adapter_dir.display())))?;
    let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, device);
    let model = crate::DualEncoder::from_var_builder(base_dir, vb, Some(factory.clone()))?;
    factory
        .ensure_all_loaded()
        .map_err(|e| Error::Config(format!("{}: {e}", adapter_dir.display())))?;
    Embedder::with_model(base_dir, model, device)
}
