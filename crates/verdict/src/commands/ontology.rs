//! `verdict ontology`: labelling along the dimensions of an RDF ontology — check an ontology,
//! generate knowledge-infusion questions, example worksheets and SFT data, evaluate a
//! checkpoint on labelled images and write its model card.
//!
//! Every command takes `ONTOLOGY`: an `ontology.toml` (file, dimensions, hierarchy policy, data
//! settings) or a bare RDF file (`.ttl`, `.nt`, `.rdf`/`.owl`) with default settings.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use verdict_models::qwen3_vl::processor::load_image;
use verdict_models::{DType, Device};
use verdict_ontology::classify::OntologyClassifier;
use verdict_ontology::evaluate::{evaluate, OntologyReport, ScoredSample};
use verdict_ontology::ki::{self, KiCounts, KiDataset};
use verdict_ontology::sft::{self, ChatExample};
use verdict_ontology::spec::{check_task, task_dimensions_toml};
use verdict_ontology::{card::ModelCard, worksheet, Ontology, OntologySpec};

use super::progress;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Load and check an ontology (cycles, unknown parents, duplicate labels) and list its dimensions.
    Check {
        ontology: PathBuf,
        /// Also check that this multi_label task file lists the same dimensions and labels.
        #[arg(long)]
        task: Option<PathBuf>,
    },
    /// Print `[[dimensions]]` tables for a multi_label task file.
    Task { ontology: PathBuf },
    /// Knowledge-infusion questions (definition, parent-of, children-of, dimension) as chat SFT
    /// JSONL: DIR/train.jsonl, DIR/val.jsonl, DIR/counts.json.
    Ki {
        ontology: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Share of facts held out for validation (default: the spec's, else 0.1).
        #[arg(long)]
        val_fraction: Option<f64>,
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Generate the example's worksheet images with `meta.json` labels.
    Worksheets {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 40)]
        count: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Training data: labelled images (targets under the hierarchy policy) mixed with
    /// knowledge questions; writes DIR/{train,val,images_train,images_val}.jsonl and DIR/mix.json.
    Sft {
        ontology: PathBuf,
        /// Folder of `meta.json` files.
        #[arg(long)]
        data: PathBuf,
        /// Knowledge-infusion folder written by `verdict ontology ki` (optional).
        #[arg(long)]
        ki: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Knowledge questions per labelled image in the mix (default: the spec's, else 1.0).
        #[arg(long)]
        ki_per_image: Option<f64>,
    },
    /// LoRA fine-tuning on the data of `verdict ontology sft` (images + knowledge questions),
    /// validated on the held-out images; writes OUT/adapter and, with --merge, OUT/merged.
    Train {
        /// Base checkpoint directory (Qwen3-VL).
        #[arg(long)]
        base: PathBuf,
        /// Folder written by `verdict ontology sft`.
        #[arg(long)]
        sft: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Full training settings as JSON (a serialised `TrainConfig`); flags below override it.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        epochs: Option<usize>,
        /// Peak learning rate.
        #[arg(long)]
        lr: Option<f64>,
        /// Use only the first N train and val records (a quick sanity run).
        #[arg(long)]
        max_rows: Option<usize>,
        /// Also write the base model with the adapter merged into OUT/merged.
        #[arg(long)]
        merge: bool,
    },
    /// Label the held-out images of a `meta.json` folder with a checkpoint and score them per
    /// dimension; writes DIR/predictions.jsonl and DIR/metrics.json.
    Eval {
        /// Checkpoint directory (Qwen3-VL).
        model: PathBuf,
        #[arg(long)]
        ontology: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Score every image instead of the validation split only.
        #[arg(long)]
        all: bool,
        /// Also write the model card (README.md) into the checkpoint directory.
        #[arg(long)]
        card: bool,
        /// Knowledge-infusion folder whose counts the card reports.
        #[arg(long)]
        ki: Option<PathBuf>,
    },
    /// Write the model card (README.md) into a checkpoint directory.
    Card {
        model: PathBuf,
        #[arg(long)]
        ontology: PathBuf,
        /// `metrics.json` written by `verdict ontology eval`.
        #[arg(long)]
        metrics: Option<PathBuf>,
        /// Knowledge-infusion folder whose counts the card reports.
        #[arg(long)]
        ki: Option<PathBuf>,
        /// Replace a README.md that verdict did not write.
        #[arg(long)]
        replace: bool,
    },
}

/// The spec and its checked ontology.
pub fn load(path: &Path) -> anyhow::Result<(OntologySpec, Ontology)> {
    let spec = OntologySpec::load(path).with_context(|| format!("reading {}", path.display()))?;
    let ontology = spec
        .load_ontology()
        .with_context(|| format!("loading ontology {}", spec.ontology.display()))?;
    Ok((spec, ontology))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Check { ontology, task } => check(&ontology, task.as_deref()),
        Command::Task { ontology } => {
            let (_, ontology) = load(&ontology)?;
            print!("{}", task_dimensions_toml(&ontology));
            Ok(())
        }
        Command::Ki {
            ontology,
            out,
            val_fraction,
            seed,
        } => {
            let (spec, ontology) = load(&ontology)?;
            let mut config = spec.ki.clone();
            if let Some(v) = val_fraction {
                config.val_fraction = v;
            }
            if let Some(s) = seed {
                config.seed = s;
            }
            let counts = write_ki(&ontology, &config, &out)?;
            print_counts(&counts);
            Ok(())
        }
        Command::Worksheets { out, count, seed } => {
            let started = std::time::Instant::now();
            worksheet::write_worksheets(&out, count, seed)
                .with_context(|| format!("writing worksheets to {}", out.display()))?;
            progress::report_done(started, &format!("{count} worksheets in {}", out.display()));
            Ok(())
        }
        Command::Sft {
            ontology,
            data,
            ki,
            out,
            ki_per_image,
        } => sft_data(&ontology, &data, ki.as_deref(), &out, ki_per_image),
        Command::Train {
            base,
            sft,
            out,
            config,
            epochs,
            lr,
            max_rows,
            merge,
        } => train(
            &base,
            &sft,
            &out,
            config.as_deref(),
            epochs,
            lr,
            max_rows,
            merge,
        ),
        Command::Eval {
            model,
            ontology,
            data,
            out,
            all,
            card,
            ki,
        } => {
            let (spec, ontology) = load(&ontology)?;
            let report = eval(&model, &spec, ontology.clone(), &data, &out, all)?;
            print_report(&report);
            if card {
                let ki_counts = ki.as_deref().map(read_ki_counts).transpose()?;
                write_card(
                    &model,
                    &spec,
                    &ontology,
                    Some(&report),
                    ki_counts.as_ref(),
                    false,
                )?;
            }
            Ok(())
        }
        Command::Card {
            model,
            ontology,
            metrics,
            ki,
            replace,
        } => {
            let (spec, ontology) = load(&ontology)?;
            let report: Option<serde_json::Value> = metrics
                .as_deref()
                .map(|p| -> anyhow::Result<serde_json::Value> {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
                })
                .transpose()?;
            let report = report.map(|v| report_from_json(&v)).transpose()?;
            let ki_counts = ki.as_deref().map(read_ki_counts).transpose()?;
            write_card(
                &model,
                &spec,
                &ontology,
                report.as_ref(),
                ki_counts.as_ref(),
                replace,
            )
        }
    }
}

