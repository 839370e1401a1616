//! A linear classification head on (frozen) image embeddings: the "linear probe".
//!
//! Trained full-batch with AdamW on precomputed embeddings, so it costs one forward pass of
//! the encoder per image. Softmax cross-entropy for single-label and binary tasks, per-label
//! binary cross-entropy for multi-label tasks.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};
use verdict_models::nn::ops::softmax_last_dim;

use crate::loss::{binary_cross_entropy_with_logits, cross_entropy};
use crate::train::optim::{AdamW, ParamGroup};
use crate::{Error, Result};

/// Targets of the head's training examples.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadTargets {
    /// One label index per example.
    SingleLabel(Vec<u32>),
    /// A 0/1 row over the labels per example.
    MultiLabel(Vec<Vec<f32>>),
}

/// Hyper-parameters of head training.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HeadConfig {
    pub epochs: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            epochs: 300,
            learning_rate: 1e-2,
            weight_decay: 1e-4,
        }
    }
}

/// `logits = embeddings @ weight^T + bias`.
#[derive(Debug, Clone)]
pub struct LinearHead {
    pub labels: Vec<String>,
    pub multi_label: bool,
    weight: Tensor,
    bias: Tensor,
}

impl LinearHead {
    /// A zero-initialised head; with `Var`s so it can be trained.
    pub fn zeros(
        labels: Vec<String>,
        dim: usize,
        multi_label: bool,
        device: &Device,
    ) -> Result<(Self, Var, Var)> {
        let weight = Var::zeros((labels.len(), dim), DType::F32, device)?;
        let bias = Var::zeros(labels.len(), DType::F32, device)?;
        Ok((
            Self {
                labels,
                multi_label,
                weight: weight.as_tensor().clone(),
                bias: bias.as_tensor().clone(),
            },
            weight,
            bias,
        ))
    }

    /// Trains a head on `embeddings` `(n, dim)`.
    pub fn fit(
        labels: Vec<String>,
        embeddings: &Tensor,
        targets: &HeadTargets,
        config: &HeadConfig,
    ) -> Result<Self> {
        let (n, dim) = embeddings.dims2()?;
        let device = embeddings.device();
        let embeddings = embeddings.detach();
        let multi_label = matches!(targets, HeadTargets::MultiLabel(_));
        let target_tensor = match targets {
            HeadTargets::SingleLabel(ids) => {
                if ids.len() != n {
                    return Err(Error::Input(format!(
                        "{n} embeddings but {} targets",
                        ids.len()
                    )));
                }
                if let Some(bad) = ids.iter().find(|&&i| i as usize >= labels.len()) {
                    return Err(Error::Input(format!(
                        "target {bad} outside {} labels",
                        labels.len()
                    )));
                }
                Tensor::new(ids.as_slice(), device)?
            }
            HeadTargets::MultiLabel(rows) => {
                if rows.len() != n || rows.iter().any(|r| r.len() != labels.len()) {
                    return Err(Error::Input(format!(
                        "multi-label targets must be {n} rows of {} values",
                        labels.len()
                    )));
                }
                Tensor::new(rows.clone(), device)?
            }
        };
        let (head, weight, bias) = Self::zeros(labels, dim, multi_label, device)?;
        let mut optimizer = AdamW::new(vec![ParamGroup::new(
            "head",
            vec![("weight".into(), weight), ("bias".into(), bias)],
            config.learning_rate,
            config.weight_decay,
        )])?;
        for _ in 0..config.epochs {
            let logits = head.logits(&embeddings)?;
            let loss = if multi_label {
                binary_cross_entropy_with_logits(&logits, &target_tensor)?
            } else {
                cross_entropy(&logits, &target_tensor)?
            };
            let grads = loss.backward()?;
            optimizer.step(&grads, 1.0)?;
        }
        Ok(head)
    }

    /// # Shapes
    /// `(n, dim)` -> `(n, labels)`.
    pub fn logits(&self, embeddings: &Tensor) -> Result<Tensor> {
        Ok(embeddings
            .matmul(&self.weight.t()?)?
            .broadcast_add(&self.bias)?)
    }

    /// Per-label probabilities: softmax (single-label) or sigmoid (multi-label).
    ///
    /// # Shapes
    /// `(n, dim)` -> `(n, labels)`.
    pub fn probabilities(&self, embeddings: &Tensor) -> Result<Tensor> {
        let logits = self.logits(embeddings)?;
        Ok(if self.multi_label {
            candle_nn::ops::sigmoid(&logits)?
        } else {
            softmax_last_dim(&logits)?
        })
    }

    /// Highest-probability label index per row.
    pub fn predict(&self, embeddings: &Tensor) -> Result<Vec<usize>> {
        Ok(self
            .logits(embeddings)?
            .argmax(D::Minus1)?
            .to_vec1::<u32>()?
            .into_iter()
            .map(|i| i as usize)
            .collect())
    }

    /// Writes `head.safetensors` and `head.json` (labels, multi-label flag) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let tensors: HashMap<String, Tensor> = [
            ("weight".to_string(), self.weight.clone()),
            ("bias".to_string(), self.bias.clone()),
        ]
        .into();
        crate::train::checkpoint::save_tensors(&dir.join("head.safetensors"), &tensors)?;
        let meta = serde_json::json!({"labels": self.labels, "multi_label": self.multi_label});
        crate::train::checkpoint::write_json(&dir.join("head.json"), &meta)
    }

    /// Reads what [`LinearHead::save`] wrote.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let meta: serde_json::Value = crate::error::read_json(&dir.join("head.json"))?;
        let labels: Vec<String> =
            serde_json::from_value(meta["labels"].clone()).map_err(|source| Error::Json {
                path: dir.join("head.json"),
                source,
            })?;
        let multi_label = meta["multi_label"].as_bool().unwrap_or(false);
        let path = dir.join("head.safetensors");
        let tensors = candle_core::safetensors::load(&path, device)?;
        let get = |name: &str| {
            tensors.get(name).cloned().ok_or_else(|| {
                Error::Config(format!("{}: missing tensor {name:?}", path.display()))
            })
        };
        let weight = get("weight")?;
        if weight.dim(0)? != labels.len() {
            return Err(Error::Config(format!(
                "{}: {} rows for {} labels",
                path.display(),
                weight.dim(0)?,
                labels.len()
            )));
        }
        Ok(Self {
            labels,
            multi_label,
            weight,
            bias: get("bias")?,
        })
    }
}
