//! The image candidates of `verdict run`: Yahoo's OpenNSFW, a pretrained classifier that needs
//! no model hub (`verdict models fetch`), scores every sample's images (its contact sheet, or
//! the mean over its rendered views), and two candidates are built from those scores:
//!
//! - `opennsfw-zero-shot`: p(nsfw) mapped onto the task's labels without any training
//!   (`verdict_onnx::zero_shot`); only for tasks with an `nsfw` label, since the model knows
//!   no other distinction.
//! - `opennsfw-logreg`: a logistic-regression head on the 1024-d penultimate features,
//!   standardised with train statistics, fitted on train with `C` chosen by validation
//!   macro-F1. It learns the task's own labels, whatever they are.
//!
//! A sample without a usable image keeps its row (so every candidate is scored on the same
//! samples) with an uninformed answer, marked `image = missing` in the slices: uniform for the
//! zero-shot candidate, the train label frequencies for the head.
//!
//! Outputs, under the task's workdir:
//! ```text
//! runs/opennsfw-zero-shot/predictions_<split>.parquet     val, test, benchmark
//! runs/opennsfw-logreg/predictions_<split>.parquet
//! runs/opennsfw-logreg/head.json                          C sweep, chosen C, val macro-F1
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use verdict_core::manifest::{LabelValue, Sample, Split};
use verdict_core::task::{Modality, TaskKind, TaskSpec};
use verdict_core::workspace::Workspace;
use verdict_onnx::views::{representative_images, score_images, SampleScore};
use verdict_onnx::zero_shot::{label_probabilities, NSFW_LABEL};
use verdict_onnx::NsfwModel;

use super::progress;

mod head;

/// Candidate name (and run folder) of the zero-shot OpenNSFW predictions.
pub const ZERO_SHOT: &str = "opennsfw-zero-shot";
/// Candidate name (and run folder) of the logistic-regression head on OpenNSFW features.
pub const HEAD: &str = "opennsfw-logreg";
/// Splits that get predictions files.
const PREDICTED: [Split; 3] = [Split::Val, Split::Test, Split::Benchmark];

/// True when the task has inputs the image candidates can score (images or rendered meshes)
/// and one label per sample.
pub fn has_image_candidates(task: &TaskSpec) -> bool {
    task.kind != TaskKind::MultiLabel
        && task
            .inputs
            .iter()
            .any(|m| matches!(m, Modality::Image | Modality::ImageUrl | Modality::Mesh))
}

/// Where a candidate's predictions for `split` go.
pub fn predictions_path(workspace: &Workspace, candidate: &str, split: Split) -> PathBuf {
    workspace
        .root
        .join("runs")
        .join(candidate)
        .join(format!("predictions_{}.parquet", split.name()))
}

