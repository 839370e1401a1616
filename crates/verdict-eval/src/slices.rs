//! Every metric again on each value of each slice attribute (e.g. image present vs missing).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::metrics::{compute_all, Metric, MetricValues, Outcomes};
use crate::prediction::Prediction;

/// Value shown for rows that lack the attribute.
pub const MISSING_VALUE: &str = "(not set)";

/// Metrics of the samples sharing one attribute value.
#[derive(Debug, Clone, Serialize)]
pub struct SliceValue {
    pub value: String,
    pub count: usize,
    /// Samples per true label in this slice, in label order.
    pub support: Vec<u64>,
    pub metrics: MetricValues,
}

/// All values of one attribute.
#[derive(Debug, Clone, Serialize)]
pub struct SliceReport {
    pub attribute: String,
    pub values: Vec<SliceValue>,
}

/// Groups `rows` (aligned with `outcomes`) by every slice attribute found in any row.
pub fn slice_metrics(
    rows: &[Prediction],
    outcomes: &Outcomes,
    metrics: &[Box<dyn Metric>],
) -> Vec<SliceReport> {
    let attributes: std::collections::BTreeSet<&String> =
        rows.iter().flat_map(|r| r.slices.keys()).collect();
    attributes
        .into_iter()
        .map(|attribute| {
            let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (index, row) in rows.iter().enumerate() {
                let value = row
                    .slices
                    .get(attribute)
                    .map_or(MISSING_VALUE, String::as_str);
                groups.entry(value).or_default().push(index);
            }
            let values = groups
                .into_iter()
                .map(|(value, indices)| {
                    let subset = outcomes.select(&indices);
                    SliceValue {
                        value: value.to_owned(),
                        count: indices.len(),
                        support: subset.label_counts().iter().map(|c| c.support()).collect(),
                        metrics: compute_all(metrics, &subset),
                    }
                })
                .collect();
            SliceReport {
                attribute: attribute.clone(),
                values,
            }
        })
        .collect()
}
