//! Parquet parts (embedding tables): rows concatenated in shard order.

use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::{commit, temporary_sibling};
use crate::error::{io_error, DistError, Result};

/// Concatenates the rows of parquet `files` into `out`; returns the number of rows.
/// All parts must have the same columns (names, types, nullability) in the same order.
pub fn merge_parquet(files: &[PathBuf], out: &Path) -> Result<usize> {
    let temporary = temporary_sibling(out);
    match write_concatenated(files, &temporary) {
        Ok(rows) => {
            commit(&temporary, out)?;
            Ok(rows)
        }
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(error)
        }
    }
}

struct Output<'a> {
    writer: ArrowWriter<std::fs::File>,
    schema: arrow_schema::SchemaRef,
    first: &'a Path,
}

fn write_concatenated(files: &[PathBuf], temporary: &Path) -> Result<usize> {
    let mut output: Option<Output> = None;
    let mut rows = 0;
    for path in files {
        let file = std::fs::File::open(path).map_err(io_error(path))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| DistError::Format {
                path: path.clone(),
                line: None,
                message: format!("not a readable parquet file: {e}"),
            })?;
        let schema = builder.schema().clone();
        let output = match &mut output {
            Some(open) => open,
            None => {
                let file = std::fs::File::create(temporary).map_err(io_error(temporary))?;
                let properties = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                output.insert(Output {
                    writer: ArrowWriter::try_new(file, schema.clone(), Some(properties))?,
                    schema: schema.clone(),
                    first: path,
                })
            }
        };
        if output.schema.fields() != schema.fields() {
            return Err(DistError::Parts(format!(
                "{} has columns [{}] but {} has [{}]; parts of one stage must share a schema",
                path.display(),
                describe(&schema),
                output.first.display(),
                describe(&output.schema)
            )));
        }
        for batch in builder.build()? {
            let batch = batch?;
            rows += batch.num_rows();
            output.writer.write(&batch)?;
        }
    }
    if let Some(output) = output {
        output.writer.close()?;
    }
    Ok(rows)
}

fn describe(schema: &arrow_schema::Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}
