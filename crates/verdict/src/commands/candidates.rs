//! Model selection in `verdict run`: the task's candidate base models scored on val, test and
//! the sealed benchmark, the best one chosen by benchmark macro-F1, and the chosen one
//! fine-tuned with LoRA when the task asks for it.
//!
//! A Qwen3-VL candidate answers zero-shot; a CLIP/SigLIP candidate gives two runs, zero-shot by
//! label prompts (`<name>`) and a linear head on its frozen image embeddings (`<name>-head`).
//! Candidates come from the task's `[[candidates]]` (see `verdict_core::candidates`); a task
//! with image or mesh inputs and none listed gets the OpenNSFW default. Outputs, under the
//! task's workdir:
//! ```text
//! runs/<candidate>/predictions_<split>.parquet     val, test, benchmark
//! report/selection/                                 report.html, metrics.json of the comparison
//! report/selection.json                             split, rows, chosen model
//! runs/finetuned/train/                             SFT data, checkpoints, adapter, merged model
//! runs/finetuned/predictions_<split>.parquet
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use verdict_core::candidates::{CandidateKind, CandidateSpec};
use verdict_core::manifest::{LabelValue, Sample, Split};
use verdict_core::task::TaskSpec;
use verdict_core::workspace::Workspace;
use verdict_eval::prediction::PredictionSet;
use verdict_eval::Prediction;

use super::image_stage;
use super::pipeline;

mod scoring;

/// Run folder and model id of the fine-tuned candidate.
pub const FINETUNED: &str = "finetuned";
/// Splits every candidate predicts.
pub const PREDICTED: [Split; 3] = [Split::Val, Split::Test, Split::Benchmark];

/// The task's candidates, or the defaults its inputs allow when it lists none (OpenNSFW for
/// image and mesh tasks, when its model is in the store); `candidates = []` means none.
pub fn candidates_of(workspace: &Workspace) -> Vec<CandidateSpec> {
    let task = &workspace.task;
    if let Some(listed) = &task.candidates {
        return listed.clone();
    }
    if image_stage::has_image_candidates(task) && opennsfw_available(&workspace.data_dir) {
        vec![CandidateSpec {
            name: "opennsfw".into(),
            kind: CandidateKind::Opennsfw,
            path: None,
            max_samples: None,
            prompt: None,
        }]
    } else {
        Vec::new()
    }
}

/// Whether the OpenNSFW model has been fetched (`verdict models fetch opennsfw`); checked
/// once per process, since it verifies the file's checksum.
fn opennsfw_available(data_dir: &Path) -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        verdict_onnx::default_model(verdict_onnx::OPENNSFW)
            .and_then(|model| model.locate(&[verdict_onnx::model_dir().as_path(), data_dir]))
            .is_ok()
    })
}

/// True when the candidates stage has something to do for this task.
pub fn has_candidates(workspace: &Workspace) -> bool {
    workspace.task.kind != verdict_core::task::TaskKind::MultiLabel
        && !candidates_of(workspace).is_empty()
}

/// Run folders the candidates produce, in task order.
fn candidate_runs(workspace: &Workspace) -> Vec<String> {
    let mut runs = Vec::new();
    for candidate in candidates_of(workspace) {
        match candidate.kind {
            CandidateKind::Opennsfw => {
                runs.push(image_stage::ZERO_SHOT.to_string());
                runs.push(image_stage::HEAD.to_string());
            }
            CandidateKind::Clip | CandidateKind::Siglip => {
                runs.push(candidate.name.clone());
                runs.push(scoring::head_run(&candidate.name));
            }
            CandidateKind::Qwen3Vl => runs.push(candidate.name.clone()),
        }
    }
    runs
}

/// Every model run `verdict run` compares: the baseline, the candidates, the fine-tuned model.
pub fn compared_runs(workspace: &Workspace, with_finetuned: bool) -> Vec<String> {
    let mut runs = Vec::new();
    if pipeline::has_model_stages(&workspace.task) {
        runs.push(pipeline::BASELINE_RUN.to_string());
    }
    runs.extend(candidate_runs(workspace));
    if with_finetuned && workspace.task.finetune.enabled {
        runs.push(FINETUNED.to_string());
    }
    runs
}

