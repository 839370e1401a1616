//! `verdict run [TASK]`: the main job, every stage the task enables, in order.
//!
//! Without a task it runs the bundled default (`examples/listing-spam`), written to
//! `verdict-demo/task.toml` on first use so it can be inspected and edited.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::data::{self, DataDir};

/// The task `verdict run` runs when none is given.
pub const DEFAULT_TASK: &str = include_str!("../../../../examples/listing-spam/task.toml");

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
    #[command(flatten)]
    pub data: DataDir,
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
    data::fetch(&workspace)?;
    data::import(&workspace, args.strict)?;
    data::render(&workspace)?;
    data::split(&workspace, false)?;
    let samples = workspace.current_samples()?;
    let stats = verdict_core::stats::compute(&samples, &workspace.task);
    eprint!("{}", stats.render());
    if let Some(summary) = super::pipeline::run_model_stages(&workspace)? {
        super::pipeline::print_summary(&summary, &workspace.root);
    }
    Ok(())
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
