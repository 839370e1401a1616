//! `verdict baseline`: fit a TF-IDF or sentence-embedding + logistic-regression baseline on
//! a training file, evaluate it on a validation file, write `baseline_metrics.json` and the
//! fitted model (servable with `verdict_baseline::Baseline::load`).

use std::path::PathBuf;

use anyhow::{bail, Context};
use verdict_baseline::io::{is_multi_label, read_labelled, Fields};
use verdict_baseline::logistic::ClassWeight;
use verdict_baseline::{BaselineConfig, FeatureConfig};

/// Which features the baseline uses.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FeatureKind {
    /// TF-IDF (English stop words, top `--max-features` terms).
    Tfidf,
    /// Sentence embeddings from a local sentence-transformers directory (`--encoder`).
    Embedding,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Training texts: .jsonl (`{"text": .., "label": ..}`; a list of labels makes the task
    /// multi-label) or .csv/.tsv with a header row. An optional `weight` field weights texts.
    #[arg(long)]
    pub train: PathBuf,

    /// Validation texts, same format; only transformed, never fitted on.
    #[arg(long)]
    pub val: PathBuf,

    /// Output directory: `baseline_metrics.json` and `model/`.
    #[arg(long, short)]
    pub out: PathBuf,

    /// Feature extractor.
    #[arg(long, value_enum, default_value = "tfidf")]
    pub features: FeatureKind,

    /// Sentence-transformers directory for `--features embedding`
    /// (e.g. `$VERDICT_DATA_DIR/minilm/model`).
    #[arg(long)]
    pub encoder: Option<PathBuf>,

    /// Full settings as JSON (a serialised `BaselineConfig`); the flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Keep this many most frequent terms (TF-IDF).
    #[arg(long)]
    pub max_features: Option<usize>,

    /// Inverse L2 regularisation strength of the logistic regression.
    #[arg(long = "C", alias = "c")]
    pub c: Option<f64>,

    /// Reweight classes inversely to their frequency (`class_weight="balanced"`).
    #[arg(long)]
    pub balanced: bool,

    /// Key / column holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,

    /// Key / column holding the label (or list of labels).
    #[arg(long, default_value = "label")]
    pub label_field: String,

    /// Key / column holding the optional sample weight.
    #[arg(long, default_value = "weight")]
    pub weight_field: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str::<BaselineConfig>(&text)
                .with_context(|| format!("parsing {} as baseline settings", path.display()))?
        }
        None => BaselineConfig::default(),
    };
    match args.features {
        FeatureKind::Tfidf => {
            if !matches!(config.features, FeatureConfig::Tfidf(_)) {
                config.features = BaselineConfig::default().features;
            }
        }
        FeatureKind::Embedding => {
            let Some(model_dir) = args.encoder.clone() else {
                bail!("--features embedding needs --encoder DIR (a sentence-transformers directory; scripts/fetch-data fetches all-MiniLM-L6-v2)");
            };
            config.features = FeatureConfig::Embedding {
                model_dir,
                batch_size: verdict_baseline::embed::DEFAULT_BATCH_SIZE,
            };
        }
    }
    if let (Some(max), FeatureConfig::Tfidf(tfidf)) = (args.max_features, &mut config.features) {
        tfidf.max_features = Some(max);
    }
    if let Some(c) = args.c {
        config.logistic.c = c;
    }
    if args.balanced {
        config.logistic.class_weight = ClassWeight::Balanced;
    }
    let fields = Fields {
        text: args.text_field.clone(),
        label: args.label_field.clone(),
        weight: args.weight_field.clone(),
    };
    let train = read_labelled(&args.train, &fields)?;
    let val = read_labelled(&args.val, &fields)?;
    tracing::info!(train = train.len(), val = val.len(), "read labelled texts");
    let report = if is_multi_label(&args.train, &fields)? {
        let train: Vec<_> = train
            .into_iter()
            .map(|r| (r.text, r.labels, r.weight))
            .collect();
        let val: Vec<_> = val.into_iter().map(|r| (r.text, r.labels)).collect();
        verdict_baseline::train_multilabel_baseline(&train, &val, &config, &args.out)?
    } else {
        let single = |labels: Vec<String>, path: &PathBuf| -> anyhow::Result<String> {
            match <[String; 1]>::try_from(labels) {
                Ok([label]) => Ok(label),
                Err(labels) => bail!(
                    "{}: expected one label per text, found {labels:?}",
                    path.display()
                ),
            }
        };
        let train = train
            .into_iter()
            .map(|r| Ok((r.text, single(r.labels, &args.train)?, r.weight)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let val = val
            .into_iter()
            .map(|r| Ok((r.text, single(r.labels, &args.val)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        verdict_baseline::train_text_baseline(&train, &val, &config, &args.out)?
    };
    println!(
        "{} baseline: accuracy {:.4}, macro-F1 {:.4} on {} validation texts ({} features); model in {}",
        report.features,
        report.accuracy,
        report.macro_f1,
        report.n_val,
        report.fit.n_features,
        report.model_dir.display()
    );
    Ok(())
}
