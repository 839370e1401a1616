//! The "master vector file": one Parquet row per image with its metadata and embeddings.
//!
//! # Schema
//!
//! | column | Arrow type | nullable | meaning |
//! |---|---|---|---|
//! | `image_id` | `utf8` | no | the sample id |
//! | `path` | `utf8` | no | image path, absolute or relative to the Parquet file's folder |
//! | `text` | `utf8` | yes | caption or text of the sample |
//! | `label` | `utf8` | yes | label name (single-label tasks) |
//! | `split` | `utf8` | yes | `train` / `val` / `test` ... |
//! | `base_embedding` | `fixed_size_list<float32>[D]` | no | base model image embedding, L2-normalised |
//! | `finetuned_embedding` | `fixed_size_list<float32>[D]` | yes | fine-tuned model embedding, L2-normalised; the column is absent when no fine-tuned model was used |
//!
//! The list items are a nullable `float32` field named `item` (what pyarrow writes for
//! `pa.list_(pa.float32(), D)`). Rows are written in record batches of up to
//! [`BATCH_ROWS`]. The file appears atomically: it is written under a temporary name in the
//! same folder and renamed on [`VectorFileWriter::finish`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use crate::{Error, Result};

/// Rows per record batch.
pub const BATCH_ROWS: usize = 128;

/// One row of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingRecord {
    pub image_id: String,
    pub path: String,
    pub text: Option<String>,
    pub label: Option<String>,
    pub split: Option<String>,
    pub base_embedding: Vec<f32>,
    /// Must be present for every row when the file has the column, absent otherwise... or null
    /// for a row the fine-tuned model could not embed.
    pub finetuned_embedding: Option<Vec<f32>>,
}

fn vector_type(dim: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float32, true)),
        dim as i32,
    )
}

/// The documented schema for dimension `dim`.
pub fn schema(dim: usize, with_finetuned: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("image_id", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("split", DataType::Utf8, true),
        Field::new("base_embedding", vector_type(dim), false),
    ];
    if with_finetuned {
        fields.push(Field::new("finetuned_embedding", vector_type(dim), true));
    }
    Arc::new(Schema::new(fields))
}

/// Writes a vector file batch by batch.
pub struct VectorFileWriter {
    path: PathBuf,
    temporary: PathBuf,
    writer: Option<ArrowWriter<File>>,
    schema: SchemaRef,
    dim: usize,
    with_finetuned: bool,
    pending: Vec<EmbeddingRecord>,
    rows: usize,
}

impl VectorFileWriter {
    pub fn create(path: &Path, dim: usize, with_finetuned: bool) -> Result<Self> {
        if dim == 0 {
            return Err(Error::Input("embedding dimension 0".into()));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "vectors.parquet".into());
        let temporary = path.with_file_name(format!(".{name}.partial"));
        let file = File::create(&temporary).map_err(|source| Error::Io {
            path: temporary.clone(),
            source,
        })?;
        let schema = schema(dim, with_finetuned);
        let writer =
            ArrowWriter::try_new(file, schema.clone(), None).map_err(|source| Error::Parquet {
                path: temporary.clone(),
                source,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            temporary,
            writer: Some(writer),
            schema,
            dim,
            with_finetuned,
            pending: Vec::new(),
            rows: 0,
        })
    }

