//! Parquet side of the predictions format (arrow-rs), compatible with files pandas/pyarrow write.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use super::{
    split_labels, Decision, Layout, Prediction, PredictionSet, RowLocation, PROBABILITY_PREFIX,
    SLICE_PREFIX,
};
use crate::error::{EvalError, Result};

fn label_list_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

pub(super) fn read(path: &Path) -> Result<PredictionSet> {
    let file = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
    let parquet_error = |e: parquet::errors::ParquetError| {
        EvalError::file(path, format!("not a readable Parquet file: {e}"))
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(parquet_error)?
        .build()
        .map_err(parquet_error)?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| EvalError::file(path, format!("cannot decode: {e}")))?;
        read_batch(path, &batch, &mut rows)?;
    }
    let locations = (1..=rows.len()).map(RowLocation::Row).collect();
    Ok(PredictionSet {
        path: path.to_path_buf(),
        rows,
        locations,
    })
}

/// A column cast to plain UTF-8 strings, or None when absent.
fn strings(path: &Path, batch: &RecordBatch, name: &str) -> Result<Option<StringArray>> {
    let Some(column) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let cast = arrow_cast::cast(column, &DataType::Utf8)
        .map_err(|e| EvalError::file(path, format!("column `{name}` is not text ({e})")))?;
    Ok(Some(cast.as_string::<i32>().clone()))
}

/// Label column: a list of strings, or a `|`-joined string.
fn labels(path: &Path, batch: &RecordBatch, name: &str) -> Result<Vec<Vec<String>>> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| EvalError::file(path, format!("missing column `{name}`")))?;
    let rows = batch.num_rows();
    match column.data_type() {
        DataType::List(_) | DataType::LargeList(_) | DataType::ListView(_) => {
            let cast = arrow_cast::cast(column, &label_list_type()).map_err(|e| {
                EvalError::file(path, format!("column `{name}` is not a list of text ({e})"))
            })?;
            let list = cast.as_list::<i32>();
            Ok((0..rows)
                .map(|row| {
                    if list.is_null(row) {
                        return Vec::new();
                    }
                    let values = list.value(row);
                    let values = values.as_string::<i32>();
                    values.iter().flatten().map(str::to_owned).collect()
                })
                .collect())
        }
        _ => {
            let strings =
                strings(path, batch, name)?.unwrap_or_else(|| StringArray::from(vec![""; rows]));
            Ok((0..rows)
                .map(|row| {
                    if strings.is_null(row) {
                        Vec::new()
                    } else {
                        split_labels(strings.value(row))
                    }
                })
                .collect())
        }
    }
}

fn read_batch(path: &Path, batch: &RecordBatch, out: &mut Vec<Prediction>) -> Result<()> {
    let first_row = out.len();
    let row_error = |row: usize, message: String| EvalError::Row {
        path: path.to_path_buf(),
        location: RowLocation::Row(first_row + row + 1).to_string(),
        message,
    };
    let ids = strings(path, batch, "sample_id")?
        .ok_or_else(|| EvalError::file(path, "missing column `sample_id`"))?;
    let true_labels = labels(path, batch, "true_labels")?;
    let predicted_labels = labels(path, batch, "predicted_labels")?;
    let optional = |name: &str| strings(path, batch, name);
    let (reason, decision, model, run, text, image) = (
        optional("reason")?,
        optional("decision")?,
        optional("model_id")?,
        optional("run_id")?,
        optional("input_text")?,
        optional("image_path")?,
    );
    let schema = batch.schema();
    let mut probabilities = Vec::new();
    let mut slices = Vec::new();
    for (index, field) in schema.fields().iter().enumerate() {
        if let Some(label) = field.name().strip_prefix(PROBABILITY_PREFIX) {
            let cast = arrow_cast::cast(batch.column(index), &DataType::Float64).map_err(|e| {
                EvalError::file(
                    path,
                    format!("column `{}` is not numeric ({e})", field.name()),
                )
            })?;
            probabilities.push((label.to_owned(), cast.as_primitive::<Float64Type>().clone()));
        } else if let Some(name) = field.name().strip_prefix(SLICE_PREFIX) {
            if let Some(values) = strings(path, batch, field.name())? {
                slices.push((name.to_owned(), values));
            }
        }
    }
    let cell = |array: &Option<StringArray>, row: usize| {
        array
            .as_ref()
            .filter(|a| !a.is_null(row))
            .map(|a| a.value(row).to_owned())
            .filter(|value| !value.is_empty())
    };
    for row in 0..batch.num_rows() {
        let mut row_probabilities = BTreeMap::new();
        for (label, values) in &probabilities {
            if values.is_null(row) {
                return Err(row_error(
                    row,
                    format!("missing probability for label {label:?}"),
                ));
            }
            row_probabilities.insert(label.clone(), values.value(row));
        }
        let decision = match cell(&decision, row) {
            None => None,
            Some(value) => Some(Decision::parse(&value).ok_or_else(|| {
                row_error(
                    row,
                    format!("decision {value:?} is not one of keep, review, demote"),
                )
            })?),
        };
        let row_slices = slices
            .iter()
            .filter(|(_, values)| !values.is_null(row))
            .map(|(name, values)| (name.clone(), values.value(row).to_owned()))
            .collect();
        out.push(Prediction {
            sample_id: if ids.is_null(row) {
                String::new()
            } else {
                ids.value(row).trim().to_owned()
            },
            true_labels: true_labels[row].clone(),
            predicted_labels: predicted_labels[row].clone(),
            probabilities: row_probabilities,
            reason: cell(&reason, row),
            decision,
            slices: row_slices,
            model_id: cell(&model, row).unwrap_or_default(),
            run_id: cell(&run, row).unwrap_or_default(),
            input_text: cell(&text, row),
            image_path: cell(&image, row),
        });
    }
    Ok(())
}

