//! Saving and loading a fitted [`Baseline`] as a directory that serving can load:
//!
//! - `baseline.json`: format version, settings, head layout (classes / labels), feature info;
//! - `vocabulary.json`: TF-IDF terms in column order (TF-IDF only);
//! - `weights.safetensors`: `idf` `[V]`, and per logistic model `{prefix}coef` `[rows, d]`
//!   and `{prefix}intercept` `[rows]`, all f64.
//!
//! Embedding baselines store the encoder directory's path, not a copy of its weights.
//! Every file is written to a temporary name and renamed, so an interrupted save never
//! leaves a half-written model behind a valid name.

use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::baseline::{
    Baseline, BaselineConfig, FeatureConfig, Features, Head, LabelModel, ABSENT, PRESENT,
};
use crate::embed::SentenceEncoder;
use crate::error::{BaselineError, Result};
use crate::logistic::LogisticRegression;
use crate::tfidf::TfidfVectorizer;

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum HeadLayout {
    SingleLabel {
        classes: Vec<String>,
    },
    MultiLabel {
        labels: Vec<String>,
        constants: Vec<Option<f64>>,
    },
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    format_version: u32,
    config: BaselineConfig,
    n_features: usize,
    head: HeadLayout,
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes).map_err(|e| BaselineError::io("writing", &temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| BaselineError::io("renaming into", path, e))
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Baseline {
    /// Writes the model into `directory` (created if needed).
    pub fn save(&self, directory: &Path) -> Result<()> {
        std::fs::create_dir_all(directory)
            .map_err(|e| BaselineError::io("creating", directory, e))?;
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let n_features = match &self.features {
            Features::Tfidf(vectorizer) => {
                if let Some(idf) = vectorizer.idf() {
                    tensors.push(("idf".into(), vec![idf.len()], f64_bytes(idf)));
                }
                let vocabulary = serde_json::to_vec(vectorizer.vocabulary())
                    .map_err(|e| BaselineError::Data(e.to_string()))?;
                write_atomically(&directory.join("vocabulary.json"), &vocabulary)?;
                vectorizer.vocabulary().len()
            }
            Features::Embedding(encoder) => encoder.dimension(),
        };
        let mut push_model = |prefix: &str, model: &LogisticRegression| {
            let rows = model.intercepts.len();
            tensors.push((
                format!("{prefix}coef"),
                vec![rows, model.n_features],
                f64_bytes(&model.coefficients),
            ));
            tensors.push((
                format!("{prefix}intercept"),
                vec![rows],
                f64_bytes(&model.intercepts),
            ));
        };
        let head = match &self.head {
            Head::SingleLabel(model) => {
                push_model("", model);
                HeadLayout::SingleLabel {
                    classes: model.classes.clone(),
                }
            }
            Head::MultiLabel { labels, models } => {
                let mut constants = Vec::new();
                for (i, model) in models.iter().enumerate() {
                    match model {
                        LabelModel::Constant(p) => constants.push(Some(*p)),
                        LabelModel::Logistic(model) => {
                            push_model(&format!("label{i}."), model);
                            constants.push(None);
                        }
                    }
                }
                HeadLayout::MultiLabel {
                    labels: labels.clone(),
                    constants,
                }
            }
        };
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| {
                TensorView::new(Dtype::F64, shape.clone(), bytes)
                    .map(|view| (name.clone(), view))
                    .map_err(|e| BaselineError::Data(format!("tensor {name}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let weights = safetensors::serialize(views, None)
            .map_err(|e| BaselineError::Data(format!("serialising weights: {e}")))?;
        write_atomically(&directory.join("weights.safetensors"), &weights)?;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            config: self.config.clone(),
            n_features,
            head,
        };
        let json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| BaselineError::Data(e.to_string()))?;
        // The manifest goes last: a directory with a manifest has all its parts.
        write_atomically(&directory.join("baseline.json"), &json)
    }

    /// Loads a model written by [`Baseline::save`].
    pub fn load(directory: &Path) -> Result<Self> {
        let manifest_path = directory.join("baseline.json");
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| BaselineError::io("reading", &manifest_path, e))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| BaselineError::format(&manifest_path, e.to_string()))?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(BaselineError::format(
                &manifest_path,
                format!(
                    "format_version {} is not supported (expected {FORMAT_VERSION})",
                    manifest.format_version
                ),
            ));
        }
        let weights_path = directory.join("weights.safetensors");
        let bytes = std::fs::read(&weights_path)
            .map_err(|e| BaselineError::io("reading", &weights_path, e))?;
        let tensors = SafeTensors::deserialize(&bytes)
            .map_err(|e| BaselineError::format(&weights_path, e.to_string()))?;
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f64>> {
            let view = tensors
                .tensor(name)
                .map_err(|e| BaselineError::format(&weights_path, format!("tensor {name}: {e}")))?;
            if view.dtype() != Dtype::F64 || view.shape() != shape {
                return Err(BaselineError::format(
                    &weights_path,
                    format!(
                        "tensor {name} is {:?} {:?}, expected F64 {shape:?}",
                        view.dtype(),
                        view.shape()
                    ),
                ));
            }
            Ok(view
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect())
        };
        let d = manifest.n_features;
        let features = match &manifest.config.features {
            FeatureConfig::Tfidf(config) => {
                let vocabulary_path = directory.join("vocabulary.json");
                let text = std::fs::read_to_string(&vocabulary_path)
                    .map_err(|e| BaselineError::io("reading", &vocabulary_path, e))?;
                let vocabulary: Vec<String> = serde_json::from_str(&text)
                    .map_err(|e| BaselineError::format(&vocabulary_path, e.to_string()))?;
                if vocabulary.len() != d {
                    return Err(BaselineError::format(
                        &vocabulary_path,
                        format!("{} terms, the manifest says {d}", vocabulary.len()),
                    ));
                }
                let idf = if config.use_idf {
                    Some(read("idf", &[d])?)
                } else {
                    None
                };
                Features::Tfidf(TfidfVectorizer::from_parts(
                    config.clone(),
                    vocabulary,
                    idf,
                )?)
            }
            FeatureConfig::Embedding {
                model_dir,
                batch_size,
            } => {
                Features::Embedding(SentenceEncoder::load(model_dir)?.with_batch_size(*batch_size))
            }
        };
        let logistic = manifest.config.logistic;
        let load_model = |prefix: &str, classes: Vec<String>| -> Result<LogisticRegression> {
            let rows = if classes.len() == 2 { 1 } else { classes.len() };
            Ok(LogisticRegression {
                coefficients: read(&format!("{prefix}coef"), &[rows, d])?,
                intercepts: read(&format!("{prefix}intercept"), &[rows])?,
                classes,
                n_features: d,
                config: logistic,
            })
        };
        let head = match manifest.head {
            HeadLayout::SingleLabel { classes } => Head::SingleLabel(load_model("", classes)?),
            HeadLayout::MultiLabel { labels, constants } => {
                if constants.len() != labels.len() {
                    return Err(BaselineError::format(
                        &manifest_path,
                        "multi-label head: one entry per label expected",
                    ));
                }
                let models = constants
                    .iter()
                    .enumerate()
                    .map(|(i, constant)| match constant {
                        Some(p) => Ok(LabelModel::Constant(*p)),
                        None => load_model(
                            &format!("label{i}."),
                            vec![ABSENT.to_owned(), PRESENT.to_owned()],
                        )
                        .map(LabelModel::Logistic),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Head::MultiLabel { labels, models }
            }
        };
        Ok(Self {
            config: manifest.config,
            features,
            head,
        })
    }
}
