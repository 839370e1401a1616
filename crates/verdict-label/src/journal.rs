//! The answers journal: one JSON line per finished try of an item, appended and synced
//! before the job moves on.
//!
//! Per-item outcomes are too many to rewrite with the state after each one, so they are
//! appended here instead. A crash can leave a torn last line: it is cut off when the journal
//! is opened. The same try can be recorded twice (results downloaded again after a crash);
//! the key `(item, attempt)` keeps the first record, so replays never double-count.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{LabelError, Result};

/// What one try produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// A schema-valid answer.
    Valid { values: Map<String, Value> },
    /// An answer that does not fit the schema, with its raw text.
    Invalid { raw: String, error: String },
    /// No usable answer: an HTTP error, an expired or failed batch.
    Failed { error: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub item: usize,
    pub attempt: u32,
    #[serde(default)]
    pub strict: bool,
    pub outcome: Outcome,
    pub at: u64,
}

/// What happens next to an item.
#[derive(Debug, Clone, PartialEq)]
pub enum Next<'a> {
    /// Labelled.
    Done(&'a Map<String, Value>),
    /// Try again (with the stricter prompt after a schema-invalid answer).
    Retry { strict: bool, attempt: u32 },
    /// Given up: `invalid` or `failed`, with the last raw answer or error.
    GiveUp {
        status: &'static str,
        detail: String,
    },
}

pub struct Journal {
    path: PathBuf,
    file: File,
    by_item: HashMap<usize, Vec<Record>>,
}

impl Journal {
    /// Reads the records without writing anything (safe while another process appends).
    pub fn read(path: &Path) -> Result<HashMap<usize, Vec<Record>>> {
        Ok(Self::load(path)?.0)
    }

