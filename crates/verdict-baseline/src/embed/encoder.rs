//! A sentence-transformers model directory run natively: tokenizer, BERT, pooling,
//! normalisation, exactly as `SentenceTransformer.encode` does it.
//!
//! Long texts: like sentence-transformers, each text is cut to `max_seq_length` tokens
//! (special tokens included; 256 for all-MiniLM-L6-v2, from `sentence_bert_config.json`),
//! i.e. only the beginning of a long email is embedded. The tokenizer's own truncation and
//! padding settings in `tokenizer.json` are replaced by that limit. To keep tokenising cheap
//! on very long texts, only a whitespace-bounded prefix long enough to yield the limit is
//! tokenised; the kept tokens are the same as when tokenising the whole text.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::bert::{BertConfig, BertModel};
use super::fused::{FusedBert, Workspace};
use crate::error::{BaselineError, Result};

/// Texts per forward pass (sentence-transformers' default `batch_size`).
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Most tokens per packed forward pass: large enough for efficient matrix products, small
/// enough that the activations (`tokens x intermediate_size` f32, 24 MiB for MiniLM) are
/// reused by the allocator rather than freshly mapped and zeroed by the kernel each time.
const MAX_PACK_TOKENS: usize = 4096;

#[derive(Deserialize)]
struct ModuleEntry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize, Default)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
    #[serde(default)]
    do_lower_case: bool,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct ModelType {
    #[serde(default)]
    model_type: Option<String>,
}

/// Which implementation of the transformer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// This crate's fused CPU kernels over preallocated buffers (the default).
    #[default]
    Fused,
    /// The same computation as a graph of candle tensor operations: slower, kept as the
    /// reference that the fused kernels are tested against.
    Candle,
}

/// How token embeddings become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
}

/// A loaded sentence encoder (BERT family), CPU.
pub struct SentenceEncoder {
    directory: PathBuf,
    model: BertModel,
    fused: FusedBert,
    vocab_size: usize,
    type_vocab_size: usize,
    tokenizer: Tokenizer,
    max_seq_length: usize,
    do_lower_case: bool,
    pooling: Pooling,
    normalize: bool,
    dimension: usize,
    device: Device,
    batch_size: usize,
    kernels: Kernels,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| BaselineError::io("reading", path, e))?;
    serde_json::from_str(&text).map_err(|e| BaselineError::format(path, e.to_string()))
}

impl SentenceEncoder {
    /// Loads a local sentence-transformers directory (`modules.json`, the transformer's
    /// `config.json`, `model.safetensors`, `tokenizer.json`, `sentence_bert_config.json`,
    /// the pooling module's `config.json`, optionally a `Normalize` module).
    pub fn load(directory: &Path) -> Result<Self> {
        let modules: Vec<ModuleEntry> = read_json(&directory.join("modules.json"))?;
        let transformer = modules
            .iter()
            .find(|m| m.kind.ends_with("models.Transformer"))
            .ok_or_else(|| {
                BaselineError::format(directory.join("modules.json"), "no Transformer module")
            })?;
        let pooling_module = modules
            .iter()
            .find(|m| m.kind.ends_with("models.Pooling"))
            .ok_or_else(|| {
                BaselineError::format(directory.join("modules.json"), "no Pooling module")
            })?;
        if let Some(other) = modules.iter().find(|m| {
            !["models.Transformer", "models.Pooling", "models.Normalize"]
                .iter()
                .any(|known| m.kind.ends_with(known))
        }) {
            return Err(BaselineError::format(
                directory.join("modules.json"),
                format!("module type {} is not supported", other.kind),
            ));
        }
        let normalize = modules.iter().any(|m| m.kind.ends_with("models.Normalize"));
        let model_dir = directory.join(&transformer.path);

        let config_path = model_dir.join("config.json");
        let model_type: ModelType = read_json(&config_path)?;
        match model_type.model_type.as_deref() {
            Some("bert") | None => {}
            Some(other) => {
                return Err(BaselineError::format(
                    &config_path,
                    format!("model_type {other:?} is not supported (BERT only)"),
                ))
            }
        }
        let config: BertConfig = read_json(&config_path)?;
        let sbert_path = model_dir.join("sentence_bert_config.json");
        let sbert: SentenceBertConfig = if sbert_path.exists() {
            read_json(&sbert_path)?
        } else {
            SentenceBertConfig::default()
        };
        let max_seq_length = sbert
            .max_seq_length
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);

