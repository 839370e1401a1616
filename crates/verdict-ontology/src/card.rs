//! The model card: `README.md` in the model directory saying which ontology (version and
//! checksum) the model labels with, what it was trained and evaluated on, its scores and its
//! intended use.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::error::{OntologyError, Result};
use crate::evaluate::OntologyReport;
use crate::hierarchy::HierarchyPolicy;
use crate::ki::KiCounts;
use crate::ontology::Ontology;

/// First line of every card written here; a `README.md` without it is someone else's and is
/// only replaced when asked.
pub const CARD_MARKER: &str = "<!-- verdict ontology model card -->";

/// What the card reports.
#[derive(Debug, Clone)]
pub struct ModelCard<'a> {
    pub model_name: String,
    pub ontology: &'a Ontology,
    pub policy: HierarchyPolicy,
    /// Knowledge-infusion question counts, when such data was used.
    pub ki: Option<&'a KiCounts>,
    /// Labelled images used for training.
    pub train_images: Option<usize>,
    /// Where the training data came from, in words.
    pub data_note: String,
    pub report: Option<&'a OntologyReport>,
}

fn fmt(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

impl ModelCard<'_> {
    /// The card as Markdown.
    pub fn render(&self) -> String {
        let o = self.ontology;
        let mut md = String::new();
        let _ = writeln!(md, "{CARD_MARKER}\n# {}\n", self.model_name);
        let _ = writeln!(
            md,
            "Labels images with concepts of an ontology, one JSON list per dimension, e.g. `{{\"{}\": [\"…\"]}}`.\n",
            o.dimension_names().first().copied().unwrap_or("Dimension")
        );
        let _ = writeln!(md, "## Ontology\n");
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| file | `{}` |", o.path.display());
        let _ = writeln!(md, "| IRI | {} |", o.iri.as_deref().unwrap_or("(none)"));
        let _ = writeln!(
            md,
            "| version | {} |",
            o.version.as_deref().unwrap_or("(none)")
        );
        let _ = writeln!(md, "| sha256 | `{}` |", o.sha256);
        let _ = writeln!(md, "| hierarchy policy | `{}` |", self.policy.as_str());
        let _ = writeln!(md, "| concepts | {} |\n", o.concepts().len());
        let _ = writeln!(md, "| dimension | labels |\n|---|---|");
        for (dimension, labels) in o.label_sets() {
            let _ = writeln!(md, "| {dimension} | {} |", labels.join(", "));
        }
        let _ = writeln!(md, "\n## Training data\n");
        if !self.data_note.is_empty() {
            let _ = writeln!(md, "{}\n", self.data_note);
        }
        if let Some(n) = self.train_images {
            let _ = writeln!(md, "- labelled images (train): {n}");
        }
        if let Some(ki) = self.ki {
            let total: usize = ki.train.values().sum();
            let kinds: Vec<String> = ki.train.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(
                md,
                "- knowledge-infusion questions (train): {total} ({}); {} duplicates removed",
                kinds.join(", "),
                ki.duplicates_removed
            );
        }
        let _ = writeln!(md, "\n## Evaluation\n");
        match self.report {
            None => {
                let _ = writeln!(md, "Not evaluated.");
            }
            Some(report) => {
                let _ = writeln!(
                    md,
                    "{} labelled images; labels normalised with `{}` on both sides.\n",
                    report.samples,
                    report.policy.as_str()
                );
                let _ = writeln!(
                    md,
                    "- exact match (all dimensions): {}\n- hierarchical precision / recall / F1: {} / {} / {}\n",
                    fmt(report.exact_match),
                    fmt(Some(report.hierarchical.precision)),
                    fmt(Some(report.hierarchical.recall)),
                    fmt(Some(report.hierarchical.f1)),
                );
                let _ = writeln!(
                    md,
                    "| dimension | subset accuracy | micro F1 | macro F1 | hierarchical P | hierarchical R |\n|---|---|---|---|---|---|"
                );
                for (dimension, d) in &report.dimensions {
                    let _ = writeln!(
                        md,
                        "| {dimension} | {} | {} | {} | {} | {} |",
                        fmt(d.metrics.get("subset_accuracy")),
                        fmt(d.metrics.get("micro_f1")),
                        fmt(d.metrics.get("macro_f1")),
                        fmt(Some(d.hierarchical.precision)),
                        fmt(Some(d.hierarchical.recall)),
                    );
                }
            }
        }
        let _ = writeln!(
            md,
            "\n## Intended use\n\nSuggesting ontology concepts for material like the training images, \
             for a person to confirm. Answers are constrained to concept names of this ontology \
             version; a changed ontology (other checksum) needs re-training and re-evaluation. \
             Scores above hold for the evaluation images only; they say nothing about material \
             unlike them."
        );
        md
    }

    /// Writes `README.md` into `model_dir` (temp file + rename). An existing README that this
    /// module did not write is kept unless `replace_foreign` is set.
    pub fn write(&self, model_dir: &Path, replace_foreign: bool) -> Result<()> {
        let path = model_dir.join("README.md");
        if path.exists() && !replace_foreign {
            let existing =
                std::fs::read_to_string(&path).map_err(|e| OntologyError::io(&path, e))?;
            if !existing.starts_with(CARD_MARKER) {
                return Err(OntologyError::Input(format!(
                    "{} exists and was not written by verdict; pass the replace option to overwrite it",
                    path.display()
                )));
            }
        }
        let text = self.render();
        crate::sft::write_atomic(&path, |file| {
            file.write_all(text.as_bytes())
                .map_err(|e| OntologyError::io(&path, e))
        })
    }
}
