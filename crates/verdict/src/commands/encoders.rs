//! `verdict encoders train`: fine-tune a CLIP/SigLIP checkpoint on a task's image-text pairs in
//! one of the five ablation scenarios (or all of them), and compare them with zero-shot.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use verdict_core::manifest::{is_url, read_manifest_strict, Sample};
use verdict_core::workspace::Workspace;
use verdict_encoders::train::data::{
    synthetic_shapes, ImageSource, PairExample, SYNTHETIC_COLOURS,
};
use verdict_encoders::train::{run as train_scenario, Scenario, ScenarioReport, TrainConfig};
use verdict_models::Device;

use super::data::DataDir;
use super::progress;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: EncodersCommand,
}

/// Scenario names as the task file spells them (`dual_lora`), so one name works everywhere.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum ScenarioArg {
    ZeroShot,
    LinearProbe,
    VisionLora,
    TextLora,
    DualLora,
    /// All five, one after the other, with a comparison table.
    All,
}

#[derive(clap::Subcommand, Debug)]
pub enum EncodersCommand {
    /// Train and evaluate a scenario on the task's train / val splits (captions: the sample
    /// text, else "a photo of a <label>"), read from the WebDataset shards in
    /// `<workdir>/shards/<split>` when `verdict media shards` wrote them, else from the
    /// manifest. Writes epoch checkpoints and report.json per scenario.
    Train {
        /// Task file; its train and val splits must exist (`verdict data split`). Omit with
        /// --synthetic.
        task: Option<PathBuf>,

        /// Base CLIP or SigLIP checkpoint directory.
        #[arg(long)]
        model: PathBuf,

        #[arg(long, value_enum, default_value_t = ScenarioArg::DualLora)]
        scenario: ScenarioArg,

        /// Output folder [default: <workdir>/encoders].
        #[arg(long, short)]
        out: Option<PathBuf>,

        /// Train on N synthetic coloured-shape pairs instead of a task (smoke test).
        #[arg(long)]
        synthetic: Option<usize>,

        /// Full settings as JSON (a serialised `TrainConfig`); the flags below override it.
        #[arg(long)]
        config: Option<PathBuf>,

        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long)]
        batch_size: Option<usize>,
        #[arg(long)]
        gradient_accumulation: Option<usize>,
        /// Peak learning rate of the projections / head.
        #[arg(long)]
        projection_lr: Option<f64>,
        /// Peak learning rate of the adapters.
        #[arg(long)]
        lora_lr: Option<f64>,
        /// Continue from the newest epoch checkpoint in --out.
        #[arg(long)]
        resume: bool,

        #[command(flatten)]
        data: DataDir,
    },
}

/// One labelled image-caption pair, or `None` for a sample without a single label.
fn pair(
    sample: &Sample,
    image: ImageSource,
    labels: &[String],
    origin: &Path,
) -> anyhow::Result<Option<PairExample>> {
    let Some(label) = sample.label.as_ref().and_then(|l| l.as_single()) else {
        return Ok(None);
    };
    if !labels.iter().any(|l| l == label) {
        bail!(
            "{}: sample {} has label {label:?} outside the task",
            origin.display(),
            sample.sample_id
        );
    }
    Ok(Some(PairExample {
        id: sample.sample_id.clone(),
        image,
        caption: sample
            .text
            .clone()
            .unwrap_or_else(|| format!("a photo of a {}", label.replace('_', " "))),
        label: Some(label.to_string()),
    }))
}

/// Pairs of a split's manifest; image URLs are read from the run's image cache (`verdict run`
/// or `verdict media fetch` fills it), samples without a usable image are left out.
fn examples_from_split(
    workspace: &Workspace,
    path: &Path,
    labels: &[String],
) -> anyhow::Result<Vec<PairExample>> {
    let mut samples: Vec<Sample> = read_manifest_strict(path)?;
    super::candidates::localise_images(workspace, &mut samples);
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for sample in &samples {
        let Some(reference) = sample.images.first().filter(|r| !is_url(r)) else {
            continue;
        };
        let image = ImageSource::Path(Sample::resolve(base, reference));
        out.extend(pair(sample, image, labels, path)?);
    }
    if out.is_empty() {
        bail!("{}: no labelled image samples", path.display());
    }
    Ok(out)
}

/// Pairs read from a split's WebDataset shards (`verdict media shards`): the image member
/// (`jpg`/`png`), the sample record (`json`) for the label and the text (`txt`) as caption.
fn examples_from_shards(dir: &Path, labels: &[String]) -> anyhow::Result<Vec<PairExample>> {
    let shards = verdict_media::shards::list_shards(dir)?;
    let mut out = Vec::new();
    for item in verdict_media::shards::ShardReader::new(shards).iter() {
        let item = item.with_context(|| format!("reading shards in {}", dir.display()))?;
        let Some(record) = item.member("json") else {
            continue;
        };
        // The shard writer adds `image_present` to the sample record.
        let mut value: serde_json::Value = serde_json::from_slice(record).with_context(|| {
            format!("{}: sample `{}`: its json member", dir.display(), item.key)
        })?;
        if let Some(object) = value.as_object_mut() {
            object.remove("image_present");
        }
        let sample: Sample = serde_json::from_value(value).with_context(|| {
            format!("{}: sample `{}`: its json member", dir.display(), item.key)
        })?;
        let Some(bytes) = item.member("jpg").or_else(|| item.member("png")) else {
            continue;
        };
        let image = image::load_from_memory(bytes)
            .with_context(|| format!("{}: sample `{}`: its image", dir.display(), item.key))?
            .to_rgb8();
        out.extend(pair(&sample, ImageSource::Pixels(image), labels, dir)?);
    }
    if out.is_empty() {
        bail!("{}: no labelled image samples in the shards", dir.display());
    }
    Ok(out)
}

