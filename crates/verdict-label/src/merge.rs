//! The output table: the input rows unchanged, one column per field and `label_status` /
//! `label_error`. Written to a new file through a temporary name; the input is only read.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{LabelError, Result};
use crate::input::Table;
use crate::journal::{Journal, Next};
use crate::spec::JobSpec;
use crate::state::write_atomic;

/// Writes the labelled table (CSV, or JSONL when `path` ends in `.jsonl`).
pub fn write_output(spec: &JobSpec, table: &Table, journal: &Journal, path: &Path) -> Result<()> {
    let fields: Vec<&str> = spec.fields.iter().map(|f| f.name.as_str()).collect();
    let jsonl = path.extension().is_some_and(|e| e == "jsonl");
    let mut out: Vec<u8> = Vec::new();
    let mut writer = (!jsonl).then(|| csv::Writer::from_writer(Vec::new()));
    if let Some(writer) = writer.as_mut() {
        let header: Vec<&str> = table
            .columns
            .iter()
            .map(String::as_str)
            .chain(fields.iter().copied())
            .chain(["label_status", "label_error"])
            .collect();
        writer
            .write_record(&header)
            .map_err(|e| csv_error(path, e))?;
    }
    for (index, row) in table.rows.iter().enumerate() {
        let (values, status, error): (Option<&Map<String, Value>>, &str, String) =
            match journal.next(index, spec.max_item_attempts) {
                Next::Done(values) => (Some(values), "labelled", String::new()),
                Next::GiveUp { status, detail } => (None, status, detail),
                Next::Retry { .. } => (None, "pending", String::new()),
            };
        let field_value = |name: &str| -> Value {
            values
                .and_then(|v| v.get(name))
                .cloned()
                .unwrap_or(Value::Null)
        };
        match writer.as_mut() {
            Some(writer) => {
                let mut record: Vec<String> = row.clone();
                record.resize(table.columns.len(), String::new());
                for name in &fields {
                    record.push(match field_value(name) {
                        Value::Null => String::new(),
                        Value::String(text) => text,
                        other => other.to_string(),
                    });
                }
                record.push(status.to_string());
                record.push(error);
                writer
                    .write_record(&record)
                    .map_err(|e| csv_error(path, e))?;
            }
            None => {
                let mut object = Map::new();
                for (column, value) in table.columns.iter().zip(row) {
                    object.insert(column.clone(), Value::String(value.clone()));
                }
                for name in &fields {
                    object.insert(name.to_string(), field_value(name));
                }
                object.insert("label_status".into(), Value::from(status));
                object.insert("label_error".into(), Value::from(error));
                let line =
                    serde_json::to_vec(&object).map_err(|e| LabelError::Protocol(e.to_string()))?;
                out.extend_from_slice(&line);
                out.push(b'\n');
            }
        }
    }
    if let Some(writer) = writer {
        out = writer
            .into_inner()
            .map_err(|e| LabelError::Protocol(format!("writing {}: {e}", path.display())))?;
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| LabelError::io(parent, e))?;
    }
    write_atomic(path, &out)
}

fn csv_error(path: &Path, error: csv::Error) -> LabelError {
    LabelError::Protocol(format!("writing {}: {error}", path.display()))
}
