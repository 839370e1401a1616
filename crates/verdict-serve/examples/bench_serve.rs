//! Load generator: drives a Verdict server on loopback with increasing concurrency and prints
//! throughput and p50 / p99 latency per level next to the offline batch throughput of the same
//! model, then pushes past saturation with a small queue to check that overload only produces
//! explicit 503s and that memory stays flat.
//!
//! ```text
//! # TF-IDF baseline trained on SpamAssassin (fetched by scripts/fetch-data):
//! cargo run --release -p verdict-serve --example bench_serve -- \
//!     --spamassassin .cache/data/spamassassin --out serve-bench.md
//! # the tiny Qwen3-VL test checkpoint (text + a 32x32 image per item):
//! cargo run --release -p verdict-serve --example bench_serve -- \
//!     --model crates/verdict-models/tests/fixtures/qwen3_vl/tiny_a --labels sfw,nsfw \
//!     --out serve-bench.md
//! ```
//!
//! Server and load generator share the machine (and its cores): the numbers are an upper
//! bound on the overhead a separate client machine would see.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use base64::Engine as _;
use clap::Parser;
use serde_json::json;
use verdict_baseline::{Baseline, BaselineConfig, Targets};
use verdict_serve::{
    AppState, ClassifyInput, LabelSet, ModelInfo, ServeConfig, ServedModel, TaskSettings,
};

#[derive(Parser, Debug)]
struct Args {
    /// SpamAssassin package directory (with `package/data/`): trains a TF-IDF baseline on
    /// 80% of the mails and sends the other 20%.
    #[arg(long, conflicts_with = "model")]
    spamassassin: Option<PathBuf>,
    /// A model directory (baseline or Qwen3-VL) instead.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Labels for a Qwen3-VL model.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64")]
    concurrency: Vec<usize>,
    /// Requests per level.
    #[arg(long, default_value_t = 400)]
    requests: usize,
    #[arg(long, default_value_t = 32)]
    max_batch_size: usize,
    /// Markdown file to write the results to.
    #[arg(long)]
    out: Option<PathBuf>,
}

struct Workload {
    name: String,
    model: ServedModel,
    /// Request bodies and the same items as model inputs.
    bodies: Vec<serde_json::Value>,
    inputs: Vec<ClassifyInput>,
}

fn spamassassin(dir: &Path) -> anyhow::Result<Workload> {
    let data = dir.join("package/data");
    let mut mails = Vec::new();
    for (folder, label) in [
        ("easy-ham-1", "ham"),
        ("easy-ham-2", "ham"),
        ("hard-ham-1", "ham"),
        ("spam-1", "spam"),
        ("spam-2", "spam"),
    ] {
        let path = data.join(folder);
        if !path.exists() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file)?;
            mails.push((
                String::from_utf8_lossy(&bytes).into_owned(),
                label.to_string(),
            ));
        }
    }
    if mails.is_empty() {
        bail!("no mails under {} (run scripts/fetch-data)", data.display());
    }
    // Every fifth mail is held out for the load; the rest trains the model.
    let (mut train_texts, mut train_labels, mut held_out) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (text, label)) in mails.into_iter().enumerate() {
        if i % 5 == 0 {
            held_out.push(text);
        } else {
            train_texts.push(text);
            train_labels.push(label);
        }
    }
    let started = Instant::now();
    let (baseline, _) = Baseline::fit(
        &train_texts,
        &Targets::SingleLabel(train_labels),
        None,
        &BaselineConfig::default(),
    )?;
    eprintln!(
        "trained TF-IDF baseline on {} mails in {:.1} s",
        train_texts.len(),
        started.elapsed().as_secs_f64()
    );
    let bodies = held_out.iter().map(|t| json!({"text": t})).collect();
    let inputs = held_out
        .into_iter()
        .map(|text| ClassifyInput {
            text: Some(text),
            ..ClassifyInput::default()
        })
        .collect();
    Ok(Workload {
        name: "TF-IDF + logistic regression baseline, SpamAssassin (trained on 80%, 20% sent)"
            .into(),
        model: ServedModel::Baseline(Box::new(baseline)),
        bodies,
        inputs,
    })
}

