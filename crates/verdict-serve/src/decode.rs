//! Token-by-token generation for chat completions: every token is handed to the caller as it
//! is chosen (for streaming), with its log-probability and the most likely alternatives, and
//! an optional JSON constraint restricts the choices.
//!
//! Log-probabilities are those of the model's own distribution at each step (log-softmax of
//! the raw logits), before the constraint masks tokens or the temperature reshapes them, so
//! they say how much the model itself believed each token.

use std::sync::Arc;
use std::time::Instant;

use candle_core::DType as TensorDType;
use image::RgbImage;
use rand::SeedableRng;
use verdict_models::constraint::TokenConstraint;
use verdict_models::qwen3_vl::chat::Message;
use verdict_models::qwen3_vl::generation::pick;
use verdict_models::qwen3_vl::rope::MropePositions;
use verdict_models::qwen3_vl::Logits;

use crate::model::ModelError;
use crate::object_schema::{AnswerSchema, ObjectConstraint};
use crate::qwen::QwenEngine;

/// One chat completion to run.
#[derive(Debug, Clone)]
pub struct ChatJob {
    pub messages: Vec<Message>,
    pub images: Vec<RgbImage>,
    pub max_new_tokens: usize,
    /// 0: greedy.
    pub temperature: f64,
    pub seed: u64,
    /// `Some(k)`: report each token's log-probability and its `k` best alternatives.
    pub logprobs: Option<usize>,
    /// Constrain the answer to the label JSON shape or a flat object schema.
    pub schema: Option<AnswerSchema>,
    /// Generation stops (finish reason `length`) past this instant.
    pub deadline: Instant,
}

/// A token's log-probability and the best alternatives at its step.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token's text; a token holding part of a character shows U+FFFD here, and its
    /// exact `bytes` join with the neighbours' into the text.
    pub token: String,
    pub bytes: Vec<u8>,
    pub logprob: f64,
    pub top: Vec<(String, Vec<u8>, f64)>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFinish {
    Stop,
    Length,
}

/// What the model thread reports while a chat job runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    Started {
        prompt_tokens: usize,
    },
    /// Newly decodable text (possibly empty while a multi-byte character is incomplete).
    Token {
        text: String,
        logprob: Option<TokenLogprob>,
    },
    Finished {
        finish: ChatFinish,
        completion_tokens: usize,
    },
    Failed(ModelError),
}

fn internal(error: impl std::fmt::Display) -> ModelError {
    ModelError::Internal(error.to_string())
}

/// Runs `job`, calling `emit` for every event; stops early when `emit` returns false (the
/// caller went away).
pub fn run_chat(engine: &QwenEngine, job: &ChatJob, emit: &mut dyn FnMut(ChatEvent) -> bool) {
    if let Err(error) = generate(engine, job, emit) {
        emit(ChatEvent::Failed(error));
    }
}

