//! The example gallery: a few samples per outcome, most confident first, images embedded.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use base64::Engine;

use crate::evaluate::ModelEvaluation;
use crate::prediction::Prediction;

/// Longest side of an embedded thumbnail, in pixels.
const THUMBNAIL: u32 = 160;

/// An image cell: embedded, or the reason it is not.
pub enum Thumbnail {
    /// `data:image/png;base64,...`
    Embedded(String),
    Unavailable(String),
}

/// One shown sample.
pub struct GalleryItem<'a> {
    pub row: &'a Prediction,
    /// Probability the model gave its predicted label (single-label tasks).
    pub confidence: Option<f64>,
    pub thumbnail: Option<Thumbnail>,
}

/// Samples sharing one outcome.
pub struct GalleryGroup<'a> {
    pub title: String,
    pub total: usize,
    pub items: Vec<GalleryItem<'a>>,
}

/// Groups: TP / FP / FN / TN of the positive label for binary-policy tasks; correct samples per
/// label and the most frequent (true, predicted) confusions for multi-class tasks; exact and
/// partial matches for multi-label tasks.
pub fn gallery(model: &ModelEvaluation, per_group: usize) -> Vec<GalleryGroup<'_>> {
    let outcomes = &model.outcomes;
    let labels = &outcomes.labels;
    let mut groups: BTreeMap<(usize, String), Vec<usize>> = BTreeMap::new();
    let score_of = |index: usize, label: usize| outcomes.scores.as_ref().map(|s| s[index][label]);
    let mut confidence: Vec<Option<f64>> = vec![None; outcomes.len()];
    #[allow(clippy::needless_range_loop)] // `index` addresses four parallel arrays
    for index in 0..outcomes.len() {
        let key = if outcomes.multi_label {
            confidence[index] = None;
            if outcomes.truth[index] == outcomes.predicted[index] {
                (0, "exact match".to_owned())
            } else {
                (1, "partial or wrong match".to_owned())
            }
        } else if let Some(positive) = outcomes.positive {
            // Confidence in what was predicted, so "most confident first" ranks mistakes too.
            let predicted_label = outcomes.predicted[index]
                .iter()
                .position(|&b| b)
                .unwrap_or(positive);
            confidence[index] = score_of(index, predicted_label);
            let (t, p) = (
                outcomes.truth[index][positive],
                outcomes.predicted[index][positive],
            );
            let positive_name = &labels[positive];
            match (t, p) {
                (true, true) => (0, format!("true positives ({positive_name} caught)")),
                (false, true) => (
                    1,
                    format!("false positives (wrongly flagged {positive_name})"),
                ),
                (true, false) => (2, format!("false negatives ({positive_name} missed)")),
                (false, false) => (3, "true negatives".to_owned()),
            }
        } else {
            let t = outcomes.truth[index].iter().position(|&b| b).unwrap_or(0);
            let p = outcomes.predicted[index]
                .iter()
                .position(|&b| b)
                .unwrap_or(0);
            confidence[index] = score_of(index, p);
            if t == p {
                (t, format!("correct: {}", labels[t]))
            } else {
                (
                    labels.len() + t * labels.len() + p,
                    format!("true {} predicted {}", labels[t], labels[p]),
                )
            }
        };
        groups.entry(key).or_default().push(index);
    }
    groups
        .into_iter()
        .map(|((_, title), mut indices)| {
            let total = indices.len();
            indices.sort_by(|&a, &b| {
                let ca = confidence[a].unwrap_or(0.0);
                let cb = confidence[b].unwrap_or(0.0);
                cb.total_cmp(&ca)
                    .then_with(|| model.rows[a].sample_id.cmp(&model.rows[b].sample_id))
            });
            let items = indices
                .into_iter()
                .take(per_group)
                .map(|index| {
                    let row = &model.rows[index];
                    GalleryItem {
                        row,
                        confidence: confidence[index],
                        thumbnail: row
                            .image_path
                            .as_deref()
                            .map(|path| thumbnail(&model.directory, path)),
                    }
                })
                .collect();
            GalleryGroup {
                title,
                total,
                items,
            }
        })
        .collect()
}

/// Loads an image relative to the predictions file (or as given) and embeds a PNG thumbnail.
pub fn thumbnail(directory: &Path, path: &str) -> Thumbnail {
    let given = Path::new(path);
    let resolved = if given.is_absolute() || !directory.join(given).exists() {
        given.to_path_buf()
    } else {
        directory.join(given)
    };
    let image = match image::open(&resolved) {
        Ok(image) => image,
        Err(error) => {
            tracing::warn!("gallery image {} not embedded: {error}", resolved.display());
            return Thumbnail::Unavailable(format!("{path}: {error}"));
        }
    };
    let small = image.thumbnail(THUMBNAIL, THUMBNAIL);
    let mut png = Vec::new();
    if let Err(error) = small.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png) {
        return Thumbnail::Unavailable(format!("{path}: {error}"));
    }
    Thumbnail::Embedded(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&png)
    ))
}
