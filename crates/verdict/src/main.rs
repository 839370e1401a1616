//! `verdict`: content classifiers from data to served model, one binary.
//!
//! `main` only parses arguments, sets up logging and dispatches to `commands::<stage>::run`.

mod commands;

/// mimalloc instead of the system allocator: serving and batch jobs allocate and free
/// buffers of several MiB per item (decoded images, patch blocks, converted pixels), which
/// glibc hands back to the kernel and faults in again every time; preparing one 448x448
/// image for Qwen3-VL on the CPU took 10.5 ms that way and 1.6 ms with mimalloc, which keeps
/// them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Verdict turns vision-language models and dual encoders into content classifiers:
/// curate and version data, render meshes, train baselines, pick and fine-tune a base model,
/// evaluate honestly and serve.
#[derive(Parser)]
#[command(name = "verdict", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log more (-v: debug, -vv: trace). `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Only print errors and final results.
    #[arg(short, long, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // <commands-enum>
    /// Batch labelling jobs through an OpenAI-compatible batch API: run, status, resume, cancel.
    Label(commands::label::Args),
    /// Publish a model: merged Hugging Face directory, PEFT adapter or GGUF, with a model card.
    Export(commands::export::Args),
    /// CLIP/SigLIP dual encoders: fine-tune in the five ablation scenarios and compare them.
    Encoders(commands::encoders::Args),
    /// Image embeddings (base and fine-tuned) into a Parquet vector file.
    Embed(commands::embed::Args),
    /// Nearest images of a vector file to a query image or text.
    Search(commands::search::Args),
    /// Pretrained default models (OpenNSFW, all-MiniLM-L6-v2): fetch, list, score a task's images.
    Models(commands::models::Args),
    /// Sharded stages: select the items of shard i/N, merge the part-<i>-of-<N> outputs.
    Shard(commands::shard::Args),
    /// Image URL cache, WebDataset shards, object-store copies (s3://) and DVC-compatible versioning.
    Media(commands::media::Args),
    /// LoRA fine-tuning of a Qwen3-VL checkpoint on the task: PEFT adapter, metrics, checkpoints, resume.
    Train(commands::train::Args),
    /// Serve a model over HTTP: classification with dynamic batching, OpenAI-compatible chat completions, metrics.
    Serve(commands::serve::Args),
    /// Blind A/B comparison of two retrieval or classification methods in the browser; `arena results` for the votes.
    Arena(commands::arena::Args),
    /// Label along the dimensions of an RDF ontology: check it, knowledge-infusion questions, worksheets, SFT data, evaluation, model card.
    Ontology(commands::ontology::Args),
    /// Label one image with an ontology-constrained Qwen3-VL answer and print the JSON.
    ClassifyImage(commands::classify_image::Args),
    /// Classify images and/or text with a local Qwen3-VL checkpoint: label probabilities or a constrained JSON answer.
    Predict(commands::predict::Args),
    /// Render mesh files (STL, OBJ, 3MF) to multi-view PNGs.
    Render(commands::render::Args),
    /// Run the main job: every stage the task enables, from raw data to a report.
    Run(commands::run::Args),
    /// Write a commented example task file.
    Init(commands::init::Args),
    /// Fetch, import, validate, split, seal and describe a task's data.
    Data(commands::data::Args),
    /// Fit a TF-IDF or sentence-embedding + logistic-regression baseline and evaluate it.
    Baseline(commands::baseline::Args),
    /// Evaluate predictions files: metrics, policy sweep, calibration, slices, comparison and an HTML report.
    Eval(commands::eval::Args),
    /// Zip a run folder's artifacts into one archive.
    Package(commands::package::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    commands::init_logging(cli.verbose, cli.quiet);
    let result = match cli.command {
        // <commands-dispatch>
        Command::Label(args) => commands::label::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Encoders(args) => commands::encoders::run(args),
        Command::Embed(args) => commands::embed::run(args),
        Command::Search(args) => commands::search::run(args),
        Command::Models(args) => commands::models::run(args),
        Command::Shard(args) => commands::shard::run(args),
        Command::Media(args) => commands::media::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Arena(args) => commands::arena::run(args),
        Command::Ontology(args) => commands::ontology::run(args),
        Command::ClassifyImage(args) => commands::classify_image::run(args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Render(args) => commands::render::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Init(args) => commands::init::run(args),
        Command::Data(args) => commands::data::run(args),
        Command::Baseline(args) => commands::baseline::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Package(args) => commands::package::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
