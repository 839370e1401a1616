//! Zero-shot classification: each label becomes the mean embedding of its prompts
//! ("a photo of a {label}." ...), images are scored against those class embeddings.
//!
//! Averaging several prompt templates (a prompt ensemble) is what the CLIP paper does for its
//! zero-shot numbers; it smooths out the wording of any single prompt.

use candle_core::{Tensor, D};
use verdict_models::nn::ops::softmax_last_dim;

use crate::dual::Embedder;
use crate::transformer::l2_normalize;
use crate::{Error, Result};

/// The default prompt ensemble; `{}` is replaced by the label's prompt text.
pub const DEFAULT_TEMPLATES: [&str; 4] = [
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a rendering of a {}.",
];

/// How per-label scores become probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// One label per image: softmax over the labels' logits (single-label and binary tasks).
    Softmax,
    /// Labels independent: `sigmoid(scale * cos + bias)` per label (multi-label tasks; the
    /// calibrated choice for SigLIP, whose bias was trained for it).
    Sigmoid,
}

/// Class embeddings of a label set for one model.
#[derive(Debug, Clone)]
pub struct ZeroShotClassifier {
    labels: Vec<String>,
    /// `(labels, dim)`, L2-normalised.
    class_embeddings: Tensor,
    scoring: Scoring,
}

impl ZeroShotClassifier {
    /// Builds class embeddings. `label_prompts[i]` is the text put into the templates for label
    /// `i` (often the label name with underscores replaced, or a short description).
    pub fn new<S: AsRef<str>>(
        embedder: &Embedder,
        labels: &[String],
        label_prompts: &[S],
        templates: &[S],
        scoring: Scoring,
    ) -> Result<Self> {
        if labels.is_empty() || labels.len() != label_prompts.len() {
            return Err(Error::Input(format!(
                "{} labels but {} label prompts",
                labels.len(),
                label_prompts.len()
            )));
        }
        if templates.is_empty() {
            return Err(Error::Input("no prompt templates".into()));
        }
        let mut rows = Vec::with_capacity(labels.len());
        for prompt in label_prompts {
            let texts: Vec<String> = templates
                .iter()
                .map(|t| t.as_ref().replace("{}", prompt.as_ref()))
                .collect();
            let embedded = embedder.embed_texts(&texts)?;
            rows.push(embedded.mean_keepdim(0)?);
        }
        let class_embeddings = l2_normalize(&Tensor::cat(&rows, 0)?)?;
        Ok(Self {
            labels: labels.to_vec(),
            class_embeddings,
            scoring,
        })
    }

    /// From precomputed class embeddings `(labels, dim)` (normalised here).
    pub fn from_embeddings(
        labels: Vec<String>,
        embeddings: &Tensor,
        scoring: Scoring,
    ) -> Result<Self> {
        Ok(Self {
            labels,
            class_embeddings: l2_normalize(embeddings)?,
            scoring,
        })
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn class_embeddings(&self) -> &Tensor {
        &self.class_embeddings
    }

    /// Per-label probabilities for normalised image embeddings.
    ///
    /// # Shapes
    /// `image_embeddings`: `(n, dim)` -> `(n, labels)`.
    pub fn probabilities(&self, embedder: &Embedder, image_embeddings: &Tensor) -> Result<Tensor> {
        let logits = embedder
            .model
            .logits(image_embeddings, &self.class_embeddings)?;
        Ok(match self.scoring {
            Scoring::Softmax => softmax_last_dim(&logits)?,
            Scoring::Sigmoid => candle_nn::ops::sigmoid(&logits)?,
        })
    }

    /// Index of the highest-scoring label per image.
    pub fn predict(&self, embedder: &Embedder, image_embeddings: &Tensor) -> Result<Vec<usize>> {
        let probabilities = self.probabilities(embedder, image_embeddings)?;
        Ok(probabilities
            .argmax(D::Minus1)?
            .to_vec1::<u32>()?
            .into_iter()
            .map(|i| i as usize)
            .collect())
    }
}
