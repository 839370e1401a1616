//! Qwen3-VL as a served classifier: the instruction prompt, batched label scoring and
//! optional reasons from constrained JSON answers.
//!
//! Batching: when every label is a single token, a batch of prompts runs as one left-padded
//! forward pass and each row's label probabilities come from its last position, so padding
//! never changes an answer (the attention mask hides it; a test checks batched against
//! one-by-one scores). Labels of several tokens need a continuation per (prompt, label) on
//! its own KV cache, which the model's cache does not yet split per row, so those batches
//! are scored prompt by prompt (still one queue, one model thread).

use candle_core::{DType as TensorDType, Tensor};
use verdict_models::nn::ops::log_softmax_last_dim;
use verdict_models::qwen3_vl::classify::{Classifier, Query};
use verdict_models::qwen3_vl::generation::normalise;
use verdict_models::qwen3_vl::inputs::Preprocessor;
use verdict_models::qwen3_vl::processor::PixelValues;
use verdict_models::qwen3_vl::{Batch, Logits};
use verdict_models::token_bytes::TokenBytes;

use crate::model::{ClassifyInput, ClassifyOutput, LabelSet, ModelError};

/// Fewest items a preparation thread gets: below this, starting a thread costs more than the
/// encoding it takes over (a short text prompt encodes in well under a millisecond).
const ITEMS_PER_THREAD: usize = 2;

/// A Qwen3-VL checkpoint with the label set it scores.
pub struct QwenEngine {
    classifier: Classifier,
    labels: LabelSet,
    label_ids: Vec<Vec<u32>>,
    max_reason_bytes: usize,
    /// Bytes of every token, for log-probabilities (a token may hold part of a character).
    token_bytes: TokenBytes,
}

impl QwenEngine {
    pub fn new(classifier: Classifier, labels: LabelSet) -> Result<Self, String> {
        let mut labels = labels;
        labels
            .descriptions
            .resize(labels.names.len(), String::new());
        let label_ids = classifier
            .preprocessor()
            .label_token_ids(&labels.names)
            .map_err(|e| e.to_string())?;
        // Label columns are picked from the logits on the model's device, where an index
        // past the vocabulary is not caught: refuse such a pairing up front.
        let vocab = classifier.model().config().text_config.vocab_size;
        if let Some((name, id)) = labels
            .names
            .iter()
            .zip(&label_ids)
            .flat_map(|(name, ids)| ids.iter().map(move |&id| (name, id)))
            .find(|&(_, id)| id as usize >= vocab)
        {
            return Err(format!(
                "label {name:?} has token {id}, past the model's vocabulary of {vocab}"
            ));
        }
        let token_bytes = TokenBytes::from_tokenizer(classifier.preprocessor().chat().tokenizer());
        Ok(Self {
            classifier,
            labels,
            label_ids,
            max_reason_bytes: 200,
            token_bytes,
        })
    }

    /// Longest reason of a classification answer, in bytes.
    pub fn set_max_reason_bytes(&mut self, bytes: usize) {
        self.max_reason_bytes = bytes;
    }

    pub fn labels(&self) -> &LabelSet {
        &self.labels
    }

    /// The exact bytes of a token, or `None` for special tokens.
    pub fn token_bytes(&self, token: u32) -> Option<&[u8]> {
        self.token_bytes.get(token)
    }

