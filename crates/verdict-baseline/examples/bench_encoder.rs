//! all-MiniLM-L6-v2 on CPU: Verdict's encoder against sentence-transformers, same texts,
//! same thread count, interleaved repeats in one run:
//!
//! ```text
//! scripts/fetch-data   # or scripts/fetch/spamassassin.sh and scripts/fetch/minilm.sh
//! RAYON_NUM_THREADS=2 cargo run --release -p verdict-baseline --example bench_encoder -- --repeats 3
//! ```
//!
//! Each repeat runs, in turn, sentence-transformers (`benches/sklearn_baseline.py embedding`,
//! torch with the same number of threads as rayon), Verdict's fused kernels and Verdict's
//! candle-graph path (the previous implementation, kept as the reference), and prints every
//! time, the best and the median of each, the ratios and the agreement of the vectors.
//! `--gemm` also times one `(4096, 384) x (384, 1536)` product with torch and with candle
//! (the matrix product both encoders spend most of their time in).
//! `--only fused|candle` times one Verdict path alone (for profiling).

mod common;

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use common::{data_dir, repo, spamassassin_emails};
use serde_json::{json, Value};
use std::io::Write;
use verdict_baseline::embed::{Kernels, SentenceEncoder};

struct Options {
    texts: usize,
    repeats: usize,
    gemm: bool,
    only: Option<Kernels>,
}

