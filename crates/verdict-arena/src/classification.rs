//! Classification contests: both models' predictions on the same sample, one answer per side.
//!
//! Samples are matched by `sample_id`; only samples both files predicted are judged. The true
//! label is not shown: raters judge the answers, and the metrics already score them against it.

use std::collections::HashMap;
use std::path::Path;

use verdict_eval::prediction::{self, Prediction};

use crate::contest::{resolve_image, Card, Contest, ContestKind, ImageRegistry, MethodInfo, Query};
use crate::error::{ArenaError, Result};
use crate::method::ContestOptions;

/// Builds a classification contest from method A's and method B's predictions files.
pub fn build(files: [&Path; 2], specs: [&str; 2], options: &ContestOptions) -> Result<Contest> {
    let set_a = prediction::read(files[0])?;
    let set_b = prediction::read(files[1])?;
    let by_id: HashMap<&str, &Prediction> = set_b
        .rows
        .iter()
        .map(|row| (row.sample_id.as_str(), row))
        .collect();
    let mut images = ImageRegistry::default();
    let mut queries = Vec::new();
    for (index, row_a) in set_a.rows.iter().enumerate() {
        let Some(row_b) = by_id.get(row_a.sample_id.as_str()) else {
            continue;
        };
        let image_path = row_a
            .image_path
            .as_deref()
            .or(row_b.image_path.as_deref())
            .filter(|p| !p.is_empty());
        let image = match image_path {
            Some(raw) => {
                let path = resolve_image(raw, files[0], options.images_root.as_deref());
                Some(images.register(&path).map_err(|error| ArenaError::Row {
                    path: files[0].to_path_buf(),
                    row: index + 1,
                    message: format!(
                        "sample `{}`: {error} (set --images-root for relative paths)",
                        row_a.sample_id
                    ),
                })?)
            }
            None => None,
        };
        let text = row_a
            .input_text
            .clone()
            .or_else(|| row_b.input_text.clone());
        if image.is_none() && text.is_none() {
            return Err(ArenaError::Row {
                path: files[0].to_path_buf(),
                row: index + 1,
                message: format!(
                    "sample `{}` has neither image_path nor input_text to show",
                    row_a.sample_id
                ),
            });
        }
        queries.push(Query {
            id: row_a.sample_id.clone(),
            prompt: Card {
                image,
                text,
                ..Card::default()
            },
            answers: [vec![answer(row_a)], vec![answer(row_b)]],
        });
    }
    if queries.is_empty() {
        return Err(ArenaError::Mismatch(format!(
            "{} and {} share no sample_id",
            files[0].display(),
            files[1].display()
        )));
    }
    if queries.len() != set_a.rows.len() || queries.len() != set_b.rows.len() {
        tracing::warn!(
            shared = queries.len(),
            a = set_a.rows.len(),
            b = set_b.rows.len(),
            "the predictions files cover different samples; only shared samples are judged"
        );
    }
    queries.sort_by(|x, y| x.id.cmp(&y.id));
    let methods = [
        MethodInfo {
            name: set_a.model_id(),
            spec: specs[0].into(),
        },
        MethodInfo {
            name: set_b.model_id(),
            spec: specs[1].into(),
        },
    ];
    Ok(Contest {
        kind: ContestKind::Classification,
        methods,
        queries,
        images,
    })
}

/// A model's answer: its labels, how sure it was of them and why.
fn answer(row: &Prediction) -> Card {
    let label = if row.predicted_labels.is_empty() {
        "(no label)".to_owned()
    } else {
        row.predicted_labels.join(", ")
    };
    Card {
        label: Some(label),
        confidence: confidence(row),
        reason: row.reason.clone().filter(|reason| !reason.is_empty()),
        ..Card::default()
    }
}

/// The probability of the most likely predicted label; with no predicted label, the highest
/// probability of any label; `None` when the model gave no probabilities.
fn confidence(row: &Prediction) -> Option<f64> {
    let predicted = row
        .predicted_labels
        .iter()
        .filter_map(|label| row.probabilities.get(label).copied())
        .fold(None, |best: Option<f64>, p| {
            Some(best.map_or(p, |b| b.max(p)))
        });
    predicted.or_else(|| {
        row.probabilities
            .values()
            .copied()
            .fold(None, |best: Option<f64>, p| {
                Some(best.map_or(p, |b| b.max(p)))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_prefers_the_predicted_label() {
        let mut row = Prediction {
            predicted_labels: vec!["cat".into()],
            ..Prediction::default()
        };
        assert_eq!(confidence(&row), None);
        row.probabilities.insert("cat".into(), 0.4);
        row.probabilities.insert("dog".into(), 0.6);
        assert_eq!(confidence(&row), Some(0.4));
        row.predicted_labels.clear();
        assert_eq!(confidence(&row), Some(0.6));
        assert_eq!(answer(&row).label.as_deref(), Some("(no label)"));
    }
}