    /// Queues rows; full batches of [`BATCH_ROWS`] are written out immediately.
    pub fn write(&mut self, records: impl IntoIterator<Item = EmbeddingRecord>) -> Result<()> {
        for record in records {
            self.check(&record)?;
            self.pending.push(record);
            if self.pending.len() == BATCH_ROWS {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn check(&self, record: &EmbeddingRecord) -> Result<()> {
        if record.base_embedding.len() != self.dim {
            return Err(Error::Input(format!(
                "{}: base embedding of dimension {}, file has {}",
                record.image_id,
                record.base_embedding.len(),
                self.dim
            )));
        }
        match (&record.finetuned_embedding, self.with_finetuned) {
            (Some(v), true) if v.len() != self.dim => Err(Error::Input(format!(
                "{}: fine-tuned embedding of dimension {}, file has {}",
                record.image_id,
                v.len(),
                self.dim
            ))),
            (Some(_), false) => Err(Error::Input(format!(
                "{}: fine-tuned embedding given but the file has no such column",
                record.image_id
            ))),
            _ => Ok(()),
        }
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        let strings = |get: &dyn Fn(&EmbeddingRecord) -> Option<&str>| -> ArrayRef {
            let mut builder = StringBuilder::new();
            for row in &rows {
                builder.append_option(get(row));
            }
            Arc::new(builder.finish())
        };
        let vectors = |get: &dyn Fn(&EmbeddingRecord) -> Option<&[f32]>| -> ArrayRef {
            let mut builder = FixedSizeListBuilder::new(Float32Builder::new(), self.dim as i32)
                .with_field(Arc::new(Field::new("item", DataType::Float32, true)));
            for row in &rows {
                match get(row) {
                    Some(values) => {
                        builder.values().append_slice(values);
                        builder.append(true);
                    }
                    None => {
                        builder.values().append_nulls(self.dim);
                        builder.append(false);
                    }
                }
            }
            Arc::new(builder.finish())
        };
        let mut columns = vec![
            strings(&|r| Some(r.image_id.as_str())),
            strings(&|r| Some(r.path.as_str())),
            strings(&|r| r.text.as_deref()),
            strings(&|r| r.label.as_deref()),
            strings(&|r| r.split.as_deref()),
            vectors(&|r| Some(r.base_embedding.as_slice())),
        ];
        if self.with_finetuned {
            columns.push(vectors(&|r| r.finetuned_embedding.as_deref()));
        }
        let batch =
            RecordBatch::try_new(self.schema.clone(), columns).map_err(|source| Error::Arrow {
                path: self.temporary.clone(),
                source,
            })?;
        self.rows += batch.num_rows();
        if let Some(writer) = self.writer.as_mut() {
            writer.write(&batch).map_err(|source| Error::Parquet {
                path: self.temporary.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Rows written so far (including queued ones).
    pub fn rows(&self) -> usize {
        self.rows + self.pending.len()
    }

    /// Writes what is queued, closes the file and moves it into place.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.flush()?;
        if let Some(writer) = self.writer.take() {
            writer.close().map_err(|source| Error::Parquet {
                path: self.temporary.clone(),
                source,
            })?;
        }
        std::fs::rename(&self.temporary, &self.path).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.path.clone())
    }
}

impl Drop for VectorFileWriter {
    fn drop(&mut self) {
        // An unfinished file never replaces an existing one; drop the partial file.
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// A whole vector file in memory.
#[derive(Debug, Clone)]
pub struct VectorFile {
    pub dim: usize,
    pub records: Vec<EmbeddingRecord>,
    pub has_finetuned: bool,
}

impl VectorFile {
    pub fn read(path: &Path) -> Result<Self> {
        let parquet_error = |source| Error::Parquet {
            path: path.to_path_buf(),
            source,
        };
        let schema_error = |message: String| Error::Schema {
            path: path.to_path_buf(),
            message,
        };
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(parquet_error)?
            .build()
            .map_err(parquet_error)?;
        let mut records = Vec::new();
        let mut dim = 0;
        let mut has_finetuned = false;
        for batch in reader {
            let batch = batch.map_err(|source| Error::Arrow {
                path: path.to_path_buf(),
                source,
            })?;
            let string_column = |name: &str| -> Result<&StringArray> {
                batch
                    .column_by_name(name)
                    .ok_or_else(|| schema_error(format!("missing column {name:?}")))?
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| schema_error(format!("column {name:?} is not utf8")))
            };
            let vector_column = |name: &str| -> Result<Option<&FixedSizeListArray>> {
                match batch.column_by_name(name) {
                    None => Ok(None),
                    Some(column) => column
                        .as_any()
                        .downcast_ref::<FixedSizeListArray>()
                        .map(Some)
                        .ok_or_else(|| {
                            schema_error(format!("column {name:?} is not fixed_size_list<float32>"))
                        }),
                }
            };
            let ids = string_column("image_id")?;
            let paths = string_column("path")?;
            let texts = string_column("text")?;
            let labels = string_column("label")?;
            let splits = string_column("split")?;
            let base = vector_column("base_embedding")?
                .ok_or_else(|| schema_error("missing column \"base_embedding\"".into()))?;
            let finetuned = vector_column("finetuned_embedding")?;
            has_finetuned |= finetuned.is_some();
            dim = base.value_length() as usize;
            let row_vector = |list: &FixedSizeListArray, row: usize| -> Result<Option<Vec<f32>>> {
                if list.is_null(row) {
                    return Ok(None);
                }
                let values = list.value(row);
                let floats = values
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .ok_or_else(|| schema_error("embedding items are not float32".into()))?;
                Ok(Some(floats.values().to_vec()))
            };
            let optional = |column: &StringArray, row: usize| {
                (!column.is_null(row)).then(|| column.value(row).to_string())
            };
            for row in 0..batch.num_rows() {
                records.push(EmbeddingRecord {
                    image_id: ids.value(row).to_string(),
                    path: paths.value(row).to_string(),
                    text: optional(texts, row),
                    label: optional(labels, row),
                    split: optional(splits, row),
                    base_embedding: row_vector(base, row)?.ok_or_else(|| {
                        schema_error(format!("row {row}: base_embedding is null"))
                    })?,
                    finetuned_embedding: match finetuned {
                        Some(list) => row_vector(list, row)?,
                        None => None,
                    },
                });
            }
        }
        Ok(Self {
            dim,
            records,
            has_finetuned,
        })
    }

    /// Base (or fine-tuned) embeddings as one row-major buffer; rows without a fine-tuned
    /// embedding are an error when `finetuned` is asked for.
    pub fn matrix(&self, finetuned: bool) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.records.len() * self.dim);
        for record in &self.records {
            let row = if finetuned {
                record.finetuned_embedding.as_deref().ok_or_else(|| {
                    Error::Input(format!("{} has no fine-tuned embedding", record.image_id))
                })?
            } else {
                record.base_embedding.as_slice()
            };
            out.extend_from_slice(row);
        }
        Ok(out)
    }
}
