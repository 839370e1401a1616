//! Hierarchy consistency: how a label set relates to the concepts above its labels.
//!
//! The same [`HierarchyPolicy::normalise`] runs on training targets, on decoded predictions and
//! on both sides of an evaluation, so a model is never trained on one convention and scored on
//! another.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{OntologyError, Result};
use crate::ontology::Ontology;

/// How ancestors of a label are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HierarchyPolicy {
    /// A label implies every concept above it (up to, not including, the dimension root):
    /// `Addition` also yields `Arithmetic`.
    #[default]
    AncestorsImplied,
    /// Only the most specific labels are kept: a concept is dropped when one of its
    /// descendants is in the set (`{Arithmetic, Addition}` becomes `{Addition}`).
    LeavesOnly,
}

impl HierarchyPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AncestorsImplied => "ancestors-implied",
            Self::LeavesOnly => "leaves-only",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ancestors-implied" => Some(Self::AncestorsImplied),
            "leaves-only" => Some(Self::LeavesOnly),
            _ => None,
        }
    }

    /// The normalised label set of dimension `dimension`, as concept indices in ontology order.
    /// Errors on names that are not labels of that dimension.
    pub fn normalise_indices(
        self,
        ontology: &Ontology,
        dimension: usize,
        names: &[String],
    ) -> Result<Vec<usize>> {
        let dimension_name = &ontology.concept(ontology.dimension_root(dimension)).name;
        let mut set = BTreeSet::new();
        for name in names {
            let concept = ontology
                .find(name)
                .filter(|&c| ontology.dimension_of(c) == Some(dimension))
                .ok_or_else(|| {
                    OntologyError::Input(format!(
                        "`{name}` is not a label of dimension `{dimension_name}`"
                    ))
                })?;
            set.insert(concept);
        }
        Ok(match self {
            Self::AncestorsImplied => {
                let mut closed = set.clone();
                for &c in &set {
                    closed.extend(
                        ontology
                            .ancestors(c)
                            .into_iter()
                            .filter(|&a| ontology.dimension_of(a) == Some(dimension)),
                    );
                }
                closed.into_iter().collect()
            }
            Self::LeavesOnly => set
                .iter()
                .copied()
                .filter(|&c| !set.iter().any(|&other| ontology.is_ancestor(c, other)))
                .collect(),
        })
    }

    /// The normalised label set as names, in ontology order.
    pub fn normalise(
        self,
        ontology: &Ontology,
        dimension: usize,
        names: &[String],
    ) -> Result<Vec<String>> {
        Ok(self
            .normalise_indices(ontology, dimension, names)?
            .into_iter()
            .map(|c| ontology.concept(c).name.clone())
            .collect())
    }
}

/// Micro-averaged hierarchical precision and recall (Kiritchenko et al.): both sets are
/// augmented with all their ancestors inside the dimension, then
/// `hP = sum |P^ & T^| / sum |P^|`, `hR = sum |P^ & T^| / sum |T^|`, summed over samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HierarchicalScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Sum over samples of the augmented intersection, prediction and truth sizes.
    pub overlap: usize,
    pub predicted: usize,
    pub truth: usize,
}

/// Accumulates [`HierarchicalScores`] over samples.
#[derive(Debug, Clone, Default)]
pub struct HierarchicalCounter {
    overlap: usize,
    predicted: usize,
    truth: usize,
}

impl HierarchicalCounter {
    /// Adds one sample's label sets (names, any policy) of dimension `dimension`.
    pub fn add(
        &mut self,
        ontology: &Ontology,
        dimension: usize,
        truth: &[String],
        predicted: &[String],
    ) -> Result<()> {
        let augment = |names: &[String]| -> Result<BTreeSet<usize>> {
            Ok(HierarchyPolicy::AncestorsImplied
                .normalise_indices(ontology, dimension, names)?
                .into_iter()
                .collect())
        };
        let truth = augment(truth)?;
        let predicted = augment(predicted)?;
        self.overlap += truth.intersection(&predicted).count();
        self.predicted += predicted.len();
        self.truth += truth.len();
        Ok(())
    }

    /// Merges another counter (e.g. a dimension's into the overall one).
    pub fn merge(&mut self, other: &HierarchicalCounter) {
        self.overlap += other.overlap;
        self.predicted += other.predicted;
        self.truth += other.truth;
    }

    /// Scores; a zero denominator gives 0 (as scikit-learn's `zero_division=0`).
    pub fn scores(&self) -> HierarchicalScores {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(self.overlap, self.predicted);
        let recall = ratio(self.overlap, self.truth);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        HierarchicalScores {
            precision,
            recall,
            f1,
            overlap: self.overlap,
            predicted: self.predicted,
            truth: self.truth,
        }
    }
}
