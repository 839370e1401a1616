//! Load generator: drives a Verdict server on loopback with increasing concurrency and prints
//! throughput and p50 / p99 latency per level next to the offline batch throughput of the same
//! model (loaded once, on the same device), then pushes past saturation with a small queue to
//! check that overload only produces explicit 503s and that memory stays flat.
//!
//! ```text
//! # TF-IDF baseline trained on SpamAssassin (fetched by scripts/fetch-data):
//! cargo run --release -p verdict-serve --example bench_serve -- \
//!     --spamassassin .cache/data/spamassassin --out serve-bench.md
//! # the tiny Qwen3-VL test checkpoint (text + a 32x32 image per item):
//! cargo run --release -p verdict-serve --example bench_serve -- \
//!     --model crates/verdict-models/tests/fixtures/qwen3_vl/tiny_a --labels sfw,nsfw \
//!     --out serve-bench.md
//! # a full-size Qwen3-VL checkpoint on a GPU, photo-sized images and a 64-token text:
//! cargo run --release -p verdict-serve --features cuda --example bench_serve -- \
//!     --model /tmp/qwen3vl-2b --labels sfw,nsfw --device cuda --image-size 448 \
//!     --text-tokens 64 --concurrency 1,2,4,8,16,32 --requests 256
//! ```
//!
//! Server and load generator share the machine (and its cores): the numbers are an upper
//! bound on the overhead a separate client machine would see.

/// The allocator of the `verdict` binary, so the in-process server behaves as `verdict serve`
/// does (per-request buffers of several MiB).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod load;
mod offline;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use verdict_serve::{AppState, ModelInfo, Placement, Precision, ServeConfig, TaskSettings};

use load::{describe_errors, drive, rss_mib, start, Level};
use workload::{ImageFormat, ItemShape, Workload};

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
    /// Most items per model call, for the server and the offline run alike.
    #[arg(long, alias = "max-batch", default_value_t = 32)]
    max_batch_size: usize,
    /// The server's longest wait for requests admitted and still being prepared, in
    /// milliseconds.
    #[arg(long, default_value_t = 10)]
    max_wait_ms: u64,
    /// Where a Qwen3-VL model runs: `cpu`, `cuda` or `cuda:N` (CUDA needs `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Weight precision: auto (bf16 on CUDA, f32 on the CPU), f32, bf16 or f16.
    #[arg(long, default_value = "auto")]
    precision: Precision,
    /// Side of the synthetic square image of each item, in pixels.
    #[arg(long, default_value_t = 32)]
    image_size: u32,
    /// How the synthetic images are uploaded.
    #[arg(long, value_enum, default_value = "jpeg")]
    image_format: ImageFormat,
    /// Approximate length of each item's text in tokens [default: a short question].
    #[arg(long)]
    text_tokens: Option<usize>,
    /// Markdown file to write the results to.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Args {
    fn shape(&self) -> ItemShape {
        ItemShape {
            image_size: self.image_size,
            image_format: self.image_format,
            text_tokens: self.text_tokens,
        }
    }

    fn serve_config(&self, queue_capacity: usize) -> ServeConfig {
        ServeConfig {
            max_batch_size: self.max_batch_size,
            max_wait: Duration::from_millis(self.max_wait_ms),
            queue_capacity,
            ..ServeConfig::default()
        }
    }
}

