//! `verdict serve`: an HTTP classification service for a baseline or Qwen3-VL model directory.
//!
//! The socket opens first (`/healthz` answers at once, `/readyz` says 503 until the model is
//! loaded), then the model loads; Ctrl-C or SIGTERM stops accepting connections and finishes
//! the requests in flight. Endpoints: `/v1/classify`, `/v1/classify/batch`,
//! `/v1/chat/completions`, `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
//! `--device cuda:N` puts a Qwen3-VL model on a GPU (bf16 unless `--precision` says
//! otherwise); the batcher's single model thread then drives the GPU.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use verdict_serve::{LabelSet, LaunchOptions, Placement, ServeConfig, TaskSettings};

use super::predict::Precision;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory: a text baseline (`baseline.json`, from `verdict baseline`) or a
    /// Qwen3-VL checkpoint (`config.json`, safetensors, tokenizer, chat template).
    #[arg(long)]
    pub model: PathBuf,

    /// LoRA adapter directory (PEFT format, e.g. from fine-tuning) applied on top of a
    /// Qwen3-VL model; answers name it in `adapter`.
    #[arg(long)]
    pub adapter: Option<PathBuf>,

    /// Task file: labels (and descriptions) to score, the keep/review/demote policy, and the
    /// views rendered for mesh uploads.
    #[arg(long)]
    pub task: Option<PathBuf>,

    /// Labels to score with a Qwen3-VL model when no task is given, e.g. `--labels safe,unsafe`.
    #[arg(long, value_delimiter = ',', conflicts_with = "task")]
    pub labels: Vec<String>,

    /// Address to bind; the default only accepts local connections.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// Require `Authorization: Bearer <TOKEN>` on /v1/* (read from the environment so it
    /// stays out of process listings).
    #[arg(long, env = "VERDICT_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Most items per model call.
    #[arg(long, default_value_t = 32)]
    pub max_batch_size: usize,

    /// Longest wait of a batch for requests already admitted and still being prepared, in
    /// milliseconds (a lone request never waits).
    #[arg(long, default_value_t = 10)]
    pub max_wait_ms: u64,

    /// Jobs that may wait for the model; beyond that requests get 503 + Retry-After.
    #[arg(long, default_value_t = 256)]
    pub queue_capacity: usize,

    /// Per-request time limit in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,

    /// Largest request body in MiB.
    #[arg(long, default_value_t = 32)]
    pub max_body_mib: usize,

    /// Largest image in pixels (checked before decoding).
    #[arg(long, default_value_t = 40_000_000)]
    pub max_image_pixels: u64,

    /// Largest mesh upload in triangles.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_triangles: u64,

    /// Folder of /v1/files and /v1/batches, kept across restarts [default: $VERDICT_BATCH_DIR,
    /// else a temporary folder that goes with the process].
    #[arg(long)]
    pub batch_dir: Option<PathBuf>,

    /// Longest completion window a batch gets, in seconds; past it the batch ends `expired`.
    #[arg(long, default_value_t = 24 * 3600)]
    pub max_batch_window_secs: u64,

    /// Requests of one batch in flight at once.
    #[arg(long, default_value_t = 4)]
    pub batch_concurrency: usize,

    /// Where a Qwen3-VL model runs: `cpu`, `cuda` or `cuda:N` (CUDA needs a build with
    /// `--features cuda`). Text baselines run on the CPU only and refuse any other device.
    #[arg(long, default_value = "cpu")]
    pub device: String,

    /// Precision of Qwen3-VL weights; `auto` is bf16 on CUDA and f32 on the CPU.
    #[arg(long, value_enum, default_value = "auto")]
    pub precision: Precision,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // Opened before the socket: a device that is missing (or a build without CUDA) stops
    // here with its reason instead of a service that never turns ready.
    let placement = Placement::parse(&args.device, args.precision.serving())?;
    let config = ServeConfig {
        max_batch_size: args.max_batch_size,
        max_wait: Duration::from_millis(args.max_wait_ms),
        queue_capacity: args.queue_capacity,
        request_timeout: Duration::from_secs(args.timeout_secs),
        max_body_bytes: args.max_body_mib << 20,
        max_image_pixels: args.max_image_pixels,
        max_triangles: args.max_triangles,
        bearer_token: args.token.clone().filter(|t| !t.is_empty()),
        batch_dir: args.batch_dir.clone(),
        max_batch_window: Duration::from_secs(args.max_batch_window_secs),
        batch_concurrency: args.batch_concurrency.max(1),
        ..ServeConfig::default()
    };
    let task = match &args.task {
        Some(path) => TaskSettings::from_task_file(path)?,
        None => {
            let names: Vec<String> = args
                .labels
                .iter()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            let labels = (!names.is_empty()).then(|| LabelSet {
                descriptions: vec![String::new(); names.len()],
                names,
            });
            TaskSettings::without_task(labels)
        }
    };
    verdict_serve::run_service(LaunchOptions {
        model: args.model.clone(),
        adapter: args.adapter,
        address: format!("{}:{}", args.host, args.port),
        config,
        task,
        placement,
    })
    .with_context(|| format!("serving {}", args.model.display()))
}
