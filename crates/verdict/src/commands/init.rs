//! `verdict init DIR --template NAME`: write a commented example task file.

use std::path::PathBuf;

use anyhow::{bail, Context};
use verdict_core::templates;

#[derive(clap::Args)]
pub struct Args {
    /// Folder for the new task (created if missing).
    pub dir: PathBuf,
    /// Which example to start from.
    #[arg(long, short, default_value = "print-triage", value_parser = clap::builder::PossibleValuesParser::new(templates::names()))]
    pub template: String,
    /// Replace an existing task.toml.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let text = templates::get(&args.template)
        .with_context(|| format!("unknown template `{}`", args.template))?;
    let path = args.dir.join("task.toml");
    if path.exists() && !args.force {
        bail!("{} exists; pass --force to replace it", path.display());
    }
    verdict_core::fsio::atomic_write(&path, |w| w.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    println!(
        "next: edit its [[sources]], then `verdict data import {}`",
        path.display()
    );
    Ok(())
}