    /// Opens (or creates) the journal, cutting off a torn last line.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |e| LabelError::io(path, e);
        let (by_item, complete, length) = Self::load(path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        if complete < length {
            tracing::warn!(
                "{}: dropping a torn last record ({} bytes)",
                path.display(),
                length - complete
            );
            file.set_len(complete as u64).map_err(io)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            by_item,
        })
    }

    /// Records by item, the length of the complete lines and the file length.
    #[allow(clippy::type_complexity)]
    fn load(path: &Path) -> Result<(HashMap<usize, Vec<Record>>, usize, usize)> {
        let io = |e| LabelError::io(path, e);
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let complete = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(0);
        let mut by_item: HashMap<usize, Vec<Record>> = HashMap::new();
        for (index, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let record: Record = serde_json::from_slice(line).map_err(|e| LabelError::State {
                path: path.to_path_buf(),
                message: format!("line {}: {e}", index + 1),
            })?;
            let records = by_item.entry(record.item).or_default();
            if !records.iter().any(|r| r.attempt == record.attempt) {
                records.push(record);
            }
        }
        Ok((by_item, complete, bytes.len()))
    }

    /// Appends and syncs a record; a try already recorded is skipped (returns false).
    pub fn append(&mut self, record: Record) -> Result<bool> {
        let records = self.by_item.entry(record.item).or_default();
        if records.iter().any(|r| r.attempt == record.attempt) {
            return Ok(false);
        }
        let mut line = serde_json::to_vec(&record).map_err(|e| LabelError::State {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        let io = |e| LabelError::io(&self.path, e);
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        records.push(record);
        Ok(true)
    }

    pub fn records(&self, item: usize) -> &[Record] {
        self.by_item.get(&item).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn has(&self, item: usize, attempt: u32) -> bool {
        self.records(item).iter().any(|r| r.attempt == attempt)
    }

    /// The next step for `item` given its records and the tries allowed.
    pub fn next(&self, item: usize, max_attempts: u32) -> Next<'_> {
        next_step(self.records(item), max_attempts)
    }
}

/// The next step for an item with these records and the tries allowed.
pub fn next_step(records: &[Record], max_attempts: u32) -> Next<'_> {
    {
        if let Some(values) = records.iter().find_map(|r| match &r.outcome {
            Outcome::Valid { values } => Some(values),
            _ => None,
        }) {
            return Next::Done(values);
        }
        let last_attempt = records.iter().map(|r| r.attempt).max().unwrap_or(0);
        let detail = |r: &Record| match &r.outcome {
            Outcome::Invalid { raw, error } => format!("{error}; answer: {raw}"),
            Outcome::Failed { error } => error.clone(),
            Outcome::Valid { .. } => String::new(),
        };
        let last = records.iter().max_by_key(|r| r.attempt);
        // The stricter prompt gets one chance; a second schema-invalid answer is final.
        if let Some(strict_invalid) = records
            .iter()
            .find(|r| r.strict && matches!(r.outcome, Outcome::Invalid { .. }))
        {
            return Next::GiveUp {
                status: "invalid",
                detail: detail(strict_invalid),
            };
        }
        let any_invalid = records
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Invalid { .. }));
        if records.len() as u32 >= max_attempts {
            let last = last.map(detail).unwrap_or_default();
            return Next::GiveUp {
                status: if any_invalid { "invalid" } else { "failed" },
                detail: last,
            };
        }
        Next::Retry {
            strict: any_invalid,
            attempt: last_attempt + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(item: usize, attempt: u32, strict: bool, outcome: Outcome) -> Record {
        Record {
            item,
            attempt,
            strict,
            outcome,
            at: 0,
        }
    }

    fn invalid() -> Outcome {
        Outcome::Invalid {
            raw: "oops".into(),
            error: "not JSON".into(),
        }
    }

    #[test]
    fn torn_tail_is_cut_and_duplicates_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers.jsonl");
        {
            let mut journal = Journal::open(&path).unwrap();
            assert!(journal.append(record(0, 1, false, invalid())).unwrap());
            assert!(!journal.append(record(0, 1, false, invalid())).unwrap());
        }
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"item\":1,\"att");
        std::fs::write(&path, &bytes).unwrap();
        let mut journal = Journal::open(&path).unwrap();
        assert_eq!(journal.records(0).len(), 1);
        assert!(journal.records(1).is_empty());
        journal
            .append(record(
                1,
                1,
                false,
                Outcome::Failed {
                    error: "503".into(),
                },
            ))
            .unwrap();
        drop(journal);
        let journal = Journal::open(&path).unwrap();
        assert_eq!(journal.records(1).len(), 1);
    }

    #[test]
    fn an_invalid_answer_gets_one_strict_retry() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(&dir.path().join("a.jsonl")).unwrap();
        assert_eq!(
            journal.next(0, 3),
            Next::Retry {
                strict: false,
                attempt: 1
            }
        );
        journal.append(record(0, 1, false, invalid())).unwrap();
        assert_eq!(
            journal.next(0, 3),
            Next::Retry {
                strict: true,
                attempt: 2
            }
        );
        journal.append(record(0, 2, true, invalid())).unwrap();
        assert!(matches!(
            journal.next(0, 3),
            Next::GiveUp {
                status: "invalid",
                ..
            }
        ));

        journal
            .append(record(
                1,
                1,
                false,
                Outcome::Failed {
                    error: "500".into(),
                },
            ))
            .unwrap();
        journal
            .append(record(
                1,
                2,
                false,
                Outcome::Failed {
                    error: "500".into(),
                },
            ))
            .unwrap();
        assert_eq!(
            journal.next(1, 3),
            Next::Retry {
                strict: false,
                attempt: 3
            }
        );
        journal
            .append(record(
                1,
                3,
                false,
                Outcome::Failed {
                    error: "expired".into(),
                },
            ))
            .unwrap();
        assert_eq!(
            journal.next(1, 3),
            Next::GiveUp {
                status: "failed",
                detail: "expired".into()
            }
        );
        let values = Map::from_iter([("style".to_string(), Value::from("modern"))]);
        journal
            .append(record(
                2,
                1,
                true,
                Outcome::Valid {
                    values: values.clone(),
                },
            ))
            .unwrap();
        assert_eq!(journal.next(2, 3), Next::Done(&values));
    }
}
