//! `verdict eval`: metrics, keep/review/demote sweep, calibration, slices, model comparison and
//! a self-contained HTML report from one or more predictions files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use verdict_eval::metrics::ZeroDivision;
use verdict_eval::prediction::{self, restrict_to_dimension, PredictionSet};
use verdict_eval::{CostMatrix, DecisionCosts, EvalSpec, PolicyThresholds, RunMetadata, TaskKind};

/// How a score is defined when its denominator is zero.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ZeroDivisionArg {
    Zero,
    One,
    Nan,
}

/// Task kind when no task file is given.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum KindArg {
    SingleLabel,
    BinaryPolicy,
    MultiLabel,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Predictions files (.csv or .parquet). With several, the first is the baseline the others
    /// are compared against; all must hold the same sample ids.
    #[arg(required = true)]
    pub predictions: Vec<PathBuf>,

    /// Task file (TOML): labels, kind, policy thresholds and costs.
    #[arg(long)]
    pub task: Option<PathBuf>,

    /// Labels, comma-separated, when no task file is given.
    #[arg(long, value_delimiter = ',', conflicts_with = "task")]
    pub labels: Vec<String>,

    /// Task kind with `--labels`.
    #[arg(
        long,
        value_enum,
        default_value = "single-label",
        conflicts_with = "task"
    )]
    pub kind: KindArg,

    /// Positive label with `--labels --kind binary-policy`.
    #[arg(long, conflicts_with = "task")]
    pub positive: Option<String>,

    /// Validation predictions of the first model: calibration maps and the threshold sweep are
    /// fitted there. Without it calibration is cross-fitted and the sweep is optimistic.
    #[arg(long)]
    pub validation: Option<PathBuf>,

    /// Output folder for report.html, metrics.json, classification_report.json and
    /// run_metadata.json.
    #[arg(long, short)]
    pub out: PathBuf,

    /// Grid step of the (review, demote) sweep.
    #[arg(long, default_value_t = 0.05)]
    pub sweep_step: f64,

    /// Largest share of samples the macro-F1 sweep may send to review.
    #[arg(long, default_value_t = 0.1)]
    pub max_review_fraction: f64,

    /// Bootstrap resamples for the macro-F1 uplift interval.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,

    /// Equal-width bins of ECE and reliability diagrams.
    #[arg(long, default_value_t = 15)]
    pub bins: usize,

    /// Seed (default: the task's seed, else 0).
    #[arg(long)]
    pub seed: Option<u64>,

    /// Value of precision/recall/F1 when undefined (scikit-learn's `zero_division`).
    #[arg(long, value_enum, default_value = "zero")]
    pub zero_division: ZeroDivisionArg,
}

/// What to evaluate: the task name, one spec per dimension (`None` for single-dimension tasks)
/// and the seed.
struct Plan {
    task: String,
    specs: Vec<(Option<String>, EvalSpec)>,
    seed: u64,
}

/// Base spec (one per dimension for multi-label tasks) from a task file or `--labels`.
fn specs(args: &Args) -> anyhow::Result<Plan> {
    let Some(task_path) = &args.task else {
        if args.labels.is_empty() {
            bail!("give the task with --task TASK.toml, or its labels with --labels a,b,c");
        }
        let kind = match args.kind {
            KindArg::SingleLabel => TaskKind::MultiClass,
            KindArg::BinaryPolicy => TaskKind::BinaryPolicy,
            KindArg::MultiLabel => TaskKind::MultiLabel,
        };
        let mut spec = EvalSpec::new("predictions", kind, args.labels.clone());
        spec.positive_label = args.positive.clone();
        return Ok(Plan {
            task: "predictions".into(),
            specs: vec![(None, spec)],
            seed: args.seed.unwrap_or(0),
        });
    };
    let task = verdict_core::task::TaskSpec::load(task_path)
        .with_context(|| format!("reading task {}", task_path.display()))?;
    let seed = args.seed.unwrap_or(task.seed);
    let specs = task_eval_specs(&task);
    Ok(Plan {
        task: task.name.clone(),
        specs,
        seed,
    })
}

/// The evaluation spec(s) of a task: one, or one per dimension for multi-label tasks.
pub fn task_eval_specs(task: &verdict_core::task::TaskSpec) -> Vec<(Option<String>, EvalSpec)> {
    let names = |labels: &[verdict_core::task::LabelDef]| {
        labels.iter().map(|l| l.name.clone()).collect::<Vec<_>>()
    };
    match task.kind {
        verdict_core::task::TaskKind::SingleLabel => vec![(
            None,
            EvalSpec::new(&task.name, TaskKind::MultiClass, names(&task.labels)),
        )],
        verdict_core::task::TaskKind::BinaryPolicy => {
            let mut spec = EvalSpec::new(&task.name, TaskKind::BinaryPolicy, names(&task.labels));
            if let Some(policy) = &task.policy {
                spec.positive_label = Some(policy.positive.clone());
                spec.thresholds = Some(PolicyThresholds {
                    review: policy.review,
                    demote: policy.demote,
                });
                spec.cost_matrix = policy.costs.as_ref().map(|c| CostMatrix {
                    negative: DecisionCosts {
                        keep: 0.0,
                        review: c.review,
                        demote: c.wrong_demotion,
                    },
                    positive: DecisionCosts {
                        keep: c.missed_positive,
                        review: c.review,
                        demote: 0.0,
                    },
                });
            }
            vec![(None, spec)]
        }
        verdict_core::task::TaskKind::MultiLabel => task
            .dimensions
            .iter()
            .map(|d| {
                (
                    Some(d.name.clone()),
                    EvalSpec::new(
                        format!("{} / {}", task.name, d.name),
                        TaskKind::MultiLabel,
                        names(&d.labels),
                    ),
                )
            })
            .collect(),
    }
}

