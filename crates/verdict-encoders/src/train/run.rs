//! The training loop of the five scenarios and their evaluation on held-out pairs.
//!
//! Contrastive scenarios use in-batch negatives; with gradient accumulation each micro-batch
//! is its own contrastive problem (no embedding cache across micro-batches), so accumulation
//! trades memory for fewer negatives per step. Shuffling is seeded by `(seed, epoch)`, so a
//! resumed run sees the same batches as an uninterrupted one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use verdict_lora::{LoraConfig, LoraFactory, RngState, TargetModules};
use verdict_retrieval::{retrieval_metrics, RetrievalMetrics};

use super::checkpoint::{load_tensors, save_tensors, write_json};
use super::config::{Scenario, TrainConfig};
use super::data::PairExample;
use super::optim::{AdamW, Gradients, ParamGroup};
use super::schedule::warmup_cosine;
use super::trainable::TrainableLinearFactory;
use crate::dual::{DualEncoder, Embedder, EncoderKind};
use crate::head::{HeadTargets, LinearHead};
use crate::zero_shot::{Scoring, ZeroShotClassifier};
use crate::{Error, Result};

/// Images embedded per forward pass at evaluation.
const EVAL_BATCH: usize = 64;

/// Reported after every optimiser step.
#[derive(Debug, Clone)]
pub struct TrainProgress {
    pub epoch: usize,
    pub epochs: usize,
    pub step: usize,
    pub total_steps: usize,
    pub loss: f64,
}

/// What a scenario achieved on the evaluation pairs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub scenario: Scenario,
    pub model: EncoderKind,
    pub config: TrainConfig,
    /// `"prompts"` (zero-shot scoring) or `"linear_head"`.
    pub method: String,
    /// Classification accuracy of this scenario on the evaluation pairs.
    pub accuracy: f64,
    /// Zero-shot accuracy of the base model on the same pairs, for comparison.
    pub base_zero_shot_accuracy: f64,
    pub retrieval_base: RetrievalMetrics,
    /// After fine-tuning (contrastive scenarios only).
    pub retrieval_finetuned: Option<RetrievalMetrics>,
    /// Mean training loss per epoch (all epochs, including those before a resume).
    pub epoch_losses: Vec<f64>,
    pub trainable_parameters: usize,
    pub resumed_from_epoch: Option<usize>,
}

/// Saved with every epoch checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    epoch: usize,
    optimizer_steps: usize,
    epoch_losses: Vec<f64>,
    rng: Option<RngState>,
    config: TrainConfig,
}

/// Loads every image once.
fn load_images(examples: &[PairExample]) -> Result<Vec<RgbImage>> {
    examples.iter().map(|e| e.image.load()).collect()
}

fn embed_images(embedder: &Embedder, images: &[RgbImage]) -> Result<Tensor> {
    let parts = images
        .chunks(EVAL_BATCH)
        .map(|chunk| Ok(embedder.embed_images(chunk)?.detach()))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0)?)
}

fn embed_texts(embedder: &Embedder, texts: &[String]) -> Result<Tensor> {
    let parts = texts
        .chunks(EVAL_BATCH)
        .map(|chunk| Ok(embedder.embed_texts(chunk)?.detach()))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0)?)
}

fn label_indices(examples: &[PairExample], labels: &[String]) -> Result<Vec<u32>> {
    examples
        .iter()
        .map(|e| {
            let label = e
                .label
                .as_deref()
                .ok_or_else(|| Error::Input(format!("example {} has no label", e.id)))?;
            labels
                .iter()
                .position(|l| l == label)
                .map(|i| i as u32)
                .ok_or_else(|| Error::Input(format!("example {}: unknown label {label:?}", e.id)))
        })
        .collect()
}

fn accuracy(predicted: &[usize], truth: &[u32]) -> f64 {
    let correct = predicted
        .iter()
        .zip(truth)
        .filter(|(p, t)| **p == **t as usize)
        .count();
    correct as f64 / truth.len().max(1) as f64
}

