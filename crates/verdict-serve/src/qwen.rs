//! Qwen3-VL as a served classifier: the instruction prompt, batched label scoring and
//! optional reasons from constrained JSON answers.
//!
//! Batching: when every label is a single token, a batch of prompts runs as one left-padded
//! forward pass and each row's label probabilities come from its last position, so padding
//! never changes an answer (the attention mask hides it; a test checks batched against
//! one-by-one scores). Labels of several tokens need a continuation per (prompt, label) on
//! its own KV cache, which the model's cache does not yet split per row, so those batches
//! are scored prompt by prompt (still one queue, one model thread).
//!
//! Encoding ahead: rendering the prompt, tokenising it and cutting its images into patches
//! (copied to the model's device) needs no model, so [`QwenEngine::encode`] runs per item
//! before the batch exists (the server does it while the request waits for the queue); the
//! model thread then only pads, concatenates and runs, and a GPU does not idle on host work.

use candle_core::{DType as TensorDType, Tensor};
use verdict_models::nn::ops::log_softmax_last_dim;
use verdict_models::qwen3_vl::classify::{Classifier, Query};
use verdict_models::qwen3_vl::generation::normalise;
use verdict_models::qwen3_vl::inputs::Preprocessor;
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
    /// Each label's first token, on the model's device: the logit columns a padded batch
    /// reads (built once, not per batch).
    label_columns: Tensor,
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
        let first_tokens: Vec<u32> = label_ids
            .iter()
            .filter_map(|ids| ids.first().copied())
            .collect();
        let label_columns = Tensor::new(first_tokens.as_slice(), classifier.model().device())
            .map_err(|e| e.to_string())?;
        let token_bytes = TokenBytes::from_tokenizer(classifier.preprocessor().chat().tokenizer());
        Ok(Self {
            classifier,
            labels,
            label_ids,
            label_columns,
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

    /// The host work of one item ahead of its batch: checks it, and when the labels score in
    /// one padded pass, renders its prompt, tokenises it and cuts its images into patches,
    /// copied to the model's device in the vision tower's input precision (half the bytes
    /// of `f32` for a bf16 model, same result).
    ///
    /// `None` for labels of several tokens: those items are scored one by one from their input.
    pub fn encode(&self, input: &ClassifyInput) -> Result<Option<EncodedPrompt>, ModelError> {
        Self::check(input)?;
        if !self.batches_in_one_pass() {
            return Ok(None);
        }
        self.encode_prompt(input).map(Some).map_err(model_error)
    }

    fn encode_prompt(&self, input: &ClassifyInput) -> verdict_models::Result<EncodedPrompt> {
        let preprocessor = self.classifier.preprocessor();
        let text = self.instruction(input.text.as_deref(), false);
        let messages = Preprocessor::classification_messages(None, input.images.len(), &text);
        let (ids, pixels) = preprocessor.encode(&messages, &input.images)?;
        let values = if pixels.grid_thw.is_empty() {
            None
        } else {
            let model = self.classifier.model();
            Some(pixels.to_tensor_as(model.vision().pixel_dtype(), model.device())?)
        };
        Ok(EncodedPrompt {
            ids,
            pixels: values,
            grid_thw: pixels.grid_thw,
        })
    }

    /// Scores a batch; one result per input, in order.
    pub fn classify_batch(
        &self,
        inputs: &[ClassifyInput],
    ) -> Vec<Result<ClassifyOutput, ModelError>> {
        let encoded = parallel_map(inputs, |input| self.encode(input));
        let ready: Vec<(&ClassifyInput, Option<&EncodedPrompt>)> = inputs
            .iter()
            .zip(&encoded)
            .filter_map(|(input, item)| Some((input, item.as_ref().ok()?.as_ref())))
            .collect();
        let mut scored = self.classify_encoded(&ready).into_iter();
        encoded
            .iter()
            .map(|item| match item {
                Ok(_) => scored
                    .next()
                    .unwrap_or_else(|| Err(ModelError::Internal("missing batch result".into()))),
                Err(error) => Err(error.clone()),
            })
            .collect()
    }

    /// Scores items that went through [`QwenEngine::encode`], each with its encoded prompt
    /// (`None` where the labels need one-by-one scoring); one result per item, in order.
    pub fn classify_encoded(
        &self,
        items: &[(&ClassifyInput, Option<&EncodedPrompt>)],
    ) -> Vec<Result<ClassifyOutput, ModelError>> {
        let mut results: Vec<Result<ClassifyOutput, ModelError>> =
            items.iter().map(|_| Ok(empty_output())).collect();
        let prompts: Vec<(usize, &EncodedPrompt)> = items
            .iter()
            .enumerate()
            .filter_map(|(i, (_, prompt))| prompt.map(|p| (i, p)))
            .collect();
        let mut one_by_one: Vec<usize> =
            (0..items.len()).filter(|&i| items[i].1.is_none()).collect();
        if !prompts.is_empty() {
            let batch: Vec<&EncodedPrompt> = prompts.iter().map(|&(_, p)| p).collect();
            match self.score_padded(&batch) {
                Ok(rows) => {
                    for (&(i, _), probabilities) in prompts.iter().zip(rows) {
                        results[i] = Ok(output(probabilities));
                    }
                }
                Err(error) => {
                    // One bad prompt must not fail the others: retry them one by one.
                    tracing::warn!("padded batch failed ({error}); scoring one by one");
                    one_by_one.extend(prompts.iter().map(|&(i, _)| i));
                }
            }
        }
        for i in one_by_one {
            results[i] = self.score_one(items[i].0);
        }
        for (i, (input, _)) in items.iter().enumerate() {
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
            .map_err(model_error)
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
        let encoded = parallel_map(inputs, |input| self.encode_prompt(input))
            .into_iter()
            .collect::<verdict_models::Result<Vec<_>>>()?;
        self.assemble(&encoded.iter().collect::<Vec<_>>())
    }

    /// One left-padded batch of encoded prompts: token rows padded on the left, the images'
    /// patches concatenated in item order where they already are (on a GPU, one device copy).
    pub fn assemble(&self, prompts: &[&EncodedPrompt]) -> verdict_models::Result<Batch> {
        let sequences = prompts.iter().map(|p| p.ids.clone()).collect();
        let grid_thw: Vec<[usize; 3]> = prompts
            .iter()
            .flat_map(|p| p.grid_thw.iter().copied())
            .collect();
        let parts: Vec<&Tensor> = prompts.iter().filter_map(|p| p.pixels.as_ref()).collect();
        let pixel_values = match parts.as_slice() {
            [] => None,
            [one] => Some((*one).clone()),
            many => Some(Tensor::cat(many, 0)?),
        };
        Ok(Batch::left_padded(
            sequences,
            self.classifier.preprocessor().pad_token(),
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
    fn score_padded(&self, prompts: &[&EncodedPrompt]) -> verdict_models::Result<Vec<Vec<f64>>> {
        // Inference: an adapter's variables enter as constants, so the fused kernels apply.
        let _inference = verdict_models::nn::NoGrad::new();
        let model = self.classifier.model();
        let batch = self.assemble(prompts)?;
        let forward = model.forward(&batch, None, Logits::Last, false)?;
        // Normalise and pick the label columns where the logits are, so one `(batch, labels)`
        // table crosses to the host instead of `(batch, vocab)` (a GPU model's only sync).
        let rows = log_softmax_last_dim(&forward.logits.squeeze(1)?.to_dtype(TensorDType::F32)?)?
            .index_select(&self.label_columns, 1)?
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

/// One classification prompt made ready ahead of its batch by [`QwenEngine::encode`].
pub struct EncodedPrompt {
    ids: Vec<u32>,
    /// `(patches, patch_dim)` of the item's images, on the model's device; `None` without images.
    pixels: Option<Tensor>,
    grid_thw: Vec<[usize; 3]>,
}

impl std::fmt::Debug for EncodedPrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedPrompt")
            .field("tokens", &self.ids.len())
            .field("grid_thw", &self.grid_thw)
            .finish()
    }
}

/// Whose fault a failed encoding is: an image or prompt the processor refuses is the
/// caller's; anything else (tokenizer, device) is the service's.
fn model_error(error: verdict_models::Error) -> ModelError {
    match error {
        verdict_models::Error::Input(message) | verdict_models::Error::Preprocess(message) => {
            ModelError::Input(message)
        }
        other => ModelError::Internal(other.to_string()),
    }
}

/// `f` over `items` on several threads (in order), when there are enough items to pay for
/// starting them: tokenising and cutting images into patches is CPU work the model waits for.
pub(crate) fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len().div_ceil(ITEMS_PER_THREAD))
        .max(1);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            // A worker panic is a bug in the processor: let it reach the batcher's guard.
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
            .collect()
    })
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
