//! With the `cuda` feature, compiles `kernels/*.cu` to PTX with `nvcc` (found through
//! `NVCC`, `CUDA_ROOT`/`CUDA_HOME` or `PATH`) for `CUDA_COMPUTE_CAP` (default 80), as
//! candle's own kernels are built. Without the feature nothing is compiled.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const KERNELS: &[&str] = &["inference", "training"];

fn nvcc() -> PathBuf {
    if let Some(path) = env::var_os("NVCC") {
        return PathBuf::from(path);
    }
    for root in ["CUDA_ROOT", "CUDA_HOME", "CUDA_PATH"] {
        if let Some(root) = env::var_os(root) {
            let candidate = PathBuf::from(root).join("bin").join("nvcc");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    PathBuf::from("nvcc")
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kernels");
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cap = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".to_string());
    let cap: String = cap.chars().filter(char::is_ascii_digit).collect();
    for name in KERNELS {
        let source = format!("kernels/{name}.cu");
        let target = out_dir.join(format!("{name}.ptx"));
        let status = Command::new(nvcc())
            .args(["--ptx", "-O3", "-std=c++17", "--use_fast_math"])
            .arg(format!("-arch=sm_{cap}"))
            .arg("-o")
            .arg(&target)
            .arg(&source)
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run nvcc for {source}: {e} (set NVCC or CUDA_ROOT)")
            });
        assert!(status.success(), "nvcc failed on {source}");
    }
}
