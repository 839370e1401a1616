//! The predictions format every model in the project writes and the evaluator reads.
//!
//! One row per sample, the same columns in CSV and Parquet:
//!
//! | column | content |
//! |---|---|
//! | `sample_id` | unique, non-empty |
//! | `true_labels`, `predicted_labels` | label names; CSV joins several with `|`, Parquet stores a list of strings (a `|`-joined string is accepted too) |
//! | `prob:<label>` | one float column per label, optional as a group |
//! | `reason` | optional free text from the model |
//! | `decision` | optional `keep` / `review` / `demote` |
//! | `model_id`, `run_id` | which model and run produced the row |
//! | `input_text`, `image_path` | optional, shown in the report gallery |
//! | `slice:<name>` | any number of slice attributes, e.g. `slice:image` = `present` / `missing` |

mod csv_io;
mod parquet_io;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

pub use validate::{align, validate};

/// Column holding the probability of `label`.
pub fn probability_column(label: &str) -> String {
    format!("{PROBABILITY_PREFIX}{label}")
}

pub(crate) const PROBABILITY_PREFIX: &str = "prob:";
pub(crate) const SLICE_PREFIX: &str = "slice:";
pub(crate) const LABEL_SEPARATOR: char = '|';

/// What the policy does with a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Keep,
    Review,
    Demote,
}

impl Decision {
    pub const ALL: [Decision; 3] = [Decision::Keep, Decision::Review, Decision::Demote];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Keep => "keep",
            Decision::Review => "review",
            Decision::Demote => "demote",
        }
    }

    pub fn parse(text: &str) -> Option<Decision> {
        match text {
            "keep" => Some(Decision::Keep),
            "review" => Some(Decision::Review),
            "demote" => Some(Decision::Demote),
            _ => None,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One model output for one sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub sample_id: String,
    pub true_labels: Vec<String>,
    pub predicted_labels: Vec<String>,
    /// Probability per label name; empty when the model gives no scores.
    pub probabilities: BTreeMap<String, f64>,
    pub reason: Option<String>,
    pub decision: Option<Decision>,
    /// Slice attribute name -> value (e.g. `image` -> `missing`).
    pub slices: BTreeMap<String, String>,
    pub model_id: String,
    pub run_id: String,
    pub input_text: Option<String>,
    pub image_path: Option<String>,
}

/// Where a row came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLocation {
    /// 1-based line in a CSV file (the header is line 1).
    Line(u64),
    /// 1-based data row in a Parquet file.
    Row(usize),
}

impl fmt::Display for RowLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowLocation::Line(line) => write!(f, "line {line}"),
            RowLocation::Row(row) => write!(f, "row {row}"),
        }
    }
}

/// The rows of one predictions file with where each came from.
#[derive(Debug, Clone)]
pub struct PredictionSet {
    pub path: PathBuf,
    pub rows: Vec<Prediction>,
    pub locations: Vec<RowLocation>,
}

impl PredictionSet {
    /// Rows that were not read from a file (e.g. produced in memory by a pipeline).
    pub fn in_memory(name: impl Into<PathBuf>, rows: Vec<Prediction>) -> Self {
        let locations = (1..=rows.len()).map(RowLocation::Row).collect();
        PredictionSet {
            path: name.into(),
            rows,
            locations,
        }
    }

    /// Error about row `index` of this set.
    pub fn row_error(&self, index: usize, message: impl Into<String>) -> EvalError {
        let location = self
            .locations
            .get(index)
            .copied()
            .unwrap_or(RowLocation::Row(index + 1));
        EvalError::Row {
            path: self.path.clone(),
            location: location.to_string(),
            message: message.into(),
        }
    }

    /// The model id the rows share (the first row's; the file name if the rows have none).
    pub fn model_id(&self) -> String {
        self.rows
            .iter()
            .map(|row| row.model_id.as_str())
            .find(|id| !id.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                self.path
                    .file_stem()
                    .map(|stem| stem.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "model".into())
            })
    }
}

