//! Verdict's text baselines against scikit-learn and sentence-transformers, same inputs,
//! same run:
//!
//! ```text
//! scripts/fetch-data   # or scripts/fetch/spamassassin.sh and scripts/fetch/minilm.sh
//! cargo run --release -p verdict-baseline --example bench_sklearn
//! cargo run --release -p verdict-baseline --example bench_sklearn -- --synthetic-docs 20000 --embed-texts 256
//! ```
//!
//! (a) SpamAssassin (spam vs ham, 80/20 split by position) and (b) a synthetic 4-class
//! corpus: TF-IDF (English stop words, 10,000 terms) + logistic regression, fit and predict
//! time and macro-F1 for both. (c) all-MiniLM-L6-v2 embeddings of SpamAssassin test emails:
//! encode time with the same thread count and the agreement of the vectors.
//! Needs `python3` with scikit-learn and sentence-transformers.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use common::{data_dir, repo, spamassassin_emails};
use serde_json::{json, Value};
use verdict_baseline::embed::SentenceEncoder;
use verdict_baseline::metrics::macro_f1;
use verdict_baseline::{Baseline, BaselineConfig, Targets};

struct Options {
    synthetic_docs: usize,
    embed_texts: usize,
    skip_embedding: bool,
}

fn options() -> Result<Options> {
    let mut options = Options {
        synthetic_docs: 200_000,
        embed_texts: 512,
        skip_embedding: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<usize> {
            args.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse()
                .with_context(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--synthetic-docs" => options.synthetic_docs = value("--synthetic-docs")?,
            "--embed-texts" => options.embed_texts = value("--embed-texts")?,
            "--skip-embedding" => options.skip_embedding = true,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(options)
}

type Corpus = Vec<(String, String)>;

/// SpamAssassin emails, label spam/ham, every fifth (in group/id order) held out.
fn spamassassin() -> Result<(Corpus, Corpus)> {
    let emails = spamassassin_emails()?;
    Ok(split(emails))
}

fn split(all: Corpus) -> (Corpus, Corpus) {
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, item) in all.into_iter().enumerate() {
        if i % 5 == 0 {
            test.push(item)
        } else {
            train.push(item)
        }
    }
    (train, test)
}

/// Deterministic synthetic 4-class corpus: Zipf-distributed filler words plus class topic
/// words, 20-200 words per document.
fn synthetic(n_docs: usize) -> (Corpus, Corpus) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    const SYLLABLES: [&str; 24] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "gu", "bri", "str", "ch",
        "ou", "an", "el", "is", "or", "um", "qua", "xy", "fe",
    ];
    let vocabulary: Vec<String> = (0..50_000)
        .map(|_| {
            let n = 1 + (next() % 4) as usize;
            (0..n).map(|_| SYLLABLES[(next() % 24) as usize]).collect()
        })
        .collect();
    let mut cumulative = Vec::with_capacity(vocabulary.len());
    let mut total = 0.0;
    for rank in 1..=vocabulary.len() {
        total += 1.0 / rank as f64;
        cumulative.push(total);
    }
    let topics: Vec<Vec<usize>> = (0..4)
        .map(|_| (0..300).map(|_| (next() % 50_000) as usize).collect())
        .collect();
    let priors = [0.4, 0.7, 0.9, 1.0];
    let mut docs = Vec::with_capacity(n_docs);
    for _ in 0..n_docs {
        let u = (next() % 1_000_000) as f64 / 1e6;
        let class = priors.iter().position(|&p| u < p).unwrap_or(3);
        let length = 20 + (next() % 181) as usize;
        let mut text = String::new();
        for w in 0..length {
            let word = if next() % 100 < 6 {
                &vocabulary[topics[class][(next() % 300) as usize]]
            } else {
                let target = (next() % 1_000_000_000) as f64 / 1e9 * total;
                let index = cumulative
                    .partition_point(|&c| c < target)
                    .min(vocabulary.len() - 1);
                &vocabulary[index]
            };
            if w > 0 {
                text.push(if next() % 12 == 0 { ',' } else { ' ' });
                text.push(' ');
            }
            text.push_str(word);
        }
        text.push('.');
        docs.push((text, format!("class{class}")));
    }
    split(docs)
}

