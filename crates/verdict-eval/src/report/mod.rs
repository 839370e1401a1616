//! The self-contained HTML report: inline CSS, plots as inline SVG, images as data URIs, so the
//! file opens anywhere without a network.

mod gallery;
mod html;
mod plots;
mod sections;

use std::fmt::Write;

use crate::error::Result;
use crate::evaluate::EvalSummary;
use crate::spec::EvalSpec;

pub use gallery::{gallery, thumbnail, GalleryGroup, GalleryItem, Thumbnail};
pub use html::escape;
pub use plots::{confusion_heatmap, precision_recall_steps, reliability_plot, unit_plot, UnitPlot};

/// Renders the whole report page.
pub fn render(summary: &EvalSummary, spec: &EvalSpec) -> Result<String> {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Evaluation: {task}</title><style>{style}</style></head><body>",
        task = html::escape(&summary.task),
        style = html::STYLE
    );
    let _ = write!(
        page,
        "<header><h1>Evaluation report: {task}</h1><p>{kind} task · labels: {labels} · {models} model(s) · {samples} samples</p><nav>",
        task = html::escape(&summary.task),
        kind = match summary.kind {
            crate::spec::TaskKind::MultiClass => "multi-class",
            crate::spec::TaskKind::BinaryPolicy => "binary-policy",
            crate::spec::TaskKind::MultiLabel => "multi-label",
        },
        labels = html::escape(&summary.labels.join(", ")),
        models = summary.models.len(),
        samples = summary.models.first().map_or(0, |m| m.samples),
    );
    if summary.comparison.is_some() {
        page.push_str("<a href=\"#comparison\">comparison</a>");
    }
    for (index, model) in summary.models.iter().enumerate() {
        let _ = write!(
            page,
            "<a href=\"#model-{index}\">{}</a>",
            html::escape(&model.model_id)
        );
    }
    page.push_str("</nav></header><main>");
    if let Some(comparison) = &summary.comparison {
        page.push_str(&sections::comparison(comparison));
    }
    for (index, model) in summary.models.iter().enumerate() {
        page.push_str(&sections::model(index, model, spec)?);
    }
    page.push_str("</main></body></html>\n");
    Ok(page)
}