fn check(path: &Path, task: Option<&Path>) -> anyhow::Result<()> {
    let (spec, ontology) = load(path)?;
    println!("ontology  {}", ontology.path.display());
    println!("iri       {}", ontology.iri.as_deref().unwrap_or("(none)"));
    println!(
        "version   {}",
        ontology.version.as_deref().unwrap_or("(none)")
    );
    println!("sha256    {}", ontology.sha256);
    println!("concepts  {}", ontology.concepts().len());
    println!("policy    {}", spec.policy.as_str());
    for (dimension, labels) in ontology.label_sets() {
        println!("{dimension} ({}): {}", labels.len(), labels.join(", "));
    }
    if let Some(task_path) = task {
        let task = verdict_core::TaskSpec::load(task_path)
            .with_context(|| format!("reading task {}", task_path.display()))?;
        check_task(&task, &ontology)
            .with_context(|| format!("comparing task {} with the ontology", task_path.display()))?;
        println!("task {} matches the ontology", task_path.display());
    }
    Ok(())
}

fn write_ki(ontology: &Ontology, config: &ki::KiConfig, out: &Path) -> anyhow::Result<KiCounts> {
    let set = ki::generate(ontology, config);
    sft::write_jsonl(
        &out.join("train.jsonl"),
        &KiDataset::examples(ontology, &set.train),
    )?;
    sft::write_jsonl(
        &out.join("val.jsonl"),
        &KiDataset::examples(ontology, &set.val),
    )?;
    let counts = set.counts();
    sft::write_json(
        &out.join("counts.json"),
        &serde_json::json!({
            "ontology": {"path": ontology.path, "sha256": ontology.sha256, "version": ontology.version},
            "config": config,
            "counts": counts,
        }),
    )?;
    Ok(counts)
}

