//! `verdict run [TASK]`: the main job, every stage the task enables, in order.
//!
//! Without a task it runs the bundled default (`examples/listing-spam`), written to
//! `verdict-demo/task.toml` on first use so it can be inspected and edited.
//!
//! Every stage is cached by a fingerprint of what it reads and the settings it uses
//! (`verdict_core::stages`): a second run of the same task does no work, and changing one
//! setting reruns only the stages that depend on it. A failing stage stops the run and keeps
//! every earlier stage's outputs and records.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use verdict_core::stages::{Decision, Fingerprint, Selection, StageCache};
use verdict_core::workspace::Workspace;

use super::candidates;
use super::data::{self, DataDir};
use super::pipeline;

/// The task `verdict run` runs when none is given.
pub const DEFAULT_TASK: &str = include_str!("../../../../examples/listing-spam/task.toml");

/// Stage names, in the order they run.
pub const STAGES: [&str; 11] = [
    "fetch",
    "import",
    "images",
    "render",
    "split",
    "baseline",
    "candidates",
    "select",
    "finetune",
    "evaluate",
    "package",
];

#[derive(clap::Args)]
pub struct Args {
    /// Task file. Default: the bundled listing-spam example on the real SpamAssassin corpus.
    pub task: Option<PathBuf>,
    /// Where the default task is written when no task is given.
    #[arg(long, default_value = "verdict-demo")]
    pub demo_dir: PathBuf,
    /// Fail on any invalid input row instead of setting it aside.
    #[arg(long)]
    pub strict: bool,
    /// Start at this stage (it reruns even if up to date; earlier stages are not run).
    #[arg(long, value_name = "STAGE")]
    pub from: Option<String>,
    /// Stop after this stage.
    #[arg(long, value_name = "STAGE")]
    pub until: Option<String>,
    /// Rerun this stage even if up to date (repeatable). Stages: fetch, import, images,
    /// render, split, baseline, candidates, select, finetune, evaluate, package.
    #[arg(long, value_name = "STAGE")]
    pub force: Vec<String>,
    #[command(flatten)]
    pub data: DataDir,
}

/// How each stage went, for the closing table.
struct Outcome {
    stage: &'static str,
    status: String,
    seconds: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let task_path = match &args.task {
        Some(path) => path.clone(),
        None => materialise_default(&args.demo_dir)?,
    };
    let workspace = data::open(&task_path, &args.data)?;
    eprintln!(
        "task `{}` ({:?}) -> {}",
        workspace.task.name,
        workspace.task.kind,
        workspace.root.display()
    );
    let selection = Selection {
        from: args.from.clone(),
        until: args.until.clone(),
        force: args.force.clone(),
    };
    let cache = StageCache::new(workspace.root.join("stages"), &STAGES, selection)?;
    let mut outcomes = Vec::new();
    let w = &workspace;
    let task = &w.task;

    stage(
        &cache,
        &mut outcomes,
        "fetch",
        || {
            Ok(Fingerprint::new()
                .setting("fetch", &task.fetch)?
                .setting("data_dir", &w.data_dir)?)
        },
        || {
            data::fetch(w)?;
            Ok(task
                .fetch
                .iter()
                .map(|spec| verdict_core::fetch::location(spec, &w.data_dir))
                .collect())
        },
    )?;
    stage(
        &cache,
        &mut outcomes,
        "import",
        || import_fingerprint(w),
        || {
            let report = data::import(w, args.strict)?;
            Ok(vec![report.manifest, report.rejects])
        },
    )?;
    if task
        .inputs
        .contains(&verdict_core::task::Modality::ImageUrl)
    {
        stage(
            &cache,
            &mut outcomes,
            "images",
            // The manifest decides which URLs to fetch; failed downloads are retried with
            // `--force images` (hashing a large image cache on every run would cost more).
            || Ok(Fingerprint::new().file(&w.manifest_path())?),
            || {
                let status =
                    super::media::fetch(w, None, &verdict_media::cache::FetchOptions::default())?;
                Ok(vec![status])
            },
        )?;
    }
    if task.inputs.contains(&verdict_core::task::Modality::Mesh) {
        stage(
            &cache,
            &mut outcomes,
            "render",
            || {
                Ok(Fingerprint::new()
                    .setting("render", &task.render)?
                    .file(&w.manifest_path())?)
            },
            || {
                data::render(w)?;
                Ok(vec![w.manifest_path()])
            },
        )?;
    }
    stage(
        &cache,
        &mut outcomes,
        "split",
        || {
            Ok(Fingerprint::new()
                .setting("split", &task.split)?
                .setting("seed", &task.seed)?
                .setting("labels", &task.label_names())?
                .file(&w.manifest_path())?)
        },
        || {
            data::split(w, false)?;
            let samples = w.current_samples()?;
            let stats = verdict_core::stats::compute(&samples, task);
            eprint!("{}", stats.render());
            Ok(vec![w.splits_path()])
        },
    )?;
    let any_model = pipeline::has_model_stages(task) || candidates::has_candidates(w);
    if pipeline::has_model_stages(task) {
        stage(
            &cache,
            &mut outcomes,
            "baseline",
            || {
                Ok(Fingerprint::new()
                    .setting("baseline", &task.baseline)?
                    .setting("kind", &task.kind)?
                    .setting("labels", &task.label_names())?
                    .file(&w.manifest_path())?
                    .file(&w.splits_path())?)
            },
            || pipeline::baseline_stage(w),
        )?;
    }
    if candidates::has_candidates(w) {
        stage(
            &cache,
            &mut outcomes,
            "candidates",
            || {
                Ok(Fingerprint::new()
                    .setting("candidates", &candidates::candidates_setting(w))?
                    .setting("kind", &task.kind)?
                    .setting("labels", &task.labels)?
                    .setting("description", &task.description)?
                    .setting("render", &task.render)?
                    .file(&w.splits_path())?
                    .file(&images_status(w))?)
            },
            || candidates::candidates_stage(w),
        )?;
    }
    if any_model {
        stage(
            &cache,
            &mut outcomes,
            "select",
            || predictions_fingerprint(w, false),
            || candidates::select_stage(w),
        )?;
    }
    if any_model && task.finetune.enabled {
        stage(
            &cache,
            &mut outcomes,
            "finetune",
            || {
                Ok(Fingerprint::new()
                    .setting("finetune", &task.finetune)?
                    .setting("candidates", &candidates::candidates_setting(w))?
                    .setting("labels", &task.labels)?
                    .file(&candidates::selection_path(w))?
                    .file(&w.splits_path())?
                    .file(&images_status(w))?)
            },
            || candidates::finetune_stage(w),
        )?;
    }
    if any_model {
        stage(
            &cache,
            &mut outcomes,
            "evaluate",
            || {
                Ok(predictions_fingerprint(w, true)?
                    .setting("policy", &task.policy)?
                    .setting("seed", &task.seed)?
                    .setting("labels", &task.labels)?
                    .file(&candidates::selection_path(w))?)
            },
            || pipeline::evaluate_stage(w),
        )?;
        stage(
            &cache,
            &mut outcomes,
            "package",
            || Ok(Fingerprint::new().tree(&pipeline::report_dir(w))?),
            || {
                let archive = w
                    .root
                    .join("package")
                    .join(format!("{}-report.zip", task.name));
                if let Some(dir) = archive.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                let summary = verdict_eval::package(&pipeline::report_dir(w), Some(&archive))
                    .context("packaging the report")?;
                eprintln!(
                    "  packaged {} files into {}",
                    summary.files,
                    summary.archive.display()
                );
                Ok(vec![archive])
            },
        )?;
    } else {
        eprintln!("(no model stage applies to this task: the text baseline needs text input, the candidates image or mesh input or a [[candidates]] list, and both one label per sample)");
    }

