//! The model behind the service: a text baseline or a Qwen3-VL checkpoint, loaded from a
//! directory, with one batch call that the batcher drives.
//!
//! A batch call returns one result per input, in input order, and an input's failure never
//! fails its neighbours: the batcher relies on this to give every caller its own answer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;
use verdict_baseline::{Baseline, Head, MULTI_LABEL_THRESHOLD};
use verdict_models::qwen3_vl::classify::Classifier;
use verdict_models::qwen3_vl::inputs::Preprocessor;
use verdict_models::qwen3_vl::Qwen3VL;
use verdict_models::{DType, Device};

use crate::error::{Result, ServeError};
use crate::placement::Placement;
use crate::qwen::{parallel_map, EncodedPrompt, QwenEngine};

/// One thing to classify.
#[derive(Debug, Clone, Default)]
pub struct ClassifyInput {
    pub text: Option<String>,
    pub images: Vec<RgbImage>,
    /// Also produce a short reason (constrained JSON generation; Qwen3-VL only).
    pub reason: bool,
}

/// An input with the host work of its model call already done (see [`ServedModel::prepare`]).
#[derive(Debug)]
pub struct PreparedInput {
    input: ClassifyInput,
    /// Qwen3-VL's encoded prompt; `None` for other models and for labels of several tokens.
    encoded: Option<EncodedPrompt>,
}

/// What the model says about one input.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyOutput {
    /// Probability of every label, in the model's label order.
    pub probabilities: Vec<f64>,
    /// Labels whose probabilities are independent (multi-label head) rather than a
    /// distribution over one choice.
    pub multi_label: bool,
    pub reason: Option<String>,
}

/// Why one input failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// The input does not suit this model (no text for a text model, ...): the caller's fault.
    Input(String),
    /// The model failed: logged, answered as an internal error.
    Internal(String),
}

/// Which family the served model belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    TextBaseline,
    Qwen3Vl,
    /// A [`BatchModel`] plugged in by the embedding program.
    Custom,
}

/// Any other classifier the service can batch: given inputs, one result per input in order.
/// Implementations must not mix inputs: result `i` answers input `i`.
pub trait BatchModel: Send + Sync {
    /// Label names, in the order of [`ClassifyOutput::probabilities`].
    fn labels(&self) -> Vec<String>;
    /// Whether inputs may carry images.
    fn accepts_images(&self) -> bool;
    fn classify_batch(&self, inputs: &[ClassifyInput]) -> Vec<Result<ClassifyOutput, ModelError>>;
}

/// Labels (and their descriptions, for prompts) a generative model chooses between.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSet {
    pub names: Vec<String>,
    pub descriptions: Vec<String>,
}

/// A loaded model.
pub enum ServedModel {
    Baseline(Box<Baseline>),
    Qwen(Box<QwenEngine>),
    Custom(Box<dyn BatchModel>),
}

impl std::fmt::Debug for ServedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServedModel({:?}, {:?})", self.kind(), self.labels())
    }
}

impl ServedModel {
    /// Loads `dir`: a baseline directory (`baseline.json`) or a Qwen3-VL checkpoint
    /// (`config.json`). A generative model needs `labels`; a baseline knows its own.
    pub fn load(dir: &Path, labels: Option<LabelSet>) -> Result<Self> {
        Self::load_with_adapter(dir, labels, None)
    }

    /// [`ServedModel::load`] with a PEFT-format LoRA `adapter` directory applied to a
    /// Qwen3-VL checkpoint (the base weights stay as they are on disk; the adapter wraps the
    /// layers it targets).
    pub fn load_with_adapter(
        dir: &Path,
        labels: Option<LabelSet>,
        adapter: Option<&Path>,
    ) -> Result<Self> {
        Self::load_on(dir, labels, adapter, &Placement::cpu())
    }