fn read_ki_counts(dir: &Path) -> anyhow::Result<KiCounts> {
    let path = dir.join("counts.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    serde_json::from_value(value["counts"].clone())
        .with_context(|| format!("{}: no \"counts\" object", path.display()))
}

fn print_counts(counts: &KiCounts) {
    println!("{:<12} {:>6} {:>6}", "kind", "train", "val");
    for kind in ki::QuestionKind::ALL {
        let name = kind.as_str();
        println!(
            "{name:<12} {:>6} {:>6}",
            counts.train.get(name).copied().unwrap_or(0),
            counts.val.get(name).copied().unwrap_or(0)
        );
    }
    println!("duplicates removed: {}", counts.duplicates_removed);
}

fn read_examples(path: &Path) -> anyhow::Result<Vec<ChatExample>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not a chat example", path.display(), i + 1))
        })
        .collect()
}

fn sft_data(
    spec_path: &Path,
    data: &Path,
    ki_dir: Option<&Path>,
    out: &Path,
    ki_per_image: Option<f64>,
) -> anyhow::Result<()> {
    let (spec, ontology) = load(spec_path)?;
    let images = sft::read_labelled_images(data, &ontology, spec.policy)
        .with_context(|| format!("reading labelled images under {}", data.display()))?;
    for image in &images {
        for (dimension, labels) in &image.labels.dimensions {
            if labels.len() > spec.max_labels {
                bail!(
                    "sample {}: {dimension} has {} labels after the {} policy, more than max_labels = {}",
                    image.sample_id,
                    labels.len(),
                    spec.policy.as_str(),
                    spec.max_labels
                );
            }
        }
    }
    let (val, train): (Vec<_>, Vec<_>) = images
        .into_iter()
        .partition(|i| sft::is_val(&i.sample_id, spec.mix.seed, spec.val_fraction));
    let train_examples = sft::image_examples(&ontology, &train);
    let val_examples = sft::image_examples(&ontology, &val);
    let (ki_train, ki_val) = match ki_dir {
        Some(dir) => (
            read_examples(&dir.join("train.jsonl"))?,
            read_examples(&dir.join("val.jsonl"))?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    let mut mix = spec.mix;
    if let Some(ratio) = ki_per_image {
        mix.ki_per_image = ratio;
    }
    let mixed = sft::mix(&train_examples, &ki_train, &mix);
    sft::write_jsonl(&out.join("images_train.jsonl"), &train_examples)?;
    sft::write_jsonl(&out.join("images_val.jsonl"), &val_examples)?;
    sft::write_jsonl(&out.join("train.jsonl"), &mixed)?;
    let mut val_all = val_examples.clone();
    val_all.extend(ki_val.iter().cloned());
    sft::write_jsonl(&out.join("val.jsonl"), &val_all)?;
    let ki_in_mix = mixed.len() - train_examples.len();
    sft::write_json(
        &out.join("mix.json"),
        &serde_json::json!({
            "ontology": {"path": ontology.path, "sha256": ontology.sha256, "version": ontology.version},
            "policy": spec.policy,
            "mix": mix,
            "val_fraction": spec.val_fraction,
            "counts": {
                "images_train": train_examples.len(),
                "images_val": val_examples.len(),
                "ki_train_available": ki_train.len(),
                "ki_in_train_mix": ki_in_mix,
                "ki_val": ki_val.len(),
                "train": mixed.len(),
            },
        }),
    )?;
    println!(
        "train {} ({} images + {ki_in_mix} knowledge questions), val {} images + {} knowledge questions -> {}",
        mixed.len(),
        train_examples.len(),
        val_examples.len(),
        ki_val.len(),
        out.display()
    );
    Ok(())
}

fn eval(
    model: &Path,
    spec: &OntologySpec,
    ontology: Ontology,
    data: &Path,
    out: &Path,
    all: bool,
) -> anyhow::Result<OntologyReport> {
    let images = sft::read_labelled_images(data, &ontology, spec.policy)
        .with_context(|| format!("reading labelled images under {}", data.display()))?;
    let chosen: Vec<_> = images
        .into_iter()
        .filter(|i| all || sft::is_val(&i.sample_id, spec.mix.seed, spec.val_fraction))
        .collect();
    if chosen.is_empty() {
        bail!(
            "no images to evaluate under {} (pass --all to score every image)",
            data.display()
        );
    }
    let classifier = OntologyClassifier::load(
        model,
        ontology.clone(),
        spec.policy,
        spec.max_labels,
        DType::F32,
        &Device::Cpu,
    )
    .with_context(|| format!("loading model from {}", model.display()))?;
    let bar = progress::bar(chosen.len() as u64, "labelling");
    let mut samples = Vec::with_capacity(chosen.len());
    let mut lines = Vec::with_capacity(chosen.len());
    for image in &chosen {
        let pixels = load_image(&image.image)
            .with_context(|| format!("reading image {}", image.image.display()))?;
        let labelling = classifier
            .classify(&pixels)
            .with_context(|| format!("labelling {}", image.sample_id))?;
        samples.push(ScoredSample::new(
            &image.sample_id,
            &image.labels,
            &labelling.answer,
        ));
        lines.push(serde_json::json!({
            "sample_id": image.sample_id,
            "image_path": image.image,
            "truth": image.labels.to_json(),
            "predicted": labelling.answer.to_json(),
            "text": labelling.text,
        }));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let report = evaluate(&ontology, spec.policy, &samples)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut jsonl = String::new();
    for line in &lines {
        jsonl.push_str(&line.to_string());
        jsonl.push('\n');
    }
    let predictions = out.join("predictions.jsonl");
    let tmp = out.join(".predictions.jsonl.tmp");
    std::fs::write(&tmp, jsonl).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &predictions)
        .with_context(|| format!("writing {}", predictions.display()))?;
    sft::write_json(&out.join("metrics.json"), &report)?;
    Ok(report)
}

/// Rebuilds the parts of a `metrics.json` the card shows.
fn report_from_json(value: &serde_json::Value) -> anyhow::Result<OntologyReport> {
    verdict_ontology::evaluate::report_from_json(value)
        .context("metrics.json is not an ontology evaluation report")
}

fn print_report(report: &OntologyReport) {
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    println!(
        "{} samples, exact match {}, hierarchical P/R/F1 {:.3}/{:.3}/{:.3}",
        report.samples,
        f(report.exact_match),
        report.hierarchical.precision,
        report.hierarchical.recall,
        report.hierarchical.f1
    );
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>8}",
        "dimension", "subset", "micro_f1", "hP", "hR"
    );
    for (name, d) in &report.dimensions {
        println!(
            "{name:<12} {:>8} {:>8} {:>8.3} {:>8.3}",
            f(d.metrics.get("subset_accuracy")),
            f(d.metrics.get("micro_f1")),
            d.hierarchical.precision,
            d.hierarchical.recall
        );
    }
}

