//! Zero-shot scoring of checkpoint candidates: Qwen3-VL by label scoring with the same
//! conversation the fine-tuning uses (so zero-shot and fine-tuned numbers are comparable),
//! CLIP/SigLIP by label prompts.

use std::path::{Path, PathBuf};

use anyhow::Context;
use verdict_core::candidates::CandidateSpec;
use verdict_core::manifest::{Sample, Split};
use verdict_core::workspace::Workspace;
use verdict_encoders::zero_shot::Scoring;
use verdict_encoders::{DualEncoderClassifier, Embedder};
use verdict_models::qwen3_vl::classify::{Classifier, Query};
use verdict_models::{DType, Device};
use verdict_train::sft::{build_records, AnswerFormat};

use super::{prediction_row, predictions_path, PREDICTED};
use crate::commands::progress;

/// Templates of the dual-encoder label prompts; the class embedding is their mean.
const TEMPLATES: [&str; 3] = ["a photo of {}.", "a rendering of {}.", "an image of {}."];

/// The samples of `split` a candidate scores: all, or the first `max_samples`.
fn members(samples: &[Sample], split: Split, cap: Option<usize>) -> Vec<&Sample> {
    samples
        .iter()
        .filter(|s| s.split == Some(split))
        .take(cap.unwrap_or(usize::MAX))
        .collect()
}

fn labels_of(workspace: &Workspace) -> Vec<String> {
    workspace
        .task
        .label_names()
        .into_iter()
        .map(String::from)
        .collect()
}

/// Writes one split's rows, replacing an earlier file.
fn write(
    workspace: &Workspace,
    run: &str,
    split: Split,
    rows: &[verdict_eval::Prediction],
    labels: &[String],
) -> anyhow::Result<PathBuf> {
    let path = predictions_path(workspace, run, split);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    verdict_eval::prediction::write(&path, rows, labels)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Scores val, test and benchmark with the Qwen3-VL checkpoint in `dir`, writing `run`'s
/// predictions.
pub fn qwen3_vl(
    workspace: &Workspace,
    candidate: &CandidateSpec,
    dir: &Path,
    run: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let task = &workspace.task;
    let labels = labels_of(workspace);
    let mut samples = workspace.current_samples()?;
    super::localise_images(workspace, &mut samples);
    let base = workspace.root.join("data");
    let stage = progress::Stage::start(&format!("loading {}", dir.display()));
    let classifier = Classifier::load(dir, DType::F32, &Device::Cpu)
        .with_context(|| format!("loading the Qwen3-VL checkpoint {}", dir.display()))?;
    stage.done(&format!("loaded {}", dir.display()));
    let mut written = Vec::new();
    for split in PREDICTED {
        let _ = std::fs::remove_file(predictions_path(workspace, run, split));
        let members = members(&samples, split, candidate.max_samples);
        if members.is_empty() {
            continue;
        }
        let owned: Vec<Sample> = members.iter().map(|s| (*s).clone()).collect();
        let records = build_records(task, &owned, &base, AnswerFormat::Label)?;
        let bar = progress::bar(records.len() as u64, &format!("{run} on {}", split.name()));
        let mut rows = Vec::with_capacity(records.len());
        for (sample, record) in owned.iter().zip(&records) {
            let paths = record.images();
            let images = paths
                .iter()
                .map(|p| verdict_encoders::preprocess::load_image(p))
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("sample `{}`: reading its images", sample.sample_id))?;
            let mut text = record.user_text();
            if let Some(prompt) = &candidate.prompt {
                text = format!("{prompt}\n{text}");
            }
            let query = Query {
                system: record.system(),
                text,
                images,
            };
            let scores = classifier
                .score(&query, &labels)
                .with_context(|| format!("scoring sample `{}`", sample.sample_id))?;
            let probabilities: Vec<f32> = scores.probabilities.iter().map(|&p| p as f32).collect();
            rows.push(prediction_row(
                sample,
                &labels,
                &probabilities,
                run,
                task,
                split,
                paths.first().map(PathBuf::as_path),
            )?);
            bar.inc(1);
        }
        bar.finish_and_clear();
        written.push(write(workspace, run, split, &rows, &labels)?);
    }
    Ok(written)
}

/// The text put into the templates for a label: its description when it has one, else its
/// name with underscores as spaces.
fn label_prompt(label: &verdict_core::task::LabelDef) -> String {
    let description = label.description.trim().trim_end_matches('.');
    if description.is_empty() {
        label.name.replace('_', " ")
    } else {
        format!("{}: {}", label.name.replace('_', " "), description)
    }
}

