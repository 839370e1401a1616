//! `verdict label run|status|resume|cancel`: structured attribute extraction with a
//! vision-language model through an OpenAI-compatible batch API (Verdict's own server by
//! default), as a crash-safe job folder that any later `resume` continues.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::ProgressBar;
use verdict_label::{Counts, Job, LabelError, Progress};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: LabelCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum LabelCommand {
    /// Start a job from a spec (TOML or JSON: input table, prompt, fields, endpoint) and run
    /// it to the end. The labelled table is written to a new file; the input is only read.
    Run {
        spec: PathBuf,
        /// Job folder (state, journal, request and result files); default: `<spec>.job`
        /// next to the spec.
        #[arg(long)]
        job: Option<PathBuf>,
    },
    /// Show where a job stands: items labelled / invalid / failed / pending, each request
    /// file's batch.
    Status {
        job: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Continue a stopped job (killed, interrupted, endpoint unreachable) from its last
    /// saved step.
    Resume {
        job: PathBuf,
        /// Continue a cancelled job.
        #[arg(long)]
        reopen: bool,
    },
    /// Cancel the job's batches in flight; a running `run`/`resume` stops after
    /// downloading their partial results. `resume --reopen` continues later.
    Cancel { job: PathBuf },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        LabelCommand::Run { spec, job } => {
            let dir = job.unwrap_or_else(|| default_job_dir(&spec));
            let job = Job::create(&spec, &dir)
                .with_context(|| format!("starting a job for {}", spec.display()))?;
            eprintln!("job folder: {}", dir.display());
            drive(job)
        }
        LabelCommand::Resume { job, reopen } => {
            let job = Job::open(&job, reopen)
                .with_context(|| format!("opening job {}", job.display()))?;
            drive(job)
        }
        LabelCommand::Status { job, json } => {
            let report = verdict_label::status(&job)
                .with_context(|| format!("reading job {}", job.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(())
        }
        LabelCommand::Cancel { job } => {
            let report = verdict_label::block_on(verdict_label::cancel(&job))
                .with_context(|| format!("cancelling job {}", job.display()))?;
            print!("{report}");
            Ok(())
        }
    }
}

fn default_job_dir(spec: &Path) -> PathBuf {
    let stem = spec
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "label".into());
    spec.with_file_name(format!("{stem}.job"))
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn update(&self, done: usize, total: usize, message: &str) {
        self.0.set_length(total as u64);
        self.0.set_position(done as u64);
        self.0.set_message(message.to_string());
    }
}

fn drive(mut job: Job) -> anyhow::Result<()> {
    let dir = job.dir().to_path_buf();
    let bar = Bar(super::progress::bar(job.state().items as u64, "labelling"));
    let result = verdict_label::block_on(job.run(&bar));
    bar.0.finish_and_clear();
    match result {
        Ok((output, counts)) => {
            print_counts(&counts);
            println!("output: {}", output.display());
            Ok(())
        }
        Err(LabelError::Cancelled(name)) => {
            print_counts(&job.counts());
            anyhow::bail!(
                "job {name} was cancelled; partial results are in its table. Continue with \
                 `verdict label resume --reopen {}`",
                dir.display()
            )
        }
        Err(error) => Err(error).with_context(|| {
            format!(
                "job {} stopped; its progress is saved: `verdict label resume {}`",
                dir.display(),
                dir.display()
            )
        }),
    }
}

fn print_counts(counts: &Counts) {
    println!(
        "labelled {}, invalid {}, failed {}, pending {}",
        counts.labelled, counts.invalid, counts.failed, counts.pending
    );
}
