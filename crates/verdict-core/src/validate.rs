//! Validation of imported samples against the task: every problem of every row is reported,
//! not only the first.
//!
//! Rules: ids are non-empty and unique; labels are in the declared set (per dimension for
//! multi-label tasks); vote counts are >= 0; confidences lie in [-1, 1] and weights are finite
//! and >= 0; referenced local files exist; timestamps parse as ISO 8601.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Problem;
use crate::import::{Imported, Reject};
use crate::manifest::{is_url, LabelValue, Sample};
use crate::task::{TaskKind, TaskSpec};

#[derive(Debug, Default)]
pub struct Validated {
    pub samples: Vec<Sample>,
    pub rejects: Vec<Reject>,
}

impl Validated {
    /// Every problem found, for `--strict`.
    pub fn problems(&self) -> Vec<Problem> {
        self.rejects
            .iter()
            .flat_map(|r| r.problems.clone())
            .collect()
    }
}

/// Checks every sample; the good ones keep their order, the bad ones become rejects.
pub fn validate(imported: Vec<Imported>, task: &TaskSpec) -> Validated {
    let mut first_seen: BTreeMap<String, String> = BTreeMap::new();
    let mut validated = Validated::default();
    for Imported { sample, origin } in imported {
        let mut problems = Vec::new();
        let at = |field: &str, message: String| {
            let mut problem = Problem::new(&origin.file, message)
                .field(field)
                .sample(sample.sample_id.clone());
            if let Some(line) = origin.line {
                problem = problem.line(line);
            }
            problem
        };
        if sample.sample_id.trim().is_empty() {
            problems.push(
                at("sample_id", "empty sample id".into()).hint("give every sample a unique id"),
            );
        } else {
            let here = match origin.line {
                Some(line) => format!("{}:{line}", origin.file.display()),
                None => origin.file.display().to_string(),
            };
            if let Some(first) = first_seen.get(&sample.sample_id) {
                problems.push(
                    at(
                        "sample_id",
                        format!("duplicate id `{}`, first seen at {first}", sample.sample_id),
                    )
                    .hint("ids must be unique across all sources"),
                );
            } else {
                first_seen.insert(sample.sample_id.clone(), here);
            }
        }
        check_label(&sample, task, &mut problems, &at);
        if let Some(votes) = sample.votes {
            for (field, count) in [("yes_count", votes.yes), ("no_count", votes.no)] {
                if count < 0 {
                    problems.push(at(field, format!("count must be >= 0, found {count}")));
                }
            }
        }
        if let Some(confidence) = sample.label_confidence {
            if !(-1.0..=1.0).contains(&confidence) {
                problems.push(at(
                    "label_confidence",
                    format!("must lie in [-1, 1], found {confidence}"),
                ));
            }
        }
        if let Some(weight) = sample.weight {
            if !weight.is_finite() || weight < 0.0 {
                problems.push(at(
                    "weight",
                    format!("must be finite and >= 0, found {weight}"),
                ));
            }
        }
        for (field, references) in [("files", &sample.files), ("images", &sample.images)] {
            for reference in references {
                if is_url(reference) {
                    continue;
                }
                if !std::path::Path::new(reference).is_file() {
                    problems.push(
                        at(field, format!("file `{reference}` does not exist"))
                            .hint("paths are relative to the manifest's folder"),
                    );
                }
            }
        }
        if let Some(timestamp) = &sample.annotated_at {
            if !parses_as_iso8601(timestamp) {
                problems.push(
                    at(
                        "annotated_at",
                        format!("`{timestamp}` is not an ISO 8601 date or time"),
                    )
                    .hint("e.g. 2024-05-01T12:00:00Z or 2024-05-01"),
                );
            }
        }
        if problems.is_empty() {
            validated.samples.push(sample);
        } else {
            let row = serde_json::to_value(&sample).unwrap_or(serde_json::Value::Null);
            validated.rejects.push(Reject {
                origin,
                problems,
                row,
            });
        }
    }
    validated
}

fn check_label(
    sample: &Sample,
    task: &TaskSpec,
    problems: &mut Vec<Problem>,
    at: &dyn Fn(&str, String) -> Problem,
) {
    let Some(label) = &sample.label else {
        problems.push(at("label", "missing label".into()).hint("every sample needs a label"));
        return;
    };
    match (task.kind, label) {
        (TaskKind::MultiLabel, LabelValue::PerDimension(map)) => {
            for (dimension, labels) in map {
                let Some(declared) = task.dimension(dimension) else {
                    let known: Vec<&str> =
                        task.dimensions.iter().map(|d| d.name.as_str()).collect();
                    problems.push(at(
                        "label",
                        format!("unknown dimension `{dimension}` (known: {known:?})"),
                    ));
                    continue;
                };
                let allowed: BTreeSet<&str> =
                    declared.labels.iter().map(|l| l.name.as_str()).collect();
                for label in labels {
                    if !allowed.contains(label.as_str()) {
                        problems.push(at(
                            "label",
                            format!("`{label}` is not a label of dimension `{dimension}` (allowed: {allowed:?})"),
                        ));
                    }
                }
            }
        }
        (TaskKind::MultiLabel, LabelValue::Single(label)) => problems.push(at(
            "label",
            format!(
                "multi-label task expects labels per dimension, found the single label `{label}`"
            ),
        )),
        (_, LabelValue::Single(label)) => {
            let names = task.label_names();
            if !names.contains(&label.as_str()) {
                problems.push(
                    at(
                        "label",
                        format!("`{label}` is not one of the task's labels {names:?}"),
                    )
                    .hint("fix the row or add the label to the task file"),
                );
            }
        }
        (_, LabelValue::PerDimension(_)) => problems.push(at(
            "label",
            "labels per dimension given, but the task is not multi_label".into(),
        )),
    }
}

/// RFC 3339 date-times, naive date-times and plain dates.
pub fn parses_as_iso8601(text: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok()
        || chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
        || chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").is_ok()
        || chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_forms() {
        for good in [
            "2024-05-01T12:00:00Z",
            "2024-05-01T12:00:00+02:00",
            "2024-05-01",
            "2024-05-01T12:00:00.5",
        ] {
            assert!(parses_as_iso8601(good), "{good}");
        }
        for bad in ["01/05/2024", "2024-13-01", "yesterday", ""] {
            assert!(!parses_as_iso8601(bad), "{bad}");
        }
    }
}
