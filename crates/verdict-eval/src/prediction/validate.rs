//! Checks a predictions file against a task before anything is computed from it.

use std::collections::HashMap;

use super::PredictionSet;
use crate::error::{EvalError, Result};
use crate::spec::{EvalSpec, TaskKind};

/// Probabilities may drift from [0, 1] by float rounding in the producer; more is an error.
const PROBABILITY_SLACK: f64 = 1e-6;

/// Rejects rows that would make metrics meaningless, naming the file and row:
/// empty or duplicate ids, labels not in the task, the wrong number of labels for the task kind,
/// probabilities that are NaN, outside [0, 1] or missing for some labels.
pub fn validate(set: &PredictionSet, spec: &EvalSpec) -> Result<()> {
    if set.rows.is_empty() {
        return Err(EvalError::file(&set.path, "the file has no predictions"));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, row) in set.rows.iter().enumerate() {
        if row.sample_id.is_empty() {
            return Err(set.row_error(index, "missing sample_id"));
        }
        if let Some(first) = seen.insert(row.sample_id.as_str(), index) {
            return Err(set.row_error(
                index,
                format!(
                    "duplicate sample_id {:?} (first seen at {})",
                    row.sample_id, set.locations[first]
                ),
            ));
        }
        for (column, labels) in [
            ("true_labels", &row.true_labels),
            ("predicted_labels", &row.predicted_labels),
        ] {
            for label in labels {
                if spec.label_index(label).is_none() {
                    return Err(set.row_error(
                        index,
                        format!(
                            "sample {:?}: unknown label {label:?} in {column}; the task's labels are {:?}",
                            row.sample_id, spec.labels
                        ),
                    ));
                }
            }
            if spec.kind != TaskKind::MultiLabel && labels.len() != 1 {
                return Err(set.row_error(
                    index,
                    format!(
                        "sample {:?}: {column} must hold exactly one label for a single-label task, found {}",
                        row.sample_id,
                        labels.len()
                    ),
                ));
            }
        }
        if !row.probabilities.is_empty() {
            for label in &spec.labels {
                if !row.probabilities.contains_key(label) {
                    return Err(set.row_error(
                        index,
                        format!(
                            "sample {:?}: no probability column for label {label:?}",
                            row.sample_id
                        ),
                    ));
                }
            }
            for (label, &p) in &row.probabilities {
                if spec.label_index(label).is_none() {
                    return Err(set.row_error(
                        index,
                        format!(
                            "column prob:{label} names a label the task does not have ({:?})",
                            spec.labels
                        ),
                    ));
                }
                if p.is_nan() {
                    return Err(set.row_error(
                        index,
                        format!(
                            "sample {:?}: probability for {label:?} is NaN",
                            row.sample_id
                        ),
                    ));
                }
                if !(-PROBABILITY_SLACK..=1.0 + PROBABILITY_SLACK).contains(&p) {
                    return Err(set.row_error(
                        index,
                        format!(
                            "sample {:?}: probability for {label:?} is {p}, outside [0, 1]",
                            row.sample_id
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Orders every set like the first one by sample id, so the comparison and the paired bootstrap
/// see the same samples in the same order. Fails, naming the file and sample, when a file lacks
/// an id the first has or has one the first lacks.
pub fn align(sets: &mut [PredictionSet]) -> Result<()> {
    let Some((first, rest)) = sets.split_first_mut() else {
        return Ok(());
    };
    let order: HashMap<&str, usize> = first
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| (row.sample_id.as_str(), i))
        .collect();
    for set in rest {
        if set.rows.len() != first.rows.len() {
            let extra = set
                .rows
                .iter()
                .position(|r| !order.contains_key(r.sample_id.as_str()));
            if let Some(index) = extra {
                return Err(set.row_error(
                    index,
                    format!(
                        "sample {:?} is not in {}; compared files must hold the same samples",
                        set.rows[index].sample_id,
                        first.path.display()
                    ),
                ));
            }
        }
        let mut slots: Vec<Option<usize>> = vec![None; first.rows.len()];
        for (index, row) in set.rows.iter().enumerate() {
            let Some(&target) = order.get(row.sample_id.as_str()) else {
                return Err(set.row_error(
                    index,
                    format!(
                        "sample {:?} is not in {}; compared files must hold the same samples",
                        row.sample_id,
                        first.path.display()
                    ),
                ));
            };
            slots[target] = Some(index);
        }
        if let Some(missing) = slots.iter().position(Option::is_none) {
            return Err(EvalError::file(
                &set.path,
                format!(
                    "sample {:?} ({} of {}) is missing; compared files must hold the same samples",
                    first.rows[missing].sample_id,
                    first.locations[missing],
                    first.path.display()
                ),
            ));
        }
        let indices: Vec<usize> = slots.into_iter().flatten().collect();
        set.rows = indices.iter().map(|&i| set.rows[i].clone()).collect();
        set.locations = indices.iter().map(|&i| set.locations[i]).collect();
    }
    Ok(())
}
