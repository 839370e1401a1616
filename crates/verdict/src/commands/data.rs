//! `verdict data ...`: fetch, import, split, verify and describe a task's data.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use verdict_core::seal;
use verdict_core::workspace::Workspace;

use super::progress::Stage;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: DataCommand,
}

/// Where fetched packages are kept.
#[derive(clap::Args, Clone, Debug)]
pub struct DataDir {
    /// Data store for fetched corpora and models [default: ~/.cache/verdict/data].
    #[arg(long, env = "VERDICT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

impl DataDir {
    pub fn resolve(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(verdict_core::fetch::data_dir)
    }
}

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Download the packages the task's [[fetch]] entries name into the data store.
    Fetch {
        task: PathBuf,
        #[command(flatten)]
        data: DataDir,
    },
    /// Import and validate every source into work/data/manifest.jsonl.
    Import {
        task: PathBuf,
        /// Fail on any problem instead of writing bad rows to the rejects file.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Render every sample's meshes into work/rendered/<sample_id>/<view>.png.
    Render {
        task: PathBuf,
        #[command(flatten)]
        data: DataDir,
    },
    /// Assign splits; draw and seal the benchmark if the task asks for one.
    Split {
        task: PathBuf,
        /// Seal a new benchmark version instead of reusing the latest sealed one.
        #[arg(long)]
        new_benchmark: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Check that sealed benchmarks are unchanged; names every difference.
    Verify {
        /// A task file, or a sealed benchmark folder.
        target: PathBuf,
    },
    /// Class balance against targets, counts per split, label-confidence histogram.
    Stats {
        task: PathBuf,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDir,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        DataCommand::Fetch { task, data } => {
            fetch(&open(&task, &data)?)?;
        }
        DataCommand::Import { task, strict, data } => {
            import(&open(&task, &data)?, strict)?;
        }
        DataCommand::Render { task, data } => {
            render(&open(&task, &data)?)?;
        }
        DataCommand::Split {
            task,
            new_benchmark,
            data,
        } => {
            split(&open(&task, &data)?, new_benchmark)?;
        }
        DataCommand::Verify { target } => verify(&target)?,
        DataCommand::Stats { task, json, data } => {
            let workspace = open(&task, &data)?;
            let samples = workspace.current_samples()?;
            let stats = verdict_core::stats::compute(&samples, &workspace.task);
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print!("{}", stats.render());
            }
        }
    }
    Ok(())
}

pub fn open(task: &Path, data: &DataDir) -> anyhow::Result<Workspace> {
    Workspace::open(task, &data.resolve())
        .with_context(|| format!("opening task {}", task.display()))
}

pub fn fetch(workspace: &Workspace) -> anyhow::Result<()> {
    for spec in &workspace.task.fetch {
        if verdict_core::fetch::is_fetched(spec, &workspace.data_dir) {
            tracing::debug!("{} already fetched", spec.package);
            continue;
        }
        let stage = Stage::start(&format!("fetching {}", spec.package));
        let dir = verdict_core::fetch::fetch(spec, &workspace.data_dir)?;
        stage.done(&format!("fetched {} into {}", spec.package, dir.display()));
    }
    Ok(())
}

pub fn import(
    workspace: &Workspace,
    strict: bool,
) -> anyhow::Result<verdict_core::workspace::ImportReport> {
    let stage = Stage::start("importing and validating");
    let report = workspace.import(strict)?;
    stage.done(&format!(
        "imported {} samples into {} ({} rejected{})",
        report.imported,
        report.manifest.display(),
        report.rejected,
        if report.rejected > 0 {
            format!(", see {}", report.rejects.display())
        } else {
            String::new()
        }
    ));
    Ok(report)
}

/// Renders meshes when the task has mesh input; a no-op otherwise.
pub fn render(workspace: &Workspace) -> anyhow::Result<()> {
    if !workspace
        .task
        .inputs
        .contains(&verdict_core::task::Modality::Mesh)
    {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let summary = super::render_stage::render_task(workspace)?;
    super::progress::report_done(
        started,
        &format!(
            "rendered {} samples ({} up to date, {} failed{})",
            summary.rendered,
            summary.up_to_date,
            summary.failed,
            if summary.failed > 0 {
                "; see meta.render_error in the manifest"
            } else {
                ""
            }
        ),
    );
    Ok(())
}

pub fn split(
    workspace: &Workspace,
    new_benchmark: bool,
) -> anyhow::Result<verdict_core::workspace::SplitReport> {
    let stage = Stage::start("splitting");
    let report = workspace.split(new_benchmark)?;
    let counts: Vec<String> = report
        .counts
        .iter()
        .map(|(split, n)| format!("{} {n}", split.name()))
        .collect();
    let mut message = format!("splits: {}", counts.join(", "));
    if let Some(n) = report.mini_train {
        message.push_str(&format!(" (mini_train {n})"));
    }
    if let Some((dir, sealed_now)) = &report.benchmark {
        let verb = if *sealed_now {
            "sealed new"
        } else {
            "reused sealed"
        };
        message.push_str(&format!("; {verb} benchmark {}", dir.display()));
    }
    stage.done(&message);
    Ok(report)
}

fn verify(target: &Path) -> anyhow::Result<()> {
    let dirs: Vec<PathBuf> = if target.join(seal::LOCK_NAME).is_file() {
        vec![target.to_path_buf()]
    } else {
        let workspace = Workspace::open(target, &verdict_core::fetch::data_dir())
            .with_context(|| format!("opening task {}", target.display()))?;
        let versions = seal::versions(&workspace.benchmarks_dir());
        if versions.is_empty() {
            bail!(
                "no sealed benchmark under {}",
                workspace.benchmarks_dir().display()
            );
        }
        versions.into_iter().map(|(_, dir)| dir).collect()
    };
    let mut broken = 0;
    for dir in dirs {
        let findings =
            seal::verify(&dir).with_context(|| format!("verifying {}", dir.display()))?;
        if findings.is_empty() {
            println!("ok        {}", dir.display());
        } else {
            broken += 1;
            println!(
                "CHANGED   {} ({} finding(s))",
                dir.display(),
                findings.len()
            );
            for finding in findings {
                println!("  - {finding}");
            }
        }
    }
    if broken > 0 {
        bail!("{broken} sealed benchmark(s) no longer match their lock");
    }
    Ok(())
}