/// File formats, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    pub fn from_path(path: &Path) -> Result<Format> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
        {
            Some(ext) if ext == "csv" => Ok(Format::Csv),
            Some(ext) if ext == "parquet" || ext == "pq" => Ok(Format::Parquet),
            _ => Err(EvalError::file(
                path,
                "unknown predictions format: use a .csv or .parquet file",
            )),
        }
    }
}

/// Reads a predictions file (format by extension) without checking it against a task.
pub fn read(path: &Path) -> Result<PredictionSet> {
    match Format::from_path(path)? {
        Format::Csv => csv_io::read(path),
        Format::Parquet => parquet_io::read(path),
    }
}

/// Writes predictions (format by extension) through a temporary file, so an existing file is
/// never left half-written. `labels` fixes the order of the `prob:` columns.
pub fn write(path: &Path, rows: &[Prediction], labels: &[String]) -> Result<()> {
    let format = Format::from_path(path)?;
    let layout = Layout::of(rows, labels);
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let directory = parent.unwrap_or_else(|| Path::new("."));
    let temporary = tempfile_in(directory, path)?;
    let result = match format {
        Format::Csv => csv_io::write(&temporary, rows, &layout),
        Format::Parquet => parquet_io::write(&temporary, rows, &layout),
    };
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    std::fs::rename(&temporary, path).map_err(|e| EvalError::io(path, e))
}

fn tempfile_in(directory: &Path, path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "predictions".into());
    let temporary = directory.join(format!(".{name}.{}.tmp", std::process::id()));
    Ok(temporary)
}

/// Column layout of a file: which probability and slice columns it has.
pub(crate) struct Layout {
    pub probability_labels: Vec<String>,
    pub slice_names: Vec<String>,
}

impl Layout {
    fn of(rows: &[Prediction], labels: &[String]) -> Layout {
        let with_probabilities = rows.iter().any(|row| !row.probabilities.is_empty());
        let mut probability_labels: Vec<String> = if with_probabilities {
            labels.to_vec()
        } else {
            Vec::new()
        };
        for row in rows {
            for label in row.probabilities.keys() {
                if !probability_labels.contains(label) {
                    probability_labels.push(label.clone());
                }
            }
        }
        let slice_names: std::collections::BTreeSet<String> = rows
            .iter()
            .flat_map(|row| row.slices.keys().cloned())
            .collect();
        Layout {
            probability_labels,
            slice_names: slice_names.into_iter().collect(),
        }
    }
}

/// Separates a dimension from a label in multi-label files: `violence=graphic`.
pub const DIMENSION_SEPARATOR: char = '=';

/// The rows of one dimension of a multi-label task: labels written `dimension=label` (and
/// `prob:dimension=label` columns) keep only that dimension's entries, with the prefix removed,
/// so each dimension is evaluated as its own multi-label task.
pub fn restrict_to_dimension(rows: &[Prediction], dimension: &str) -> Vec<Prediction> {
    let prefix = format!("{dimension}{DIMENSION_SEPARATOR}");
    let strip = |labels: &[String]| -> Vec<String> {
        labels
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect()
    };
    rows.iter()
        .map(|row| Prediction {
            true_labels: strip(&row.true_labels),
            predicted_labels: strip(&row.predicted_labels),
            probabilities: row
                .probabilities
                .iter()
                .filter_map(|(l, &p)| l.strip_prefix(&prefix).map(|l| (l.to_owned(), p)))
                .collect(),
            ..row.clone()
        })
        .collect()
}

pub(crate) fn split_labels(text: &str) -> Vec<String> {
    text.split(LABEL_SEPARATOR)
        .map(str::trim)
        .filter(|label| !label.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn parse_probability(text: &str) -> std::result::Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| format!("probability {text:?} is not a number"))
}

#[cfg(test)]
mod tests;