fn restrict(set: &PredictionSet, dimension: Option<&str>) -> PredictionSet {
    match dimension {
        None => set.clone(),
        Some(dimension) => PredictionSet {
            rows: restrict_to_dimension(&set.rows, dimension),
            ..set.clone()
        },
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Plan {
        task: task_name,
        specs,
        seed,
    } = specs(&args)?;
    let mut metadata = RunMetadata::new(&task_name, verdict_core::TOOL_VERSION);
    metadata.seeds.insert("evaluation".into(), seed);
    let sets = metadata.time_stage("read predictions", || {
        args.predictions
            .iter()
            .map(|p| prediction::read(p))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let validation = args
        .validation
        .as_deref()
        .map(prediction::read)
        .transpose()?;
    for set in sets.iter().chain(validation.as_ref()) {
        metadata.datasets.push(verdict_eval::DatasetInfo::from_file(
            set.path.display().to_string(),
            &set.path,
            set.rows.len(),
        )?);
    }
    let mut all_metrics = serde_json::Map::new();
    for (dimension, mut spec) in specs {
        spec.seed = seed;
        spec.sweep_step = args.sweep_step;
        spec.max_review_fraction = args.max_review_fraction;
        spec.bootstrap_resamples = args.bootstrap;
        spec.calibration_bins = args.bins;
        spec.zero_division = match args.zero_division {
            ZeroDivisionArg::Zero => ZeroDivision::Zero,
            ZeroDivisionArg::One => ZeroDivision::One,
            ZeroDivisionArg::Nan => ZeroDivision::Nan,
        };
        let out: PathBuf = match &dimension {
            Some(d) => args.out.join(d),
            None => args.out.clone(),
        };
        let dimension_sets = sets
            .iter()
            .map(|s| restrict(s, dimension.as_deref()))
            .collect();
        let dimension_validation = validation
            .as_ref()
            .map(|v| restrict(v, dimension.as_deref()));
        let stage = format!("evaluate {}", dimension.as_deref().unwrap_or(&task_name));
        let summary = metadata.time_stage(&stage, || {
            verdict_eval::evaluate_sets(dimension_sets, dimension_validation, &spec, &out)
        })?;
        print_summary(&summary, &out);
        if metadata.thresholds.is_none() {
            metadata.thresholds = spec.thresholds;
        }
        let key = dimension.unwrap_or_else(|| task_name.clone());
        all_metrics.insert(
            key,
            serde_json::json!(summary
                .models
                .iter()
                .map(|m| (
                    m.model_id.clone(),
                    serde_json::to_value(&m.metrics).unwrap_or_default()
                ))
                .collect::<serde_json::Map<_, _>>()),
        );
    }
    metadata.config = serde_json::json!({
        "predictions": args.predictions, "task": args.task, "validation": args.validation,
        "sweep_step": args.sweep_step, "max_review_fraction": args.max_review_fraction,
        "bootstrap": args.bootstrap, "bins": args.bins, "zero_division": format!("{:?}", args.zero_division),
    });
    metadata.metrics = serde_json::Value::Object(all_metrics);
    let path = metadata.write(&args.out)?;
    tracing::info!("wrote {}", path.display());
    Ok(())
}

fn print_summary(summary: &verdict_eval::EvalSummary, out: &Path) {
    println!("{}: {}", summary.task, summary.report_path.display());
    for model in &summary.models {
        let value = |name: &str| {
            model
                .metrics
                .get(name)
                .map_or("n/a".into(), |v| format!("{v:.4}"))
        };
        let (accuracy_name, accuracy) = match model.metrics.get("subset_accuracy") {
            Some(_) => ("subset accuracy", value("subset_accuracy")),
            None => ("accuracy", value("accuracy")),
        };
        println!(
            "  {:<24} {accuracy_name} {accuracy}  macro-F1 {}  samples {}",
            model.model_id,
            value("macro_f1"),
            model.samples
        );
        if let Some(point) = model.policy.as_ref().and_then(|p| p.chosen_on_test) {
            println!(
                "  {:<24} chosen review >= {:.2}, demote >= {:.2}: review {} ({:.1}%), expected cost {}",
                "",
                point.thresholds.review,
                point.thresholds.demote,
                point.review,
                point.review_fraction * 100.0,
                point.expected_cost.map_or("n/a".into(), |c| format!("{c:.4}"))
            );
        }
    }
    if let Some(comparison) = &summary.comparison {
        for entry in comparison.entries.iter().skip(1) {
            if let (Some(uplift), Some((lo, hi))) =
                (entry.macro_f1_uplift, entry.macro_f1_uplift_interval)
            {
                println!(
                    "  {} vs {}: macro-F1 {uplift:+.4} [{lo:+.4}, {hi:+.4}]",
                    entry.model_id, comparison.baseline
                );
            }
        }
    }
    tracing::debug!("outputs in {}", out.display());
}