/// A split's pairs: from `<workdir>/shards/<split>` when shards were written, else from the
/// split's manifest.
fn examples_for(
    workspace: &Workspace,
    split: &str,
    labels: &[String],
) -> anyhow::Result<Vec<PairExample>> {
    let shards = workspace.root.join("shards").join(split);
    if shards.is_dir() {
        eprintln!(
            "{split}: reading pairs from the WebDataset shards in {}",
            shards.display()
        );
        return examples_from_shards(&shards, labels);
    }
    examples_from_split(workspace, &workspace.split_path(split), labels)
}

fn print_table(reports: &[ScenarioReport]) {
    println!(
        "{:<13} {:>9} {:>11} {:>10} {:>10} {:>10} {:>10}",
        "scenario", "accuracy", "method", "i2t R@1", "t2i mAP", "trainable", "last loss"
    );
    for report in reports {
        let retrieval = report
            .retrieval_finetuned
            .as_ref()
            .unwrap_or(&report.retrieval_base);
        println!(
            "{:<13} {:>9.3} {:>11} {:>10.3} {:>10.3} {:>10} {:>10}",
            report.scenario.name(),
            report.accuracy,
            report.method,
            retrieval
                .image_to_text
                .recall_at
                .first()
                .map(|r| r.1)
                .unwrap_or(0.0),
            retrieval.text_to_image.map,
            report.trainable_parameters,
            report
                .epoch_losses
                .last()
                .map(|l| format!("{l:.4}"))
                .unwrap_or_else(|| "-".into()),
        );
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let EncodersCommand::Train {
        task,
        model,
        scenario,
        out,
        synthetic,
        config,
        epochs,
        batch_size,
        gradient_accumulation,
        projection_lr,
        lora_lr,
        resume,
        data,
    } = args.command;
    let mut settings: TrainConfig = match &config {
        Some(path) => serde_json::from_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?,
        None => TrainConfig::default(),
    };
    if let Some(v) = epochs {
        settings.epochs = v;
    }
    if let Some(v) = batch_size {
        settings.batch_size = v;
    }
    if let Some(v) = gradient_accumulation {
        settings.gradient_accumulation = v;
    }
    if let Some(v) = projection_lr {
        settings.projection_learning_rate = v;
    }
    if let Some(v) = lora_lr {
        settings.lora_learning_rate = v;
    }
    settings.resume |= resume;

    let (train, eval, labels, out) = match (&task, synthetic) {
        (None, Some(n)) => {
            let labels: Vec<String> = SYNTHETIC_COLOURS
                .iter()
                .map(|(c, _)| c.to_string())
                .collect();
            settings.templates = vec![
                "a {} square".into(),
                "a {} circle".into(),
                "a {} triangle".into(),
            ];
            let out = out.clone().context("--out is required with --synthetic")?;
            (
                synthetic_shapes(n, 48, 1),
                synthetic_shapes(n / 2 + 1, 48, 2),
                labels,
                out,
            )
        }
        (Some(task), None) => {
            let workspace = Workspace::open(task, &data.resolve())
                .with_context(|| format!("opening task {}", task.display()))?;
            let labels: Vec<String> = workspace
                .task
                .label_names()
                .iter()
                .map(|l| l.to_string())
                .collect();
            let train_path = workspace.split_path("train");
            let val_path = workspace.split_path("val");
            for path in [&train_path, &val_path] {
                if !path.exists() {
                    bail!(
                        "{} does not exist; run `verdict data split {}` first",
                        path.display(),
                        task.display()
                    );
                }
            }
            let out = out
                .clone()
                .unwrap_or_else(|| workspace.root.join("encoders"));
            (
                examples_for(&workspace, "train", &labels)?,
                examples_for(&workspace, "val", &labels)?,
                labels,
                out,
            )
        }
        _ => bail!("give a task file or --synthetic N (not both)"),
    };
    let label_prompts: Vec<String> = labels.iter().map(|l| l.replace('_', " ")).collect();
    let scenarios: Vec<Scenario> = match scenario {
        ScenarioArg::ZeroShot => vec![Scenario::ZeroShot],
        ScenarioArg::LinearProbe => vec![Scenario::LinearProbe],
        ScenarioArg::VisionLora => vec![Scenario::VisionLora],
        ScenarioArg::TextLora => vec![Scenario::TextLora],
        ScenarioArg::DualLora => vec![Scenario::DualLora],
        ScenarioArg::All => Scenario::ALL.to_vec(),
    };
    let device = Device::Cpu;
    let mut reports = Vec::new();
    for scenario in scenarios {
        settings.scenario = scenario;
        let started = std::time::Instant::now();
        let bar = progress::bar(0, scenario.name());
        let report = train_scenario(
            &model,
            &settings,
            &train,
            &eval,
            &labels,
            &label_prompts,
            &out.join(scenario.name()),
            &device,
            &mut |p| {
                bar.set_length(p.total_steps as u64);
                bar.set_position(p.step as u64);
                bar.set_message(format!(
                    "{} epoch {}/{} loss {:.4}",
                    scenario.name(),
                    p.epoch,
                    p.epochs,
                    p.loss
                ));
            },
        )
        .with_context(|| format!("scenario {}", scenario.name()))?;
        bar.finish_and_clear();
        progress::report_done(
            started,
            &format!("{}: accuracy {:.3}", scenario.name(), report.accuracy),
        );
        reports.push(report);
    }
    print_table(&reports);
    Ok(())
}
