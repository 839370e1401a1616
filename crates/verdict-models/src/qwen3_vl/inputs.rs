//! From a conversation with images to model input: the processor and chat tokenizer of one
//! checkpoint directory behind one call, plus the ids that inference needs around the prompt
//! (stop tokens, padding, label continuations, the JSON answer constraint).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use candle_core::Device;
use image::RgbImage;

use super::chat::{ChatTokenizer, Message};
use super::model::Batch;
use super::processor::{ImageProcessor, PixelValues};
use crate::json_constraint::{LabelJsonConstraint, LabelJsonSchema};
use crate::token_bytes::TokenBytes;
use crate::{Error, Result};

/// Tokenizer, chat template and image processor of a checkpoint.
#[derive(Debug)]
pub struct Preprocessor {
    chat: ChatTokenizer,
    images: ImageProcessor,
    stop_tokens: Vec<u32>,
    pad_token: u32,
    token_bytes: OnceLock<Arc<TokenBytes>>,
}

/// `eos_token_id` of `generation_config.json` (a number or a list).
fn generation_stop_tokens(dir: &Path) -> Result<Vec<u32>> {
    let path = dir.join("generation_config.json");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    Ok(match value.get("eos_token_id") {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().map(|id| vec![id as u32]).unwrap_or_default()
        }
        Some(serde_json::Value::Array(ids)) => ids
            .iter()
            .filter_map(|v| v.as_u64())
            .map(|id| id as u32)
            .collect(),
        _ => Vec::new(),
    })
}

/// `pad_token` of `tokenizer_config.json` (a string or an added-token object).
fn configured_pad_token(dir: &Path) -> Result<Option<String>> {
    let path = dir.join("tokenizer_config.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    Ok(match value.get("pad_token") {
        Some(serde_json::Value::String(token)) => Some(token.clone()),
        Some(serde_json::Value::Object(token)) => token
            .get("content")
            .and_then(|c| c.as_str())
            .map(String::from),
        _ => None,
    })
}

impl Preprocessor {
    /// Loads `tokenizer.json`, the chat template, `preprocessor_config.json`,
    /// `generation_config.json` and `tokenizer_config.json` of a checkpoint directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let chat = ChatTokenizer::from_dir(dir)?;
        let images = ImageProcessor::from_dir(dir)?;
        let mut stop_tokens = generation_stop_tokens(dir)?;
        if let Some(im_end) = chat.token_id("<|im_end|>") {
            if !stop_tokens.contains(&im_end) {
                stop_tokens.push(im_end);
            }
        }
        let pad_name = configured_pad_token(dir)?.unwrap_or_else(|| "<|endoftext|>".to_string());
        let pad_token = chat.token_id(&pad_name).ok_or_else(|| {
            Error::Tokenizer(format!("pad token {pad_name} is not in the vocabulary"))
        })?;
        Ok(Self {
            chat,
            images,
            stop_tokens,
            pad_token,
            token_bytes: OnceLock::new(),
        })
    }

    pub fn chat(&self) -> &ChatTokenizer {
        &self.chat
    }

    pub fn image_processor(&self) -> &ImageProcessor {
        &self.images
    }

    /// Tokens that end generation (`generation_config.json`'s `eos_token_id` and `<|im_end|>`).
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stop_tokens
    }

    /// Token used for left padding in batches.
    pub fn pad_token(&self) -> u32 {
        self.pad_token
    }

    /// The classifier prompt: optional system turn, a user turn with the images first and then
    /// the text; [`Preprocessor::encode`] appends the assistant opener.
    pub fn classification_messages(
        system: Option<&str>,
        n_images: usize,
        text: &str,
    ) -> Vec<Message> {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = system {
            messages.push(Message::system(system));
        }
        messages.push(Message::user_with_images(n_images, text));
        messages
    }

    /// Token ids and pixel values of one conversation, with the generation prompt appended.
    pub fn encode(
        &self,
        messages: &[Message],
        images: &[RgbImage],
    ) -> Result<(Vec<u32>, PixelValues)> {
        let prompt = self.chat.render(messages, true)?;
        let pixels = self.images.preprocess(images)?;
        let counts: Vec<usize> = pixels
            .grid_thw
            .iter()
            .map(|&g| self.images.num_image_tokens(g))
            .collect();
        let ids = self.chat.encode_prompt(&prompt, &counts)?;
        Ok((ids, pixels))
    }

    /// A single-prompt model batch.
    pub fn prompt(
        &self,
        messages: &[Message],
        images: &[RgbImage],
        device: &Device,
    ) -> Result<Batch> {
        let (ids, pixels) = self.encode(messages, images)?;
        let pixel_values = if pixels.grid_thw.is_empty() {
            None
        } else {
            Some(pixels.to_tensor(device)?)
        };
        Ok(Batch::single(ids, pixel_values, pixels.grid_thw))
    }

    /// Several prompts in one left-padded batch; the images of all prompts are concatenated in
    /// order, as the model expects.
    pub fn batch(
        &self,
        prompts: &[(Vec<Message>, Vec<RgbImage>)],
        device: &Device,
    ) -> Result<Batch> {
        let mut sequences = Vec::with_capacity(prompts.len());
        let mut values = Vec::new();
        let mut grid_thw = Vec::new();
        for (messages, images) in prompts {
            let (ids, pixels) = self.encode(messages, images)?;
            sequences.push(ids);
            values.extend(pixels.values);
            grid_thw.extend(pixels.grid_thw);
        }
        let pixel_values = if grid_thw.is_empty() {
            None
        } else {
            let all = PixelValues {
                values,
                patch_dim: self.images.config().patch_dim(),
                grid_thw: grid_thw.clone(),
            };
            Some(all.to_tensor(device)?)
        };
        Ok(Batch::left_padded(
            sequences,
            self.pad_token,
            pixel_values,
            grid_thw,
        ))
    }

    /// Token ids of each label as a continuation of the assistant turn (for label scoring).
    pub fn label_token_ids(&self, labels: &[String]) -> Result<Vec<Vec<u32>>> {
        labels
            .iter()
            .map(|label| {
                let ids = self.chat.encode_continuation(label)?;
                if ids.is_empty() {
                    return Err(Error::Input(format!(
                        "label {label:?} encodes to no tokens"
                    )));
                }
                Ok(ids)
            })
            .collect()
    }

    /// A fresh JSON answer constraint over `labels`; the vocabulary byte table is built on
    /// first use and shared afterwards.
    pub fn json_constraint(&self, schema: Arc<LabelJsonSchema>) -> Result<LabelJsonConstraint> {
        let tokens = self
            .token_bytes
            .get_or_init(|| Arc::new(TokenBytes::from_tokenizer(self.chat.tokenizer())))
            .clone();
        LabelJsonConstraint::new(schema, tokens, self.stop_tokens.clone())
    }
}