    /// [`ServedModel::load_with_adapter`] on the device and in the precision of `placement`.
    /// A Qwen3-VL checkpoint (and its adapter) is loaded there; a text baseline runs on the
    /// CPU only and refuses any other device.
    pub fn load_on(
        dir: &Path,
        labels: Option<LabelSet>,
        adapter: Option<&Path>,
        placement: &Placement,
    ) -> Result<Self> {
        let failure = |message: String| ServeError::Model {
            path: dir.to_path_buf(),
            message,
        };
        if dir.join("baseline.json").exists() {
            if let Some(adapter) = adapter {
                return Err(failure(format!(
                    "adapter {}: LoRA adapters apply to Qwen3-VL checkpoints, not text baselines",
                    adapter.display()
                )));
            }
            placement
                .require_cpu("a text baseline (TF-IDF + linear model)")
                .map_err(failure)?;
            let baseline = Baseline::load(dir).map_err(|e| failure(e.to_string()))?;
            return Ok(Self::Baseline(Box::new(baseline)));
        }
        if dir.join("config.json").exists() {
            let labels = labels.filter(|l| !l.names.is_empty()).ok_or_else(|| {
                failure(
                    "a Qwen3-VL checkpoint needs the labels to score: pass --task TASK.toml \
                     (or --labels a,b)"
                        .into(),
                )
            })?;
            let (device, dtype) = (&placement.device, placement.dtype());
            let classifier = match adapter {
                None => Classifier::load(dir, dtype, device).map_err(|e| failure(e.to_string()))?,
                Some(adapter) => load_adapted(dir, adapter, device, dtype).map_err(failure)?,
            };
            let engine = QwenEngine::new(classifier, labels).map_err(failure)?;
            return Ok(Self::Qwen(Box::new(engine)));
        }
        Err(failure(
            "neither baseline.json (text baseline) nor config.json (Qwen3-VL checkpoint) found"
                .into(),
        ))
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Baseline(_) => ModelKind::TextBaseline,
            Self::Qwen(_) => ModelKind::Qwen3Vl,
            Self::Custom(_) => ModelKind::Custom,
        }
    }

    /// Label names, in the order of [`ClassifyOutput::probabilities`].
    pub fn labels(&self) -> Vec<String> {
        match self {
            Self::Baseline(baseline) => match &baseline.head {
                Head::SingleLabel(model) => model.classes.clone(),
                Head::MultiLabel { labels, .. } => labels.clone(),
            },
            Self::Qwen(engine) => engine.labels().names.clone(),
            Self::Custom(model) => model.labels(),
        }
    }

    /// Whether the model reads images (else only text).
    pub fn accepts_images(&self) -> bool {
        match self {
            Self::Baseline(_) => false,
            Self::Qwen(_) => true,
            Self::Custom(model) => model.accepts_images(),
        }
    }

    /// Probability threshold of a multi-label head.
    pub fn multi_label_threshold(&self) -> f64 {
        MULTI_LABEL_THRESHOLD
    }

    /// Classifies a batch; one result per input, in order.
    pub fn classify_batch(
        &self,
        inputs: &[ClassifyInput],
    ) -> Vec<Result<ClassifyOutput, ModelError>> {
        match self {
            Self::Baseline(baseline) => classify_baseline(baseline, inputs),
            Self::Qwen(engine) => engine.classify_batch(inputs),
            Self::Custom(model) => model.classify_batch(inputs),
        }
    }

    /// The work of one input that needs no model call: for Qwen3-VL, the prompt, its tokens
    /// and the image patches on the model's device ([`QwenEngine::encode`]); nothing for the
    /// other models. Run it off the model thread (the server does, while the request waits
    /// for the queue), so the model never waits on it. An input the model cannot take fails
    /// here, before it takes a queue slot.
    pub fn prepare(&self, input: ClassifyInput) -> Result<PreparedInput, ModelError> {
        let encoded = match self {
            Self::Qwen(engine) => engine.encode(&input)?,
            Self::Baseline(_) | Self::Custom(_) => None,
        };
        Ok(PreparedInput { input, encoded })
    }

    /// [`ServedModel::prepare`] of many inputs, on several threads; one result per input,
    /// in order.
    pub fn prepare_all(
        &self,
        inputs: Vec<ClassifyInput>,
    ) -> Vec<Result<PreparedInput, ModelError>> {
        match self {
            Self::Qwen(engine) => {
                let encoded = parallel_map(&inputs, |input| engine.encode(input));
                inputs
                    .into_iter()
                    .zip(encoded)
                    .map(|(input, encoded)| {
                        Ok(PreparedInput {
                            input,
                            encoded: encoded?,
                        })
                    })
                    .collect()
            }
            Self::Baseline(_) | Self::Custom(_) => inputs
                .into_iter()
                .map(|input| self.prepare(input))
                .collect(),
        }
    }

    /// Classifies a batch of prepared inputs; one result per input, in order.
    pub fn classify_prepared(
        &self,
        items: Vec<PreparedInput>,
    ) -> Vec<Result<ClassifyOutput, ModelError>> {
        match self {
            Self::Qwen(engine) => {
                let ready: Vec<(&ClassifyInput, Option<&EncodedPrompt>)> = items
                    .iter()
                    .map(|item| (&item.input, item.encoded.as_ref()))
                    .collect();
                engine.classify_encoded(&ready)
            }
            Self::Baseline(_) | Self::Custom(_) => {
                let inputs: Vec<ClassifyInput> = items.into_iter().map(|i| i.input).collect();
                self.classify_batch(&inputs)
            }
        }
    }
}