/// Where run `run`'s predictions for `split` go.
pub fn predictions_path(workspace: &Workspace, run: &str, split: Split) -> PathBuf {
    image_stage::predictions_path(workspace, run, split)
}

/// Scores every candidate on val, test and benchmark. Returns the files written.
pub fn candidates_stage(workspace: &Workspace) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for candidate in candidates_of(workspace) {
        let files = match candidate.kind {
            CandidateKind::Opennsfw => image_stage::image_candidates_stage(workspace),
            CandidateKind::Qwen3Vl => {
                let dir = checkpoint(workspace, &candidate)?;
                scoring::qwen3_vl(workspace, &candidate, &dir, &candidate.name)
            }
            CandidateKind::Clip | CandidateKind::Siglip => {
                let dir = checkpoint(workspace, &candidate)?;
                scoring::dual_encoder(workspace, &candidate, &dir)
            }
        }
        .with_context(|| format!("candidate `{}` ({:?})", candidate.name, candidate.kind))?;
        written.extend(files);
    }
    Ok(written)
}

/// The candidate's checkpoint directory, checked to exist.
fn checkpoint(workspace: &Workspace, candidate: &CandidateSpec) -> anyhow::Result<PathBuf> {
    let dir = candidate
        .resolved_path(workspace.task_dir())
        .with_context(|| format!("candidate `{}` has no `path`", candidate.name))?;
    if !dir.join("config.json").is_file() {
        bail!(
            "candidate `{}`: {} is not a checkpoint directory (no config.json); set `path` to a local Hugging Face-format model folder",
            candidate.name,
            dir.display()
        );
    }
    Ok(dir)
}

/// A checkpoint directory's files by name, size and modification time: cheap enough for
/// multi-gigabyte weights, and any replaced file changes it.
pub fn checkpoint_listing(dir: &Path) -> Vec<(String, u64, u64)> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if let Ok(meta) = entry.metadata() {
                if meta.is_file() {
                    let modified = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_secs());
                    files.push((
                        entry.file_name().to_string_lossy().into_owned(),
                        meta.len(),
                        modified,
                    ));
                }
            }
        }
    }
    files.sort();
    files
}

/// What the candidates stage reads besides the samples: the candidate list and each
/// checkpoint's listing.
pub fn candidates_setting(workspace: &Workspace) -> serde_json::Value {
    let candidates = candidates_of(workspace);
    let listings: Vec<_> = candidates
        .iter()
        .map(|c| {
            c.resolved_path(workspace.task_dir())
                .map(|dir| checkpoint_listing(&dir))
        })
        .collect();
    serde_json::json!({ "candidates": candidates, "checkpoints": listings })
}

/// The model choice, kept in `report/selection.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Selection {
    /// The split the candidates were compared on (the sealed benchmark when there is one).
    pub split: String,
    pub samples: usize,
    /// (run, model id, accuracy, macro-F1), in task order.
    pub rows: Vec<(String, String, f64, f64)>,
    /// Run folder of the best macro-F1 (first one on ties).
    pub chosen: String,
    pub report: PathBuf,
}

pub fn selection_path(workspace: &Workspace) -> PathBuf {
    pipeline::report_dir(workspace).join("selection.json")
}

pub fn load_selection(workspace: &Workspace) -> Option<Selection> {
    verdict_core::fsio::read_json(&selection_path(workspace)).ok()
}

