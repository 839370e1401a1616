//! `verdict package RUN_DIR`: zip a run's artifacts (metadata, metrics, reports, predictions).

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run folder to package.
    pub run_dir: PathBuf,

    /// Archive to write (default: `<RUN_DIR>.zip` beside the folder).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let summary = verdict_eval::package(&args.run_dir, args.output.as_deref())?;
    println!(
        "{} ({} files, {} bytes before compression)",
        summary.archive.display(),
        summary.files,
        summary.bytes
    );
    Ok(())
}
