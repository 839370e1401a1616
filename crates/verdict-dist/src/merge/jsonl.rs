//! JSONL parts: records concatenated, or sorted by a key field with duplicates refused.

use std::cmp::Ordering;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{commit, temporary_sibling};
use crate::error::{io_error, DistError, Result};

/// A key value as it sorts: numbers by value before strings by text.
#[derive(Debug, Clone, PartialEq)]
enum KeyValue {
    Number(f64),
    Text(String),
}

impl KeyValue {
    fn order(&self, other: &Self) -> Ordering {
        match (self, other) {
            (KeyValue::Number(a), KeyValue::Number(b)) => a.total_cmp(b),
            (KeyValue::Number(_), KeyValue::Text(_)) => Ordering::Less,
            (KeyValue::Text(_), KeyValue::Number(_)) => Ordering::Greater,
            (KeyValue::Text(a), KeyValue::Text(b)) => a.cmp(b),
        }
    }

    fn describe(&self) -> String {
        match self {
            KeyValue::Number(n) => n.to_string(),
            KeyValue::Text(t) => format!("`{t}`"),
        }
    }
}

struct Record {
    key: Option<KeyValue>,
    line: String,
    file: usize,
    line_number: usize,
}

/// Merges JSONL `files` (in the given order) into `out`; returns the number of records.
///
/// Without `key` the records are concatenated. With `key` every record must be a JSON object
/// holding that field (a string or number); records are sorted by it (a stable sort, so the
/// result does not depend on how the work was split), and a key seen twice is an error
/// naming both places. Lines are copied byte for byte.
pub fn merge_jsonl(files: &[PathBuf], out: &Path, key: Option<&str>) -> Result<usize> {
    let mut records = Vec::new();
    for (file_index, path) in files.iter().enumerate() {
        let file = std::fs::File::open(path).map_err(io_error(path))?;
        for (number, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(io_error(path))?;
            if line.trim().is_empty() {
                continue;
            }
            let format_error = |message: String| DistError::Format {
                path: path.clone(),
                line: Some(number + 1),
                message,
            };
            let value: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| format_error(format!("not a JSON record: {e}")))?;
            let key_value = match key {
                None => None,
                Some(field) => Some(match value.get(field) {
                    Some(serde_json::Value::String(text)) => KeyValue::Text(text.clone()),
                    Some(serde_json::Value::Number(n)) => {
                        KeyValue::Number(n.as_f64().unwrap_or(f64::NAN))
                    }
                    Some(other) => {
                        return Err(format_error(format!(
                            "key field `{field}` is {other}, expected a string or number"
                        )))
                    }
                    None => return Err(format_error(format!("record has no key field `{field}`"))),
                }),
            };
            records.push(Record {
                key: key_value,
                line,
                file: file_index,
                line_number: number + 1,
            });
        }
    }
    if key.is_some() {
        records.sort_by(|a, b| match (&a.key, &b.key) {
            (Some(x), Some(y)) => x.order(y),
            _ => Ordering::Equal,
        });
        for pair in records.windows(2) {
            if let (Some(x), Some(y)) = (&pair[0].key, &pair[1].key) {
                if x.order(y) == Ordering::Equal {
                    return Err(DistError::Parts(format!(
                        "key {} appears twice: {}:{} and {}:{}; an item was processed by two shards",
                        x.describe(),
                        files[pair[0].file].display(),
                        pair[0].line_number,
                        files[pair[1].file].display(),
                        pair[1].line_number
                    )));
                }
            }
        }
    }
    let temporary = temporary_sibling(out);
    let written = (|| -> Result<()> {
        let file = std::fs::File::create(&temporary).map_err(io_error(&temporary))?;
        let mut writer = BufWriter::new(file);
        for record in &records {
            writer
                .write_all(record.line.as_bytes())
                .and_then(|_| writer.write_all(b"\n"))
                .map_err(io_error(&temporary))?;
        }
        writer.flush().map_err(io_error(&temporary))
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    commit(&temporary, out)?;
    Ok(records.len())
}
