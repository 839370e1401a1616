//! `verdict arena`: a blind A/B comparison of two methods in the browser, and its results.
//!
//! ```text
//! verdict arena --a emb.parquet#base_embedding --b emb.parquet#finetuned_embedding --queries test --port 8090
//! verdict arena --a runs/base --b runs/tuned --queries test        # two classifiers' predictions
//! verdict arena results --store arena.sqlite3 [--json | --html arena.html]
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use verdict_arena::server::{serve_until_signal, AppState};
use verdict_arena::{build_contest, parse_method, results_from_store, Arena, ContestOptions};

use super::progress::Stage;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<ArenaCommand>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum ArenaCommand {
    /// Win rates, ties, rater agreement and exact binomial tests of the votes so far.
    Results(ResultsArgs),
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Method A: `EMBEDDINGS.parquet#COLUMN` (retrieval), a predictions file (.parquet/.csv)
    /// or a run folder with `predictions_<SPLIT>.parquet` (classification).
    #[arg(long, required = true)]
    pub a: Option<String>,

    /// Method B, in the same forms as --a.
    #[arg(long, required = true)]
    pub b: Option<String>,

    /// Split whose rows are the queries (retrieval; the rest is the gallery), or whose
    /// predictions a run folder contributes.
    #[arg(long, default_value = "test")]
    pub queries: String,

    /// Retrieved items shown per method.
    #[arg(long, default_value_t = 4)]
    pub top_k: usize,

    /// Votes database (SQLite); reuse it to resume, a new file for a new comparison.
    #[arg(long, default_value = "arena.sqlite3")]
    pub store: PathBuf,

    /// Base folder for relative image paths (default: the data file's folder).
    #[arg(long)]
    pub images_root: Option<PathBuf>,

    /// Address to listen on; the default only accepts connections from this machine.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,

    #[arg(long, default_value_t = 8090)]
    pub port: u16,

    /// Listen on a non-loopback --host (needs --token).
    #[arg(long)]
    pub allow_remote: bool,

    /// Require this token (letters, digits, `-`, `_`, `.`, `~`) on every request; raters open
    /// the printed link, which carries it.
    #[arg(long, env = "VERDICT_ARENA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ResultsArgs {
    /// Votes database written by `verdict arena`.
    #[arg(long, default_value = "arena.sqlite3")]
    pub store: PathBuf,

    /// Print the results as JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// Also write the results as an HTML section to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(ArenaCommand::Results(results)) => show_results(results),
        None => serve(args.serve),
    }
}

fn show_results(args: ResultsArgs) -> anyhow::Result<()> {
    let results = results_from_store(&args.store)
        .with_context(|| format!("reading votes from {}", args.store.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", results.to_text());
    }
    if let Some(path) = &args.html {
        std::fs::write(path, results.to_html_section())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (Some(spec_a), Some(spec_b)) = (args.a.as_deref(), args.b.as_deref()) else {
        bail!("name both methods: --a and --b");
    };
    if let Some(token) = &args.token {
        let url_safe = |c: char| c.is_ascii_alphanumeric() || "-_.~".contains(c);
        if token.is_empty() || !token.chars().all(url_safe) {
            bail!(
                "--token may only use letters, digits, `-`, `_`, `.` and `~` (it goes into links)"
            );
        }
    }
    if args.allow_remote && args.token.is_none() {
        bail!("--allow-remote needs --token: without one, anyone who can reach the port can vote");
    }
    let options = ContestOptions {
        split: args.queries.clone(),
        top_k: args.top_k,
        images_root: args.images_root.clone(),
    };
    let stage = Stage::start("building the contest");
    let a = parse_method(spec_a, &options.split).context("--a")?;
    let b = parse_method(spec_b, &options.split).context("--b")?;
    let contest = build_contest(&a, &b, [spec_a, spec_b], &options)?;
    let queries = contest.queries.len();
    let arena = Arena::open(contest, &args.store)?;
    stage.done(&format!(
        "{queries} queries, votes in {}",
        args.store.display()
    ));
    let state = AppState {
        arena: Arc::new(arena),
        token: args.token.as_deref().map(Arc::from),
        local_only: !args.allow_remote,
    };
    let token = args.token.clone();
    serve_until_signal(
        state,
        SocketAddr::new(args.host, args.port),
        args.allow_remote,
        |address| {
            let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
            eprintln!(
                "arena open at http://{address}/{query}  (Ctrl-C to stop; votes are saved as cast)"
            );
        },
    )
    .with_context(|| format!("serving on {}:{}", args.host, args.port))?;
    let results = results_from_store(&args.store)?;
    eprint!("{}", results.to_text());
    Ok(())
}
