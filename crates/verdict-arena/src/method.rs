//! Turning `--a` / `--b` arguments into data sources, and both sources into a [`Contest`].
//!
//! Accepted forms:
//! - `FILE.parquet#COLUMN`: an embeddings file and the embedding column to rank with;
//! - `FILE.parquet` with embedding columns: its `base_embedding`;
//! - `FILE.parquet` / `FILE.csv` in the predictions format: a classifier's predictions;
//! - a run folder: its `predictions_<SPLIT>.parquet` (or `.csv`), as `verdict run` writes them.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::contest::{Contest, MethodInfo};
use crate::error::{ArenaError, Result};
use crate::{classification, retrieval};

/// The embedding column used when an embeddings file is named without `#COLUMN`.
pub const DEFAULT_EMBEDDING_COLUMN: &str = "base_embedding";

/// Where one method's answers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodSource {
    Embeddings { file: PathBuf, column: String },
    Predictions { file: PathBuf },
}

/// How to build the contest.
#[derive(Debug, Clone)]
pub struct ContestOptions {
    /// Retrieval queries are the rows whose `split` equals this; run folders pick
    /// `predictions_<split>`.
    pub split: String,
    /// Retrieved items shown per method.
    pub top_k: usize,
    /// Base for relative image paths; default: the data file's folder.
    pub images_root: Option<PathBuf>,
}

impl Default for ContestOptions {
    fn default() -> Self {
        ContestOptions {
            split: "test".into(),
            top_k: 4,
            images_root: None,
        }
    }
}

/// Parses one method argument (see the module docs for the forms).
pub fn parse_method(spec: &str, split: &str) -> Result<MethodSource> {
    if let Some((file, column)) = spec.rsplit_once('#') {
        let file = PathBuf::from(file);
        if column.is_empty() {
            return Err(ArenaError::method(spec, "empty column name after `#`"));
        }
        if !file.is_file() {
            return Err(ArenaError::method(
                spec,
                format!("{} is not a file", file.display()),
            ));
        }
        return Ok(MethodSource::Embeddings {
            file,
            column: column.to_owned(),
        });
    }
    let path = PathBuf::from(spec);
    if path.is_dir() {
        for extension in ["parquet", "csv"] {
            let file = path.join(format!("predictions_{split}.{extension}"));
            if file.is_file() {
                return Ok(MethodSource::Predictions { file });
            }
        }
        return Err(ArenaError::method(
            spec,
            format!("folder has no predictions_{split}.parquet or predictions_{split}.csv; name a predictions file or EMBEDDINGS.parquet#COLUMN"),
        ));
    }
    if !path.is_file() {
        return Err(ArenaError::method(spec, "no such file or folder"));
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => Ok(MethodSource::Predictions { file: path }),
        Some("parquet") | Some("pq") => {
            let columns = parquet_columns(&path)?;
            if columns.iter().any(|c| c == "predicted_labels") {
                Ok(MethodSource::Predictions { file: path })
            } else if columns.iter().any(|c| c == DEFAULT_EMBEDDING_COLUMN) {
                Ok(MethodSource::Embeddings {
                    file: path,
                    column: DEFAULT_EMBEDDING_COLUMN.into(),
                })
            } else {
                Err(ArenaError::method(
                    spec,
                    format!("neither a predictions file (no `predicted_labels`) nor an embeddings file (no `{DEFAULT_EMBEDDING_COLUMN}`); name the column as FILE#COLUMN"),
                ))
            }
        }
        _ => Err(ArenaError::method(
            spec,
            "expected a .parquet or .csv file, a run folder or FILE.parquet#COLUMN",
        )),
    }
}

fn parquet_columns(path: &Path) -> Result<Vec<String>> {
    let file = File::open(path).map_err(|source| ArenaError::io(path, source))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|error| ArenaError::file(path, format!("not a readable Parquet file: {error}")))?;
    Ok(builder
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Builds the contest between `a` and `b`; `specs` are the original arguments, kept for results.
pub fn build_contest(
    a: &MethodSource,
    b: &MethodSource,
    specs: [&str; 2],
    options: &ContestOptions,
) -> Result<Contest> {
    if options.top_k == 0 {
        return Err(ArenaError::Mismatch("top-k must be at least 1".into()));
    }
    match (a, b) {
        (
            MethodSource::Embeddings { file: file_a, column: column_a },
            MethodSource::Embeddings { file: file_b, column: column_b },
        ) => {
            let methods = [
                MethodInfo {
                    name: format!("{}#{column_a}", file_name(file_a)),
                    spec: specs[0].into(),
                },
                MethodInfo {
                    name: format!("{}#{column_b}", file_name(file_b)),
                    spec: specs[1].into(),
                },
            ];
            retrieval::build(
                [(file_a.as_path(), column_a.as_str()), (file_b.as_path(), column_b.as_str())],
                methods,
                options,
            )
        }
        (MethodSource::Predictions { file: file_a }, MethodSource::Predictions { file: file_b }) => {
            classification::build([file_a.as_path(), file_b.as_path()], specs, options)
        }
        _ => Err(ArenaError::Mismatch(
            "--a and --b must both be retrieval methods (embeddings) or both classifiers (predictions)".into(),
        )),
    }
}
