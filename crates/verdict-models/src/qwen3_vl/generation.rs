//! Inference on top of [`Qwen3VL`]: greedy / temperature generation with stop tokens,
//! constrained generation, and label scoring.
//!
//! Label scoring is how a classifier asks a generative model for calibrated probabilities:
//! the prompt runs once, its KV cache is shared by every candidate label, and each label's
//! token sequence gets a log-probability; normalising over the label set gives a distribution
//! that does not depend on how much probability mass the model puts elsewhere.

use candle_core::{DType, Tensor, D};
use rand::{Rng, SeedableRng};

use super::model::{Batch, Logits, Qwen3VL};
use super::rope::MropePositions;
use crate::constraint::TokenConstraint;
use crate::nn::ops::log_softmax_last_dim;
use crate::nn::NoGrad;
use crate::{Error, Result};

/// How to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Upper bound on generated tokens (stop tokens included).
    pub max_new_tokens: usize,
    /// Generation ends after emitting any of these (e.g. `<|im_end|>`, `<|endoftext|>`).
    pub stop_tokens: Vec<u32>,
    /// 0 means greedy (argmax); otherwise sample from `softmax(logits / temperature)`.
    pub temperature: f64,
    /// Seed of the sampler, so sampled outputs are reproducible.
    pub seed: u64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            stop_tokens: Vec::new(),
            temperature: 0.0,
            seed: 0,
        }
    }
}

/// Result of a generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Generated tokens, the stop token included when one ended generation.
    pub tokens: Vec<u32>,
    /// Why generation ended.
    pub finish: FinishReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    StopToken,
    MaxTokens,
    ConstraintDone,
}

/// Picks the next token: the argmax at temperature 0, otherwise a sample from
/// `softmax(logits / temperature)` drawn with `rng`.
pub fn pick(logits: &[f32], temperature: f64, rng: &mut rand::rngs::StdRng) -> u32 {
    let argmax = || {
        let mut best = 0;
        for (i, &v) in logits.iter().enumerate() {
            if v > logits[best] {
                best = i;
            }
        }
        best as u32
    };
    if temperature <= 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&v| (((v - max) as f64) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut target = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if target < *w {
            return i as u32;
        }
        target -= w;
    }
    argmax()
}

/// Generates a continuation of one prompt. With a `constraint`, every step is restricted to
/// the tokens it allows, and generation ends when it reports completion.
pub fn generate(
    model: &Qwen3VL,
    prompt: &Batch,
    config: &GenerationConfig,
    mut constraint: Option<&mut dyn TokenConstraint>,
) -> Result<Generation> {
    // Inference: trainable adapters enter as constants, so the fused kernels apply.
    let _inference = NoGrad::new();
    if prompt.batch_size() != 1 {
        return Err(Error::Input(format!(
            "generate takes one prompt, got {}",
            prompt.batch_size()
        )));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed);
    let mut cache = model.new_cache();
    let output = model.forward(prompt, Some(&mut cache), Logits::Last, false)?;
    let mut next_position = output.positions.next_position.clone();
    let mut key_valid: Option<Vec<Vec<bool>>> = prompt.attention_mask.clone();
    let mut logits = output.logits;
    let mut tokens = Vec::new();
    loop {
        if let Some(c) = constraint.as_deref() {
            if c.is_done() {
                return Ok(Generation {
                    tokens,
                    finish: FinishReason::ConstraintDone,
                });
            }
        }
        if tokens.len() >= config.max_new_tokens {
            return Ok(Generation {
                tokens,
                finish: FinishReason::MaxTokens,
            });
        }
        let mut row = logits
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        if let Some(c) = constraint.as_deref() {
            if let Some(allowed) = c.allowed() {
                if allowed.is_empty() {
                    return Err(Error::Constraint(
                        "no token is allowed at this point".into(),
                    ));
                }
                let mut masked = vec![f32::NEG_INFINITY; row.len()];
                for &t in &allowed {
                    let t = t as usize;
                    if t < row.len() {
                        masked[t] = row[t];
                    }
                }
                row = masked;
            }
        }
        let token = pick(&row, config.temperature, &mut rng);
        if let Some(c) = constraint.as_deref_mut() {
            c.advance(token)?;
        }
        tokens.push(token);
        if config.stop_tokens.contains(&token) {
            return Ok(Generation {
                tokens,
                finish: FinishReason::StopToken,
            });
        }
        if let Some(c) = constraint.as_deref() {
            if c.is_done() {
                return Ok(Generation {
                    tokens,
                    finish: FinishReason::ConstraintDone,
                });
            }
        }
        if tokens.len() >= config.max_new_tokens {
            return Ok(Generation {
                tokens,
                finish: FinishReason::MaxTokens,
            });
        }
        let positions = MropePositions::continuation(&next_position, 1);
        next_position = positions.next_position.clone();
        if let Some(valid) = key_valid.as_mut() {
            valid.iter_mut().for_each(|row| row.push(true));
        }
        logits = model.forward_continuation(
            &[vec![token]],
            &positions,
            key_valid.as_deref(),
            &mut cache,
            Logits::Last,
        )?;
    }
}

