//! From conversations to training tensors: prompt + answer token ids, left-padded micro-batches
//! and the loss on the answer tokens only.

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};
use verdict_models::nn::ops::log_softmax_last_dim;
use verdict_models::nn::GradSink;
use verdict_models::qwen3_vl::inputs::Preprocessor;
use verdict_models::qwen3_vl::processor::{load_image, PixelValues};
use verdict_models::qwen3_vl::{Batch, Qwen3VL};

use crate::sft::SftRecord;
use crate::{Error, Result};

/// What the loss is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Next-token cross-entropy on every answer token (and the end-of-turn token).
    #[default]
    Answer,
    /// Cross-entropy over the label set at the first answer token: a classification head on
    /// the label tokens (their first tokens must differ).
    LabelTokens,
}

/// One conversation as token ids and pixels.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The prompt up to and including the assistant opener.
    pub prompt: Vec<u32>,
    /// The answer tokens followed by the end-of-turn token.
    pub answer: Vec<u32>,
    pub pixels: PixelValues,
    /// Index of the gold label in the task's label list.
    pub label: usize,
}

/// The model prompt of a record (system, images, text), without the answer.
pub fn prompt_batch(
    preprocessor: &Preprocessor,
    record: &SftRecord,
    device: &Device,
) -> Result<Batch> {
    let (ids, pixels) = encode_prompt(preprocessor, record)?;
    let pixel_values = if pixels.grid_thw.is_empty() {
        None
    } else {
        Some(pixels.to_tensor(device)?)
    };
    Ok(Batch::single(ids, pixel_values, pixels.grid_thw))
}

fn encode_prompt(
    preprocessor: &Preprocessor,
    record: &SftRecord,
) -> Result<(Vec<u32>, PixelValues)> {
    let images = record
        .images()
        .iter()
        .map(|path| load_image(path))
        .collect::<verdict_models::Result<Vec<_>>>()?;
    let system = record.system();
    let messages =
        Preprocessor::classification_messages(system.as_deref(), images.len(), &record.user_text());
    Ok(preprocessor.encode(&messages, &images)?)
}

/// Tokenises a record for training; `labels` are the task's label names.
pub fn encode(
    preprocessor: &Preprocessor,
    record: &SftRecord,
    labels: &[String],
) -> Result<Encoded> {
    let (prompt, pixels) = encode_prompt(preprocessor, record)?;
    let mut answer = preprocessor.chat().encode_continuation(&record.answer())?;
    if let Some(end) = preprocessor.chat().token_id("<|im_end|>") {
        answer.push(end);
    }
    let label = labels
        .iter()
        .position(|l| *l == record.label)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "sample {}: label {:?} is not one of {labels:?}",
                record.sample_id, record.label
            ))
        })?;
    Ok(Encoded {
        prompt,
        answer,
        pixels,
        label,
    })
}

/// Mean loss of a micro-batch under `objective`, as a scalar tensor that carries gradients.
///
/// Sequences are left-padded (the model's padding convention); logits are computed only at
/// the positions that predict answer tokens. With `recompute`, decoder layers are recomputed
/// in the backward pass and their adapters' gradients arrive in that sink.
pub fn micro_batch_loss(
    model: &Qwen3VL,
    examples: &[Encoded],
    pad_id: u32,
    objective: Objective,
    label_first_tokens: &[u32],
    recompute: Option<&GradSink>,
) -> Result<Tensor> {
    let device = model.device();
    let sequences: Vec<Vec<u32>> = examples
        .iter()
        .map(|e| e.prompt.iter().chain(&e.answer).copied().collect())
        .collect();
    let len = sequences.iter().map(Vec::len).max().unwrap_or(0);
    let mut values = Vec::new();
    let mut grid = Vec::new();
    for e in examples {
        values.extend_from_slice(&e.pixels.values);
        grid.extend_from_slice(&e.pixels.grid_thw);
    }
    let pixel_values = match examples.first() {
        Some(first) if !grid.is_empty() => Some(
            PixelValues {
                values,
                patch_dim: first.pixels.patch_dim,
                grid_thw: grid.clone(),
            }
            .to_tensor(device)?,
        ),
        _ => None,
    };
    let batch = Batch::left_padded(sequences, pad_id, pixel_values, grid);
    let hidden = model.forward_hidden_with(&batch, recompute)?;
    let (b, s, h) = hidden.dims3()?;
    // Row r, position p predicts token p + 1; pick the positions predicting answer tokens.
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (i, e) in examples.iter().enumerate() {
        let pad = len - e.prompt.len() - e.answer.len();
        let first = pad + e.prompt.len() - 1;
        let count = match objective {
            Objective::Answer => e.answer.len(),
            Objective::LabelTokens => 1,
        };
        for k in 0..count {
            rows.push((i * s + first + k) as u32);
            targets.push(match objective {
                Objective::Answer => e.answer[k],
                Objective::LabelTokens => e.label as u32,
            });
        }
    }
    let n = rows.len();
    let rows = Tensor::from_vec(rows, n, device)?;
    let picked = hidden.reshape((b * s, h))?.index_select(&rows, 0)?;
    let mut logits = model.project(&picked)?.to_dtype(DType::F32)?;
    if objective == Objective::LabelTokens {
        let columns = Tensor::new(label_first_tokens, device)?;
        logits = logits.index_select(&columns, 1)?;
    }
    let log_probs = log_softmax_last_dim(&logits)?;
    let targets = Tensor::from_vec(targets, (n, 1), device)?;
    Ok(log_probs.gather(&targets, D::Minus1)?.mean_all()?.neg()?)
}
