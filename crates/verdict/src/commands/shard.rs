//! `verdict shard ...`: the two ends of a sharded stage run as a Kubernetes Indexed Job or a
//! Slurm job array. `select` prints the items one shard owns (for tools that take a list),
//! `merge` checks that all `N` parts arrived exactly once and combines them.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use verdict_dist::{merge, MergeOptions, ShardSpec};

use super::progress::Stage;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ShardCommand,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SelectBy {
    /// Round-robin over line positions: line k goes to shard k mod N (fixed input order).
    Position,
    /// sha256 of the line, modulo N: independent of the listing order (object stores).
    Key,
}

#[derive(clap::Subcommand)]
pub enum ShardCommand {
    /// Print the lines of a listing (one item per line: a path, a URL, an id) that shard
    /// `i/N` owns.
    Select {
        /// This shard, `i/N` with 0 <= i < N (e.g. from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID).
        #[arg(long)]
        shard: ShardSpec,
        /// The listing; `-` reads standard input.
        #[arg(default_value = "-")]
        listing: PathBuf,
        /// How items are assigned to shards.
        #[arg(long, value_enum, default_value = "key")]
        by: SelectBy,
    },
    /// Merge the `part-<i>-of-<N>` outputs of a sharded stage: JSONL records (sorted by
    /// `--key`, duplicates refused), parquet rows, or folder trees. Refuses missing,
    /// duplicated or mixed parts.
    Merge {
        /// Part files/folders, or folders holding them.
        #[arg(required = true)]
        parts: Vec<PathBuf>,
        /// Merged output (file for JSONL/parquet parts, folder for folder parts).
        #[arg(long, short)]
        out: PathBuf,
        /// JSONL field to sort records by and check for duplicates (e.g. `id`).
        #[arg(long)]
        key: Option<String>,
        /// Replace an existing output.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        ShardCommand::Select { shard, listing, by } => select(shard, &listing, by),
        ShardCommand::Merge {
            parts,
            out,
            key,
            force,
        } => {
            let stage = Stage::start("merging parts");
            let options = MergeOptions {
                key,
                overwrite: force,
            };
            let summary = merge(&parts, &out, &options)
                .with_context(|| format!("merging into {}", out.display()))?;
            stage.done(&format!(
                "merged {} parts ({} items) into {}",
                summary.parts,
                summary.items,
                out.display()
            ));
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
    }
}

fn select(shard: ShardSpec, listing: &Path, by: SelectBy) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = if listing.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(listing)
            .with_context(|| format!("opening listing {}", listing.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut position = 0usize;
    for (number, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", listing.display(), number + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let owned = match by {
            SelectBy::Position => position % shard.count() == shard.index(),
            SelectBy::Key => shard.owns_key(line.trim()),
        };
        position += 1;
        if owned {
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    Ok(())
}
