//! `verdict media ...`: the image URL cache, WebDataset shards, object-store copies and
//! DVC-compatible data versioning.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context};
use verdict_core::workspace::Workspace;
use verdict_media::cache::{self, FetchOptions, ImageCache};
use verdict_media::dvc::{self, DvcRepo, OutStatus};
use verdict_media::shards::{self, ResizeSpec, ShardOptions, ShardReader, WorkerShard};
use verdict_media::store::{self, CopyOptions, Location, TransferProgress};

use super::data::DataDir;
use super::progress::{bar, Stage};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: MediaCommand,
}

#[derive(clap::Subcommand)]
pub enum MediaCommand {
    /// Download every image URL of the task's samples into the image cache
    /// (work/cache/images, named sha1(url) + extension) and write
    /// work/data/image_download_status.csv. Failing URLs are retried, then recorded.
    Fetch {
        task: PathBuf,
        /// Cache folder [default: <workdir>/cache/images].
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Downloads in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Extra attempts for failures that may pass (5xx, 429, timeouts, cut bodies).
        #[arg(long, default_value_t = 3)]
        retries: u32,
        /// Whole-request timeout in seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Refuse images larger than this many MiB.
        #[arg(long, default_value_t = 20)]
        max_mb: u64,
        #[command(flatten)]
        data: DataDir,
    },
    /// Pack the image cache into a zip.
    ExportCache {
        /// Cache folder.
        cache: PathBuf,
        /// Zip to write.
        out: PathBuf,
    },
    /// Unpack a cache zip; entries that are not cache images are reported and skipped.
    ImportCache {
        archive: PathBuf,
        /// Cache folder.
        cache: PathBuf,
    },
    /// Write WebDataset shards per split: OUT/<split>/shard-NNNNNN.tar with jpg/png, txt and
    /// json members per sample.
    Shards {
        task: PathBuf,
        /// Output folder [default: <workdir>/shards].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Image cache folder [default: <workdir>/cache/images].
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Samples per shard.
        #[arg(long, default_value_t = 1000)]
        max_count: usize,
        /// Approximate shard size limit in MiB.
        #[arg(long, default_value_t = 500)]
        max_mb: u64,
        /// Resize and pad every image to a square of this many pixels, JPEG-encoded.
        #[arg(long)]
        resize: Option<u32>,
        /// JPEG quality for --resize.
        #[arg(long, default_value_t = 90)]
        quality: u8,
        /// Also link the first N train shards into OUT/mini_train.
        #[arg(long)]
        mini_train: Option<usize>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Stream samples from shards (a folder or .tar files) as JSON lines: key and member sizes.
    Read {
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Read only this worker's shards: `i/N`.
        #[arg(long)]
        shard: Option<WorkerShard>,
        /// Shuffle buffer size (0: file order).
        #[arg(long, default_value_t = 0)]
        shuffle: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop after this many samples.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Copy a file or folder between local paths and object storage (s3://bucket/prefix).
    Cp {
        source: String,
        /// Destination; a trailing `/` means "into this folder".
        destination: String,
        /// Upload objects of at least this many MiB in parts.
        #[arg(long, default_value_t = 64)]
        multipart_mb: u64,
    },
    /// List the objects below a local folder or object-store prefix.
    Ls { location: String },
    /// DVC-compatible versioning of manifests and data folders.
    Version {
        #[command(subcommand)]
        command: VersionCommand,
    },
}

#[derive(clap::Subcommand)]
pub enum VersionCommand {
    /// Create a DVC project without git here (like `dvc init --no-scm`).
    Init {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Record files or folders: objects into .dvc/cache, `<path>.dvc` pointers beside them.
    Add {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Compare outputs with their pointers and the cache.
    Status {
        #[arg(required = true)]
        pointers: Vec<PathBuf>,
    },
    /// Restore outputs from the cache.
    Checkout {
        #[arg(required = true)]
        pointers: Vec<PathBuf>,
    },
    /// Upload the objects of these pointers to a remote (folder or s3://bucket/prefix).
    Push {
        #[arg(long)]
        remote: String,
        #[arg(required = true)]
        pointers: Vec<PathBuf>,
    },
    /// Download the objects of these pointers from a remote into the cache.
    Pull {
        #[arg(long)]
        remote: String,
        #[arg(required = true)]
        pointers: Vec<PathBuf>,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        MediaCommand::Fetch {
            task,
            cache,
            concurrency,
            retries,
            timeout,
            max_mb,
            data,
        } => {
            let workspace = open(&task, &data)?;
            let options = FetchOptions {
                concurrency,
                retries,
                timeout_ms: timeout.saturating_mul(1000),
                max_bytes: max_mb.saturating_mul(1024 * 1024),
                ..FetchOptions::default()
            };
            fetch(&workspace, cache, &options).map(|_| ())
        }
        MediaCommand::ExportCache { cache, out } => {
            let count = cache::export_zip(&cache, &out)?;
            eprintln!(
                "✓ {count} files from {} into {}",
                cache.display(),
                out.display()
            );
            Ok(())
        }
        MediaCommand::ImportCache { archive, cache } => {
            let report = cache::import_zip(&archive, &cache)?;
            for (name, reason) in &report.rejected {
                eprintln!("  skipped {name}: {reason}");
            }
            eprintln!(
                "✓ {} imported, {} already present, {} skipped",
                report.imported,
                report.existing,
                report.rejected.len()
            );
            Ok(())
        }
        MediaCommand::Shards {
            task,
            out,
            cache,
            max_count,
            max_mb,
            resize,
            quality,
            mini_train,
            data,
        } => {
            let workspace = open(&task, &data)?;
            let options = ShardOptions {
                max_count,
                max_bytes: max_mb.saturating_mul(1024 * 1024),
                resize: resize.map(|size| ResizeSpec {
                    size,
                    quality,
                    ..ResizeSpec::default()
                }),
            };
            write_shards(&workspace, out, cache, &options, mini_train)
        }
        MediaCommand::Read {
            shards,
            shard,
            shuffle,
            seed,
            limit,
        } => read(&shards, shard, shuffle, seed, limit),
        MediaCommand::Cp {
            source,
            destination,
            multipart_mb,
        } => copy(&source, &destination, multipart_mb),
        MediaCommand::Ls { location } => {
            let location = Location::parse(&location)?;
            for (path, size) in store::block_on(location.list())?? {
                println!("{size}\t{path}");
            }
            Ok(())
        }
        MediaCommand::Version { command } => version(command),
    }
}

fn open(task: &Path, data: &DataDir) -> anyhow::Result<Workspace> {
    Workspace::open(task, &data.resolve())
        .with_context(|| format!("cannot open task {}", task.display()))
}

/// Where `verdict run` and `verdict media fetch` keep a task's downloaded images by default.
pub fn default_cache_dir(workspace: &Workspace) -> PathBuf {
    workspace.root.join("cache/images")
}

/// Downloads the samples' image URLs into the cache and writes the status CSV; returns its path.
pub fn fetch(
    workspace: &Workspace,
    cache: Option<PathBuf>,
    options: &FetchOptions,
) -> anyhow::Result<PathBuf> {
    let samples = workspace.current_samples()?;
    let urls = cache::image_urls(&samples);
    let cache = ImageCache::new(cache.unwrap_or_else(|| default_cache_dir(workspace)));
    let progress = bar(urls.len() as u64, "images");
    let outcomes = cache.fetch_all(&urls, options, &|_| progress.inc(1))?;
    progress.finish_and_clear();
    let status_path = workspace.root.join("data").join(cache::STATUS_FILE_NAME);
    cache::write_status_csv(&status_path, &outcomes)?;
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.ok).collect();
    for outcome in failed.iter().take(10) {
        eprintln!(
            "  {}: {}",
            outcome.url,
            outcome.error.as_deref().unwrap_or("failed")
        );
    }
    if failed.len() > 10 {
        eprintln!(
            "  ... {} more in {}",
            failed.len() - 10,
            status_path.display()
        );
    }
    eprintln!(
        "✓ {} of {} images in {} ({} failed; those samples fall back to text-only); status: {}",
        outcomes.len() - failed.len(),
        outcomes.len(),
        cache.dir().display(),
        failed.len(),
        status_path.display()
    );
    Ok(status_path)
}

fn write_shards(
    workspace: &Workspace,
    out: Option<PathBuf>,
    cache: Option<PathBuf>,
    options: &ShardOptions,
    mini_train: Option<usize>,
) -> anyhow::Result<()> {
    let samples = workspace.current_samples()?;
    let cache = ImageCache::new(cache.unwrap_or_else(|| workspace.root.join("cache/images")));
    let base = workspace.root.join("data");
    let out = out.unwrap_or_else(|| workspace.root.join("shards"));
    let stage = Stage::start("writing shards");
    let report = shards::build_split_shards(
        &samples,
        &|sample| cache::sample_image(&cache, sample, &base),
        &out,
        options,
    )?;
    for problem in &report.problems {
        eprintln!("  {problem}");
    }
    if let Some(count) = mini_train {
        if let Some((_, train)) = report.splits.iter().find(|(split, _)| split == "train") {
            if let Some(dir) = train.first().and_then(|p| p.parent()) {
                shards::mini_train(dir, count, &out.join("mini_train"))?;
            }
        } else {
            eprintln!("  no train split: --mini-train skipped");
        }
    }
    let summary: Vec<String> = report
        .splits
        .iter()
        .map(|(split, shards)| format!("{split}: {} shard(s)", shards.len()))
        .collect();
    stage.done(&format!(
        "{} samples ({} with image, {} text-only) into {}: {}",
        report.samples,
        report.with_image,
        report.without_image,
        out.display(),
        summary.join(", ")
    ));
    Ok(())
}

fn read(
    inputs: &[PathBuf],
    worker: Option<WorkerShard>,
    shuffle: usize,
    seed: u64,
    limit: Option<usize>,
) -> anyhow::Result<()> {
    let mut paths = Vec::new();
    for input in inputs {
        paths.extend(shards::list_shards(input)?);
    }
    let mut reader = ShardReader::new(paths).with_shuffle(shuffle, seed);
    if let Some(worker) = worker {
        reader = reader.with_worker(worker);
    }
    let mut errors = 0;
    for sample in reader.iter().take(limit.unwrap_or(usize::MAX)) {
        match sample {
            Ok(sample) => {
                let members: serde_json::Map<String, serde_json::Value> = sample
                    .members
                    .iter()
                    .map(|(ext, data)| (ext.clone(), data.len().into()))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"key": sample.key, "members": members})
                );
            }
            Err(error) => {
                errors += 1;
                eprintln!("error: {error}");
            }
        }
    }
    if errors > 0 {
        bail!("{errors} shard error(s)");
    }
    Ok(())
}

struct BarProgress(indicatif::ProgressBar, AtomicU64);

impl TransferProgress for BarProgress {
    fn start(&self, files: u64, bytes: u64) {
        self.0.set_length(bytes);
        self.0.set_message(format!("{files} file(s)"));
    }

