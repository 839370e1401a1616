//! The one input every metric reads.

/// Per-sample indicator rows over the task's labels, plus optional scores.
///
/// # Shapes
/// - `truth`, `predicted`: `[samples][labels]`
/// - `scores`: `[samples][labels]` when present
#[derive(Debug, Clone)]
pub struct Outcomes {
    pub labels: Vec<String>,
    pub truth: Vec<Vec<bool>>,
    pub predicted: Vec<Vec<bool>>,
    pub scores: Option<Vec<Vec<f64>>>,
    /// The label ranking metrics (AUPRC, ROC-AUC) score; binary-policy tasks only.
    pub positive: Option<usize>,
    pub zero_division: super::ZeroDivision,
    /// Multi-label tasks score each label as its own dimension; single-label tasks are one-hot.
    pub multi_label: bool,
}

/// True positives, false positives and false negatives of one label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelCounts {
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
}

impl LabelCounts {
    /// Samples that truly carry the label.
    pub fn support(&self) -> u64 {
        self.true_positives + self.false_negatives
    }
    /// Samples predicted to carry the label.
    pub fn predicted(&self) -> u64 {
        self.true_positives + self.false_positives
    }
}

impl Outcomes {
    /// Single-label outcomes from label indices.
    pub fn from_indices(labels: Vec<String>, truth: &[usize], predicted: &[usize]) -> Outcomes {
        let one_hot = |index: usize| (0..labels.len()).map(|l| l == index).collect();
        Outcomes {
            truth: truth.iter().map(|&i| one_hot(i)).collect(),
            predicted: predicted.iter().map(|&i| one_hot(i)).collect(),
            labels,
            scores: None,
            positive: None,
            zero_division: super::ZeroDivision::Zero,
            multi_label: false,
        }
    }

    pub fn len(&self) -> usize {
        self.truth.len()
    }

    pub fn is_empty(&self) -> bool {
        self.truth.is_empty()
    }

    /// Counts per label, in label order.
    pub fn label_counts(&self) -> Vec<LabelCounts> {
        let mut counts = vec![LabelCounts::default(); self.labels.len()];
        for (truth, predicted) in self.truth.iter().zip(&self.predicted) {
            for (label, count) in counts.iter_mut().enumerate() {
                match (truth[label], predicted[label]) {
                    (true, true) => count.true_positives += 1,
                    (false, true) => count.false_positives += 1,
                    (true, false) => count.false_negatives += 1,
                    (false, false) => {}
                }
            }
        }
        counts
    }

    /// Counts per label over the samples at `indices` (repeats count again), without copying rows.
    pub fn label_counts_at(&self, indices: &[usize]) -> Vec<LabelCounts> {
        let mut counts = vec![LabelCounts::default(); self.labels.len()];
        for &i in indices {
            for (label, count) in counts.iter_mut().enumerate() {
                match (self.truth[i][label], self.predicted[i][label]) {
                    (true, true) => count.true_positives += 1,
                    (false, true) => count.false_positives += 1,
                    (true, false) => count.false_negatives += 1,
                    (false, false) => {}
                }
            }
        }
        counts
    }

    /// Truth and score of the positive label, when the task has one and scores exist.
    pub fn positive_scores(&self) -> Option<(Vec<bool>, Vec<f64>)> {
        let positive = self.positive?;
        let scores = self.scores.as_ref()?;
        let truth = self.truth.iter().map(|row| row[positive]).collect();
        let scores = scores.iter().map(|row| row[positive]).collect();
        Some((truth, scores))
    }

    /// The subset of samples at `indices` (slices, bootstrap resamples).
    pub fn select(&self, indices: &[usize]) -> Outcomes {
        Outcomes {
            labels: self.labels.clone(),
            truth: indices.iter().map(|&i| self.truth[i].clone()).collect(),
            predicted: indices.iter().map(|&i| self.predicted[i].clone()).collect(),
            scores: self
                .scores
                .as_ref()
                .map(|s| indices.iter().map(|&i| s[i].clone()).collect()),
            positive: self.positive,
            zero_division: self.zero_division,
            multi_label: self.multi_label,
        }
    }

    /// Index of the single true label of each sample (single-label tasks).
    pub fn true_indices(&self) -> Vec<usize> {
        self.truth.iter().map(|row| first_true(row)).collect()
    }

    /// Index of the single predicted label of each sample (single-label tasks).
    pub fn predicted_indices(&self) -> Vec<usize> {
        self.predicted.iter().map(|row| first_true(row)).collect()
    }
}

fn first_true(row: &[bool]) -> usize {
    row.iter().position(|&b| b).unwrap_or(0)
}
