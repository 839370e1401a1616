//! Test helpers: Verdict's own server with the tiny Qwen3-VL checkpoint on loopback (one
//! that can be killed and started again on the same port and batch folder), and small
//! catalogues with images.

#![allow(dead_code)] // each test file uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use verdict_serve::{AppState, LabelSet, ModelInfo, ServeConfig, ServedModel, TaskSettings};

pub fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

/// A server on its own runtime; dropping the runtime is a crash (no graceful shutdown).
pub struct Server {
    pub address: SocketAddr,
    pub batch_dir: PathBuf,
    pub window: Duration,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Server {
    /// Starts on `address` (port 0: any free port).
    pub fn start(address: SocketAddr, batch_dir: &Path, window: Duration) -> Self {
        let labels = LabelSet {
            names: vec!["sfw".into(), "nsfw".into()],
            descriptions: Vec::new(),
        };
        let model = ServedModel::load(&tiny_dir(), Some(labels.clone())).expect("tiny model");
        let config = ServeConfig {
            batch_dir: Some(batch_dir.to_path_buf()),
            max_batch_window: window,
            ..ServeConfig::default()
        };
        let state = AppState::with_model(
            config,
            ModelInfo::from_path(&tiny_dir()),
            &TaskSettings::without_task(Some(labels)),
            model,
        )
        .expect("state");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        // The port of a killed server may take a moment to be free again.
        let mut tries = 0;
        let listener = loop {
            match runtime.block_on(tokio::net::TcpListener::bind(address)) {
                Ok(listener) => break listener,
                Err(error) if tries < 100 => {
                    tries += 1;
                    let _ = error;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(error) => panic!("bind {address}: {error}"),
            }
        };
        let address = listener.local_addr().expect("address");
        runtime.spawn(verdict_serve::serve(
            listener,
            state,
            std::future::pending(),
        ));
        Self {
            address,
            batch_dir: batch_dir.to_path_buf(),
            window,
            runtime: Some(runtime),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// Drops every task and connection at once, like a killed process.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// A new server on the same port and folder.
    pub fn restart(&mut self, window: Duration) {
        self.kill();
        *self = Server::start(self.address, &self.batch_dir.clone(), window);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `items.csv` (id, name, image) with `n` rows (every third with a PNG) and a spec
/// for them; returns the spec path.
pub fn catalogue(dir: &Path, n: usize, base_url: &str, extra: &str) -> PathBuf {
    let mut csv = String::from("id,name,image\n");
    for i in 0..n {
        let image = if i % 3 == 0 {
            let name = format!("img{i}.png");
            let colour = [(i * 40 % 256) as u8, 90, 200];
            image::RgbImage::from_pixel(40, 28, image::Rgb(colour))
                .save(dir.join(&name))
                .expect("png");
            name
        } else {
            String::new()
        };
        csv.push_str(&format!("sku-{i},\"chair, model {i}\",{image}\n"));
    }
    std::fs::write(dir.join("items.csv"), csv).expect("csv");
    let spec = format!(
        r#"
input = "items.csv"
image_column = "image"
prompt = "Product: {{name}}. Extract the attributes."
{extra}

[[fields]]
name = "style"
type = "string"
enum = ["modern", "rustic", "industrial"]

[[fields]]
name = "clean_title"
type = "string"
max_length = 12

[[fields]]
name = "seats"
type = "integer"
minimum = 1
maximum = 8

[[fields]]
name = "indoor"
type = "boolean"

[endpoint]
base_url = "{base_url}"
max_tokens = 120

[images]
max_side = 32

[retry]
max_attempts = 40
initial_backoff_ms = 20
max_backoff_ms = 200
timeout_seconds = 60
"#
    );
    let path = dir.join("job.toml");
    std::fs::write(&path, spec).expect("spec");
    path
}

/// Rows of a CSV as maps.
pub fn read_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).expect("output");
    let headers = reader.headers().expect("headers").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            headers
                .iter()
                .map(String::from)
                .zip(r.iter().map(String::from))
                .collect()
        })
        .collect()
}
