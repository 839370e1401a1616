//! CSV side of the predictions format.

use std::collections::BTreeMap;
use std::path::Path;

use super::{
    parse_probability, split_labels, Decision, Layout, Prediction, PredictionSet, RowLocation,
    LABEL_SEPARATOR, PROBABILITY_PREFIX, SLICE_PREFIX,
};
use crate::error::{EvalError, Result};

const REQUIRED: [&str; 3] = ["sample_id", "true_labels", "predicted_labels"];

pub(super) fn read(path: &Path) -> Result<PredictionSet> {
    let file = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(file);
    let headers = reader
        .headers()
        .map_err(|e| EvalError::file(path, format!("cannot read the header: {e}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    for name in REQUIRED {
        if column(name).is_none() {
            return Err(EvalError::file(path, format!("missing column `{name}`")));
        }
    }
    let probability_columns: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            h.strip_prefix(PROBABILITY_PREFIX)
                .map(|l| (i, l.to_owned()))
        })
        .collect();
    let slice_columns: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.strip_prefix(SLICE_PREFIX).map(|s| (i, s.to_owned())))
        .collect();
    let optional = |name: &str| column(name);
    let (id_col, true_col, pred_col) = (
        column("sample_id").unwrap_or(0),
        column("true_labels").unwrap_or(0),
        column("predicted_labels").unwrap_or(0),
    );
    let (reason_col, decision_col, model_col, run_col, text_col, image_col) = (
        optional("reason"),
        optional("decision"),
        optional("model_id"),
        optional("run_id"),
        optional("input_text"),
        optional("image_path"),
    );

    let mut rows = Vec::new();
    let mut locations = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            EvalError::Row {
                path: path.to_path_buf(),
                location: RowLocation::Line(line).to_string(),
                message: format!("unreadable CSV record: {e}"),
            }
        })?;
        let location = RowLocation::Line(record.position().map(|p| p.line()).unwrap_or(0));
        let row_error = |message: String| EvalError::Row {
            path: path.to_path_buf(),
            location: location.to_string(),
            message,
        };
        let field = |index: usize| record.get(index).unwrap_or("");
        let text = |index: Option<usize>| {
            index
                .map(|i| field(i).to_owned())
                .filter(|value| !value.is_empty())
        };
        let mut probabilities = BTreeMap::new();
        for (index, label) in &probability_columns {
            let cell = field(*index);
            if cell.trim().is_empty() {
                return Err(row_error(format!("empty probability for label {label:?}")));
            }
            let value = parse_probability(cell).map_err(row_error)?;
            probabilities.insert(label.clone(), value);
        }
        let decision = match text(decision_col) {
            None => None,
            Some(value) => Some(Decision::parse(&value).ok_or_else(|| {
                row_error(format!(
                    "decision {value:?} is not one of keep, review, demote"
                ))
            })?),
        };
        let slices = slice_columns
            .iter()
            .filter(|(index, _)| !field(*index).is_empty())
            .map(|(index, name)| (name.clone(), field(*index).to_owned()))
            .collect();
        rows.push(Prediction {
            sample_id: field(id_col).trim().to_owned(),
            true_labels: split_labels(field(true_col)),
            predicted_labels: split_labels(field(pred_col)),
            probabilities,
            reason: text(reason_col),
            decision,
            slices,
            model_id: text(model_col).unwrap_or_default(),
            run_id: text(run_col).unwrap_or_default(),
            input_text: text(text_col),
            image_path: text(image_col),
        });
        locations.push(location);
    }
    Ok(PredictionSet {
        path: path.to_path_buf(),
        rows,
        locations,
    })
}

pub(super) fn write(path: &Path, rows: &[Prediction], layout: &Layout) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| EvalError::io(path, e))?;
    let mut writer = csv::Writer::from_writer(file);
    let csv_error = |e: csv::Error| EvalError::file(path, format!("cannot write CSV: {e}"));
    let mut header: Vec<String> = REQUIRED.iter().map(|s| s.to_string()).collect();
    header.extend(
        layout
            .probability_labels
            .iter()
            .map(|l| format!("{PROBABILITY_PREFIX}{l}")),
    );
    for name in [
        "reason",
        "decision",
        "model_id",
        "run_id",
        "input_text",
        "image_path",
    ] {
        header.push(name.into());
    }
    header.extend(
        layout
            .slice_names
            .iter()
            .map(|s| format!("{SLICE_PREFIX}{s}")),
    );
    writer.write_record(&header).map_err(csv_error)?;
    let separator = LABEL_SEPARATOR.to_string();
    for row in rows {
        let mut record = vec![
            row.sample_id.clone(),
            row.true_labels.join(&separator),
            row.predicted_labels.join(&separator),
        ];
        for label in &layout.probability_labels {
            // `{}` of an f64 prints the shortest text that parses back to the same value.
            record.push(
                row.probabilities
                    .get(label)
                    .map(|p| format!("{p}"))
                    .unwrap_or_default(),
            );
        }
        record.push(row.reason.clone().unwrap_or_default());
        record.push(
            row.decision
                .map(|d| d.as_str().to_owned())
                .unwrap_or_default(),
        );
        record.push(row.model_id.clone());
        record.push(row.run_id.clone());
        record.push(row.input_text.clone().unwrap_or_default());
        record.push(row.image_path.clone().unwrap_or_default());
        for name in &layout.slice_names {
            record.push(row.slices.get(name).cloned().unwrap_or_default());
        }
        writer.write_record(&record).map_err(csv_error)?;
    }
    writer.flush().map_err(|e| EvalError::io(path, e))?;
    Ok(())
}