/// Held-out pairs and their labels, embedded by one model.
struct Evaluation<'a> {
    images: &'a [RgbImage],
    captions: Vec<String>,
    unique_captions: Vec<String>,
    truth: Vec<u32>,
    labels: &'a [String],
    label_prompts: &'a [String],
    templates: &'a [String],
}

impl Evaluation<'_> {
    /// Zero-shot accuracy, retrieval metrics, and the image embeddings.
    fn run(&self, embedder: &Embedder) -> Result<(f64, RetrievalMetrics, Tensor)> {
        let image_embeddings = embed_images(embedder, self.images)?;
        let classifier = ZeroShotClassifier::new(
            embedder,
            self.labels,
            self.label_prompts,
            self.templates,
            Scoring::Softmax,
        )?;
        let predicted = classifier.predict(embedder, &image_embeddings)?;
        let text_embeddings = embed_texts(embedder, &self.unique_captions)?;
        let similarity = image_embeddings
            .matmul(&text_embeddings.t()?)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        let metrics = retrieval_metrics(
            &similarity,
            &self.captions,
            &self.unique_captions,
            &[1, 5, 10],
        )
        .map_err(|e| Error::Input(e.to_string()))?;
        Ok((accuracy(&predicted, &self.truth), metrics, image_embeddings))
    }
}

/// Trains (or, for `zero_shot`, only evaluates) one scenario.
///
/// `labels[i]` is scored with the prompt text `label_prompts[i]` put into
/// `config.templates`. Checkpoints go to `out_dir/epoch-N/` (adapter in PEFT format under
/// `adapter/`, tuned projections, optimiser moments, `state.json`); the report to
/// `out_dir/report.json`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    base_dir: &Path,
    config: &TrainConfig,
    train: &[PairExample],
    eval: &[PairExample],
    labels: &[String],
    label_prompts: &[String],
    out_dir: &Path,
    device: &Device,
    progress: &mut dyn FnMut(&TrainProgress),
) -> Result<ScenarioReport> {
    if eval.is_empty() {
        return Err(Error::Input("no evaluation examples".into()));
    }
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    write_json(&out_dir.join("train_config.json"), config)?;
    let base = Embedder::load(base_dir, device, None)?;
    let eval_images = load_images(eval)?;
    let captions: Vec<String> = eval.iter().map(|e| e.caption.clone()).collect();
    let mut unique_captions = captions.clone();
    unique_captions.sort();
    unique_captions.dedup();
    let evaluation = Evaluation {
        images: &eval_images,
        captions,
        unique_captions,
        truth: label_indices(eval, labels)?,
        labels,
        label_prompts,
        templates: &config.templates,
    };
    let (base_accuracy, retrieval_base, base_eval_embeddings) = evaluation.run(&base)?;
    let mut report = ScenarioReport {
        scenario: config.scenario,
        model: base.model.kind(),
        config: config.clone(),
        method: "prompts".into(),
        accuracy: base_accuracy,
        base_zero_shot_accuracy: base_accuracy,
        retrieval_base,
        retrieval_finetuned: None,
        epoch_losses: Vec::new(),
        trainable_parameters: 0,
        resumed_from_epoch: None,
    };
    match config.scenario {
        Scenario::ZeroShot => {}
        Scenario::LinearProbe => {
            let train_images = load_images(train)?;
            let train_embeddings = embed_images(&base, &train_images)?;
            let targets = HeadTargets::SingleLabel(label_indices(train, labels)?);
            let head = LinearHead::fit(labels.to_vec(), &train_embeddings, &targets, &config.head)?;
            head.save(&out_dir.join("head"))?;
            report.method = "linear_head".into();
            report.accuracy = accuracy(&head.predict(&base_eval_embeddings)?, &evaluation.truth);
            report.trainable_parameters = labels.len() * (train_embeddings.dim(1)? + 1);
        }
        Scenario::VisionLora | Scenario::TextLora | Scenario::DualLora => {
            let tuned = contrastive(
                base_dir,
                &base,
                config,
                train,
                out_dir,
                device,
                progress,
                &mut report,
            )?;
            let (accuracy, retrieval, _) = evaluation.run(&tuned)?;
            report.accuracy = accuracy;
            report.retrieval_finetuned = Some(retrieval);
        }
    }
    write_json(&out_dir.join("report.json"), &report)?;
    Ok(report)
}

