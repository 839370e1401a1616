//! `run_metadata.json`: how a run was made (task, seeds, config, hardware, data, timings,
//! thresholds, metrics), written next to its outputs so every artifact explains itself.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{EvalError, Result};
use crate::policy::PolicyThresholds;

/// File name the writer uses inside a run folder.
pub const RUN_METADATA_FILE: &str = "run_metadata.json";

/// The machine a run used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    /// `model name` from /proc/cpuinfo (None where that file does not exist).
    pub cpu_model: Option<String>,
    pub cpu_threads: usize,
    /// GPU names and memory as `nvidia-smi` reports them; empty without one.
    pub gpus: Vec<String>,
    pub os: String,
}

impl Hardware {
    /// Reads what this machine is.
    pub fn detect() -> Hardware {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| parse_cpu_model(&text));
        let gpus = std::process::Command::new("nvidia-smi")
            .args(["--query-gpu=name,memory.total", "--format=csv,noheader"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Hardware {
            cpu_model,
            cpu_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            gpus,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// The first `model name` of a /proc/cpuinfo text.
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, value)| value.trim().to_owned())
}

/// A data file a run read, identified by content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub name: String,
    pub path: PathBuf,
    pub samples: usize,
    pub bytes: u64,
    pub sha256: String,
}

impl DatasetInfo {
    /// Hashes `path` (streamed, so large files are fine).
    pub fn from_file(name: impl Into<String>, path: &Path, samples: usize) -> Result<DatasetInfo> {
        let mut file = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        let mut bytes = 0u64;
        loop {
            let read = file.read(&mut buffer).map_err(|e| EvalError::io(path, e))?;
            if read == 0 {
                break;
            }
            bytes += read as u64;
            hasher.update(&buffer[..read]);
        }
        Ok(DatasetInfo {
            name: name.into(),
            path: path.to_path_buf(),
            samples,
            bytes,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

/// Wall time of one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTiming {
    pub stage: String,
    pub seconds: f64,
}

/// Everything `run_metadata.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetadata {
    pub task: String,
    pub tool_version: String,
    /// UTC, RFC 3339.
    pub created_at: String,
    pub seeds: BTreeMap<String, u64>,
    pub config: serde_json::Value,
    pub hardware: Hardware,
    pub datasets: Vec<DatasetInfo>,
    pub timings: Vec<StageTiming>,
    pub thresholds: Option<PolicyThresholds>,
    pub metrics: serde_json::Value,
}

impl RunMetadata {
    /// Starts a record for `task` with this machine's hardware.
    pub fn new(task: impl Into<String>, tool_version: impl Into<String>) -> RunMetadata {
        RunMetadata {
            task: task.into(),
            tool_version: tool_version.into(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            seeds: BTreeMap::new(),
            config: serde_json::Value::Null,
            hardware: Hardware::detect(),
            datasets: Vec::new(),
            timings: Vec::new(),
            thresholds: None,
            metrics: serde_json::Value::Null,
        }
    }

    /// Runs `stage` and records its wall time.
    pub fn time_stage<T>(&mut self, stage: &str, work: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let result = work();
        self.timings.push(StageTiming {
            stage: stage.to_owned(),
            seconds: start.elapsed().as_secs_f64(),
        });
        result
    }

    /// Writes `run_metadata.json` into `run_dir` (atomically) and returns its path.
    pub fn write(&self, run_dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(run_dir).map_err(|e| EvalError::io(run_dir, e))?;
        let path = run_dir.join(RUN_METADATA_FILE);
        crate::output::write_json(&path, self)?;
        Ok(path)
    }

    /// Reads a `run_metadata.json`.
    pub fn read(path: &Path) -> Result<RunMetadata> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| EvalError::file(path, format!("not a run metadata file: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_is_the_first_model_name_line() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nmodel name\t: other\n";
        assert_eq!(
            parse_cpu_model(text).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(parse_cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn metadata_round_trips_with_hash_and_timings() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("test.csv");
        std::fs::write(&data, b"abc").unwrap();
        let mut metadata = RunMetadata::new("nsfw", "0.1.0");
        metadata.seeds.insert("bootstrap".into(), 7);
        metadata
            .datasets
            .push(DatasetInfo::from_file("test", &data, 1).unwrap());
        let value = metadata.time_stage("evaluate", || 41 + 1);
        assert_eq!(value, 42);
        metadata.thresholds = Some(PolicyThresholds {
            review: 0.5,
            demote: 0.9,
        });
        let path = metadata.write(dir.path()).unwrap();
        let back = RunMetadata::read(&path).unwrap();
        assert_eq!(back, metadata);
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            back.datasets[0].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(back.timings[0].stage, "evaluate");
    }
}
