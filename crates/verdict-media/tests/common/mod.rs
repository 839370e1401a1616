//! Helpers shared by the integration tests: the loopback HTTP server, test images, and the
//! Python environment with the interop tools.

#![allow(dead_code)]

pub mod server;

use std::path::PathBuf;
use std::process::Command;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The interpreter of the test environment (`VERDICT_PYTHON`, else `scripts/python-env`).
pub fn python() -> PathBuf {
    if let Ok(path) = std::env::var("VERDICT_PYTHON") {
        return PathBuf::from(path);
    }
    let output = Command::new(repo_root().join("scripts/python-env"))
        .current_dir(repo_root())
        .output()
        .expect("run scripts/python-env (creates .cache/pyenv with the test tools)");
    assert!(
        output.status.success(),
        "scripts/python-env failed; run it from the repository root to install the test tools:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// A script run by the test Python; panics with its stderr on failure.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("start python");
    assert!(
        output.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An encoded test image with varied pixels (so JPEG bodies are not trivially small).
pub fn image_bytes(width: u32, height: u32, seed: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ seed.wrapping_mul(2654435761);
        image::Rgb([
            (v & 255) as u8,
            ((v >> 8) & 255) as u8,
            ((x + y + seed) & 255) as u8,
        ])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
