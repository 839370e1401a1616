//! A labelling job on disk: its folder, state, journal and the loop that drives it.
//!
//! Folder layout: `spec.json` (the spec as resolved when the job started), `state.json`
//! (the state machine), `answers.jsonl` (the journal), `requests/part-NNNN.jsonl` (request
//! files), `results/` (downloaded batch outputs and errors, kept), `labelled.csv` (the
//! output unless the spec names another), `lock` (the pid of the process running it) and
//! `cancel-requested` (written by `cancel`).

use std::path::{Path, PathBuf};

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::error::{LabelError, Result};
use crate::input::Table;
use crate::journal::{Journal, Next, Outcome, Record};
use crate::request::Attempt;
use crate::spec::{JobSpec, Mode};
use crate::state::{now, write_atomic, JobState, Status, STATE_VERSION};

/// Where progress goes (the CLI draws a bar).
pub trait Progress: Send + Sync {
    fn update(&self, done: usize, total: usize, message: &str);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _done: usize, _total: usize, _message: &str) {}
}

/// Fault injection for tests: stop with [`LabelError::Interrupted`] right after the N-th
/// durable step (a state save or a journal append), as a crash would.
#[derive(Clone, Default)]
pub struct Hooks {
    pub stop_after_step: Option<u64>,
    /// Stop right after a state save for which this returns true.
    #[allow(clippy::type_complexity)]
    pub stop_when: Option<std::sync::Arc<dyn Fn(&JobState) -> bool + Send + Sync>>,
}

/// Items by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub labelled: usize,
    pub invalid: usize,
    pub failed: usize,
    pub pending: usize,
}

pub(crate) struct JobPaths {
    pub dir: PathBuf,
}

