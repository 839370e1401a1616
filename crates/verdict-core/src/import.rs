//! Importers: turn the formats teams already have into manifest samples.
//!
//! Supported sources (see [`SourceSpec`]): a manifest JSONL, a listings CSV/TSV with annotator
//! votes, a folder tree `<label>/<sample_id>/<files>`, and folders of `meta.json` files with
//! labels per dimension. Importers never modify their input. Rows that cannot become a sample
//! are returned as [`Reject`]s with the reason; label and file checks happen in
//! [`crate::validate`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Problem, Result};
use crate::manifest::{is_url, read_manifest, LabelValue, Sample, Votes};
use crate::task::{AmbiguousPolicy, SourceSpec, TaskKind, TaskSpec};

/// Where a sample came from, for error messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    pub file: PathBuf,
    pub line: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub sample: Sample,
    pub origin: Origin,
}

/// A row left out, with everything needed to fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    pub origin: Origin,
    pub problems: Vec<Problem>,
    /// The row as read (raw text or the parsed sample).
    pub row: serde_json::Value,
}

#[derive(Debug, Default)]
pub struct ImportOutcome {
    pub samples: Vec<Imported>,
    pub rejects: Vec<Reject>,
}

impl ImportOutcome {
    fn extend(&mut self, other: ImportOutcome) {
        self.samples.extend(other.samples);
        self.rejects.extend(other.rejects);
    }
}

const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "webp", "gif", "bmp"];

/// Resolves a source path: `{data}` is the data store, relative paths start at the task folder.
pub fn resolve_source_path(path: &str, task_dir: &Path, data_dir: &Path) -> PathBuf {
    let expanded = path.replace("{data}", &data_dir.to_string_lossy());
    let expanded = PathBuf::from(expanded);
    if expanded.is_absolute() {
        expanded
    } else {
        task_dir.join(expanded)
    }
}

/// Imports every source of a task.
pub fn import_task(task: &TaskSpec, task_dir: &Path, data_dir: &Path) -> Result<ImportOutcome> {
    let mut outcome = ImportOutcome::default();
    for source in &task.sources {
        outcome.extend(import_source(source, task, task_dir, data_dir)?);
    }
    Ok(outcome)
}

pub fn import_source(
    source: &SourceSpec,
    task: &TaskSpec,
    task_dir: &Path,
    data_dir: &Path,
) -> Result<ImportOutcome> {
    let resolve = |path: &str| resolve_source_path(path, task_dir, data_dir);
    match source {
        SourceSpec::Manifest { path } => import_manifest(&resolve(path)),
        SourceSpec::Listings {
            path,
            ambiguous,
            ambiguity_threshold,
        } => import_listings(&resolve(path), task, *ambiguous, *ambiguity_threshold),
        SourceSpec::FolderTree {
            path,
            label_map,
            extensions,
            text_extensions,
            max_text_bytes,
        } => import_folder_tree(
            &resolve(path),
            &FolderTreeOptions {
                label_map,
                extensions,
                text_extensions,
                max_text_bytes: *max_text_bytes,
            },
        ),
        SourceSpec::MetaJson { path } => import_meta_json(&resolve(path)),
    }
}

/// (a) A manifest JSONL; relative file references are made absolute against its folder.
pub fn import_manifest(path: &Path) -> Result<ImportOutcome> {
    let base = path.parent().unwrap_or(Path::new("."));
    let (samples, bad) = read_manifest(path)?;
    let mut outcome = ImportOutcome::default();
    for (line, mut sample) in samples {
        for reference in sample.files.iter_mut().chain(sample.images.iter_mut()) {
            if !is_url(reference) {
                *reference = Sample::resolve(base, reference)
                    .to_string_lossy()
                    .into_owned();
            }
        }
        outcome.samples.push(Imported {
            sample,
            origin: Origin {
                file: path.to_path_buf(),
                line: Some(line),
            },
        });
    }
    for bad_line in bad {
        outcome.rejects.push(Reject {
            origin: Origin {
                file: path.to_path_buf(),
                line: Some(bad_line.line),
            },
            problems: vec![bad_line.problem],
            row: serde_json::Value::String(bad_line.raw),
        });
    }
    Ok(outcome)
}

const LISTING_COLUMNS: [&str; 6] = [
    "product_id",
    "description",
    "image_url",
    "label",
    "yes_count",
    "no_count",
];