        let pooling_path = directory.join(&pooling_module.path).join("config.json");
        let pooling_config: PoolingConfig = read_json(&pooling_path)?;
        let pooling = match (
            pooling_config.pooling_mode_mean_tokens,
            pooling_config.pooling_mode_cls_token,
            pooling_config.pooling_mode_max_tokens
                || pooling_config.pooling_mode_mean_sqrt_len_tokens,
        ) {
            (true, false, false) => Pooling::Mean,
            (false, true, false) => Pooling::Cls,
            _ => {
                return Err(BaselineError::format(
                    &pooling_path,
                    "only a single mean or cls pooling mode is supported",
                ))
            }
        };

        let tokenizer_path = model_dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| BaselineError::format(&tokenizer_path, e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| BaselineError::format(&tokenizer_path, e.to_string()))?;
        tokenizer.with_padding(None);

        let weights_path = model_dir.join("model.safetensors");
        if !weights_path.exists() {
            return Err(BaselineError::format(
                &weights_path,
                "missing (only safetensors weights are supported)",
            ));
        }
        let device = Device::Cpu;
        // Read into memory rather than memory-mapped: mapping needs `unsafe`, which the
        // workspace forbids; the file is ~90 MB for MiniLM.
        let bytes = std::fs::read(&weights_path)
            .map_err(|e| BaselineError::io("reading", &weights_path, e))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)?;
        let model = BertModel::new(&config, vb)
            .map_err(|e| BaselineError::format(&weights_path, e.to_string()))?;
        let fused = model
            .fused()
            .map_err(|e| BaselineError::format(&weights_path, e.to_string()))?;
        Ok(Self {
            directory: directory.to_path_buf(),
            model,
            fused,
            vocab_size: config.vocab_size,
            type_vocab_size: config.type_vocab_size,
            tokenizer,
            max_seq_length,
            do_lower_case: sbert.do_lower_case,
            pooling,
            normalize,
            dimension: config.hidden_size,
            device,
            batch_size: DEFAULT_BATCH_SIZE,
            kernels: Kernels::default(),
        })
    }

    /// Texts per forward pass.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Which implementation runs the transformer.
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// Embedding size.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Token limit per text (special tokens included).
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// The directory it was loaded from.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Token ids of one text after sentence-transformers' preprocessing and truncation.
    pub fn token_ids(&self, text: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        // Python's str.strip(): Unicode whitespace plus the separators U+001C..U+001F.
        let stripped =
            text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c));
        let lowered;
        let text = if self.do_lower_case {
            lowered = stripped.to_lowercase();
            lowered.as_str()
        } else {
            stripped
        };
        let mut words = self.max_seq_length;
        loop {
            let (prefix, whole) = whitespace_prefix(text, words);
            let encoding = self
                .tokenizer
                .encode(prefix, true)
                .map_err(|e| BaselineError::Encoder(format!("tokenizing: {e}")))?;
            if whole || encoding.len() >= self.max_seq_length {
                return Ok((
                    encoding.get_ids().to_vec(),
                    encoding.get_type_ids().to_vec(),
                ));
            }
            words *= 4;
        }
    }

    /// Sentence embeddings.
    ///
    /// # Shapes
    /// Output: `texts.len() * dimension`, row-major, f32.
    pub fn encode<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<f32>> {
        let encoded: Vec<(Vec<u32>, Vec<u32>)> = texts
            .par_iter()
            .map(|t| self.token_ids(t.as_ref()))
            .collect::<Result<_>>()?;
        // Longest first, so each batch pads little (sentence-transformers sorts by length too).
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].0.len()));
        // Up to `batch_size` texts and `MAX_PACK_TOKENS` tokens per forward pass.
        let mut packs = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < order.len()
                && end - start < self.batch_size
                && (end == start || tokens + encoded[order[end]].0.len() <= MAX_PACK_TOKENS)
            {
                tokens += encoded[order[end]].0.len();
                end += 1;
            }
            packs.push((start..end, tokens));
            start = end;
        }
        let largest = packs.iter().map(|(_, tokens)| *tokens).max().unwrap_or(0);
        let mut workspace = match self.kernels {
            Kernels::Fused => Some(self.fused.workspace(largest)),
            Kernels::Candle => None,
        };
        let mut out = vec![0f32; texts.len() * self.dimension];
        for (range, _) in packs {
            let pack = &order[range];
            let rows = self.encode_pack(pack.iter().map(|&i| &encoded[i]), workspace.as_mut())?;
            for (&i, row) in pack.iter().zip(rows.chunks(self.dimension)) {
                out[i * self.dimension..(i + 1) * self.dimension].copy_from_slice(row);
            }
        }
        Ok(out)
    }

    /// Embeddings of a few tokenised texts run as one packed forward pass (no padding).
    ///
    /// # Shapes
    /// Output: `pack.len() * dimension`, row-major.
    fn encode_pack<'a>(
        &self,
        pack: impl Iterator<Item = &'a (Vec<u32>, Vec<u32>)>,
        workspace: Option<&mut Workspace>,
    ) -> Result<Vec<f32>> {
        let mut ids = Vec::new();
        let mut types = Vec::new();
        let mut lengths = Vec::new();
        for (token_ids, type_ids) in pack {
            ids.extend_from_slice(token_ids);
            types.extend_from_slice(type_ids);
            lengths.push(token_ids.len());
        }
        if let Some(id) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(BaselineError::Encoder(format!(
                "token id {id} is outside the vocabulary of {} (tokenizer and model disagree)",
                self.vocab_size
            )));
        }
        if let Some(t) = types.iter().find(|&&t| t as usize >= self.type_vocab_size) {
            return Err(BaselineError::Encoder(format!(
                "token type {t} is outside the {} token types",
                self.type_vocab_size
            )));
        }
        let candle_tokens;
        let tokens: &[f32] = match workspace {
            Some(work) => self.fused.forward(&ids, &types, &lengths, work),
            None => {
                let total = ids.len();
                let ids = Tensor::from_vec(ids, total, &self.device)?;
                let types = Tensor::from_vec(types, total, &self.device)?;
                candle_tokens = self
                    .model
                    .forward_packed(&ids, &types, &lengths)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                &candle_tokens
            }
        };
        let h = self.dimension;
        let mut out = vec![0f32; lengths.len() * h];
        let mut offset = 0;
        for (row, &length) in out.chunks_mut(h).zip(&lengths) {
            let sequence = &tokens[offset * h..(offset + length) * h];
            match self.pooling {
                // sentence-transformers: sum(x * mask) / clamp(sum(mask), 1e-9).
                Pooling::Mean => {
                    let mut sums = vec![0f64; h];
                    for token in sequence.chunks(h) {
                        sums.iter_mut()
                            .zip(token)
                            .for_each(|(s, &v)| *s += f64::from(v));
                    }
                    let count = (length as f64).max(1e-9);
                    row.iter_mut()
                        .zip(&sums)
                        .for_each(|(r, s)| *r = (s / count) as f32);
                }
                Pooling::Cls => row.copy_from_slice(&sequence[..h]),
            }
            if self.normalize {
                // torch.nn.functional.normalize: x / max(||x||, 1e-12).
                let norm = row
                    .iter()
                    .map(|&v| f64::from(v) * f64::from(v))
                    .sum::<f64>()
                    .sqrt()
                    .max(1e-12);
                row.iter_mut()
                    .for_each(|v| *v = (f64::from(*v) / norm) as f32);
            }
            offset += length;
        }
        Ok(out)
    }
}

/// The text up to the end of its first `words` whitespace-separated words, and whether that
/// is the whole text. Cutting at whitespace keeps the tokens of the prefix identical to the
/// first tokens of the whole text (BERT pre-tokenisation never joins across whitespace).
fn whitespace_prefix(text: &str, words: usize) -> (&str, bool) {
    let mut seen = 0;
    let mut in_word = false;
    for (position, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                seen += 1;
                if seen == words {
                    return (&text[..position], false);
                }
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
    (text, true)
}

#[cfg(test)]
mod tests {
    use super::whitespace_prefix;

    #[test]
    fn prefix_cuts_after_whole_words() {
        assert_eq!(whitespace_prefix("a bb  ccc d", 2), ("a bb", false));
        assert_eq!(whitespace_prefix("a bb", 2), ("a bb", true));
        assert_eq!(whitespace_prefix("  a ", 5), ("  a ", true));
    }
}
