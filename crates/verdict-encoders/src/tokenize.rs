//! Text tokenisation of CLIP and SigLIP checkpoints from their `tokenizer.json`.
//!
//! The two families pad differently, and the pooled token depends on it: CLIP pads to the
//! longest text and masks the padding (its causal text model pools at the end-of-text token),
//! SigLIP pads every text to the full context with no mask (it pools the last position, and was
//! trained on exactly that). Both truncate to the model's `max_position_embeddings`, keeping the
//! special tokens the tokenizer's post-processor adds.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

use crate::{Error, Result};

/// How a batch of texts is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// To the longest text of the batch, with an attention mask (CLIP).
    Longest,
    /// To the full context, without a mask (SigLIP).
    MaxLength,
}

/// Token ids of a batch, padded to one length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextBatch {
    pub input_ids: Vec<Vec<u32>>,
    /// 1 for real tokens, 0 for padding; `None` when the model takes no mask.
    pub attention_mask: Option<Vec<Vec<u32>>>,
}

impl TextBatch {
    /// # Shapes
    /// Returns `input_ids` `(batch, seq)` u32 and the mask `(batch, seq)` u32 if any.
    pub fn to_tensors(&self, device: &Device) -> Result<(Tensor, Option<Tensor>)> {
        let to_tensor = |rows: &[Vec<u32>]| -> Result<Tensor> {
            let b = rows.len();
            let s = rows.first().map(Vec::len).unwrap_or(0);
            let flat: Vec<u32> = rows.iter().flatten().copied().collect();
            Ok(Tensor::from_vec(flat, (b, s), device)?)
        };
        let ids = to_tensor(&self.input_ids)?;
        let mask = match &self.attention_mask {
            Some(mask) => Some(to_tensor(mask)?),
            None => None,
        };
        Ok((ids, mask))
    }

    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }
}

/// `tokenizer.json` plus the padding rule of the model family.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    max_length: usize,
    padding: Padding,
    pad_id: u32,
    path: PathBuf,
}

impl TextTokenizer {
    /// Loads `dir/tokenizer.json`; `max_length` is the text tower's context.
    pub fn from_dir(dir: &Path, max_length: usize, padding: Padding, pad_id: u32) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(Error::Tokenizer {
                path,
                message: "missing; checkpoints that only ship a SentencePiece model need a \
                          tokenizer.json converted from it"
                    .into(),
            });
        }
        let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| Error::Tokenizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer {
                path: path.clone(),
                message: e.to_string(),
            })?;
        tokenizer.with_padding(None);
        Ok(Self {
            tokenizer,
            max_length,
            padding,
            pad_id,
            path,
        })
    }

    /// Tokenises and pads `texts` (special tokens added).
    pub fn encode<S: AsRef<str>>(&self, texts: &[S]) -> Result<TextBatch> {
        let mut rows = Vec::with_capacity(texts.len());
        for text in texts {
            let encoding =
                self.tokenizer
                    .encode(text.as_ref(), true)
                    .map_err(|e| Error::Tokenizer {
                        path: self.path.clone(),
                        message: format!("cannot encode {:?}: {e}", text.as_ref()),
                    })?;
            rows.push(encoding.get_ids().to_vec());
        }
        let target = match self.padding {
            Padding::Longest => rows.iter().map(Vec::len).max().unwrap_or(0),
            Padding::MaxLength => self.max_length,
        };
        let mut mask = Vec::with_capacity(rows.len());
        for row in &mut rows {
            let real = row.len();
            row.resize(target, self.pad_id);
            let mut m = vec![1u32; real];
            m.resize(target, 0);
            mask.push(m);
        }
        Ok(TextBatch {
            input_ids: rows,
            attention_mask: match self.padding {
                Padding::Longest => Some(mask),
                Padding::MaxLength => None,
            },
        })
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }
}
