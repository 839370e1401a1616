//! Dataset statistics: class balance against collection targets, counts per split, and the
//! distribution of annotator agreement.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::manifest::{LabelValue, Sample, Split};
use crate::task::TaskSpec;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub total: usize,
    /// label -> (count, collection target)
    pub labels: BTreeMap<String, (usize, Option<u64>)>,
    /// split name -> label -> count
    pub splits: BTreeMap<String, BTreeMap<String, usize>>,
    /// Ten bins of |label_confidence| over [0, 1]; the last bin includes 1.
    pub confidence_histogram: [usize; 10],
    pub without_confidence: usize,
    pub with_text: usize,
    pub with_images: usize,
    pub with_files: usize,
}

fn label_names(label: &Option<LabelValue>) -> Vec<String> {
    match label {
        Some(LabelValue::Single(name)) => vec![name.clone()],
        Some(LabelValue::PerDimension(map)) => map
            .iter()
            .flat_map(|(dim, labels)| labels.iter().map(move |l| format!("{dim}:{l}")))
            .collect(),
        None => vec!["(unlabelled)".into()],
    }
}

pub fn compute(samples: &[Sample], task: &TaskSpec) -> Stats {
    let mut labels: BTreeMap<String, (usize, Option<u64>)> = BTreeMap::new();
    match task.kind {
        crate::task::TaskKind::MultiLabel => {
            for dimension in &task.dimensions {
                for label in &dimension.labels {
                    labels.insert(
                        format!("{}:{}", dimension.name, label.name),
                        (0, task.collection.get(&label.name).copied()),
                    );
                }
            }
        }
        _ => {
            for label in &task.labels {
                labels.insert(
                    label.name.clone(),
                    (0, task.collection.get(&label.name).copied()),
                );
            }
        }
    }
    let mut splits: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut histogram = [0usize; 10];
    let mut without_confidence = 0;
    for sample in samples {
        let split = sample.split.map_or("(unsplit)", Split::name).to_string();
        for name in label_names(&sample.label) {
            labels.entry(name.clone()).or_insert((0, None)).0 += 1;
            *splits
                .entry(split.clone())
                .or_default()
                .entry(name)
                .or_default() += 1;
        }
        match sample.label_confidence {
            Some(confidence) if confidence.is_finite() => {
                let bin = ((confidence.abs() * 10.0).floor() as usize).min(9);
                histogram[bin] += 1;
            }
            _ => without_confidence += 1,
        }
    }
    Stats {
        total: samples.len(),
        labels,
        splits,
        confidence_histogram: histogram,
        without_confidence,
        with_text: samples.iter().filter(|s| s.text.is_some()).count(),
        with_images: samples.iter().filter(|s| !s.images.is_empty()).count(),
        with_files: samples.iter().filter(|s| !s.files.is_empty()).count(),
    }
}

impl Stats {
    /// A plain-text report for the terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} samples ({} with text, {} with images, {} with files)",
            self.total, self.with_text, self.with_images, self.with_files
        );
        let width = self
            .labels
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = writeln!(
            out,
            "\n{:<width$}  {:>7}  {:>7}  {:>8}",
            "label", "count", "target", "of target"
        );
        for (label, (count, target)) in &self.labels {
            let (target_text, share) = match target {
                Some(t) if *t > 0 => (
                    t.to_string(),
                    format!("{:.0}%", 100.0 * *count as f64 / *t as f64),
                ),
                Some(t) => (t.to_string(), "-".into()),
                None => ("-".into(), "-".into()),
            };
            let _ = writeln!(
                out,
                "{label:<width$}  {count:>7}  {target_text:>7}  {share:>8}"
            );
        }
        if !self.splits.is_empty() {
            let names: Vec<&String> = self.labels.keys().collect();
            let _ = write!(out, "\n{:<12}", "split");
            for name in &names {
                let _ = write!(out, "  {:>w$}", name, w = name.len().max(5));
            }
            let _ = writeln!(out, "  {:>7}", "total");
            for (split, counts) in &self.splits {
                let _ = write!(out, "{split:<12}");
                for name in &names {
                    let _ = write!(
                        out,
                        "  {:>w$}",
                        counts.get(*name).unwrap_or(&0),
                        w = name.len().max(5)
                    );
                }
                let _ = writeln!(out, "  {:>7}", counts.values().sum::<usize>());
            }
        }
        let with_confidence: usize = self.confidence_histogram.iter().sum();
        if with_confidence > 0 {
            let _ = writeln!(
                out,
                "\n|label_confidence|  ({} samples without votes)",
                self.without_confidence
            );
            let peak = *self.confidence_histogram.iter().max().unwrap_or(&1).max(&1);
            for (bin, count) in self.confidence_histogram.iter().enumerate() {
                let bar = "#".repeat((40 * count).div_ceil(peak));
                let _ = writeln!(
                    out,
                    "[{:.1}, {:.1}{} {count:>7} {bar}",
                    bin as f64 / 10.0,
                    (bin + 1) as f64 / 10.0,
                    if bin == 9 { "]" } else { ")" }
                );
            }
        }
        out
    }
}