pub(super) fn write(path: &Path, rows: &[Prediction], layout: &Layout) -> Result<()> {
    let mut fields = vec![
        Field::new("sample_id", DataType::Utf8, false),
        Field::new("true_labels", label_list_type(), false),
        Field::new("predicted_labels", label_list_type(), false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.sample_id.as_str()),
        )),
        Arc::new(label_list(rows.iter().map(|r| &r.true_labels))),
        Arc::new(label_list(rows.iter().map(|r| &r.predicted_labels))),
    ];
    for label in &layout.probability_labels {
        fields.push(Field::new(
            format!("{PROBABILITY_PREFIX}{label}"),
            DataType::Float64,
            true,
        ));
        columns.push(Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| r.probabilities.get(label).copied()),
        )));
    }
    type Getter = Box<dyn Fn(&Prediction) -> Option<String>>;
    let optional_text: [(&str, Getter); 6] = [
        ("reason", Box::new(|r| r.reason.clone())),
        (
            "decision",
            Box::new(|r| r.decision.map(|d| d.as_str().to_owned())),
        ),
        ("model_id", Box::new(|r| Some(r.model_id.clone()))),
        ("run_id", Box::new(|r| Some(r.run_id.clone()))),
        ("input_text", Box::new(|r| r.input_text.clone())),
        ("image_path", Box::new(|r| r.image_path.clone())),
    ];
    for (name, get) in &optional_text {
        fields.push(Field::new(*name, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from_iter(rows.iter().map(get))));
    }
    for name in &layout.slice_names {
        fields.push(Field::new(
            format!("{SLICE_PREFIX}{name}"),
            DataType::Utf8,
            true,
        ));
        columns.push(Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.slices.get(name).cloned()),
        )));
    }
    let schema = Arc::new(Schema::new(fields));
    let arrow_error = |e: arrow_schema::ArrowError| EvalError::file(path, format!("{e}"));
    let parquet_error = |e: parquet::errors::ParquetError| EvalError::file(path, format!("{e}"));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(arrow_error)?;
    let file = std::fs::File::create(path).map_err(|e| EvalError::io(path, e))?;
    let mut writer = ArrowWriter::try_new(file, schema, None).map_err(parquet_error)?;
    writer.write(&batch).map_err(parquet_error)?;
    writer.close().map_err(parquet_error)?;
    Ok(())
}

fn label_list<'a>(rows: impl Iterator<Item = &'a Vec<String>>) -> arrow_array::ListArray {
    let mut builder = ListBuilder::new(StringBuilder::new());
    for labels in rows {
        for label in labels {
            builder.values().append_value(label);
        }
        builder.append(true);
    }
    builder.finish()
}