fn model_dir(dir: &Path, labels: &[String]) -> anyhow::Result<Workload> {
    let set = LabelSet {
        names: labels.to_vec(),
        descriptions: vec![String::new(); labels.len()],
    };
    let model = ServedModel::load(dir, Some(set))?;
    let mut bodies = Vec::new();
    let mut inputs = Vec::new();
    for i in 0..256u32 {
        let text = format!("item {i}: is this content safe to show?");
        if model.accepts_images() {
            let colour = [
                (i * 37 % 256) as u8,
                (i * 91 % 256) as u8,
                (i * 13 % 256) as u8,
            ];
            let image = image::RgbImage::from_pixel(32, 32, image::Rgb(colour));
            let mut png = Vec::new();
            image::DynamicImage::ImageRgb8(image.clone())
                .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)?;
            let data = base64::engine::general_purpose::STANDARD.encode(&png);
            bodies.push(json!({"text": text, "images": [{"base64": data}]}));
            inputs.push(ClassifyInput {
                text: Some(text),
                images: vec![image],
                reason: false,
            });
        } else {
            bodies.push(json!({"text": text}));
            inputs.push(ClassifyInput {
                text: Some(text),
                ..ClassifyInput::default()
            });
        }
    }
    let kind = if model.accepts_images() {
        "Qwen3-VL, text + one 32x32 image per item"
    } else {
        "baseline"
    };
    Ok(Workload {
        name: format!("{} ({kind}, labels {})", dir.display(), labels.join(",")),
        model,
        bodies,
        inputs,
    })
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

struct Level {
    concurrency: usize,
    ok: usize,
    rejected: usize,
    other: usize,
    seconds: f64,
    p50: f64,
    p99: f64,
}

async fn drive(
    url: &str,
    bodies: Arc<Vec<serde_json::Value>>,
    concurrency: usize,
    requests: usize,
) -> Level {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, bodies, next, url) = (
            client.clone(),
            bodies.clone(),
            next.clone(),
            url.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= requests {
                    break;
                }
                let body = &bodies[i % bodies.len()];
                let sent = Instant::now();
                let status = match client.post(&url).json(body).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                seen.push((status, sent.elapsed().as_secs_f64() * 1000.0));
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = all
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, l)| *l)
        .collect();
    latencies.sort_by(f64::total_cmp);
    Level {
        concurrency,
        ok: latencies.len(),
        rejected: all.iter().filter(|(s, _)| *s == 503).count(),
        other: all.iter().filter(|(s, _)| *s != 200 && *s != 503).count(),
        seconds,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

async fn start(state: AppState) -> anyhow::Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/classify", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(verdict_serve::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Ok((url, stop))
}