fn write_jsonl(path: &Path, corpus: &Corpus) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (text, label) in corpus {
        writeln!(out, "{}", json!({"text": text, "label": label}))?;
    }
    Ok(())
}

fn python(args: &[&str]) -> Result<Value> {
    let script = repo().join("crates/verdict-baseline/benches/sklearn_baseline.py");
    let output = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .context("running python3")?;
    if !output.status.success() {
        bail!(
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .last()
        .context("no output from the python script")?;
    serde_json::from_str(last).context("parsing the python script's result")
}

struct Row {
    name: String,
    reference: (f64, f64, f64),
    ours: (f64, f64, f64),
    agreement: f64,
}

fn bench_tfidf(name: &str, train: &Corpus, test: &Corpus, work: &Path) -> Result<Vec<Row>> {
    let train_path = work.join(format!("{name}-train.jsonl"));
    let test_path = work.join(format!("{name}-test.jsonl"));
    let predictions_path = work.join(format!("{name}-sklearn-predictions.json"));
    write_jsonl(&train_path, train)?;
    write_jsonl(&test_path, test)?;
    eprintln!(
        "[{name}] scikit-learn: {} train / {} test texts",
        train.len(),
        test.len()
    );
    let reference = python(&[
        "tfidf",
        "--train",
        train_path.to_str().context("path")?,
        "--test",
        test_path.to_str().context("path")?,
        "--predictions",
        predictions_path.to_str().context("path")?,
    ])?;
    let sklearn_predictions: Vec<String> =
        serde_json::from_slice(&std::fs::read(&predictions_path)?)?;

    let texts: Vec<&str> = train.iter().map(|(t, _)| t.as_str()).collect();
    let labels: Vec<String> = train.iter().map(|(_, l)| l.clone()).collect();
    let test_texts: Vec<&str> = test.iter().map(|(t, _)| t.as_str()).collect();
    let truth: Vec<String> = test.iter().map(|(_, l)| l.clone()).collect();
    let number = |key: &str| reference[key].as_f64().unwrap_or(f64::NAN);
    // The default is scikit-learn's own stopping rule (tol=1e-4, max_iter=100); the second
    // row solves 100x tighter, to the optimum.
    let default = BaselineConfig::default();
    let mut tight = BaselineConfig::default();
    tight.logistic.tol = 1e-6;
    tight.logistic.max_iter = 1000;
    let mut rows = Vec::new();
    for (setting, config) in [
        ("default (tol 1e-4, max_iter 100)", default),
        ("tol 1e-6, max_iter 1000", tight),
    ] {
        eprintln!("[{name}] verdict, {setting}");
        let started = Instant::now();
        let (baseline, report) =
            Baseline::fit(&texts, &Targets::SingleLabel(labels.clone()), None, &config)?;
        let fit_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let predicted = baseline.predict(&test_texts)?;
        let predict_seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "[{name}] verdict: features {:.2}s, classifier {:.2}s ({:?} iterations); \
             scikit-learn: vectoriser {:.2}s, {} lbfgs iterations",
            report.feature_seconds,
            report.classifier_seconds,
            report.iterations,
            number("vectorizer_seconds"),
            reference["n_iter"]
        );
        let agreement = predicted
            .iter()
            .zip(&sklearn_predictions)
            .filter(|(a, b)| a == b)
            .count() as f64
            / predicted.len().max(1) as f64;
        rows.push(Row {
            name: format!("{name}, verdict {setting}"),
            reference: (
                number("fit_seconds"),
                number("predict_seconds"),
                number("macro_f1"),
            ),
            ours: (fit_seconds, predict_seconds, macro_f1(&truth, &predicted)),
            agreement,
        });
    }
    Ok(rows)
}

fn bench_embedding(test: &Corpus, n: usize, work: &Path) -> Result<()> {
    let model_dir = data_dir().join("minilm/model");
    if !model_dir.join("model.safetensors").exists() {
        bail!(
            "{} missing: run scripts/fetch-data (or scripts/fetch/minilm.sh)",
            model_dir.display()
        );
    }
    let texts: Corpus = test.iter().take(n).cloned().collect();
    let texts_path = work.join("embed-texts.jsonl");
    write_jsonl(&texts_path, &texts)?;
    let vectors_path = work.join("embed-reference.f32");
    let threads = rayon::current_num_threads();
    eprintln!(
        "[minilm] sentence-transformers: {} texts, {threads} threads",
        texts.len()
    );
    let reference = python(&[
        "embedding",
        "--test",
        texts_path.to_str().context("path")?,
        "--model-dir",
        model_dir.to_str().context("path")?,
        "--embeddings",
        vectors_path.to_str().context("path")?,
        "--threads",
        &threads.to_string(),
    ])?;
    let expected: Vec<f32> = std::fs::read(&vectors_path)?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    eprintln!("[minilm] verdict");
    let encoder = SentenceEncoder::load(&model_dir)?;
    let plain: Vec<&str> = texts.iter().map(|(t, _)| t.as_str()).collect();
    encoder.encode(&plain[..plain.len().min(8)])?;
    let started = Instant::now();
    let ours = encoder.encode(&plain)?;
    let seconds = started.elapsed().as_secs_f64();
    let dimension = encoder.dimension();
    let (mut min_cosine, mut max_diff) = (f64::INFINITY, 0.0f64);
    for (a, b) in ours.chunks(dimension).zip(expected.chunks(dimension)) {
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let na = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let nb = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        min_cosine = min_cosine.min(dot / (na * nb));
        for (x, y) in a.iter().zip(b) {
            max_diff = max_diff.max(f64::from((x - y).abs()));
        }
    }
    let reference_seconds = reference["encode_seconds"].as_f64().unwrap_or(f64::NAN);
    println!();
    println!("| encoder ({} texts, <=256 tokens, {threads} threads) | sentence-transformers | verdict | speed-up |", texts.len());
    println!("|---|---|---|---|");
    println!(
        "| all-MiniLM-L6-v2 encode | {reference_seconds:.2} s | {seconds:.2} s | {:.2}x |",
        reference_seconds / seconds
    );
    println!(
        "| texts / s | {:.1} | {:.1} | |",
        texts.len() as f64 / reference_seconds,
        texts.len() as f64 / seconds
    );
    println!("| agreement | min cosine {min_cosine:.7} | max abs diff {max_diff:.2e} | |");
    Ok(())
}

fn main() -> Result<()> {
    let options = options()?;
    let work = tempfile::tempdir()?;
    let (spam_train, spam_test) = spamassassin()?;
    let (synthetic_train, synthetic_test) = synthetic(options.synthetic_docs);
    let mut rows = bench_tfidf("spamassassin", &spam_train, &spam_test, work.path())?;
    rows.extend(bench_tfidf(
        &format!("synthetic-{}k", options.synthetic_docs / 1000),
        &synthetic_train,
        &synthetic_test,
        work.path(),
    )?);
    println!(
        "\nTF-IDF (English stop words, 10,000 terms) + logistic regression; {} rayon threads; \
         scikit-learn single process",
        rayon::current_num_threads()
    );
    println!("| corpus | sklearn fit | verdict fit | sklearn predict | verdict predict | end-to-end speed-up | sklearn macro-F1 | verdict macro-F1 | same predictions |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let (rf, rp, rm) = row.reference;
        let (of, op, om) = row.ours;
        println!(
            "| {} | {rf:.2} s | {of:.2} s ({:.1}x) | {rp:.2} s | {op:.2} s ({:.1}x) | {:.1}x | {rm:.4} | {om:.4} | {:.2}% |",
            row.name,
            rf / of,
            rp / op,
            (rf + rp) / (of + op),
            row.agreement * 100.0
        );
    }
    if !options.skip_embedding {
        bench_embedding(&spam_test, options.embed_texts, work.path())?;
    }
    Ok(())
}
