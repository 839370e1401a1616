//! `ontology.toml`: which ontology file, which dimensions, which hierarchy policy, and how the
//! training data is built. Commands take either this file or a bare RDF file (then every
//! top-level concept is a dimension and the policy is `ancestors-implied`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{OntologyError, Result};
use crate::hierarchy::HierarchyPolicy;
use crate::ki::KiConfig;
use crate::ontology::Ontology;
use crate::sft::MixConfig;

/// The labelling setup of an ontology task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OntologySpec {
    /// RDF file, relative to the spec file.
    pub ontology: PathBuf,
    /// Top-level concepts used as answer dimensions, in answer order; default: all roots.
    #[serde(default)]
    pub dimensions: Option<Vec<String>>,
    #[serde(default)]
    pub policy: HierarchyPolicy,
    /// Most labels per dimension in an answer.
    #[serde(default = "default_max_labels")]
    pub max_labels: usize,
    #[serde(default)]
    pub ki: KiConfig,
    #[serde(default)]
    pub mix: MixConfig,
    /// Share of labelled images held out for validation.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
}

fn default_max_labels() -> usize {
    3
}

fn default_val_fraction() -> f64 {
    0.2
}

impl OntologySpec {
    /// A spec for a bare RDF file with every default.
    pub fn for_file(path: &Path) -> Self {
        Self {
            ontology: path.to_path_buf(),
            dimensions: None,
            policy: HierarchyPolicy::default(),
            max_labels: default_max_labels(),
            ki: KiConfig::default(),
            mix: MixConfig::default(),
            val_fraction: default_val_fraction(),
        }
    }

    /// Reads `ontology.toml`, or wraps an RDF file in a default spec.
    pub fn load(path: &Path) -> Result<Self> {
        let is_toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        if !is_toml {
            return Ok(Self::for_file(path));
        }
        let text = std::fs::read_to_string(path).map_err(|e| OntologyError::io(path, e))?;
        let mut spec: OntologySpec = toml::from_str(&text).map_err(|e| OntologyError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if spec.ontology.is_relative() {
            spec.ontology = path
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join(&spec.ontology);
        }
        if spec.max_labels == 0 || !(0.0..1.0).contains(&spec.val_fraction) {
            return Err(OntologyError::Config {
                path: path.to_path_buf(),
                message: "max_labels must be positive and val_fraction in [0, 1)".into(),
            });
        }
        Ok(spec)
    }

    /// Loads and checks the ontology the spec names.
    pub fn load_ontology(&self) -> Result<Ontology> {
        Ontology::load(&self.ontology, self.dimensions.as_deref())
    }
}

/// Checks that a `multi_label` task file lists exactly the ontology's dimensions and labels
/// (any order), so `verdict data` and the ontology commands agree on the label sets.
pub fn check_task(task: &verdict_core::TaskSpec, ontology: &Ontology) -> Result<()> {
    let mismatch = |message: String| OntologyError::Config {
        path: ontology.path.clone(),
        message,
    };
    if task.kind != verdict_core::task::TaskKind::MultiLabel {
        return Err(mismatch(format!(
            "task `{}` is not a multi_label task",
            task.name
        )));
    }
    let sets = ontology.label_sets();
    for (dimension, labels) in &sets {
        let Some(spec) = task.dimension(dimension) else {
            return Err(mismatch(format!(
                "task `{}` has no dimension `{dimension}`",
                task.name
            )));
        };
        let mut theirs: Vec<&str> = spec.labels.iter().map(|l| l.name.as_str()).collect();
        let mut ours: Vec<&str> = labels.iter().map(String::as_str).collect();
        theirs.sort_unstable();
        ours.sort_unstable();
        if theirs != ours {
            return Err(mismatch(format!(
                "dimension `{dimension}`: the task lists {theirs:?}, the ontology {ours:?}"
            )));
        }
    }
    if let Some(extra) = task
        .dimensions
        .iter()
        .find(|d| !sets.iter().any(|(name, _)| *name == d.name))
    {
        return Err(mismatch(format!(
            "task dimension `{}` is not a dimension of the ontology",
            extra.name
        )));
    }
    Ok(())
}

/// `[[dimensions]]` tables for a task file, with concept labels as descriptions.
pub fn task_dimensions_toml(ontology: &Ontology) -> String {
    let mut out = String::new();
    for d in 0..ontology.dimension_count() {
        let root = ontology.concept(ontology.dimension_root(d));
        out.push_str(&format!(
            "[[dimensions]]\nname = {}\ndescription = {}\nlabels = [\n",
            toml_string(&root.name),
            toml_string(root.definition.as_deref().unwrap_or(&root.label))
        ));
        for c in ontology.dimension_labels(d) {
            let concept = ontology.concept(c);
            out.push_str(&format!(
                "  {{ name = {}, description = {} }},\n",
                toml_string(&concept.name),
                toml_string(concept.definition.as_deref().unwrap_or(&concept.label))
            ));
        }
        out.push_str("]\n\n");
    }
    out
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}