/// The newest `epoch-N` folder with a complete `state.json`.
fn latest_checkpoint(out_dir: &Path) -> Option<(usize, PathBuf)> {
    let entries = std::fs::read_dir(out_dir).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let epoch = name.strip_prefix("epoch-")?.parse::<usize>().ok()?;
            e.path()
                .join("state.json")
                .exists()
                .then(|| (epoch, e.path()))
        })
        .max_by_key(|(epoch, _)| *epoch)
}

#[allow(clippy::too_many_arguments)]
fn contrastive(
    base_dir: &Path,
    base: &Embedder,
    config: &TrainConfig,
    train: &[PairExample],
    out_dir: &Path,
    device: &Device,
    progress: &mut dyn FnMut(&TrainProgress),
    report: &mut ScenarioReport,
) -> Result<Embedder> {
    if train.len() < 2 {
        return Err(Error::Input(
            "contrastive training needs at least 2 pairs".into(),
        ));
    }
    let micro = config.batch_size / config.gradient_accumulation.max(1);
    if micro < 2 {
        return Err(Error::Config(format!(
            "batch_size {} / gradient_accumulation {} leaves fewer than 2 pairs per micro-batch",
            config.batch_size, config.gradient_accumulation
        )));
    }
    let pattern = config
        .scenario
        .lora_pattern(&config.lora_modules)
        .ok_or_else(|| Error::Config("not an adapter scenario".into()))?;
    let projection_paths: Vec<&str> = if config.train_projections {
        base.model.projection_paths().to_vec()
    } else {
        Vec::new()
    };
    let projections = TrainableLinearFactory::new(&projection_paths);
    let lora_config = LoraConfig {
        r: config.lora_r,
        alpha: config.lora_alpha,
        dropout: config.lora_dropout,
        target_modules: TargetModules::Pattern(pattern),
        ..LoraConfig::default()
    };
    let lora = LoraFactory::with_base_factory(
        lora_config,
        device,
        DType::F32,
        config.seed,
        projections.clone(),
    )
    .map_err(|e| Error::Config(format!("adapter: {e}")))?;
    let model = DualEncoder::load(base_dir, device, Some(lora.clone()))?;
    let tuned = Embedder::with_model(base_dir, model, device)?;
    let lora_vars: Vec<(String, candle_core::Var)> = lora
        .adapters()
        .into_iter()
        .flat_map(|(path, adapter)| {
            [
                (format!("{path}.lora_A"), adapter.a.clone()),
                (format!("{path}.lora_B"), adapter.b.clone()),
            ]
        })
        .collect();
    if lora_vars.is_empty() {
        return Err(Error::Config(format!(
            "no layer matched the adapter modules {:?}",
            config.lora_modules
        )));
    }
    let projection_vars = projections.vars();
    report.trainable_parameters = lora_vars
        .iter()
        .chain(&projection_vars)
        .map(|(_, v)| v.elem_count())
        .sum();
    let all_vars: Vec<candle_core::Var> = lora_vars
        .iter()
        .chain(&projection_vars)
        .map(|(_, v)| v.clone())
        .collect();
    let mut optimizer = AdamW::new(vec![
        ParamGroup::new(
            "projection",
            projection_vars.clone(),
            config.projection_learning_rate,
            config.weight_decay,
        ),
        ParamGroup::new("lora", lora_vars, config.lora_learning_rate, 0.0),
    ])?;

    let steps_per_epoch = train.len().div_ceil(config.batch_size);
    let total_steps = steps_per_epoch * config.epochs;
    let warmup = (config.warmup_ratio * total_steps as f64).ceil() as usize;
    let mut start_epoch = 0;
    if config.resume {
        if let Some((epoch, dir)) = latest_checkpoint(out_dir) {
            let state: CheckpointState = crate::error::read_json(&dir.join("state.json"))?;
            lora.restore_peft_weights(&dir.join("adapter"))
                .map_err(|e| Error::Config(format!("resume adapter: {e}")))?;
            let saved = load_tensors(&dir.join("projections.safetensors"), device)?;
            for (name, var) in &projection_vars {
                let tensor = saved
                    .get(name)
                    .ok_or_else(|| Error::Config(format!("{}: missing {name}", dir.display())))?;
                var.set(tensor)?;
            }
            let moments = load_tensors(&dir.join("optimizer.safetensors"), device)?;
            optimizer.restore(&moments, state.optimizer_steps)?;
            if let Some(rng) = state.rng {
                lora.set_rng_state(rng);
            }
            report.epoch_losses = state.epoch_losses;
            report.resumed_from_epoch = Some(epoch);
            start_epoch = epoch;
        }
    }

    let train_images = load_images(train)?;
    lora.set_training(true);
    for epoch in start_epoch..config.epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ ((epoch as u64 + 1) << 32));
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let mut loss_count = 0usize;
        for batch in order.chunks(config.batch_size) {
            let mut gradients = Gradients::default();
            for part in batch.chunks(micro) {
                if part.len() < 2 {
                    continue;
                }
                let images: Vec<RgbImage> = part.iter().map(|&i| train_images[i].clone()).collect();
                let captions: Vec<&str> = part.iter().map(|&i| train[i].caption.as_str()).collect();
                let image_embeddings = tuned.embed_images(&images)?;
                let text_embeddings = tuned.embed_texts(&captions)?;
                let loss = tuned.model.pair_loss(&image_embeddings, &text_embeddings)?;
                gradients.accumulate(&loss.backward()?, all_vars.iter())?;
                loss_sum += f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
                loss_count += 1;
            }
            if gradients.micro_batches() == 0 {
                continue;
            }
            let multiplier = warmup_cosine(optimizer.steps_taken(), warmup, total_steps);
            optimizer.step_accumulated(&gradients, multiplier)?;
            progress(&TrainProgress {
                epoch: epoch + 1,
                epochs: config.epochs,
                step: optimizer.steps_taken(),
                total_steps,
                loss: loss_sum / loss_count.max(1) as f64,
            });
        }
        report
            .epoch_losses
            .push(loss_sum / loss_count.max(1) as f64);
        save_checkpoint(
            &out_dir.join(format!("epoch-{}", epoch + 1)),
            base_dir,
            &lora,
            &projection_vars,
            &optimizer,
            CheckpointState {
                epoch: epoch + 1,
                optimizer_steps: optimizer.steps_taken(),
                epoch_losses: report.epoch_losses.clone(),
                rng: Some(lora.rng_state()),
                config: config.clone(),
            },
        )?;
    }
    lora.set_training(false);
    Ok(tuned)
}

fn save_checkpoint(
    dir: &Path,
    base_dir: &Path,
    lora: &Arc<LoraFactory>,
    projection_vars: &[(String, candle_core::Var)],
    optimizer: &AdamW,
    state: CheckpointState,
) -> Result<()> {
    // state.json is written last: a folder without it is an interrupted save and is ignored
    // on resume.
    let base_name = base_dir.to_string_lossy().to_string();
    lora.save_peft(&dir.join("adapter"), &base_name)
        .map_err(|e| Error::Config(format!("save adapter: {e}")))?;
    let projections = projection_vars
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    save_tensors(&dir.join("projections.safetensors"), &projections)?;
    let (moments, _) = optimizer.state();
    save_tensors(&dir.join("optimizer.safetensors"), &moments)?;
    write_json(&dir.join("state.json"), &state)
}