fn load_workload(args: &Args) -> anyhow::Result<Workload> {
    match (&args.spamassassin, &args.model) {
        (Some(dir), None) => spamassassin(dir),
        (None, Some(dir)) => model_dir(dir, &args.labels),
        _ => bail!("give --spamassassin DIR or --model DIR"),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let workload = load_workload(&args)?;
    let Workload {
        name,
        model,
        bodies,
        inputs,
    } = workload;

    // Offline: the model alone, in batches of the server's size.
    let offline_items = inputs.len().min(args.requests.max(64));
    let started = Instant::now();
    for chunk in inputs[..offline_items].chunks(args.max_batch_size) {
        for result in model.classify_batch(chunk) {
            result.map_err(|e| anyhow::anyhow!("offline batch: {e:?}"))?;
        }
    }
    let offline = offline_items as f64 / started.elapsed().as_secs_f64();
    eprintln!("offline: {offline:.1} items/s over {offline_items} items");

    let runtime = tokio::runtime::Runtime::new()?;
    let bodies = Arc::new(bodies);
    let config = ServeConfig {
        max_batch_size: args.max_batch_size,
        queue_capacity: 1024,
        ..ServeConfig::default()
    };
    let info = ModelInfo {
        id: "bench".into(),
        path: PathBuf::from("bench"),
        adapter: None,
    };
    let task = TaskSettings::without_task(None);
    let state = AppState::with_model(config, info.clone(), &task, model)?;
    let levels: Vec<Level> = runtime.block_on(async {
        let (url, stop) = start(state).await?;
        // Warm-up: connections, allocator, caches.
        drive(&url, bodies.clone(), 4, 32.min(args.requests)).await;
        let mut levels = Vec::new();
        for &concurrency in &args.concurrency {
            let level = drive(&url, bodies.clone(), concurrency, args.requests).await;
            eprintln!(
                "c={concurrency}: {:.1} req/s p50 {:.2} ms p99 {:.2} ms ({} ok, {} 503, {} other)",
                level.ok as f64 / level.seconds,
                level.p50,
                level.p99,
                level.ok,
                level.rejected,
                level.other
            );
            levels.push(level);
        }
        let _ = stop.send(());
        anyhow::Ok(levels)
    })?;

    // Past saturation: a small queue, four times as many callers as it holds, three rounds.
    let overload_config = ServeConfig {
        max_batch_size: args.max_batch_size,
        queue_capacity: args.max_batch_size,
        ..ServeConfig::default()
    };
    // The first server's batcher keeps its model until the runtime drops it, so the overload
    // server gets a freshly loaded copy.
    let overload_model = load_workload(&args)?.model;
    let overload = {
        let state = AppState::with_model(overload_config, info, &task, overload_model)?;
        runtime.block_on(async {
            let (url, stop) = start(state).await?;
            let callers = args.max_batch_size * 4;
            let mut rounds = Vec::new();
            for _ in 0..3 {
                let before = rss_mib();
                let level = drive(&url, bodies.clone(), callers, args.requests * 2).await;
                rounds.push((level, before, rss_mib()));
            }
            let _ = stop.send(());
            anyhow::Ok(rounds)
        })?
    };

    let single = levels
        .iter()
        .find(|l| l.concurrency == 1)
        .map(|l| l.p50)
        .unwrap_or(f64::NAN);
    let mut table = String::new();
    table.push_str(&format!(
        "Workload: {name}. Server batch size {}, offline batch throughput {offline:.1} items/s, \
         single-request p50 {single:.2} ms.\n\n",
        args.max_batch_size
    ));
    table.push_str("| concurrency | requests/s | vs offline | p50 ms | p99 ms | p99 / single p50 | 503 | other errors |\n");
    table.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for level in &levels {
        let throughput = level.ok as f64 / level.seconds;
        table.push_str(&format!(
            "| {} | {:.1} | {:.0}% | {:.2} | {:.2} | {:.1}x | {} | {} |\n",
            level.concurrency,
            throughput,
            100.0 * throughput / offline,
            level.p50,
            level.p99,
            level.p99 / single,
            level.rejected,
            level.other
        ));
    }
    if !overload.is_empty() {
        table.push_str(&format!(
            "\nOverload: queue capacity {}, {} concurrent callers, {} requests per round.\n\n",
            args.max_batch_size,
            args.max_batch_size * 4,
            args.requests * 2
        ));
        table.push_str("| round | ok | 503 | other errors | requests/s (ok) | RSS before MiB | RSS after MiB |\n");
        table.push_str("|---:|---:|---:|---:|---:|---:|---:|\n");
        for (i, (level, before, after)) in overload.iter().enumerate() {
            table.push_str(&format!(
                "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |\n",
                i + 1,
                level.ok,
                level.rejected,
                level.other,
                level.ok as f64 / level.seconds,
                before,
                after
            ));
        }
    }
    println!("{table}");
    if let Some(out) = &args.out {
        let previous = std::fs::read_to_string(out).unwrap_or_default();
        let section = format!("\n### {name}\n\n{table}");
        let temporary = out.with_extension("tmp");
        std::fs::write(&temporary, format!("{previous}{section}"))?;
        std::fs::rename(&temporary, out)?;
        eprintln!("appended to {}", out.display());
    }
    Ok(())
}
