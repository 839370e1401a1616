//! `verdict classify-image`: label one image along the dimensions of an ontology with a
//! Qwen3-VL checkpoint and print the JSON answer, e.g.
//! `{"Area": ["Counting"], "Scope": ["NumbersSmaller10"], "Ability": ["ProcedureExecution"]}`.

use std::path::PathBuf;

use anyhow::Context;
use verdict_models::qwen3_vl::processor::load_image;
use verdict_models::{DType, Device};
use verdict_ontology::classify::OntologyClassifier;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Checkpoint directory (Qwen3-VL: config.json, *.safetensors, tokenizer, chat template).
    pub model: PathBuf,
    /// Image to label.
    pub image: PathBuf,
    /// `ontology.toml` or an RDF file (.ttl, .nt, .rdf, .owl).
    #[arg(long)]
    pub ontology: PathBuf,
    /// Print the labels as the model wrote them, before the hierarchy policy.
    #[arg(long)]
    pub raw: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (spec, ontology) = super::ontology::load(&args.ontology)?;
    let image = load_image(&args.image)
        .with_context(|| format!("reading image {}", args.image.display()))?;
    let classifier = OntologyClassifier::load(
        &args.model,
        ontology,
        spec.policy,
        spec.max_labels,
        DType::F32,
        &Device::Cpu,
    )
    .with_context(|| format!("loading model from {}", args.model.display()))?;
    let labelling = classifier
        .classify(&image)
        .with_context(|| format!("labelling {}", args.image.display()))?;
    let answer = if args.raw {
        &labelling.raw
    } else {
        &labelling.answer
    };
    println!("{}", verdict_ontology::prompt::answer_text(answer));
    Ok(())
}
