//! Reading the input table: CSV with a header row, or JSONL objects. Each row becomes an
//! [`Item`] with its id and its values as text; the row order is kept for the output.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use crate::error::{LabelError, Result};

/// One row of the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    /// Column name -> value, as text.
    pub values: HashMap<String, String>,
}

/// The whole input: column names (in file order) and rows.
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<String>,
    pub items: Vec<Item>,
    /// Original rows as read (CSV records), so the output repeats them unchanged.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Reads `path` (`.jsonl` / `.ndjson` as JSON lines, anything else as CSV) and checks that
    /// `id_column` exists and its values are unique and non-empty.
    pub fn read(path: &Path, id_column: &str) -> Result<Self> {
        let is_jsonl = path
            .extension()
            .is_some_and(|e| e == "jsonl" || e == "ndjson");
        let (columns, rows) = if is_jsonl {
            read_jsonl(path)?
        } else {
            read_csv(path)?
        };
        let id_index =
            columns
                .iter()
                .position(|c| c == id_column)
                .ok_or_else(|| LabelError::Input {
                    path: path.to_path_buf(),
                    line: 1,
                    message: format!("no id column `{id_column}` (columns: {columns:?})"),
                })?;
        let mut seen = HashSet::new();
        let mut items = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            let line = index + 2;
            let id = row.get(id_index).cloned().unwrap_or_default();
            if id.is_empty() {
                return Err(LabelError::Input {
                    path: path.to_path_buf(),
                    line,
                    message: format!("empty `{id_column}`"),
                });
            }
            if !seen.insert(id.clone()) {
                return Err(LabelError::Input {
                    path: path.to_path_buf(),
                    line,
                    message: format!("duplicate id {id:?}: ids must be unique"),
                });
            }
            let values = columns.iter().cloned().zip(row.iter().cloned()).collect();
            items.push(Item { id, values });
        }
        Ok(Self {
            columns,
            items,
            rows,
        })
    }
}

fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|e| csv_error(path, e))?;
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .map(String::from)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        rows.push(record.iter().map(String::from).collect());
    }
    Ok((columns, rows))
}

fn csv_error(path: &Path, error: csv::Error) -> LabelError {
    let line = error
        .position()
        .map(|p| p.line() as usize)
        .unwrap_or_default();
    LabelError::Input {
        path: path.to_path_buf(),
        line,
        message: error.to_string(),
    }
}

fn read_jsonl(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let text = std::fs::read_to_string(path).map_err(|e| LabelError::io(path, e))?;
    let mut columns: Vec<String> = Vec::new();
    let mut objects = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| LabelError::Input {
            path: path.to_path_buf(),
            line: index + 1,
            message: format!("not JSON: {e}"),
        })?;
        let Value::Object(object) = value else {
            return Err(LabelError::Input {
                path: path.to_path_buf(),
                line: index + 1,
                message: "each line must be a JSON object".into(),
            });
        };
        for key in object.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
        objects.push(object);
    }
    let rows = objects
        .iter()
        .map(|object| {
            columns
                .iter()
                .map(|c| match object.get(c) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                })
                .collect()
        })
        .collect();
    Ok((columns, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_jsonl_give_the_same_items() {
        let dir = tempfile::tempdir().unwrap();
        let csv_path = dir.path().join("a.csv");
        std::fs::write(&csv_path, "id,name\n1,chair\n2,\"table, oak\"\n").unwrap();
        let jsonl = dir.path().join("a.jsonl");
        std::fs::write(
            &jsonl,
            "{\"id\":1,\"name\":\"chair\"}\n{\"id\":2,\"name\":\"table, oak\"}\n",
        )
        .unwrap();
        let a = Table::read(&csv_path, "id").unwrap();
        let b = Table::read(&jsonl, "id").unwrap();
        assert_eq!(a.items, b.items);
        assert_eq!(a.items[1].values["name"], "table, oak");
    }

    #[test]
    fn duplicate_and_missing_ids_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "id,name\n1,a\n1,b\n").unwrap();
        let error = Table::read(&path, "id").unwrap_err().to_string();
        assert!(
            error.contains("line 3") && error.contains("duplicate"),
            "{error}"
        );
        let error = Table::read(&path, "sku").unwrap_err().to_string();
        assert!(error.contains("no id column `sku`"), "{error}");
    }
}
