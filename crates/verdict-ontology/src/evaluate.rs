//! Evaluation per dimension: the multi-label metrics of `verdict-eval` on each dimension's
//! label set, hierarchical precision/recall, and exact match over all dimensions.
//!
//! Truth and prediction are both normalised with the task's hierarchy policy first, the same
//! step training targets went through.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use verdict_eval::metrics::{compute_all, standard_metrics, MetricValues, Outcomes, ZeroDivision};

use crate::constraint::Answer;
use crate::error::{OntologyError, Result};
use crate::hierarchy::{HierarchicalCounter, HierarchicalScores, HierarchyPolicy};
use crate::ontology::Ontology;

/// One sample's truth and prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredSample {
    pub sample_id: String,
    pub truth: BTreeMap<String, Vec<String>>,
    pub predicted: BTreeMap<String, Vec<String>>,
}

impl ScoredSample {
    pub fn new(sample_id: impl Into<String>, truth: &Answer, predicted: &Answer) -> Self {
        let map = |a: &Answer| a.dimensions.iter().cloned().collect();
        Self {
            sample_id: sample_id.into(),
            truth: map(truth),
            predicted: map(predicted),
        }
    }
}

/// Scores of one dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DimensionReport {
    pub labels: Vec<String>,
    /// `verdict-eval`'s multi-label metrics (subset accuracy, macro/micro/weighted/samples
    /// F1, precision, recall, Hamming loss).
    pub metrics: MetricValues,
    pub hierarchical: HierarchicalScores,
}

/// The evaluation of a set of samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OntologyReport {
    pub policy: HierarchyPolicy,
    pub samples: usize,
    /// Share of samples whose every dimension matches exactly.
    pub exact_match: Option<f64>,
    /// Hierarchical scores summed over all dimensions.
    pub hierarchical: HierarchicalScores,
    pub dimensions: BTreeMap<String, DimensionReport>,
}

/// Scores `samples` against the ontology under `policy`.
pub fn evaluate(
    ontology: &Ontology,
    policy: HierarchyPolicy,
    samples: &[ScoredSample],
) -> Result<OntologyReport> {
    let mut overall = HierarchicalCounter::default();
    let mut dimensions = BTreeMap::new();
    let mut exact = vec![true; samples.len()];
    for (d, (dimension, labels)) in ontology.label_sets().into_iter().enumerate() {
        let mut counter = HierarchicalCounter::default();
        let mut truth_rows = Vec::with_capacity(samples.len());
        let mut predicted_rows = Vec::with_capacity(samples.len());
        for (i, sample) in samples.iter().enumerate() {
            let get = |map: &BTreeMap<String, Vec<String>>| {
                map.get(&dimension).cloned().unwrap_or_default()
            };
            let context = |e: OntologyError| {
                OntologyError::Input(format!("sample {}: {e}", sample.sample_id))
            };
            let truth = policy
                .normalise(ontology, d, &get(&sample.truth))
                .map_err(context)?;
            let predicted = policy
                .normalise(ontology, d, &get(&sample.predicted))
                .map_err(context)?;
            counter.add(ontology, d, &truth, &predicted)?;
            exact[i] &= truth == predicted;
            let row = |set: &[String]| {
                labels
                    .iter()
                    .map(|l| set.contains(l))
                    .collect::<Vec<bool>>()
            };
            truth_rows.push(row(&truth));
            predicted_rows.push(row(&predicted));
        }
        let outcomes = Outcomes {
            labels: labels.clone(),
            truth: truth_rows,
            predicted: predicted_rows,
            scores: None,
            positive: None,
            zero_division: ZeroDivision::Zero,
            multi_label: true,
        };
        let metrics = compute_all(&standard_metrics(true, false), &outcomes);
        overall.merge(&counter);
        dimensions.insert(
            dimension,
            DimensionReport {
                labels,
                metrics,
                hierarchical: counter.scores(),
            },
        );
    }
    Ok(OntologyReport {
        policy,
        samples: samples.len(),
        exact_match: (!samples.is_empty())
            .then(|| exact.iter().filter(|e| **e).count() as f64 / samples.len() as f64),
        hierarchical: overall.scores(),
        dimensions,
    })
}

/// Reads back a report written as JSON (`metrics.json`), e.g. to put it on a model card later.
pub fn report_from_json(value: &serde_json::Value) -> Result<OntologyReport> {
    let bad = |what: &str| OntologyError::Input(format!("evaluation report: {what}"));
    let policy: HierarchyPolicy = serde_json::from_value(value["policy"].clone())
        .map_err(|e| bad(&format!("policy: {e}")))?;
    let hierarchical: HierarchicalScores = serde_json::from_value(value["hierarchical"].clone())
        .map_err(|e| bad(&format!("hierarchical: {e}")))?;
    let mut dimensions = BTreeMap::new();
    let entries = value["dimensions"]
        .as_object()
        .ok_or_else(|| bad("no dimensions"))?;
    for (name, d) in entries {
        let labels: Vec<String> = serde_json::from_value(d["labels"].clone())
            .map_err(|e| bad(&format!("{name}.labels: {e}")))?;
        let metrics = d["metrics"]
            .as_object()
            .ok_or_else(|| bad(&format!("{name}.metrics")))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_f64()))
            .collect();
        let scores: HierarchicalScores = serde_json::from_value(d["hierarchical"].clone())
            .map_err(|e| bad(&format!("{name}.hierarchical: {e}")))?;
        dimensions.insert(
            name.clone(),
            DimensionReport {
                labels,
                metrics: MetricValues(metrics),
                hierarchical: scores,
            },
        );
    }
    Ok(OntologyReport {
        policy,
        samples: value["samples"].as_u64().unwrap_or(0) as usize,
        exact_match: value["exact_match"].as_f64(),
        hierarchical,
        dimensions,
    })
}