    /// Bytes of every token (for byte-level answer grammars).
    pub fn vocabulary(&self) -> &TokenBytes {
        &self.token_bytes
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// True when every label is one token, so batches score in one padded forward pass.
    pub fn batches_in_one_pass(&self) -> bool {
        self.label_ids.iter().all(|ids| ids.len() == 1)
    }

    /// The classification instruction: the label set (with descriptions), then the text.
    pub fn instruction(&self, text: Option<&str>, json: bool) -> String {
        let mut out = String::from("Classify this content. Possible labels:\n");
        for (label, description) in self.labels.names.iter().zip(&self.labels.descriptions) {
            if description.is_empty() {
                out.push_str(&format!("- {label}\n"));
            } else {
                out.push_str(&format!("- {label}: {description}\n"));
            }
        }
        if let Some(text) = text {
            out.push_str(&format!("Content: {text}\n"));
        }
        if json {
            out.push_str(
                "Answer with JSON: {\"label\": ..., \"confidence\": ..., \"reason\": ...}.",
            );
        } else {
            out.push_str("Answer with the label only.");
        }
        out
    }

    fn query(&self, input: &ClassifyInput, json: bool) -> Query {
        Query {
            system: None,
            text: self.instruction(input.text.as_deref(), json),
            images: input.images.clone(),
        }
    }

    fn check(input: &ClassifyInput) -> Result<(), ModelError> {
        if input.text.is_none() && input.images.is_empty() {
            return Err(ModelError::Input(
                "nothing to classify: give `text` and/or images".into(),
            ));
        }
        Ok(())
    }

    /// Scores a batch; one result per input, in order.
    pub fn classify_batch(
        &self,
        inputs: &[ClassifyInput],
    ) -> Vec<Result<ClassifyOutput, ModelError>> {
        let mut results: Vec<Result<ClassifyOutput, ModelError>> = inputs
            .iter()
            .map(|input| Self::check(input).map(|_| empty_output()))
            .collect();
        let valid: Vec<usize> = (0..inputs.len()).filter(|&i| results[i].is_ok()).collect();
        if self.batches_in_one_pass() && valid.len() > 1 {
            let batch: Vec<&ClassifyInput> = valid.iter().map(|&i| &inputs[i]).collect();
            match self.score_padded(&batch) {
                Ok(rows) => {
                    for (&i, probabilities) in valid.iter().zip(rows) {
                        results[i] = Ok(output(probabilities));
                    }
                }
                Err(error) => {
                    // One bad prompt must not fail the others: retry them one by one.
                    tracing::warn!("padded batch failed ({error}); scoring one by one");
                    for &i in &valid {
                        results[i] = self.score_one(&inputs[i]);
                    }
                }
            }
        } else {
            for &i in &valid {
                results[i] = self.score_one(&inputs[i]);
            }
        }
        for (i, input) in inputs.iter().enumerate() {
            if !input.reason {
                continue;
            }
            if let Ok(scored) = &mut results[i] {
                match self.classifier.answer_json(
                    &self.query(input, true),
                    &self.labels.names,
                    self.max_reason_bytes,
                ) {
                    Ok(answer) => scored.reason = Some(answer.parsed.reason),
                    Err(error) => results[i] = Err(ModelError::Internal(error.to_string())),
                }
            }
        }
        results
    }

    fn score_one(&self, input: &ClassifyInput) -> Result<ClassifyOutput, ModelError> {
        self.classifier
            .score(&self.query(input, false), &self.labels.names)
            .map(|scores| output(scores.probabilities))
            .map_err(|e| ModelError::Internal(e.to_string()))
    }

    /// The left-padded model batch of several classification prompts, on the model's device.
    ///
    /// Tokenising and, above all, resizing images and cutting them into patches is CPU work
    /// that the model (on a GPU, the device) waits for, so the items are encoded on several
    /// threads at once; the batch keeps the items' order.
    ///
    /// # Shapes
    /// `pixel_values` `(patches of all images, patch_dim)`, images in item order.
    pub fn prepare_batch(&self, inputs: &[&ClassifyInput]) -> verdict_models::Result<Batch> {
        let preprocessor = self.classifier.preprocessor();
        let encode = |input: &ClassifyInput| {
            let text = self.instruction(input.text.as_deref(), false);
            let messages = Preprocessor::classification_messages(None, input.images.len(), &text);
            preprocessor.encode(&messages, &input.images)
        };
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(inputs.len().div_ceil(ITEMS_PER_THREAD))
            .max(1);
        let encoded: Vec<verdict_models::Result<(Vec<u32>, PixelValues)>> = if threads == 1 {
            inputs.iter().map(|input| encode(input)).collect()
        } else {
            let chunk = inputs.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let workers: Vec<_> = inputs
                    .chunks(chunk)
                    .map(|part| scope.spawn(|| part.iter().map(|input| encode(input)).collect()))
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|worker| {
                        worker.join().unwrap_or_else(|_| {
                            vec![Err(verdict_models::Error::Input(
                                "encoding a prompt panicked".into(),
                            ))]
                        })
                    })
                    .collect()
            })
        };
        let encoded = encoded
            .into_iter()
            .collect::<verdict_models::Result<Vec<_>>>()?;
        let mut sequences = Vec::with_capacity(inputs.len());
        // Patches of a batch of photos run to hundreds of MB: one allocation, no regrowth.
        let mut values = Vec::with_capacity(encoded.iter().map(|(_, p)| p.values.len()).sum());
        let mut grid_thw = Vec::new();
        for (ids, pixels) in encoded {
            sequences.push(ids);
            values.extend(pixels.values);
            grid_thw.extend(pixels.grid_thw);
        }
        let pixel_values = if grid_thw.is_empty() {
            None
        } else {
            let all = PixelValues {
                values,
                patch_dim: preprocessor.image_processor().config().patch_dim(),
                grid_thw: grid_thw.clone(),
            };
            Some(all.to_tensor(self.classifier.model().device())?)
        };
        Ok(Batch::left_padded(
            sequences,
            preprocessor.pad_token(),
            pixel_values,
            grid_thw,
        ))
    }

    /// Label probabilities of several prompts from one left-padded forward pass
    /// (single-token labels only).
    ///
    /// # Shapes
    /// Logits `(batch, 1, vocab)` at each row's last real position -> label log-probabilities
    /// `(batch, labels)` -> one probability vector per row.
    fn score_padded(&self, inputs: &[&ClassifyInput]) -> verdict_models::Result<Vec<Vec<f64>>> {
        let model = self.classifier.model();
        let batch = self.prepare_batch(inputs)?;
        let forward = model.forward(&batch, None, Logits::Last, false)?;
        // Normalise and pick the label columns where the logits are, so one `(batch, labels)`
        // table crosses to the host instead of `(batch, vocab)` (a GPU model's only sync).
        let first_tokens: Vec<u32> = self.label_ids.iter().map(|ids| ids[0]).collect();
        let columns = Tensor::new(first_tokens.as_slice(), model.device())?;
        let rows = log_softmax_last_dim(&forward.logits.squeeze(1)?.to_dtype(TensorDType::F32)?)?
            .index_select(&columns, 1)?
            .to_vec2::<f32>()?;
        Ok(rows
            .iter()
            .map(|row| {
                let log_probs: Vec<f64> = row.iter().map(|&v| v as f64).collect();
                normalise(&log_probs)
            })
            .collect())
    }
}

fn empty_output() -> ClassifyOutput {
    output(Vec::new())
}

fn output(probabilities: Vec<f64>) -> ClassifyOutput {
    ClassifyOutput {
        probabilities,
        multi_label: false,
        reason: None,
    }
}