/// A sample's image as the dual encoder sees it: its first local image (the contact sheet
/// when rendered), if the file exists.
fn encoder_image(sample: &Sample, base: &Path) -> Option<PathBuf> {
    verdict_onnx::views::representative_images(&sample.images)
        .first()
        .map(|p| Sample::resolve(base, &p.to_string_lossy()))
        .filter(|p| p.is_file())
}

/// Run name of a dual-encoder candidate's trained head.
pub fn head_run(candidate: &str) -> String {
    format!("{candidate}-head")
}

/// Scores val, test and benchmark with the CLIP/SigLIP checkpoint in `dir` twice: zero-shot by
/// label prompts (run `<name>`), and with a linear head trained on the frozen image embeddings
/// of the train split (run `<name>-head`; skipped when train has no images of two labels).
/// Samples without an image get uniform probabilities, marked `image = missing`.
pub fn dual_encoder(
    workspace: &Workspace,
    candidate: &CandidateSpec,
    dir: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let task = &workspace.task;
    let labels = labels_of(workspace);
    let mut samples = workspace.current_samples()?;
    super::localise_images(workspace, &mut samples);
    let base = workspace.root.join("data");
    let load = || {
        Embedder::load(dir, &Device::Cpu, None)
            .with_context(|| format!("loading the dual encoder {}", dir.display()))
    };
    let prompts: Vec<String> = task.labels.iter().map(label_prompt).collect();
    let templates: Vec<String> = TEMPLATES.iter().map(|t| t.to_string()).collect();
    // One label per sample: softmax over the label logits, for SigLIP too (its bias was
    // trained for independent sigmoids, but the softmax still ranks the labels).
    let zero_shot =
        DualEncoderClassifier::zero_shot(load()?, &labels, &prompts, &templates, Scoring::Softmax)?;
    let mut written = score_dual(workspace, candidate, &zero_shot, &candidate.name, &samples)?;

    let head_name = head_run(&candidate.name);
    for split in PREDICTED {
        let _ = std::fs::remove_file(predictions_path(workspace, &head_name, split));
    }
    let mut images = Vec::new();
    let mut targets = Vec::new();
    for sample in samples.iter().filter(|s| s.split == Some(Split::Train)) {
        let label = sample.label.as_ref().and_then(|l| l.as_single());
        let index = label.and_then(|l| labels.iter().position(|x| x == l));
        if let (Some(index), Some(path)) = (index, encoder_image(sample, &base)) {
            images.push(
                verdict_encoders::preprocess::load_image(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
            );
            targets.push(index as u32);
        }
    }
    let distinct: std::collections::BTreeSet<u32> = targets.iter().copied().collect();
    if distinct.len() < 2 {
        eprintln!("  {head_name}: skipped, train needs images of at least two labels");
        return Ok(written);
    }
    let stage = progress::Stage::start(&format!(
        "{head_name}: training a linear head on {} train images",
        images.len()
    ));
    let head = DualEncoderClassifier::fit_head(
        load()?,
        labels.clone(),
        &images,
        &verdict_encoders::head::HeadTargets::SingleLabel(targets),
        &verdict_encoders::head::HeadConfig::default(),
    )?;
    stage.done(&format!("{head_name}: head trained"));
    written.extend(score_dual(
        workspace, candidate, &head, &head_name, &samples,
    )?);
    Ok(written)
}

/// Writes `run`'s predictions of `classifier` on val, test and benchmark.
fn score_dual(
    workspace: &Workspace,
    candidate: &CandidateSpec,
    classifier: &DualEncoderClassifier,
    run: &str,
    samples: &[Sample],
) -> anyhow::Result<Vec<PathBuf>> {
    let task = &workspace.task;
    let labels = classifier.labels().to_vec();
    let base = workspace.root.join("data");
    let mut written = Vec::new();
    for split in PREDICTED {
        let _ = std::fs::remove_file(predictions_path(workspace, run, split));
        let members = members(samples, split, candidate.max_samples);
        if members.is_empty() {
            continue;
        }
        let bar = progress::bar(members.len() as u64, &format!("{run} on {}", split.name()));
        let uniform = vec![1.0 / labels.len() as f32; labels.len()];
        let mut rows = Vec::with_capacity(members.len());
        for sample in members {
            let image = encoder_image(sample, &base);
            let probabilities = match &image {
                Some(path) => classifier
                    .predict_proba_paths(std::slice::from_ref(path))
                    .with_context(|| format!("scoring sample `{}`", sample.sample_id))?
                    .pop()
                    .unwrap_or_else(|| uniform.clone()),
                None => uniform.clone(),
            };
            rows.push(prediction_row(
                sample,
                &labels,
                &probabilities,
                run,
                task,
                split,
                image.as_deref(),
            )?);
            bar.inc(1);
        }
        bar.finish_and_clear();
        written.push(write(workspace, run, split, &rows, &labels)?);
    }
    Ok(written)
}