/// Reads the predictions of `runs` on `split` that exist, restricted to the samples all of
/// them predicted (a candidate with `max_samples` scores fewer).
pub fn read_sets(
    workspace: &Workspace,
    runs: &[String],
    split: Split,
) -> anyhow::Result<Vec<(String, PredictionSet)>> {
    let mut sets = Vec::new();
    for run in runs {
        let path = predictions_path(workspace, run, split);
        if path.is_file() {
            let set = verdict_eval::prediction::read(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            sets.push((run.clone(), set));
        }
    }
    let Some(first) = sets.first() else {
        return Ok(sets);
    };
    let mut common: BTreeSet<String> = first.1.rows.iter().map(|r| r.sample_id.clone()).collect();
    for (_, set) in &sets[1..] {
        let ids: BTreeSet<String> = set.rows.iter().map(|r| r.sample_id.clone()).collect();
        common = common.intersection(&ids).cloned().collect();
    }
    for (_, set) in &mut sets {
        set.rows.retain(|r| common.contains(&r.sample_id));
    }
    sets.retain(|(_, set)| !set.rows.is_empty());
    Ok(sets)
}

/// Compares every candidate (and the baseline) on the benchmark, or on val when the task has
/// no benchmark, writes the comparison report and `selection.json`.
pub fn select_stage(workspace: &Workspace) -> anyhow::Result<Vec<PathBuf>> {
    let task = &workspace.task;
    let runs = compared_runs(workspace, false);
    let mut split = Split::Benchmark;
    let mut sets = read_sets(workspace, &runs, split)?;
    if sets.is_empty() {
        split = Split::Val;
        sets = read_sets(workspace, &runs, split)?;
    }
    if sets.is_empty() {
        bail!("no candidate has predictions on the benchmark or val split");
    }
    let spec = pipeline::eval_spec(task)?;
    let dir = pipeline::report_dir(workspace).join("selection");
    let names: Vec<String> = sets.iter().map(|(run, _)| run.clone()).collect();
    let samples = sets[0].1.rows.len();
    let summary = verdict_eval::evaluate_sets(
        sets.into_iter().map(|(_, set)| set).collect(),
        None,
        &spec,
        &dir,
    )
    .with_context(|| format!("comparing the candidates on the {} split", split.name()))?;
    let rows: Vec<(String, String, f64, f64)> = names
        .iter()
        .zip(&summary.models)
        .map(|(run, model)| {
            (
                run.clone(),
                model.model_id.clone(),
                model.metrics.get("accuracy").unwrap_or(f64::NAN),
                model.metrics.get("macro_f1").unwrap_or(f64::NAN),
            )
        })
        .collect();
    let chosen = rows
        .iter()
        .fold(
            None::<&(String, String, f64, f64)>,
            |best, row| match best {
                // Ties and NaNs keep the earlier row.
                Some(b) if row.3.partial_cmp(&b.3) != Some(std::cmp::Ordering::Greater) => Some(b),
                _ => Some(row),
            },
        )
        .map(|row| row.0.clone())
        .context("no candidate to choose from")?;
    eprintln!("  model selection on {} ({samples} samples):", split.name());
    for (run, _, accuracy, macro_f1) in &rows {
        let mark = if *run == chosen { "  <- chosen" } else { "" };
        eprintln!("    {run:<22} accuracy {accuracy:.4}  macro-F1 {macro_f1:.4}{mark}");
    }
    let selection = Selection {
        split: split.name().to_string(),
        samples,
        rows,
        chosen,
        report: summary.report_path.clone(),
    };
    verdict_core::fsio::write_json(&selection_path(workspace), &selection)?;
    Ok(vec![selection_path(workspace), dir])
}

/// The candidate the fine-tune stage trains: `[finetune] candidate`, else the selection's
/// winner when it is a Qwen3-VL model. `None` with the reason otherwise.
pub fn finetune_target(workspace: &Workspace) -> Result<CandidateSpec, String> {
    let task = &workspace.task;
    let candidates = candidates_of(workspace);
    let name = match &task.finetune.candidate {
        Some(name) => name.clone(),
        None => match load_selection(workspace) {
            Some(selection) => selection.chosen,
            None => return Err("no model selection yet".into()),
        },
    };
    match candidates.into_iter().find(|c| c.name == name) {
        Some(c) if c.kind.can_finetune() => Ok(c),
        Some(c) => Err(format!(
            "the chosen model `{name}` is a {:?} candidate; only qwen3_vl candidates are fine-tuned",
            c.kind
        )),
        None => Err(format!(
            "the chosen model `{name}` is not a fine-tunable candidate"
        )),
    }
}

/// LoRA fine-tuning of the target candidate on train (validated on val), merged, then scored
/// like the candidates. Without a fine-tunable target it says why and clears old outputs.
pub fn finetune_stage(workspace: &Workspace) -> anyhow::Result<Vec<PathBuf>> {
    let run_dir = workspace.root.join("runs").join(FINETUNED);
    let target = match finetune_target(workspace) {
        Ok(target) => target,
        Err(reason) => {
            eprintln!("  fine-tuning skipped: {reason}");
            for split in PREDICTED {
                let _ = std::fs::remove_file(predictions_path(workspace, FINETUNED, split));
            }
            return Ok(Vec::new());
        }
    };
    let base = checkpoint(workspace, &target)?;
    let spec = &workspace.task.finetune;
    let out = run_dir.join("train");
    // A changed setting or base means a new run, not a resume of the old one.
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    // Through the command's own argument parser, so the run gets exactly the defaults
    // `verdict train` documents.
    #[derive(clap::Parser)]
    struct TrainCli {
        #[command(flatten)]
        args: super::train::Args,
    }
    let mut argv: Vec<std::ffi::OsString> = vec!["train".into()];
    argv.push(workspace.task_path.clone().into());
    for (flag, value) in [
        ("--base", base.clone().into_os_string()),
        ("--out", out.clone().into_os_string()),
        ("--epochs", spec.epochs.to_string().into()),
        ("--lr", spec.lr.to_string().into()),
        ("--rank", spec.rank.to_string().into()),
        ("--alpha", (2 * spec.rank).to_string().into()),
        ("--seed", workspace.task.seed.to_string().into()),
        ("--data-dir", workspace.data_dir.clone().into_os_string()),
    ] {
        argv.push(flag.into());
        argv.push(value);
    }
    if let Some(rows) = spec.max_rows {
        argv.push("--max-rows".into());
        argv.push(rows.to_string().into());
    }
    argv.push("--merge".into());
    let args = <TrainCli as clap::Parser>::try_parse_from(argv)
        .context("building the fine-tuning settings")?
        .args;
    eprintln!("  fine-tuning `{}` ({})", target.name, base.display());
    super::train::run(args).context("fine-tuning")?;
    let merged = out.join("merged");
    let mut written = vec![out.join("adapter"), merged.clone()];
    written.extend(scoring::qwen3_vl(workspace, &target, &merged, FINETUNED)?);
    Ok(written)
}

/// The samples as the models see them: image URLs replaced by their downloaded copies in the
/// run's image cache, and dropped when the download failed or has not run (the sample then
/// falls back to text only, as the listing workload asks).
pub fn localise_images(workspace: &Workspace, samples: &mut [Sample]) {
    let cache = verdict_media::cache::ImageCache::new(super::media::default_cache_dir(workspace));
    for sample in samples {
        sample.images = sample
            .images
            .iter()
            .filter_map(|reference| {
                if verdict_core::manifest::is_url(reference) {
                    cache
                        .lookup(reference)
                        .map(|p| p.to_string_lossy().into_owned())
                } else {
                    Some(reference.clone())
                }
            })
            .collect();
    }
}

/// One predictions row from per-label probabilities (argmax is the predicted label).
pub fn prediction_row(
    sample: &Sample,
    labels: &[String],
    probabilities: &[f32],
    model_id: &str,
    task: &TaskSpec,
    split: Split,
    image: Option<&Path>,
) -> anyhow::Result<Prediction> {
    let probabilities: BTreeMap<String, f64> = labels
        .iter()
        .cloned()
        .zip(probabilities.iter().map(|&p| f64::from(p)))
        .collect();
    let predicted = probabilities
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(label, _)| label.clone())
        .unwrap_or_default();
    let mut slices = BTreeMap::new();
    slices.insert(
        "image".to_string(),
        if image.is_some() {
            "present"
        } else {
            "missing"
        }
        .to_string(),
    );
    if let Some(source) = &sample.source {
        slices.insert("source".to_string(), source.clone());
    }
    let truth = sample
        .label
        .as_ref()
        .and_then(LabelValue::as_single)
        .with_context(|| format!("sample `{}` has no single label", sample.sample_id))?;
    Ok(Prediction {
        sample_id: sample.sample_id.clone(),
        true_labels: vec![truth.to_string()],
        predicted_labels: vec![predicted],
        probabilities,
        reason: None,
        decision: None,
        slices,
        model_id: model_id.to_string(),
        run_id: format!("{}-{}", task.name, split.name()),
        input_text: sample.text.as_ref().map(|t| t.chars().take(600).collect()),
        image_path: image.map(|p| p.to_string_lossy().into_owned()),
    })
}