    print_stages(&outcomes);
    if any_model {
        if let Some(summary) = pipeline::load_summary(w) {
            pipeline::print_summary(&summary, &w.root);
        }
    }
    Ok(())
}

/// What import reads: the sources (by content), and the parts of the task that decide how
/// rows are validated and labelled.
fn import_fingerprint(w: &Workspace) -> anyhow::Result<Fingerprint> {
    let task = &w.task;
    let mut fp = Fingerprint::new()
        .setting("sources", &task.sources)?
        .setting("kind", &task.kind)?
        .setting("labels", &task.labels)?
        .setting("dimensions", &task.dimensions)?
        .setting("inputs", &task.inputs)?;
    for (index, source) in task.sources.iter().enumerate() {
        let hash = w
            .source_hash(source)
            .with_context(|| format!("reading source {index} of the task"))?;
        fp = fp.digest(&format!("source{index}"), hash.sha256);
    }
    Ok(fp)
}

/// The download status the images stage writes (which cached copies the models see).
fn images_status(w: &Workspace) -> PathBuf {
    w.root
        .join("data")
        .join(verdict_media::cache::STATUS_FILE_NAME)
}

/// The predictions of every compared model on val, test and benchmark, by content.
fn predictions_fingerprint(w: &Workspace, with_finetuned: bool) -> anyhow::Result<Fingerprint> {
    let mut fp = Fingerprint::new();
    for run in candidates::compared_runs(w, with_finetuned) {
        for split in candidates::PREDICTED {
            fp = fp.file(&candidates::predictions_path(w, &run, split))?;
        }
    }
    Ok(fp)
}

/// Runs one stage unless it is up to date or outside `--from`/`--until`.
fn stage(
    cache: &StageCache,
    outcomes: &mut Vec<Outcome>,
    name: &'static str,
    fingerprint: impl Fn() -> anyhow::Result<Fingerprint>,
    body: impl FnOnce() -> anyhow::Result<Vec<PathBuf>>,
) -> anyhow::Result<()> {
    let before = fingerprint().with_context(|| format!("stage `{name}`: reading its inputs"))?;
    match cache.decide(name, &before) {
        Decision::Cached => {
            eprintln!("· {name}: up to date");
            outcomes.push(Outcome {
                stage: name,
                status: "up to date".into(),
                seconds: 0.0,
            });
        }
        Decision::Skipped => outcomes.push(Outcome {
            stage: name,
            status: "not selected".into(),
            seconds: 0.0,
        }),
        Decision::Run(reason) => {
            tracing::debug!("stage {name}: {reason}");
            let started = Instant::now();
            let outputs = body().with_context(|| {
                format!("stage `{name}` failed (outputs of earlier stages are kept; fix the problem and rerun)")
            })?;
            let seconds = started.elapsed().as_secs_f64();
            let after = fingerprint()?;
            cache.complete(name, &after, outputs, seconds)?;
            outcomes.push(Outcome {
                stage: name,
                status: format!("ran ({reason})"),
                seconds,
            });
        }
    }
    Ok(())
}

fn print_stages(outcomes: &[Outcome]) {
    eprintln!("\n{:<10} {:<34} {:>8}", "stage", "status", "seconds");
    for o in outcomes {
        eprintln!("{:<10} {:<34} {:>8.1}", o.stage, o.status, o.seconds);
    }
}

fn materialise_default(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("task.toml");
    if !path.exists() {
        verdict_core::fsio::atomic_write(&path, |w| w.write_all(DEFAULT_TASK.as_bytes()))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote the default task to {}", path.display());
    }
    Ok(path)
}