impl JobPaths {
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn spec(&self) -> PathBuf {
        self.dir.join("spec.json")
    }
    pub fn journal(&self) -> PathBuf {
        self.dir.join("answers.jsonl")
    }
    pub fn requests(&self) -> PathBuf {
        self.dir.join("requests")
    }
    pub fn results(&self) -> PathBuf {
        self.dir.join("results")
    }
    pub fn cancel_marker(&self) -> PathBuf {
        self.dir.join("cancel-requested")
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
}

/// Holds the job's lock file while a process drives it.
struct Lock {
    path: PathBuf,
}

impl Lock {
    fn take(path: PathBuf) -> Result<Self> {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(pid) = text.trim().parse::<u32>() {
                let alive = Path::new("/proc").join(pid.to_string()).exists();
                if alive && pid != std::process::id() {
                    return Err(LabelError::State {
                        path,
                        message: format!(
                            "the job is being run by process {pid}; wait for it or stop it"
                        ),
                    });
                }
            }
        }
        write_atomic(&path, std::process::id().to_string().as_bytes())?;
        Ok(Self { path })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// An open job, locked for this process.
pub struct Job {
    pub(crate) paths: JobPaths,
    pub(crate) spec: JobSpec,
    pub(crate) state: JobState,
    pub(crate) journal: Journal,
    pub(crate) table: Table,
    hooks: Hooks,
    steps: u64,
    _lock: Lock,
}

impl Job {
    /// Starts a job for the spec at `spec_path` in the new folder `dir`.
    pub fn create(spec_path: &Path, dir: &Path) -> Result<Self> {
        let spec = JobSpec::load(spec_path)?;
        let paths = JobPaths {
            dir: dir.to_path_buf(),
        };
        if paths.state().exists() {
            return Err(LabelError::State {
                path: paths.state(),
                message: "a job already exists here: use `verdict label resume` (or another \
                          job folder)"
                    .into(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| LabelError::io(dir, e))?;
        let table = Table::read(&spec.input, &spec.id_column)?;
        check_columns(&spec, &table).map_err(|message| LabelError::Spec {
            path: spec_path.to_path_buf(),
            message,
        })?;
        let output = spec
            .output
            .clone()
            .unwrap_or_else(|| dir.join("labelled.csv"));
        check_output(&spec.input, &output)?;
        let spec_json = serde_json::to_vec_pretty(&spec).map_err(|e| LabelError::Spec {
            path: spec_path.to_path_buf(),
            message: e.to_string(),
        })?;
        write_atomic(&paths.spec(), &spec_json)?;
        let lock = Lock::take(paths.lock())?;
        let state = JobState {
            version: STATE_VERSION,
            job_id: format!("{:016x}", rand::rng().random::<u64>()),
            name: spec.name.clone().unwrap_or_else(|| "label".into()),
            mode: spec.mode,
            status: Status::Prepared,
            items: table.items.len(),
            input_sha256: file_sha256(&spec.input)?,
            next_file_number: 1,
            files: Vec::new(),
            output: Some(output),
            transitions: 0,
            created_at: now(),
            updated_at: now(),
        };
        let journal = Journal::open(&paths.journal())?;
        let mut job = Self {
            paths,
            spec,
            state,
            journal,
            table,
            hooks: Hooks::default(),
            steps: 0,
            _lock: lock,
        };
        job.save()?;
        Ok(job)
    }

    /// Opens an existing job folder. With `reopen`, a cancelled job is continued.
    pub fn open(dir: &Path, reopen: bool) -> Result<Self> {
        let paths = JobPaths {
            dir: dir.to_path_buf(),
        };
        if !paths.state().exists() {
            return Err(LabelError::State {
                path: paths.state(),
                message: "no job here (start one with `verdict label run SPEC`)".into(),
            });
        }
        let lock = Lock::take(paths.lock())?;
        let spec: JobSpec = read_json(&paths.spec())?;
        let state = JobState::load(&paths.state())?;
        if paths.cancel_marker().exists() {
            if !reopen {
                return Err(LabelError::Cancelled(state.name));
            }
            std::fs::remove_file(paths.cancel_marker())
                .map_err(|e| LabelError::io(paths.cancel_marker(), e))?;
        }
        if file_sha256(&spec.input)? != state.input_sha256 {
            return Err(LabelError::State {
                path: spec.input.clone(),
                message: "the input changed since the job started; start a new job".into(),
            });
        }
        let table = Table::read(&spec.input, &spec.id_column)?;
        let journal = Journal::open(&paths.journal())?;
        Ok(Self {
            paths,
            spec,
            state,
            journal,
            table,
            hooks: Hooks::default(),
            steps: 0,
            _lock: lock,
        })
    }

    pub fn with_hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    pub fn state(&self) -> &JobState {
        &self.state
    }

    pub fn dir(&self) -> &Path {
        &self.paths.dir
    }

    /// Runs the job to the end: every item labelled or given up, output table written.
    /// Returns the output path and the counts.
    pub async fn run(&mut self, progress: &dyn Progress) -> Result<(PathBuf, Counts)> {
        if self.state.status != Status::Finalized {
            match self.state.mode {
                Mode::Batch => self.run_batches(progress).await?,
                Mode::Direct => self.run_direct(progress).await?,
            }
        }
        let output = self.finish()?;
        Ok((output, self.counts()))
    }

    /// Writes the output table with what is known so far (unlabelled items `pending`).
    pub(crate) fn write_table(&self) -> Result<PathBuf> {
        let output = self
            .state
            .output
            .clone()
            .unwrap_or_else(|| self.paths.dir.join("labelled.csv"));
        crate::merge::write_output(&self.spec, &self.table, &self.journal, &output)?;
        Ok(output)
    }

    /// Writes the output table and marks the job finalized.
    pub(crate) fn finish(&mut self) -> Result<PathBuf> {
        let output = self.write_table()?;
        if self.state.status != Status::Finalized {
            self.state.status = Status::Finalized;
            self.save()?;
        }
        Ok(output)
    }

    /// Saves the state (one transition) and counts the step.
    pub(crate) fn save(&mut self) -> Result<()> {
        self.state.save(&self.paths.state())?;
        if self
            .hooks
            .stop_when
            .as_ref()
            .is_some_and(|stop| stop(&self.state))
        {
            return Err(LabelError::Interrupted(self.steps));
        }
        self.step()
    }

    /// Appends a record to the journal (a step when it was new).
    pub(crate) fn record(&mut self, attempt: Attempt, outcome: Outcome) -> Result<()> {
        let record = Record {
            item: attempt.item,
            attempt: attempt.attempt,
            strict: attempt.strict,
            outcome,
            at: now(),
        };
        if self.journal.append(record)? {
            self.step()?;
        }
        Ok(())
    }

    fn step(&mut self) -> Result<()> {
        self.steps += 1;
        if self.hooks.stop_after_step == Some(self.steps) {
            return Err(LabelError::Interrupted(self.steps));
        }
        Ok(())
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.paths.cancel_marker().exists()
    }

    /// Tries still to make, one per item that is neither labelled nor given up.
    pub(crate) fn pending_attempts(&self) -> Vec<Attempt> {
        (0..self.table.items.len())
            .filter_map(
                |item| match self.journal.next(item, self.spec.max_item_attempts) {
                    Next::Retry { strict, attempt } => Some(Attempt {
                        item,
                        attempt,
                        strict,
                    }),
                    _ => None,
                },
            )
            .collect()
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for item in 0..self.table.items.len() {
            match self.journal.next(item, self.spec.max_item_attempts) {
                Next::Done(_) => counts.labelled += 1,
                Next::GiveUp {
                    status: "invalid", ..
                } => counts.invalid += 1,
                Next::GiveUp { .. } => counts.failed += 1,
                Next::Retry { .. } => counts.pending += 1,
            }
        }
        counts
    }

    /// The outcome of an answer text: schema-valid values, or the raw text and the reason.
    pub(crate) fn judge(&self, text: &str) -> Outcome {
        match self.spec.validate_answer(text) {
            Ok(values) => Outcome::Valid { values },
            Err(error) => Outcome::Invalid {
                raw: text.to_string(),
                error,
            },
        }
    }
}

fn check_columns(spec: &JobSpec, table: &Table) -> std::result::Result<(), String> {
    if let Some(column) = &spec.image_column {
        if !table.columns.contains(column) {
            return Err(format!(
                "image_column `{column}` is not a column of the input ({:?})",
                table.columns
            ));
        }
    }
    for field in &spec.fields {
        if table.columns.contains(&field.name) {
            return Err(format!(
                "field `{}` is also an input column; rename the field so the output keeps both",
                field.name
            ));
        }
    }
    Ok(())
}

/// The output must never be the input.
fn check_output(input: &Path, output: &Path) -> Result<()> {
    let same = match (input.canonicalize(), output.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => input == output,
    };
    if same {
        return Err(LabelError::Spec {
            path: output.to_path_buf(),
            message: "the output would overwrite the input; name another `output`".into(),
        });
    }
    Ok(())
}

pub(crate) fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| LabelError::io(path, e))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| LabelError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| LabelError::State {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