fn options() -> Result<Options> {
    let mut options = Options {
        texts: 512,
        repeats: 3,
        gemm: false,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<String> {
            args.next().with_context(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--texts" => options.texts = value("--texts")?.parse()?,
            "--repeats" => options.repeats = value("--repeats")?.parse::<usize>()?.max(1),
            "--gemm" => options.gemm = true,
            "--only" => {
                options.only = Some(match value("--only")?.as_str() {
                    "fused" => Kernels::Fused,
                    "candle" => Kernels::Candle,
                    other => bail!("--only takes fused or candle, not {other}"),
                })
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(options)
}

/// SpamAssassin test emails as in `bench_sklearn`: every fifth email in group/id order.
fn test_emails(n: usize) -> Result<Vec<String>> {
    let emails = spamassassin_emails()?;
    Ok(emails
        .into_iter()
        .step_by(5)
        .take(n)
        .map(|(text, _)| text)
        .collect())
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
    let last = stdout.lines().last().context("no output from python")?;
    serde_json::from_str(last).context("parsing the python script's result")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn best_median(times: &[f64]) -> (f64, f64) {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (sorted[0], median)
}

/// Smallest cosine and largest absolute difference between corresponding rows.
fn agreement(a: &[f32], b: &[f32], dimension: usize) -> (f64, f64) {
    let (mut min_cosine, mut max_diff) = (f64::INFINITY, 0.0f64);
    for (x, y) in a.chunks(dimension).zip(b.chunks(dimension)) {
        let dot: f64 = x
            .iter()
            .zip(y)
            .map(|(p, q)| f64::from(*p) * f64::from(*q))
            .sum();
        let nx = x.iter().map(|p| f64::from(*p).powi(2)).sum::<f64>().sqrt();
        let ny = y.iter().map(|q| f64::from(*q).powi(2)).sum::<f64>().sqrt();
        min_cosine = min_cosine.min(dot / (nx * ny));
        for (p, q) in x.iter().zip(y) {
            max_diff = max_diff.max(f64::from((p - q).abs()));
        }
    }
    (min_cosine, max_diff)
}

fn bench_gemm(threads: usize) -> Result<()> {
    let (m, k, n) = (4096, 384, 1536);
    let repeats = 20;
    let torch = python(&[
        "gemm",
        "--threads",
        &threads.to_string(),
        "--m",
        &m.to_string(),
        "--k",
        &k.to_string(),
        "--n",
        &n.to_string(),
        "--repeats",
        &repeats.to_string(),
    ])?;
    let torch: Vec<f64> = torch["seconds"]
        .as_array()
        .context("seconds")?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let device = Device::Cpu;
    let lhs = Tensor::randn(0f32, 1., (m, k), &device)?;
    let rhs = Tensor::randn(0f32, 1., (k, n), &device)?;
    lhs.matmul(&rhs)?;
    let mut candle = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let out = lhs.matmul(&rhs)?;
        candle.push(started.elapsed().as_secs_f64());
        drop(out);
    }
    let flops = 2.0 * (m * k * n) as f64;
    println!(
        "\n| ({m}, {k}) x ({k}, {n}) f32, {threads} threads | best | median | GFLOP/s (best) |"
    );
    println!("|---|---|---|---|");
    for (name, times) in [("torch (MKL)", &torch), ("candle (gemm crate)", &candle)] {
        let (best, median) = best_median(times);
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.1} |",
            best * 1e3,
            median * 1e3,
            flops / best / 1e9
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let options = options()?;
    let threads = rayon::current_num_threads();
    let model_dir = data_dir().join("minilm/model");
    if !model_dir.join("model.safetensors").exists() {
        bail!(
            "{} missing: run scripts/fetch-data (or scripts/fetch/minilm.sh)",
            model_dir.display()
        );
    }
    let texts = test_emails(options.texts)?;
    let encoder = SentenceEncoder::load(&model_dir)?;
    let tokens: usize = texts
        .iter()
        .map(|t| encoder.token_ids(t).map(|(ids, _)| ids.len()))
        .sum::<verdict_baseline::Result<usize>>()?;
    eprintln!(
        "{} texts, {tokens} tokens, {threads} threads, load average {}",
        texts.len(),
        load_average()
    );
    if options.gemm {
        bench_gemm(threads)?;
    }
    if let Some(kernels) = options.only {
        let encoder = encoder.with_kernels(kernels);
        for _ in 0..options.repeats {
            let started = Instant::now();
            encoder.encode(&texts)?;
            eprintln!("{kernels:?}: {:.2} s", started.elapsed().as_secs_f64());
        }
        return Ok(());
    }

    let work = tempfile::tempdir()?;
    let texts_path = work.path().join("texts.jsonl");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&texts_path)?);
        for text in &texts {
            writeln!(out, "{}", json!({"text": text, "label": "x"}))?;
        }
    }
    let vectors_path = work.path().join("reference.f32");
    let fused = SentenceEncoder::load(&model_dir)?.with_kernels(Kernels::Fused);
    let candle = SentenceEncoder::load(&model_dir)?.with_kernels(Kernels::Candle);
    fused.encode(&texts[..texts.len().min(8)])?;
    candle.encode(&texts[..texts.len().min(8)])?;

    let (mut torch_times, mut fused_times, mut candle_times) = (Vec::new(), Vec::new(), Vec::new());
    let mut loads = Vec::new();
    let (mut expected, mut fused_vectors, mut candle_vectors) =
        (Vec::new(), Vec::new(), Vec::new());
    for repeat in 0..options.repeats {
        loads.push(load_average());
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
        torch_times.push(reference["encode_seconds"].as_f64().context("seconds")?);
        expected = std::fs::read(&vectors_path)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let started = Instant::now();
        fused_vectors = fused.encode(&texts)?;
        fused_times.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        candle_vectors = candle.encode(&texts)?;
        candle_times.push(started.elapsed().as_secs_f64());
        eprintln!(
            "repeat {}: sentence-transformers {:.2} s, fused {:.2} s, candle graph {:.2} s (load {})",
            repeat + 1,
            torch_times[repeat],
            fused_times[repeat],
            candle_times[repeat],
            loads[repeat]
        );
    }
    let dimension = fused.dimension();
    let (torch_best, torch_median) = best_median(&torch_times);
    println!(
        "\n| all-MiniLM-L6-v2, {} texts ({tokens} tokens), {threads} threads | runs (s) | best | median | speed-up (best) | speed-up (median) | min cosine vs torch | max abs diff |",
        texts.len()
    );
    println!("|---|---|---|---|---|---|---|---|");
    let runs = |times: &[f64]| {
        times
            .iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| sentence-transformers | {} | {torch_best:.2} s | {torch_median:.2} s | 1.00x | 1.00x | | |",
        runs(&torch_times)
    );
    for (name, times, vectors) in [
        ("verdict, fused kernels", &fused_times, &fused_vectors),
        ("verdict, candle graph", &candle_times, &candle_vectors),
    ] {
        let (best, median) = best_median(times);
        let (cosine, diff) = agreement(vectors, &expected, dimension);
        println!(
            "| {name} | {} | {best:.2} s | {median:.2} s | {:.2}x | {:.2}x | {cosine:.7} | {diff:.1e} |",
            runs(times),
            torch_best / best,
            torch_median / median
        );
    }
    println!(
        "\nload average (1/5/15 min) at each repeat: {}",
        loads.join("; ")
    );
    Ok(())
}