/// (b) Listings CSV/TSV: `product_id, description, image_url, label (0/1), yes_count, no_count`.
///
/// `label_confidence = (yes - no) / (yes + no)`, absent when nobody voted. Label 1 maps to the
/// task's positive label (binary policy) or its second label; 0 to the other.
pub fn import_listings(
    path: &Path,
    task: &TaskSpec,
    ambiguous: AmbiguousPolicy,
    threshold: f64,
) -> Result<ImportOutcome> {
    let delimiter = if path.extension().is_some_and(|e| e == "tsv") {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_path(path)
        .map_err(|e| CoreError::format(path, e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| CoreError::format(path, e.to_string()))?
        .clone();
    let mut index = BTreeMap::new();
    for column in LISTING_COLUMNS {
        let position = headers
            .iter()
            .position(|h| h.trim() == column)
            .ok_or_else(|| {
                CoreError::format(
                    path,
                    format!(
                        "missing column `{column}` (header must include {})",
                        LISTING_COLUMNS.join(", ")
                    ),
                )
            })?;
        index.insert(column, position);
    }
    let (negative, positive) = binary_labels(task).ok_or_else(|| {
        CoreError::format(
            path,
            "a listings source needs a task with exactly two labels",
        )
    })?;
    let mut outcome = ImportOutcome::default();
    for (row_index, record) in reader.records().enumerate() {
        let line = row_index + 2;
        let origin = Origin {
            file: path.to_path_buf(),
            line: Some(line),
        };
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                outcome.rejects.push(Reject {
                    origin,
                    problems: vec![Problem::new(path, e.to_string()).line(line)],
                    row: serde_json::Value::Null,
                });
                continue;
            }
        };
        let get = |column: &str| record.get(index[column]).unwrap_or("").trim();
        let row: serde_json::Map<String, serde_json::Value> = LISTING_COLUMNS
            .iter()
            .map(|c| (c.to_string(), serde_json::Value::String(get(c).to_string())))
            .collect();
        let mut problems = Vec::new();
        let id = get("product_id").to_string();
        let problem = |field: &str, message: String| {
            Problem::new(path, message)
                .line(line)
                .field(field)
                .sample(id.clone())
        };
        let label = match get("label") {
            "0" => Some(negative.clone()),
            "1" => Some(positive.clone()),
            other => {
                problems.push(
                    problem("label", format!("expected 0 or 1, found `{other}`"))
                        .hint("1 marks the positive class"),
                );
                None
            }
        };
        let mut count = |field: &str| -> i64 {
            let raw = get(field);
            if raw.is_empty() {
                return 0;
            }
            match raw.parse::<i64>() {
                Ok(value) => value,
                Err(_) => {
                    problems.push(problem(field, format!("`{raw}` is not a whole number")));
                    0
                }
            }
        };
        let votes = Votes {
            yes: count("yes_count"),
            no: count("no_count"),
        };
        if !problems.is_empty() {
            outcome.rejects.push(Reject {
                origin,
                problems,
                row: serde_json::Value::Object(row),
            });
            continue;
        }
        let mut sample = Sample::new(id.clone());
        sample.label = label.map(LabelValue::Single);
        sample.text = Some(get("description").to_string());
        let url = get("image_url");
        if !url.is_empty() {
            sample.images.push(url.to_string());
        }
        sample.source = Some(path.file_name().map_or_else(
            || path.to_string_lossy().into_owned(),
            |n| n.to_string_lossy().into_owned(),
        ));
        sample.votes = Some(votes);
        sample.label_confidence = votes.confidence();
        let is_ambiguous = sample
            .label_confidence
            .is_some_and(|confidence| confidence.abs() < threshold);
        if is_ambiguous {
            match ambiguous {
                AmbiguousPolicy::Keep => {}
                AmbiguousPolicy::Weight => {
                    sample.weight = sample.label_confidence.map(f64::abs);
                }
                AmbiguousPolicy::Exclude => {
                    let confidence = sample.label_confidence.unwrap_or_default();
                    outcome.rejects.push(Reject {
                        origin,
                        problems: vec![problem(
                            "label_confidence",
                            format!(
                                "ambiguous: |{confidence:.3}| < {threshold} and the source says \
                                 ambiguous = \"exclude\""
                            ),
                        )],
                        row: serde_json::Value::Object(row),
                    });
                    continue;
                }
            }
        }
        outcome.samples.push(Imported { sample, origin });
    }
    Ok(outcome)
}

/// (negative, positive) label names of a two-label task.
fn binary_labels(task: &TaskSpec) -> Option<(String, String)> {
    if task.kind == TaskKind::MultiLabel || task.labels.len() != 2 {
        return None;
    }
    let names = task.label_names();
    let positive = task
        .policy
        .as_ref()
        .map_or(names[1], |policy| policy.positive.as_str());
    let negative = names.iter().find(|n| **n != positive)?;
    Some((negative.to_string(), positive.to_string()))
}

pub struct FolderTreeOptions<'a> {
    pub label_map: &'a BTreeMap<String, String>,
    pub extensions: &'a [String],
    pub text_extensions: &'a [String],
    pub max_text_bytes: usize,
}