/// A Qwen3-VL classifier whose linear layers carry the LoRA adapter of `adapter_dir`.
fn load_adapted(
    dir: &Path,
    adapter_dir: &Path,
    device: &Device,
    dtype: DType,
) -> std::result::Result<Classifier, String> {
    let in_adapter = |e: verdict_lora::Error| format!("adapter {}: {e}", adapter_dir.display());
    let factory =
        verdict_lora::LoraFactory::load_peft(adapter_dir, device, dtype).map_err(in_adapter)?;
    let model =
        Qwen3VL::load(dir, dtype, device, Some(factory.clone())).map_err(|e| e.to_string())?;
    // An adapter whose layers the model never asked for targets another architecture.
    factory.ensure_all_loaded().map_err(in_adapter)?;
    let preprocessor = Preprocessor::from_dir(dir).map_err(|e| e.to_string())?;
    Ok(Classifier::new(model, preprocessor))
}

/// Baselines read text only; inputs without text fail alone, the rest run as one matrix.
fn classify_baseline(
    baseline: &Baseline,
    inputs: &[ClassifyInput],
) -> Vec<Result<ClassifyOutput, ModelError>> {
    let multi_label = matches!(baseline.head, Head::MultiLabel { .. });
    let mut results: Vec<Result<ClassifyOutput, ModelError>> = Vec::with_capacity(inputs.len());
    let mut texts = Vec::new();
    let mut positions = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let problem = if !input.images.is_empty() {
            Some("a text baseline reads text only; this item has images")
        } else if input.text.is_none() {
            Some("a text baseline needs `text`")
        } else if input.reason {
            Some("reasons need a generative model; a text baseline only gives probabilities")
        } else {
            None
        };
        match problem {
            Some(message) => results.push(Err(ModelError::Input(message.into()))),
            None => {
                results.push(Err(ModelError::Internal("not computed".into())));
                texts.push(input.text.as_deref().unwrap_or_default());
                positions.push(i);
            }
        }
    }
    if texts.is_empty() {
        return results;
    }
    match baseline.predict_proba(&texts) {
        Ok(probabilities) => {
            for (row, &i) in positions.iter().enumerate() {
                results[i] = Ok(ClassifyOutput {
                    probabilities: probabilities.row(row).to_vec(),
                    multi_label,
                    reason: None,
                });
            }
        }
        Err(error) => {
            for &i in &positions {
                results[i] = Err(ModelError::Internal(error.to_string()));
            }
        }
    }
    results
}

/// Identity of what is served, reported with every answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Directory name of the model.
    pub id: String,
    pub path: PathBuf,
    pub adapter: Option<String>,
}

impl ModelInfo {
    pub fn from_path(path: &Path) -> Self {
        let id = path
            .canonicalize()
            .unwrap_or_else(|_| path.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        Self {
            id,
            path: path.to_path_buf(),
            adapter: None,
        }
    }
}

/// Shared handle to a loaded model.
pub type SharedModel = Arc<ServedModel>;
