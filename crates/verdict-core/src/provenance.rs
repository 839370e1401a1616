//! What produced an artifact: task, seed, tool version, command and input hashes.
//!
//! Every artifact Verdict writes carries one of these (inside it, or as a `.provenance.json`
//! sidecar), so any file can be traced back to the exact inputs and settings that made it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fsio::{sha256_file, write_json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputHash {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub tool: String,
    pub tool_version: String,
    pub task: Option<String>,
    /// sha256 of the task file's bytes.
    pub task_sha256: Option<String>,
    pub seed: Option<u64>,
    /// The command line that made the artifact.
    pub command: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub inputs: Vec<InputHash>,
}

impl Provenance {
    /// A record for the running process, with no inputs yet.
    pub fn now() -> Self {
        Provenance {
            tool: "verdict".into(),
            tool_version: crate::TOOL_VERSION.into(),
            task: None,
            task_sha256: None,
            seed: None,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            inputs: Vec::new(),
        }
    }

    pub fn with_task(mut self, name: &str, task_file: &Path, seed: u64) -> Result<Self> {
        self.task = Some(name.to_string());
        self.task_sha256 = Some(sha256_file(task_file)?.0);
        self.seed = Some(seed);
        Ok(self)
    }

    pub fn with_input(mut self, path: &Path) -> Result<Self> {
        let (sha256, size) = sha256_file(path)?;
        self.inputs.push(InputHash {
            path: path.to_string_lossy().into_owned(),
            sha256,
            size,
        });
        Ok(self)
    }

    /// Writes `<artifact>.provenance.json` beside an artifact.
    pub fn write_sidecar(&self, artifact: &Path) -> Result<()> {
        let mut name = artifact.as_os_str().to_owned();
        name.push(".provenance.json");
        write_json(Path::new(&name), self)
    }
}