fn generate(
    engine: &QwenEngine,
    job: &ChatJob,
    emit: &mut dyn FnMut(ChatEvent) -> bool,
) -> Result<(), ModelError> {
    let classifier = engine.classifier();
    let model = classifier.model();
    let preprocessor = classifier.preprocessor();
    let chat = preprocessor.chat();
    let stop_tokens = preprocessor.stop_tokens().to_vec();
    let batch = preprocessor
        .prompt(&job.messages, &job.images, model.device())
        .map_err(|e| ModelError::Input(format!("building the prompt: {e}")))?;
    if !emit(ChatEvent::Started {
        prompt_tokens: batch.seq_len(),
    }) {
        return Ok(());
    }
    let mut constraint: Option<Box<dyn TokenConstraint + '_>> = match &job.schema {
        Some(AnswerSchema::Label(schema)) => Some(Box::new(
            preprocessor
                .json_constraint(Arc::new(schema.clone()))
                .map_err(|e| ModelError::Input(e.to_string()))?,
        )),
        Some(AnswerSchema::Object(grammar)) => Some(Box::new(ObjectConstraint::new(
            grammar.clone(),
            engine.vocabulary(),
            stop_tokens.clone(),
        ))),
        None => None,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(job.seed);
    let mut cache = model.new_cache();
    let output = model
        .forward(&batch, Some(&mut cache), Logits::Last, false)
        .map_err(internal)?;
    let mut next_position = output.positions.next_position.clone();
    let mut logits = output.logits;
    let mut generated: Vec<u32> = Vec::new();
    let mut emitted_text = String::new();
    let mut count = 0usize;
    let finish = loop {
        if constraint.as_ref().is_some_and(|c| c.is_done()) {
            break ChatFinish::Stop;
        }
        if count >= job.max_new_tokens || Instant::now() >= job.deadline {
            break ChatFinish::Length;
        }
        let row = logits
            .flatten_all()
            .and_then(|t| t.to_dtype(TensorDType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(internal)?;
        let log_probs = log_softmax(&row);
        let mut choice = row.clone();
        if let Some(allowed) = constraint.as_ref().and_then(|c| c.allowed()) {
            if allowed.is_empty() {
                return Err(internal("the JSON constraint allows no token"));
            }
            let mut masked = vec![f32::NEG_INFINITY; choice.len()];
            for t in allowed {
                if let Some(value) = choice.get(t as usize) {
                    masked[t as usize] = *value;
                }
            }
            choice = masked;
        }
        let token = pick(&choice, job.temperature, &mut rng);
        if let Some(c) = constraint.as_mut() {
            c.advance(token).map_err(internal)?;
        }
        count += 1;
        let is_stop = stop_tokens.contains(&token);
        let logprob = match job.logprobs {
            Some(k) => {
                let (text, bytes) = token_text(engine, token)?;
                let mut top = Vec::with_capacity(k);
                for (id, lp) in top_k(&log_probs, k) {
                    let (text, bytes) = token_text(engine, id)?;
                    top.push((text, bytes, lp));
                }
                Some(TokenLogprob {
                    token: text,
                    bytes,
                    logprob: log_probs
                        .get(token as usize)
                        .copied()
                        .unwrap_or(f64::NEG_INFINITY),
                    top,
                })
            }
            None => None,
        };
        if is_stop {
            break ChatFinish::Stop;
        }
        generated.push(token);
        let text = chat.decode(&generated, true).map_err(internal)?;
        // Hold back text that ends inside a multi-byte character.
        let delta = match text.strip_prefix(emitted_text.as_str()) {
            Some(rest) if !rest.ends_with('\u{FFFD}') => rest.to_string(),
            _ => String::new(),
        };
        emitted_text.push_str(&delta);
        if !emit(ChatEvent::Token {
            text: delta,
            logprob,
        }) {
            return Ok(());
        }
        if constraint.as_ref().is_some_and(|c| c.is_done()) {
            break ChatFinish::Stop;
        }
        let positions = MropePositions::continuation(&next_position, 1);
        next_position = positions.next_position.clone();
        logits = model
            .forward_continuation(&[vec![token]], &positions, None, &mut cache, Logits::Last)
            .map_err(internal)?;
    };
    // Text held back at the end (an incomplete character) still belongs to the answer.
    let text = chat.decode(&generated, true).map_err(internal)?;
    if let Some(rest) = text.strip_prefix(emitted_text.as_str()) {
        if !rest.is_empty() {
            emit(ChatEvent::Token {
                text: rest.to_string(),
                logprob: None,
            });
        }
    }
    emit(ChatEvent::Finished {
        finish,
        completion_tokens: count,
    });
    Ok(())
}

/// Text and exact bytes of one token (special tokens: their name).
fn token_text(engine: &QwenEngine, token: u32) -> Result<(String, Vec<u8>), ModelError> {
    match engine.token_bytes(token) {
        Some(bytes) => Ok((String::from_utf8_lossy(bytes).into_owned(), bytes.to_vec())),
        None => {
            let text = engine
                .classifier()
                .preprocessor()
                .chat()
                .decode(&[token], false)
                .map_err(internal)?;
            let bytes = text.as_bytes().to_vec();
            Ok((text, bytes))
        }
    }
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let total: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    let log_total = max + total.ln();
    row.iter().map(|&v| v as f64 - log_total).collect()
}

fn top_k(log_probs: &[f64], k: usize) -> Vec<(u32, f64)> {
    let mut order: Vec<usize> = (0..log_probs.len()).collect();
    order.sort_by(|&a, &b| log_probs[b].total_cmp(&log_probs[a]));
    order
        .into_iter()
        .take(k)
        .map(|i| (i as u32, log_probs[i]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_sums_to_one() {
        let lp = log_softmax(&[1.0, 2.0, 3.0]);
        let total: f64 = lp.iter().map(|v| v.exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert_eq!(
            top_k(&lp, 2).iter().map(|p| p.0).collect::<Vec<_>>(),
            [2, 1]
        );
    }

    #[test]
    fn sampling_only_picks_unmasked_tokens() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..50 {
            let t = pick(
                &[f32::NEG_INFINITY, 0.5, f32::NEG_INFINITY, 0.1],
                1.0,
                &mut rng,
            );
            assert!(t == 1 || t == 3);
        }
    }
}