/// Scores every sample with OpenNSFW and writes both candidates' predictions on val, test and
/// benchmark. Returns the files written.
pub fn image_candidates_stage(workspace: &Workspace) -> anyhow::Result<Vec<PathBuf>> {
    let task = &workspace.task;
    if !has_image_candidates(task) {
        bail!("the image candidates need image or mesh inputs and one label per sample");
    }
    let model_path = verdict_onnx::default_model(verdict_onnx::OPENNSFW)?.locate(&[
        verdict_onnx::model_dir().as_path(),
        workspace.data_dir.as_path(),
    ])?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let model = NsfwModel::load(&model_path)
        .with_context(|| format!("loading {}", model_path.display()))?;

    let mut samples = workspace.current_samples()?;
    super::candidates::localise_images(workspace, &mut samples);
    let of = |split: Split| {
        samples
            .iter()
            .filter(|s| s.split == Some(split))
            .collect::<Vec<_>>()
    };
    // The seed-000 flow keeps everything outside the benchmark as a training pool.
    let mut train = of(Split::Train);
    if train.is_empty() {
        train = of(Split::TrainPool);
    }
    let val = of(Split::Val);
    let mut scored: Vec<&Sample> = train.iter().chain(&val).copied().collect();
    for split in [Split::Test, Split::Benchmark] {
        scored.extend(of(split));
    }
    let scores = score_all(&model, &scored, threads)?;

    let labels: Vec<String> = task.label_names().into_iter().map(String::from).collect();
    let truth = |sample: &Sample| -> anyhow::Result<String> {
        sample
            .label
            .as_ref()
            .and_then(LabelValue::as_single)
            .map(String::from)
            .with_context(|| format!("sample `{}` has no single label", sample.sample_id))
    };
    let with_features = |members: &[&Sample]| -> anyhow::Result<Vec<(Vec<f32>, String)>> {
        members
            .iter()
            .filter_map(|s| scores.get(&s.sample_id).map(|score| (*s, score)))
            .map(|(s, score)| -> anyhow::Result<(Vec<f32>, String)> {
                Ok((score.features.clone(), truth(s)?))
            })
            .collect()
    };
    let stage = progress::Stage::start("fitting a logistic-regression head on OpenNSFW features");
    let head = head::fit(&with_features(&train)?, &with_features(&val)?, &labels)?;
    match &head {
        Some(head) => stage.done(&format!(
            "{HEAD}: C = {}, val macro-F1 {:.4}",
            head.report.c, head.report.val_macro_f1
        )),
        None => stage.done(&format!(
            "{HEAD}: skipped, train needs scored samples of at least two labels"
        )),
    }

    let zero_shot = labels.iter().any(|l| l == NSFW_LABEL);
    if !zero_shot {
        eprintln!(
            "  {ZERO_SHOT}: skipped, the task has no `{NSFW_LABEL}` label for p(nsfw) to map onto"
        );
    }
    let mut written = Vec::new();
    for (candidate, enabled) in [(ZERO_SHOT, zero_shot), (HEAD, head.is_some())] {
        // Predictions of an earlier run must not linger for a split or candidate that is gone.
        for split in PREDICTED {
            let _ = std::fs::remove_file(predictions_path(workspace, candidate, split));
        }
        if !enabled {
            continue;
        }
        for split in PREDICTED {
            let members = of(split);
            if members.is_empty() {
                continue;
            }
            let rows = members
                .iter()
                .map(|sample| {
                    let score = scores.get(&sample.sample_id);
                    let probabilities = match (candidate, score, &head) {
                        (HEAD, Some(score), Some(head)) => head.probabilities(&score.features)?,
                        (HEAD, None, Some(head)) => head.prior.clone(),
                        (_, Some(score), _) => label_probabilities(score.p_nsfw, &labels)?,
                        (_, None, _) => vec![1.0 / labels.len() as f32; labels.len()],
                    };
                    super::candidates::prediction_row(
                        sample,
                        &labels,
                        &probabilities,
                        candidate,
                        task,
                        split,
                        score.and_then(|s| s.used.first()).map(PathBuf::as_path),
                    )
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let path = predictions_path(workspace, candidate, split);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            verdict_eval::prediction::write(&path, &rows, &labels)
                .with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
    }
    if let Some(head) = &head {
        let path = workspace.root.join("runs").join(HEAD).join("head.json");
        verdict_core::fsio::write_json(&path, &head.report)?;
        written.push(path);
    }
    Ok(written)
}

/// A sample id and its score, `None` where none of its images could be scored.
type ScoredSample = (String, Option<SampleScore>);

/// OpenNSFW scores of every sample that has a readable image, keyed by sample id; images are
/// spread over `threads` workers sharing the model's plans.
fn score_all(
    model: &NsfwModel,
    samples: &[&Sample],
    threads: usize,
) -> anyhow::Result<BTreeMap<String, SampleScore>> {
    let jobs: Vec<(&str, Vec<PathBuf>)> = samples
        .iter()
        .map(|s| (s.sample_id.as_str(), representative_images(&s.images)))
        .filter(|(_, images)| !images.is_empty())
        .collect();
    let total = jobs.iter().map(|(_, images)| images.len() as u64).sum();
    let bar = progress::bar(total, "OpenNSFW");
    let chunk = jobs.len().div_ceil(threads.max(1)).max(1);
    let results: Vec<anyhow::Result<Vec<ScoredSample>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                let bar = &bar;
                scope.spawn(move || {
                    part.iter()
                        .map(|(id, images)| -> anyhow::Result<ScoredSample> {
                            let score = score_images(model, images)
                                .with_context(|| format!("scoring sample `{id}`"))?;
                            bar.inc(images.len() as u64);
                            Ok((id.to_string(), score))
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a scoring thread panicked")))
            })
            .collect()
    });
    bar.finish_and_clear();
    let mut scores = BTreeMap::new();
    for result in results {
        for (id, score) in result? {
            match score {
                Some(score) => {
                    for (path, reason) in &score.skipped {
                        tracing::warn!("sample `{id}`: skipped {}: {reason}", path.display());
                    }
                    scores.insert(id, score);
                }
                None => tracing::warn!("sample `{id}`: no readable image"),
            }
        }
    }
    eprintln!(
        "  OpenNSFW scored {} of {} samples ({} without a readable image)",
        scores.len(),
        samples.len(),
        samples.len() - scores.len()
    );
    Ok(scores)
}
