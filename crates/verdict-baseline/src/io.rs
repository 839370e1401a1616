//! Reading labelled texts from JSONL or CSV files, with errors that name file and line.

use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{BaselineError, Result};

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledText {
    pub text: String,
    /// One label for single-label data; any number (zero included) for multi-label data.
    pub labels: Vec<String>,
    pub weight: f32,
}

/// Column / key names in the input files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    pub text: String,
    pub label: String,
    /// Optional per-text weight; missing means 1.
    pub weight: String,
}

impl Default for Fields {
    fn default() -> Self {
        Self {
            text: "text".into(),
            label: "label".into(),
            weight: "weight".into(),
        }
    }
}

/// Whether the data has label lists (JSON arrays) rather than single labels.
pub fn is_multi_label(path: &Path, fields: &Fields) -> Result<bool> {
    let is_json = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "json" | "ndjson")
    );
    if !is_json {
        return Ok(false);
    }
    let file = std::fs::File::open(path).map_err(|e| BaselineError::io("opening", path, e))?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| BaselineError::io("reading", path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        return Ok(value.get(&fields.label).is_some_and(Value::is_array));
    }
    Ok(false)
}

/// Reads `path`: `.jsonl`/`.json`/`.ndjson` (one object per line; the label is a string,
/// number or array of strings) or `.csv`/`.tsv` (header row; one label per row).
pub fn read_labelled(path: &Path, fields: &Fields) -> Result<Vec<LabelledText>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "json" | "ndjson") => read_jsonl(path, fields),
        Some("csv") => read_delimited(path, fields, b','),
        Some("tsv") => read_delimited(path, fields, b'\t'),
        _ => Err(BaselineError::format(
            path,
            "unknown extension (expected .jsonl, .json, .ndjson, .csv or .tsv)",
        )),
    }
}

fn label_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn read_jsonl(path: &Path, fields: &Fields) -> Result<Vec<LabelledText>> {
    let file = std::fs::File::open(path).map_err(|e| BaselineError::io("opening", path, e))?;
    let mut out = Vec::new();
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_number = index + 1;
        let record = |reason: String| BaselineError::Record {
            path: path.to_path_buf(),
            line: line_number,
            reason,
        };
        let line = line.map_err(|e| BaselineError::io("reading", path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(&line).map_err(|e| record(format!("invalid JSON: {e}")))?;
        let text = value
            .get(&fields.text)
            .and_then(Value::as_str)
            .ok_or_else(|| record(format!("field `{}` missing or not a string", fields.text)))?;
        let labels = match value.get(&fields.label) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    label_text(item).ok_or_else(|| {
                        record(format!("field `{}` has a non-scalar entry", fields.label))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            Some(scalar) => vec![label_text(scalar).ok_or_else(|| {
                record(format!(
                    "field `{}` is not a string, number or list",
                    fields.label
                ))
            })?],
            None => return Err(record(format!("field `{}` missing", fields.label))),
        };
        let weight = match value.get(&fields.weight) {
            None | Some(Value::Null) => 1.0,
            Some(w) => w
                .as_f64()
                .filter(|w| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| {
                    record(format!(
                        "field `{}` must be a non-negative number",
                        fields.weight
                    ))
                })? as f32,
        };
        out.push(LabelledText {
            text: text.to_owned(),
            labels,
            weight,
        });
    }
    Ok(out)
}

fn read_delimited(path: &Path, fields: &Fields, delimiter: u8) -> Result<Vec<LabelledText>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_path(path)
        .map_err(|e| BaselineError::format(path, e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| BaselineError::format(path, e.to_string()))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let text_column = column(&fields.text)
        .ok_or_else(|| BaselineError::format(path, format!("no `{}` column", fields.text)))?;
    let label_column = column(&fields.label)
        .ok_or_else(|| BaselineError::format(path, format!("no `{}` column", fields.label)))?;
    let weight_column = column(&fields.weight);
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| BaselineError::format(path, e.to_string()))?;
        let line = row.position().map_or(0, |p| p.line() as usize);
        let record = |reason: String| BaselineError::Record {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let text = row
            .get(text_column)
            .ok_or_else(|| record(format!("no `{}` value", fields.text)))?;
        let label = row
            .get(label_column)
            .ok_or_else(|| record(format!("no `{}` value", fields.label)))?;
        let weight = match weight_column.and_then(|c| row.get(c)) {
            None | Some("") => 1.0,
            Some(w) => w
                .parse::<f32>()
                .ok()
                .filter(|w| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| {
                    record(format!(
                        "`{}` must be a non-negative number, got {w:?}",
                        fields.weight
                    ))
                })?,
        };
        out.push(LabelledText {
            text: text.to_owned(),
            labels: vec![label.to_owned()],
            weight,
        });
    }
    Ok(out)
}
