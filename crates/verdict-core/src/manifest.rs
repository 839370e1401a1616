//! The manifest: JSONL, one sample per line, the unit every stage reads and writes.
//!
//! A sample may hold several files (a print request with three STL parts); splits keep a sample
//! whole. Paths in `files` and `images` are relative to the manifest's folder unless absolute;
//! `images` may also hold `http(s)://` URLs that the image cache downloads.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Problem, Result};
use crate::fsio::atomic_write;

/// The label(s) of a sample: one name, or label lists per dimension for multi-label tasks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelValue {
    Single(String),
    PerDimension(BTreeMap<String, Vec<String>>),
}

impl LabelValue {
    /// A key used to stratify splits: the label, or the first label of each dimension.
    pub fn stratum(&self) -> String {
        match self {
            LabelValue::Single(label) => label.clone(),
            LabelValue::PerDimension(map) => map
                .iter()
                .map(|(dim, labels)| format!("{dim}={}", labels.join("+")))
                .collect::<Vec<_>>()
                .join(";"),
        }
    }

    pub fn as_single(&self) -> Option<&str> {
        match self {
            LabelValue::Single(label) => Some(label),
            LabelValue::PerDimension(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Benchmark,
    TrainPool,
    Train,
    Val,
    Test,
}

impl Split {
    pub const ALL: [Split; 5] = [
        Split::Benchmark,
        Split::TrainPool,
        Split::Train,
        Split::Val,
        Split::Test,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Split::Benchmark => "benchmark",
            Split::TrainPool => "train_pool",
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl std::str::FromStr for Split {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Split::ALL
            .into_iter()
            .find(|split| split.name() == s)
            .ok_or_else(|| {
                format!("unknown split `{s}` (expected benchmark, train_pool, train, val or test)")
            })
    }
}

/// Annotator votes behind a label, as collected by a labelling tool.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Votes {
    pub yes: i64,
    pub no: i64,
}

impl Votes {
    /// `(yes - no) / (yes + no)`, or `None` when nobody voted.
    pub fn confidence(self) -> Option<f64> {
        let total = self.yes + self.no;
        (total > 0).then(|| (self.yes - self.no) as f64 / total as f64)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    pub sample_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<LabelValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotator: Option<String>,
    /// ISO 8601 (RFC 3339 date-time, or a plain date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// Samples with the same group (e.g. a creator) stay on one side of every split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub votes: Option<Votes>,
    /// Agreement of annotators in [-1, 1], from `votes` when they exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_confidence: Option<f64>,
    /// Training weight (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub meta: serde_json::Map<String, serde_json::Value>,
}

impl Sample {
    pub fn new(sample_id: impl Into<String>) -> Self {
        Sample {
            sample_id: sample_id.into(),
            label: None,
            files: Vec::new(),
            images: Vec::new(),
            text: None,
            source: None,
            annotator: None,
            annotated_at: None,
            notes: None,
            split: None,
            group: None,
            votes: None,
            label_confidence: None,
            weight: None,
            meta: serde_json::Map::new(),
        }
    }

    /// The value of a grouping key: `group`, `source`, `annotator` or a string in `meta`.
    pub fn group_value(&self, key: &str) -> Option<String> {
        match key {
            "group" => self.group.clone(),
            "source" => self.source.clone(),
            "annotator" => self.annotator.clone(),
            other => self.meta.get(other).map(|value| match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        }
    }

    /// Resolves a local file or image reference against the manifest folder. URLs pass through.
    pub fn resolve(base: &Path, reference: &str) -> PathBuf {
        let path = Path::new(reference);
        if path.is_absolute() || is_url(reference) {
            path.to_path_buf()
        } else {
            base.join(path)
        }
    }
}

pub fn is_url(reference: &str) -> bool {
    reference.starts_with("http://") || reference.starts_with("https://")
}

/// A manifest line that did not parse; the rest of the file is still read.
#[derive(Debug)]
pub struct BadLine {
    pub line: usize,
    pub raw: String,
    pub problem: Problem,
}

/// A read manifest: samples with their line numbers, and the lines that did not parse.
pub type ReadManifest = (Vec<(usize, Sample)>, Vec<BadLine>);

/// Reads a manifest, returning the samples with their line numbers and the lines that did not
/// parse as samples.
pub fn read_manifest(path: &Path) -> Result<ReadManifest> {
    let file = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
    let mut samples = Vec::new();
    let mut bad = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| CoreError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line) {
            Ok(sample) => samples.push((number, sample)),
            Err((field, message)) => {
                let mut problem = Problem::new(path, message).line(number).hint(
                    "each line must be one JSON object with the manifest fields (see `verdict init`)",
                );
                if let Some(field) = field {
                    problem = problem.field(field);
                }
                bad.push(BadLine {
                    line: number,
                    raw: line,
                    problem,
                });
            }
        }
    }
    Ok((samples, bad))
}

/// Reads a manifest that must be entirely well-formed.
pub fn read_manifest_strict(path: &Path) -> Result<Vec<Sample>> {
    let (samples, bad) = read_manifest(path)?;
    if !bad.is_empty() {
        return Err(CoreError::Invalid(
            bad.into_iter().map(|b| b.problem).collect(),
        ));
    }
    Ok(samples.into_iter().map(|(_, sample)| sample).collect())
}

/// Parses one line, naming the offending field where serde can tell.
fn parse_line(line: &str) -> std::result::Result<Sample, (Option<String>, String)> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| (None, format!("not valid JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| (None, "expected a JSON object".to_string()))?;
    // Check field by field first so the error names the field, which serde's message for an
    // untagged or nested value does not.
    for (key, field_value) in object {
        let mut probe = serde_json::Map::new();
        probe.insert("sample_id".into(), "probe".into());
        probe.insert(key.clone(), field_value.clone());
        if let Err(e) = serde_json::from_value::<Sample>(serde_json::Value::Object(probe)) {
            let message = e.to_string();
            if message.starts_with("unknown field") {
                return Err((
                    Some(key.clone()),
                    format!("unknown field `{key}` (free-form data belongs in `meta`)"),
                ));
            }
            return Err((Some(key.clone()), message));
        }
    }
    serde_json::from_value(value).map_err(|e| {
        let message = e.to_string();
        let field = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string);
        (field, message)
    })
}

/// Writes samples as JSONL, atomically.
pub fn write_manifest<'a>(
    path: &Path,
    samples: impl IntoIterator<Item = &'a Sample>,
) -> Result<()> {
    let samples: Vec<&Sample> = samples.into_iter().collect();
    atomic_write(path, |w| {
        for sample in &samples {
            serde_json::to_writer(&mut *w, sample).map_err(std::io::Error::other)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_field() {
        let mut sample = Sample::new("s1");
        sample.label = Some(LabelValue::Single("nsfw".into()));
        sample.files = vec!["a.stl".into(), "b.stl".into()];
        sample.split = Some(Split::TrainPool);
        sample.votes = Some(Votes { yes: 3, no: 1 });
        sample.meta.insert("creator".into(), "c9".into());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        write_manifest(&path, [&sample]).unwrap();
        assert_eq!(read_manifest_strict(&path).unwrap(), vec![sample]);
    }

    #[test]
    fn per_dimension_labels_parse() {
        let sample =
            parse_line(r#"{"sample_id":"w1","label":{"Area":["Counting"],"Scope":["N10"]}}"#)
                .unwrap();
        assert_eq!(sample.label.unwrap().stratum(), "Area=Counting;Scope=N10");
    }

    #[test]
    fn bad_lines_name_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        std::fs::write(
            &path,
            "{\"sample_id\":\"a\",\"label\":\"x\"}\n\
             {\"sample_id\":\"b\",\"split\":\"training\"}\n\
             not json\n\
             {\"sample_id\":\"c\",\"colour\":\"red\"}\n\
             {\"label\":\"x\"}\n",
        )
        .unwrap();
        let (good, bad) = read_manifest(&path).unwrap();
        assert_eq!(good.len(), 1);
        let described: Vec<(usize, Option<&str>)> = bad
            .iter()
            .map(|b| (b.line, b.problem.field.as_deref()))
            .collect();
        assert_eq!(
            described,
            [
                (2, Some("split")),
                (3, None),
                (4, Some("colour")),
                (5, Some("sample_id"))
            ]
        );
    }

    #[test]
    fn votes_confidence_is_zero_safe() {
        assert_eq!(Votes { yes: 0, no: 0 }.confidence(), None);
        assert_eq!(Votes { yes: 3, no: 1 }.confidence(), Some(0.5));
        assert_eq!(Votes { yes: 0, no: 2 }.confidence(), Some(-1.0));
    }
}