    fn advance(&self, bytes: u64) {
        self.1.fetch_add(bytes, Ordering::Relaxed);
        self.0.inc(bytes);
    }
}

fn copy(source: &str, destination: &str, multipart_mb: u64) -> anyhow::Result<()> {
    let from = Location::parse(source)?;
    let to = Location::parse(destination)?;
    let options = CopyOptions {
        multipart_threshold: multipart_mb.saturating_mul(1024 * 1024),
        ..CopyOptions::default()
    };
    let progress_bar = indicatif::ProgressBar::new(0);
    progress_bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let progress = BarProgress(progress_bar, AtomicU64::new(0));
    let started = std::time::Instant::now();
    let report = store::block_on(store::copy(
        &from,
        &to,
        destination.ends_with('/'),
        &options,
        &progress,
    ))??;
    progress.0.finish_and_clear();
    super::progress::report_done(
        started,
        &format!(
            "{} file(s), {} bytes ({} multipart) from {from} to {to}",
            report.files, report.bytes, report.multipart
        ),
    );
    Ok(())
}

fn version(command: VersionCommand) -> anyhow::Result<()> {
    match command {
        VersionCommand::Init { dir } => {
            let repo = DvcRepo::init(&dir)?;
            eprintln!("✓ DVC project at {}", repo.root().display());
        }
        VersionCommand::Add { paths } => {
            for path in paths {
                let repo = repo_of(&path)?;
                let pointer = repo.add(&path)?;
                eprintln!("✓ {} -> {}", path.display(), pointer.display());
            }
        }
        VersionCommand::Status { pointers } => {
            let mut dirty = 0;
            for pointer in pointers {
                let repo = repo_of(&pointer)?;
                for (output, status) in repo.status(&pointer)? {
                    let text = match &status {
                        OutStatus::UpToDate => "up to date".to_string(),
                        OutStatus::Modified => "modified".to_string(),
                        OutStatus::Deleted => "deleted".to_string(),
                        OutStatus::NotInCache(missing) => {
                            format!("{} object(s) not in cache", missing.len())
                        }
                    };
                    dirty += (status != OutStatus::UpToDate) as usize;
                    println!("{}: {text}", output.display());
                }
            }
            if dirty > 0 {
                bail!("{dirty} output(s) differ from their pointers");
            }
        }
        VersionCommand::Checkout { pointers } => {
            for pointer in pointers {
                let restored = repo_of(&pointer)?.checkout(&pointer)?;
                eprintln!("✓ {}: {restored} file(s) restored", pointer.display());
            }
        }
        VersionCommand::Push { remote, pointers } => transfer(true, &remote, &pointers)?,
        VersionCommand::Pull { remote, pointers } => transfer(false, &remote, &pointers)?,
    }
    Ok(())
}

fn transfer(pushing: bool, remote: &str, pointers: &[PathBuf]) -> anyhow::Result<()> {
    let remote = Location::parse(remote)?;
    let Some(first) = pointers.first() else {
        bail!("no pointers given");
    };
    let repo = repo_of(first)?;
    let refs: Vec<&Path> = pointers.iter().map(PathBuf::as_path).collect();
    let summary = if pushing {
        store::block_on(dvc::push(&repo, &refs, &remote))??
    } else {
        store::block_on(dvc::pull(&repo, &refs, &remote))??
    };
    eprintln!(
        "✓ {} object(s) {}, {} already there ({} bytes)",
        summary.transferred,
        if pushing { "pushed" } else { "pulled" },
        summary.present,
        summary.bytes
    );
    Ok(())
}

fn repo_of(pointer: &Path) -> anyhow::Result<DvcRepo> {
    let dir = pointer
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(DvcRepo::find(dir)?)
}
