//! A checkpoint directory used as a classifier: label scoring and constrained JSON answers
//! for one conversation (images + text), with the checkpoint's own processor and template.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device};
use image::RgbImage;

use super::generation::{generate, score_labels, GenerationConfig, LabelScores};
use super::inputs::Preprocessor;
use super::model::Qwen3VL;
use crate::json_constraint::{parse_label_json, LabelJson, LabelJsonSchema};
use crate::{Error, Result};

/// What to classify: the instruction text, optional system prompt and the images.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub system: Option<String>,
    pub text: String,
    pub images: Vec<RgbImage>,
}

/// A constrained JSON answer, as generated and as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonAnswer {
    /// The generated text, exactly.
    pub text: String,
    pub parsed: LabelJson,
    /// Number of generated tokens.
    pub tokens: usize,
}

/// Model plus preprocessor of one checkpoint directory.
#[derive(Debug)]
pub struct Classifier {
    model: Qwen3VL,
    preprocessor: Preprocessor,
}

impl Classifier {
    /// Loads weights, config, tokenizer, chat template and image processor from `dir`.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self {
            model: Qwen3VL::load(dir, dtype, device, None)?,
            preprocessor: Preprocessor::from_dir(dir)?,
        })
    }

    pub fn new(model: Qwen3VL, preprocessor: Preprocessor) -> Self {
        Self {
            model,
            preprocessor,
        }
    }

    pub fn model(&self) -> &Qwen3VL {
        &self.model
    }

    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    fn prompt(&self, query: &Query) -> Result<super::model::Batch> {
        let messages = Preprocessor::classification_messages(
            query.system.as_deref(),
            query.images.len(),
            &query.text,
        );
        self.preprocessor
            .prompt(&messages, &query.images, self.model.device())
    }

    /// Probability of every label, from the log-probability of its tokens as the start of the
    /// assistant answer, normalised over `labels`.
    pub fn score(&self, query: &Query, labels: &[String]) -> Result<LabelScores> {
        if labels.is_empty() {
            return Err(Error::Input("no labels to score".into()));
        }
        let batch = self.prompt(query)?;
        let label_ids = self.preprocessor.label_token_ids(labels)?;
        score_labels(&self.model, &batch, &label_ids)
    }

    /// Greedy answer restricted to `{"label": .., "confidence": .., "reason": ..}` with the label
    /// from `labels`; `max_reason_bytes` bounds the free-text part (and so the runtime).
    pub fn answer_json(
        &self,
        query: &Query,
        labels: &[String],
        max_reason_bytes: usize,
    ) -> Result<JsonAnswer> {
        let batch = self.prompt(query)?;
        let mut schema = LabelJsonSchema::new(labels.iter().cloned());
        schema.max_reason_bytes = max_reason_bytes;
        let max_new_tokens = schema.max_output_bytes() + 1;
        let mut constraint = self.preprocessor.json_constraint(Arc::new(schema))?;
        let config = GenerationConfig {
            max_new_tokens,
            stop_tokens: self.preprocessor.stop_tokens().to_vec(),
            ..GenerationConfig::default()
        };
        let generation = generate(&self.model, &batch, &config, Some(&mut constraint))?;
        let answer_ids: Vec<u32> = generation
            .tokens
            .iter()
            .copied()
            .filter(|t| !config.stop_tokens.contains(t))
            .collect();
        let text = self.preprocessor.chat().decode(&answer_ids, true)?;
        let parsed = parse_label_json(&text, labels)?;
        Ok(JsonAnswer {
            text,
            parsed,
            tokens: generation.tokens.len(),
        })
    }
}