fn write_card(
    model: &Path,
    spec: &OntologySpec,
    ontology: &Ontology,
    report: Option<&OntologyReport>,
    ki: Option<&KiCounts>,
    replace: bool,
) -> anyhow::Result<()> {
    let model_name = model
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".to_string());
    let card = ModelCard {
        model_name,
        ontology,
        policy: spec.policy,
        ki,
        train_images: None,
        data_note: String::new(),
        report,
    };
    card.write(model, replace)
        .with_context(|| format!("writing the model card into {}", model.display()))?;
    println!("model card -> {}", model.join("README.md").display());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn train(
    base: &Path,
    sft_dir: &Path,
    out: &Path,
    config_path: Option<&Path>,
    epochs: Option<usize>,
    lr: Option<f64>,
    max_rows: Option<usize>,
    merge: bool,
) -> anyhow::Result<()> {
    let mut config: verdict_ontology::train::TrainConfig = match config_path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("parsing {} as training settings", path.display()))?
        }
        // The trainer validates by scoring whole answers; over a mix of long label-set JSONs
        // and short knowledge answers that number barely moves, so it must not stop training.
        None => verdict_ontology::train::TrainConfig {
            patience: 0,
            ..verdict_ontology::train::TrainConfig::default()
        },
    };
    if let Some(epochs) = epochs {
        config.epochs = epochs;
    }
    if let Some(lr) = lr {
        config.learning_rate = lr;
    }
    if max_rows.is_some() {
        config.max_rows = max_rows;
    }
    let stage = progress::Stage::start("fine-tuning");
    let trained = verdict_ontology::train::train(
        base,
        sft_dir,
        out,
        &config,
        merge,
        &Device::Cpu,
        &mut verdict_ontology::train::Silent,
    )
    .with_context(|| format!("fine-tuning {} on {}", base.display(), sft_dir.display()))?;
    stage.done(&format!(
        "{:?} after {} of {} steps",
        trained.outcome.finish, trained.outcome.steps, trained.outcome.total_steps
    ));
    println!("adapter -> {}", trained.adapter.display());
    if let Some(merged) = &trained.merged {
        println!("merged checkpoint -> {}", merged.display());
    }
    Ok(())
}