fn extension_of(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// (c) `<label>/<sample_id>/<files>` (all files of a folder form one sample) or
/// `<label>/<file>` (one file, one sample, id `<label folder>/<file stem>`).
pub fn import_folder_tree(root: &Path, options: &FolderTreeOptions) -> Result<ImportOutcome> {
    let mut outcome = ImportOutcome::default();
    for label_dir in sorted_entries(root)? {
        if !label_dir.is_dir() {
            continue;
        }
        let folder = file_name(&label_dir);
        let label = options
            .label_map
            .get(&folder)
            .cloned()
            .unwrap_or_else(|| folder.clone());
        for entry in sorted_entries(&label_dir)? {
            let (sample_id, files) = if entry.is_dir() {
                let mut files = Vec::new();
                for file in walkdir::WalkDir::new(&entry).sort_by_file_name() {
                    let file = file.map_err(|e| CoreError::format(&entry, e.to_string()))?;
                    if file.file_type().is_file() {
                        files.push(file.into_path());
                    }
                }
                (file_name(&entry), files)
            } else {
                let stem = entry
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (format!("{folder}/{stem}"), vec![entry.clone()])
            };
            let files: Vec<PathBuf> = files
                .into_iter()
                .filter(|f| {
                    options.extensions.is_empty() || options.extensions.contains(&extension_of(f))
                })
                .collect();
            if files.is_empty() {
                continue;
            }
            let mut sample = Sample::new(sample_id);
            sample.label = Some(LabelValue::Single(label.clone()));
            sample.source = Some(folder.clone());
            let mut text = String::new();
            for file in &files {
                let extension = extension_of(file);
                if options.text_extensions.contains(&extension) {
                    let bytes = std::fs::read(file).map_err(|e| CoreError::io(file, e))?;
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&String::from_utf8_lossy(&bytes));
                }
                let reference = file.to_string_lossy().into_owned();
                if IMAGE_EXTENSIONS.contains(&extension.as_str()) {
                    sample.images.push(reference);
                } else {
                    sample.files.push(reference);
                }
            }
            if !text.is_empty() {
                truncate_at_char(&mut text, options.max_text_bytes);
                sample.text = Some(text);
            }
            outcome.samples.push(Imported {
                sample,
                origin: Origin {
                    file: entry,
                    line: None,
                },
            });
        }
    }
    Ok(outcome)
}

fn truncate_at_char(text: &mut String, max_bytes: usize) {
    if text.len() > max_bytes {
        let mut cut = max_bytes;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

/// The `meta.json` layout read by [`import_meta_json`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaFile {
    #[serde(default)]
    sample_id: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    images: Vec<String>,
    labels: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    annotator: Option<String>,
    #[serde(default)]
    annotated_at: Option<String>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    meta: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// (d) Every `meta.json` below `root`: `{"image": "sheet.png", "labels": {"Area": ["Counting"]}}`.
/// The sample id defaults to the folder path below `root`; image paths are relative to the file.
pub fn import_meta_json(root: &Path) -> Result<ImportOutcome> {
    if !root.is_dir() {
        return Err(CoreError::format(
            root,
            "not a folder (a meta_json source is a folder)",
        ));
    }
    let mut outcome = ImportOutcome::default();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.map_err(|e| CoreError::format(root, e.to_string()))?;
        if !entry.file_type().is_file() || entry.file_name() != "meta.json" {
            continue;
        }
        let path = entry.path();
        let origin = Origin {
            file: path.to_path_buf(),
            line: None,
        };
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
        let meta: MetaFile = match serde_json::from_str(&text) {
            Ok(meta) => meta,
            Err(e) => {
                outcome.rejects.push(Reject {
                    origin,
                    problems: vec![Problem::new(path, e.to_string())
                        .line(e.line())
                        .hint("expected {\"image\": ..., \"labels\": {DIMENSION: [LABEL, ...]}}")],
                    row: serde_json::Value::String(text),
                });
                continue;
            }
        };
        let folder = path.parent().unwrap_or(root);
        let default_id = folder
            .strip_prefix(root)
            .ok()
            .filter(|rel| !rel.as_os_str().is_empty())
            .map(|rel| rel.to_string_lossy().replace('\\', "/"))
            .unwrap_or_else(|| file_name(folder));
        let mut sample = Sample::new(meta.sample_id.unwrap_or(default_id));
        sample.images = meta
            .image
            .into_iter()
            .chain(meta.images)
            .map(|image| {
                Sample::resolve(folder, &image)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        sample.label = Some(LabelValue::PerDimension(
            meta.labels
                .into_iter()
                .map(|(dimension, labels)| {
                    let labels = match labels {
                        OneOrMany::One(label) => vec![label],
                        OneOrMany::Many(labels) => labels,
                    };
                    (dimension, labels)
                })
                .collect(),
        ));
        sample.text = meta.text;
        sample.source = meta.source;
        sample.annotator = meta.annotator;
        sample.annotated_at = meta.annotated_at;
        sample.notes = meta.notes;
        sample.meta = meta.meta;
        outcome.samples.push(Imported { sample, origin });
    }
    Ok(outcome)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| CoreError::io(dir, e))? {
        let entry = entry.map_err(|e| CoreError::io(dir, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        entries.push(entry.path());
    }
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
