//! Throughput of the image cache and of WebDataset shards, against the Python tools on the
//! same input in the same run.
//!
//! ```text
//! cargo run --release -p verdict-media --example bench_media -- [IMAGES] [SAMPLES]
//! ```
//!
//! - download: IMAGES JPEGs from a loopback server that answers 10% of URLs with one 503
//!   first, 2% with an HTML page and 2% with 404; Verdict's cache against a Python
//!   thread pool (`requests`, same concurrency, retries, validation and temp+rename writes).
//! - shards: SAMPLES samples (JPEG + txt + json) written into 500-sample shards and read back,
//!   Verdict's writer/reader against `webdataset.ShardWriter` / `webdataset.WebDataset`.
//!
//! Python comes from `VERDICT_PYTHON` (or `scripts/python-env`).

#[path = "../tests/common/server.rs"]
#[allow(dead_code)]
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use server::{Behaviour, Route, TestServer};
use verdict_media::cache::{FetchOptions, ImageCache};
use verdict_media::shards::{list_shards, ShardReader, ShardSample, ShardWriter};

const CONCURRENCY: usize = 32;

const PY_DOWNLOAD: &str = r#"
import hashlib, json, os, random, sys, tempfile, time, urllib.parse
from concurrent.futures import ThreadPoolExecutor
import requests
urls = [l.strip() for l in open(sys.argv[1]) if l.strip()]
cache = sys.argv[2]; os.makedirs(cache, exist_ok=True)
session = requests.Session()
session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=64, pool_maxsize=64))
MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"RIFF")
def fetch(url):
    ext = os.path.splitext(urllib.parse.urlparse(url).path)[1] or ".jpg"
    path = os.path.join(cache, hashlib.sha1(url.encode()).hexdigest() + ext)
    for attempt in range(3):
        try:
            r = session.get(url, timeout=30)
        except requests.RequestException:
            r = None
        if r is not None and r.status_code == 200:
            if not r.headers.get("content-type", "image/").startswith("image/"): return 0
            if not r.content.startswith(MAGIC): return 0
            fd, tmp = tempfile.mkstemp(dir=cache)
            with os.fdopen(fd, "wb") as f: f.write(r.content)
            os.replace(tmp, path)
            return len(r.content)
        if r is not None and r.status_code < 500: return 0
        time.sleep(min(0.05, 0.01 * 2 ** attempt) * (0.5 + random.random() / 2))
    return 0
start = time.perf_counter()
with ThreadPoolExecutor(int(sys.argv[3])) as pool:
    sizes = list(pool.map(fetch, urls))
print(json.dumps({"seconds": time.perf_counter() - start, "ok": sum(1 for s in sizes if s), "bytes": sum(sizes)}))
"#;

const PY_SHARDS: &str = r#"
import json, os, sys, time
import webdataset as wds
inputs, out, existing = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [json.loads(l) for l in open(os.path.join(inputs, "meta.jsonl"))]
os.makedirs(out, exist_ok=True)
start = time.perf_counter()
with wds.ShardWriter(os.path.join(out, "shard-%06d.tar"), maxcount=500, maxsize=500 * 1024 * 1024, verbose=0) as sink:
    for row in rows:
        with open(os.path.join(inputs, row["key"] + ".jpg"), "rb") as f:
            jpg = f.read()
        sink.write({"__key__": row["key"], "jpg": jpg, "txt": row["text"].encode(), "json": json.dumps(row["meta"]).encode()})
write = time.perf_counter() - start
def read(folder):
    shards = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".tar"))
    start = time.perf_counter(); n = 0; size = 0
    for sample in wds.WebDataset(shards, shardshuffle=False):
        n += 1; size += sum(len(v) for k, v in sample.items() if not k.startswith("__"))
    return time.perf_counter() - start, n
read_own, n_own = read(out)
read_verdict, n_verdict = read(existing)
print(json.dumps({"write": write, "read_own": read_own, "read_verdict": read_verdict, "n": n_own, "n_verdict": n_verdict}))
"#;