/// Generates continuations of a (left-padded) batch of prompts without constraints.
///
/// Rows that emit a stop token are finished; they keep being fed a stop token so the batch
/// stays rectangular, but nothing more is recorded for them.
pub fn generate_batch(
    model: &Qwen3VL,
    prompts: &Batch,
    config: &GenerationConfig,
) -> Result<Vec<Generation>> {
    // Inference: trainable adapters enter as constants, so the fused kernels apply.
    let _inference = NoGrad::new();
    let rows = prompts.batch_size();
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed);
    let mut cache = model.new_cache();
    let output = model.forward(prompts, Some(&mut cache), Logits::Last, false)?;
    let mut next_position = output.positions.next_position.clone();
    let mut key_valid: Vec<Vec<bool>> = prompts
        .attention_mask
        .clone()
        .unwrap_or_else(|| vec![vec![true; prompts.seq_len()]; rows]);
    let mut logits = output.logits;
    let mut results: Vec<Generation> = (0..rows)
        .map(|_| Generation {
            tokens: Vec::new(),
            finish: FinishReason::MaxTokens,
        })
        .collect();
    let mut done = vec![false; rows];
    let filler = config.stop_tokens.first().copied().unwrap_or(0);
    for _ in 0..config.max_new_tokens {
        let table = logits.squeeze(1)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let mut step = Vec::with_capacity(rows);
        for (row, values) in table.iter().enumerate() {
            if done[row] {
                step.push(vec![filler]);
                continue;
            }
            let token = pick(values, config.temperature, &mut rng);
            results[row].tokens.push(token);
            if config.stop_tokens.contains(&token) {
                results[row].finish = FinishReason::StopToken;
                done[row] = true;
            }
            step.push(vec![token]);
        }
        if done.iter().all(|d| *d)
            || results
                .iter()
                .all(|r| r.tokens.len() >= config.max_new_tokens)
        {
            break;
        }
        let positions = MropePositions::continuation(&next_position, 1);
        next_position = positions.next_position.clone();
        key_valid.iter_mut().for_each(|row| row.push(true));
        logits = model.forward_continuation(
            &step,
            &positions,
            Some(&key_valid),
            &mut cache,
            Logits::Last,
        )?;
    }
    Ok(results)
}

/// Scores of every candidate label for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScores {
    /// Sum of the log-probabilities of each label's tokens given the prompt.
    pub log_probs: Vec<f64>,
    /// `softmax(log_probs)`: probabilities normalised over the label set.
    pub probabilities: Vec<f64>,
}

/// Scores each label's token sequence as a continuation of the prompt.
///
/// The prompt is computed once; all labels then run as one batch (right-padded to the
/// longest label) on copies of the prompt's KV cache.
pub fn score_labels(model: &Qwen3VL, prompt: &Batch, labels: &[Vec<u32>]) -> Result<LabelScores> {
    // Inference: trainable adapters enter as constants, so the fused kernels apply.
    let _inference = NoGrad::new();
    if prompt.batch_size() != 1 || prompt.attention_mask.is_some() {
        return Err(Error::Input(
            "label scoring takes one unpadded prompt".into(),
        ));
    }
    if labels.is_empty() || labels.iter().any(Vec::is_empty) {
        return Err(Error::Input("every label needs at least one token".into()));
    }
    let mut cache = model.new_cache();
    let output = model.forward(prompt, Some(&mut cache), Logits::Last, false)?;
    let first = log_softmax_last_dim(&output.logits.to_dtype(DType::F32)?)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let mut log_probs: Vec<f64> = labels.iter().map(|l| first[l[0] as usize] as f64).collect();
    let longest = labels.iter().map(Vec::len).max().unwrap_or(1);
    if longest > 1 {
        // Feed all but the last token of every label; right padding only follows real tokens,
        // so causal attention keeps it invisible to them.
        let steps = longest - 1;
        let inputs: Vec<Vec<u32>> = labels
            .iter()
            .map(|l| {
                let mut row: Vec<u32> = l[..l.len() - 1].to_vec();
                row.resize(steps, l[0]);
                row
            })
            .collect();
        let mut shared = cache.repeat_batch(labels.len())?;
        let next = vec![output.positions.next_position[0]; labels.len()];
        let positions = MropePositions::continuation(&next, steps);
        let logits =
            model.forward_continuation(&inputs, &positions, None, &mut shared, Logits::All)?;
        let log_softmax = log_softmax_last_dim(&logits.to_dtype(DType::F32)?)?;
        for (i, label) in labels.iter().enumerate() {
            for (j, &token) in label.iter().enumerate().skip(1) {
                let value = log_softmax
                    .get(i)?
                    .get(j - 1)?
                    .get(token as usize)?
                    .to_scalar::<f32>()?;
                log_probs[i] += value as f64;
            }
        }
    }
    Ok(LabelScores {
        probabilities: normalise(&log_probs),
        log_probs,
    })
}

/// `softmax` of sequence log-probabilities, in f64.
pub fn normalise(log_probs: &[f64]) -> Vec<f64> {
    let max = log_probs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = log_probs.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    exp.iter().map(|e| e / total).collect()
}

/// Log-probability of each target token under `logits`, for training-style scoring.
///
/// # Shapes
/// `logits`: `(batch, seq, vocab)`; `targets`: `(batch, seq)` u32 -> `(batch, seq)` f32.
pub fn token_log_probs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let log_softmax = log_softmax_last_dim(&logits.to_dtype(DType::F32)?)?;
    Ok(log_softmax
        .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
        .squeeze(D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_is_softmax() {
        let p = normalise(&[0.0, (2.0f64).ln()]);
        assert!((p[0] - 1.0 / 3.0).abs() < 1e-12 && (p[1] - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn greedy_pick_is_argmax() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        assert_eq!(pick(&[0.1, 3.0, -1.0], 0.0, &mut rng), 1);
        assert_eq!(
            pick(&[f32::NEG_INFINITY, f32::NEG_INFINITY, 0.0], 1.0, &mut rng),
            2
        );
    }
}