fn load_workload(args: &Args, placement: &Placement) -> anyhow::Result<Workload> {
    match (&args.spamassassin, &args.model) {
        (Some(dir), None) => {
            if !placement.is_cpu() {
                bail!("the TF-IDF baseline runs on the CPU only; drop --device");
            }
            workload::spamassassin(dir)
        }
        (None, Some(dir)) => workload::model_dir(dir, &args.labels, placement, args.shape()),
        _ => bail!("give --spamassassin DIR or --model DIR"),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let placement = Placement::parse(&args.device, args.precision)?;
    let workload = load_workload(&args, &placement)?;
    let Workload {
        name,
        model,
        bodies,
        inputs,
    } = workload;
    if let verdict_serve::ServedModel::Qwen(engine) = &model {
        if !engine.batches_in_one_pass() {
            eprintln!(
                "warning: a label of several tokens makes the model score items one by one \
                 (no batching gain); single-token labels batch in one padded pass"
            );
        }
    }

    // Warm-up outside the clock: first kernel launches, cuBLAS handles, allocator pools.
    for result in model.classify_batch(&inputs[..inputs.len().min(args.max_batch_size)]) {
        result.map_err(|e| anyhow::anyhow!("warm-up batch: {e:?}"))?;
    }
    // Offline: the model alone, in batches of the server's size, each batch prepared while
    // the previous one runs (as the server prepares queued requests); also without that
    // overlap, and each batch size's model call alone.
    let offline_items = inputs.len().min(args.requests.max(64));
    let offline_inputs = &inputs[..offline_items];
    let offline = offline::pipelined(&model, offline_inputs, args.max_batch_size)?;
    let serial = offline::one_at_a_time(&model, offline_inputs, args.max_batch_size)?;
    eprintln!(
        "offline: {offline:.1} items/s over {offline_items} items ({serial:.1} preparing \
         and running one batch after the other)"
    );
    let preparation =
        offline::preparation_seconds(&model, offline_inputs, args.max_batch_size)? * 1000.0;
    let calls = offline::model_calls(
        &model,
        offline_inputs,
        &offline::sizes_up_to(args.max_batch_size),
    )?;

    let runtime = tokio::runtime::Runtime::new()?;
    let bodies = Arc::new(bodies);
    let config = args.serve_config(1024);
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
                "c={concurrency}: {:.1} req/s p50 {:.2} ms p99 {:.2} ms, {:.1} items per call \
                 ({} ok, {} 503, {} other{})",
                level.ok as f64 / level.seconds,
                level.p50,
                level.p99,
                level.mean_batch,
                level.ok,
                level.rejected,
                level.other,
                describe_errors(&level.errors)
            );
            levels.push(level);
        }
        let _ = stop.send(());
        anyhow::Ok(levels)
    })?;

    // Past saturation: a small queue, four times as many callers as it holds, three rounds.
    let overload_config = args.serve_config(args.max_batch_size);
    // The first server's batcher keeps its model until the runtime drops it, so the overload
    // server gets a freshly loaded copy (on a GPU, a second copy of the weights).
    let overload_model = load_workload(&args, &placement)?.model;
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
        "Workload: {name}. Server batch size {}, max wait {} ms, offline batch throughput \
         {offline:.1} items/s (each batch prepared while the previous one runs; \
         {serial:.1} items/s one batch after the other), single-request p50 {single:.2} ms. \
         Preparing one batch's inputs (template, tokens, image patches copied to the \
         device) takes {preparation:.1} ms on {} threads; the server does it per request, \
         before the queue.\n\n",
        args.max_batch_size,
        args.max_wait_ms,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    ));
    table.push_str(
        "Model calls on prepared items (the floor under a served request's latency at \
         each batch size):\n\n| batch | ms per call | items/s | vs offline |\n|---:|---:|---:|---:|\n",
    );
    for call in &calls {
        table.push_str(&format!(
            "| {} | {:.2} | {:.1} | {:.0}% |\n",
            call.batch,
            call.ms,
            call.items_per_second,
            100.0 * call.items_per_second / offline
        ));
    }
    table.push('\n');
    table.push_str("| concurrency | requests/s | vs offline | p50 ms | p99 ms | p99 / single p50 | items per call | 503 | other errors |\n");
    table.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for level in &levels {
        let throughput = level.ok as f64 / level.seconds;
        table.push_str(&format!(
            "| {} | {:.1} | {:.0}% | {:.2} | {:.2} | {:.2}x | {:.2} | {} | {}{} |\n",
            level.concurrency,
            throughput,
            100.0 * throughput / offline,
            level.p50,
            level.p99,
            level.p99 / single,
            level.mean_batch,
            level.rejected,
            level.other,
            describe_errors(&level.errors)
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
                "| {} | {} | {} | {}{} | {:.1} | {:.1} | {:.1} |\n",
                i + 1,
                level.ok,
                level.rejected,
                level.other,
                describe_errors(&level.errors),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gpu_command_line_parses() {
        let args = Args::try_parse_from([
            "bench_serve",
            "--model",
            "/tmp/qwen3vl-2b",
            "--labels",
            "sfw,nsfw",
            "--device",
            "cuda",
            "--image-size",
            "448",
            "--text-tokens",
            "64",
            "--concurrency",
            "1,2,4,8,16,32",
            "--requests",
            "256",
            "--max-batch",
            "16",
            "--max-wait-ms",
            "2",
        ])
        .expect("parses");
        assert_eq!(args.labels, ["sfw", "nsfw"]);
        assert_eq!(args.concurrency, [1, 2, 4, 8, 16, 32]);
        assert_eq!(args.precision, Precision::Auto);
        assert_eq!(
            args.shape(),
            ItemShape {
                image_size: 448,
                image_format: ImageFormat::Jpeg,
                text_tokens: Some(64),
            }
        );
        let config = args.serve_config(64);
        assert_eq!(config.max_batch_size, 16);
        assert_eq!(config.max_wait, Duration::from_millis(2));
        assert_eq!(config.queue_capacity, 64);
        if !cfg!(feature = "cuda") {
            let error = Placement::parse(&args.device, args.precision)
                .err()
                .map(|e| e.to_string());
            assert!(error.is_some_and(|m| m.contains("--features cuda")));
        }
    }

    #[test]
    fn defaults_keep_the_earlier_workload_and_bad_values_are_refused() {
        let args = Args::try_parse_from(["bench_serve", "--model", "m"]).expect("parses");
        assert_eq!((args.image_size, args.text_tokens), (32, None));
        assert_eq!((args.max_batch_size, args.max_wait_ms), (32, 10));
        assert_eq!(args.device, "cpu");
        let precision = Args::try_parse_from(["bench_serve", "--precision", "BF16"])
            .expect("parses")
            .precision;
        assert_eq!(precision, Precision::Bf16);
        let error = Args::try_parse_from(["bench_serve", "--precision", "f8"])
            .err()
            .map(|e| e.to_string());
        assert!(error.is_some_and(|m| m.contains("unknown precision `f8`")));
        assert!(Args::try_parse_from(["bench_serve", "--image-format", "gif"]).is_err());
    }
}