fn python() -> PathBuf {
    if let Ok(path) = std::env::var("VERDICT_PYTHON") {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new(root.join("scripts/python-env"))
        .current_dir(&root)
        .output()
        .expect("scripts/python-env");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn run_python(script: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python JSON")
}

fn jpeg(seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(192, 160, |x, y| {
        let v = x.wrapping_mul(31 + seed) ^ y.wrapping_mul(17) ^ seed.wrapping_mul(2654435761);
        image::Rgb([
            (v & 255) as u8,
            ((v >> 7) & 255) as u8,
            ((x * y + seed) & 255) as u8,
        ])
    });
    let mut out = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut out),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    out
}

fn row(name: &str, unit: &str, ours: f64, theirs: f64) {
    println!(
        "| {name} | {ours:.1} {unit} | {theirs:.1} {unit} | {:.2}x |",
        ours / theirs
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let images = args.first().copied().unwrap_or(1000);
    let samples = args.get(1).copied().unwrap_or(4000);
    let dir = tempfile::tempdir().unwrap();

    // Downloads.
    let server = TestServer::start();
    let mut urls = Vec::new();
    for i in 0..images as u32 {
        let mut route = Route::ok(jpeg(i), "image/jpeg");
        match i % 50 {
            0 => route = Route::ok(b"<!DOCTYPE html><html>blocked</html>".to_vec(), "text/html"),
            1 => route.behaviour = Behaviour::Status(404),
            n if n % 10 == 2 => route.fail_first = 1,
            _ => {}
        }
        urls.push(server.add(&format!("/img/{i}.jpg"), route));
    }
    let options = FetchOptions {
        concurrency: CONCURRENCY,
        retries: 2,
        backoff_base_ms: 10,
        backoff_max_ms: 50,
        ..FetchOptions::default()
    };
    let cache = ImageCache::new(dir.path().join("cache-verdict"));
    let start = Instant::now();
    let outcomes = cache.fetch_all(&urls, &options, &|_| {}).unwrap();
    let ours = start.elapsed().as_secs_f64();
    let ok = outcomes.iter().filter(|o| o.ok).count();
    let bytes: u64 = outcomes.iter().map(|o| o.bytes).sum();
    // Fresh server state (the flaky routes fail once again) for the Python run.
    let server = TestServer::start();
    let mut python_urls = Vec::new();
    for i in 0..images as u32 {
        let mut route = Route::ok(jpeg(i), "image/jpeg");
        match i % 50 {
            0 => route = Route::ok(b"<!DOCTYPE html><html>blocked</html>".to_vec(), "text/html"),
            1 => route.behaviour = Behaviour::Status(404),
            n if n % 10 == 2 => route.fail_first = 1,
            _ => {}
        }
        python_urls.push(server.add(&format!("/img/{i}.jpg"), route));
    }
    let list = dir.path().join("urls.txt");
    std::fs::write(&list, python_urls.join("\n")).unwrap();
    let theirs = run_python(
        PY_DOWNLOAD,
        &[
            list.to_str().unwrap(),
            dir.path().join("cache-python").to_str().unwrap(),
            &CONCURRENCY.to_string(),
        ],
    );
    let python_seconds = theirs["seconds"].as_f64().unwrap();
    let python_bytes = theirs["bytes"].as_f64().unwrap();
    println!("\n{images} images ({:.1} MB ok), concurrency {CONCURRENCY}; Verdict {ok} ok, Python {} ok\n", bytes as f64 / 1e6, theirs["ok"]);
    println!("| measure | Verdict | Python | ratio |\n|---|---|---|---|");
    row(
        "download",
        "images/s",
        ok as f64 / ours,
        theirs["ok"].as_f64().unwrap() / python_seconds,
    );
    row(
        "download",
        "MB/s",
        bytes as f64 / 1e6 / ours,
        python_bytes / 1e6 / python_seconds,
    );

    // Shards: the same inputs on disk for both.
    let inputs = dir.path().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    let mut meta = String::new();
    for i in 0..samples as u32 {
        let key = format!("sample{i:06}");
        std::fs::write(inputs.join(format!("{key}.jpg")), jpeg(i % 997)).unwrap();
        let json = serde_json::json!({"key": key, "text": format!("listing text {i}"), "meta": {"sample_id": key, "label": if i % 3 == 0 { "bad" } else { "ok" }}});
        meta.push_str(&json.to_string());
        meta.push('\n');
    }
    std::fs::write(inputs.join("meta.jsonl"), &meta).unwrap();
    let ours_dir = dir.path().join("shards-verdict");
    let start = Instant::now();
    let mut writer = ShardWriter::new(&ours_dir, 500, 500 * 1024 * 1024).unwrap();
    for line in meta.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = row["key"].as_str().unwrap().to_string();
        let jpg = std::fs::read(inputs.join(format!("{key}.jpg"))).unwrap();
        writer
            .write(&ShardSample {
                key,
                members: vec![
                    ("jpg".into(), jpg),
                    (
                        "txt".into(),
                        row["text"].as_str().unwrap().as_bytes().to_vec(),
                    ),
                    ("json".into(), serde_json::to_vec(&row["meta"]).unwrap()),
                ],
            })
            .unwrap();
    }
    let shards = writer.finish().unwrap();
    let write_ours = start.elapsed().as_secs_f64();
    let shard_bytes: u64 = shards
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();

    let python_dir = dir.path().join("shards-python");
    let theirs = run_python(
        PY_SHARDS,
        &[
            inputs.to_str().unwrap(),
            python_dir.to_str().unwrap(),
            ours_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(
        theirs["n_verdict"].as_u64(),
        Some(samples as u64),
        "webdataset reads every Verdict sample"
    );
    let read = |folder: &Path| {
        let start = Instant::now();
        let count = ShardReader::new(list_shards(folder).unwrap())
            .iter()
            .filter(|s| s.is_ok())
            .count();
        assert_eq!(count, samples);
        start.elapsed().as_secs_f64()
    };
    let read_own = read(&ours_dir);
    let read_python_shards = read(&python_dir);
    let mb = shard_bytes as f64 / 1e6;
    println!("\n{samples} samples, {mb:.1} MB of shards (500 samples each)\n");
    println!("| measure | Verdict | Python webdataset | ratio |\n|---|---|---|---|");
    row(
        "shard write",
        "MB/s",
        mb / write_ours,
        mb / theirs["write"].as_f64().unwrap(),
    );
    row(
        "shard read (own shards)",
        "MB/s",
        mb / read_own,
        mb / theirs["read_own"].as_f64().unwrap(),
    );
    row(
        "shard read (the other's shards)",
        "MB/s",
        mb / read_python_shards,
        mb / theirs["read_verdict"].as_f64().unwrap(),
    );
}
