//! Zero-shot use of OpenNSFW on a task's labels.
//!
//! The model knows one distinction, nsfw against everything else. So the mapping is:
//! the task's label named `nsfw` gets p(nsfw), and the remaining `1 - p(nsfw)` is split evenly
//! over the other labels. For a binary task (`safe`/`nsfw`, `sfw`/`nsfw`, ...) this is the
//! model's own answer. For a task with more labels (say `safe`, `grey_area`, `nsfw`), the
//! even split is an uninformed prior, not an estimate: zero-shot only separates nsfw from the
//! rest, and labels such as `grey_area` get real probabilities only from a head trained on
//! [`crate::NsfwModel::features`]. A task without an `nsfw` label cannot be scored zero-shot.

use image::DynamicImage;

use crate::error::{OnnxError, Result};
use crate::nsfw::NsfwModel;

/// The task label that receives p(nsfw).
pub const NSFW_LABEL: &str = "nsfw";

/// p(nsfw) per image, in input order.
pub fn nsfw_probabilities(model: &NsfwModel, images: &[DynamicImage]) -> Result<Vec<f32>> {
    Ok(model
        .predict(images)?
        .into_iter()
        .map(|[_, nsfw]| nsfw)
        .collect())
}

/// Maps one p(nsfw) onto the task's labels (same order as `labels`); see the module docs.
pub fn label_probabilities<S: AsRef<str>>(p_nsfw: f32, labels: &[S]) -> Result<Vec<f32>> {
    let position = labels
        .iter()
        .position(|label| label.as_ref() == NSFW_LABEL)
        .ok_or_else(|| {
            OnnxError::Labels(format!(
                "OpenNSFW scores zero-shot only tasks with a `{NSFW_LABEL}` label; train a head \
                 on its features for other label sets"
            ))
        })?;
    if labels.len() < 2 {
        return Err(OnnxError::Labels(format!(
            "a task needs `{NSFW_LABEL}` and at least one other label"
        )));
    }
    let p_nsfw = p_nsfw.clamp(0.0, 1.0);
    let rest = (1.0 - p_nsfw) / (labels.len() - 1) as f32;
    Ok((0..labels.len())
        .map(|index| if index == position { p_nsfw } else { rest })
        .collect())
}

/// Zero-shot probabilities over the task's labels, one row per image.
pub fn zero_shot<S: AsRef<str>>(
    model: &NsfwModel,
    images: &[DynamicImage],
    labels: &[S],
) -> Result<Vec<Vec<f32>>> {
    // Check the labels before spending a forward pass.
    label_probabilities(0.0, labels)?;
    nsfw_probabilities(model, images)?
        .into_iter()
        .map(|p| label_probabilities(p, labels))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_task_gets_the_model_answer() {
        assert_eq!(
            label_probabilities(0.25, &["safe", "nsfw"]).unwrap(),
            vec![0.75, 0.25]
        );
    }

    #[test]
    fn other_labels_share_the_rest_evenly() {
        let p = label_probabilities(0.4, &["nsfw", "safe", "grey_area"]).unwrap();
        assert_eq!(p, vec![0.4, 0.3, 0.3]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn tasks_without_nsfw_are_refused() {
        let error = label_probabilities(0.4, &["spam", "ham"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("`nsfw`"), "{error}");
        assert!(label_probabilities(0.4, &["nsfw"]).is_err());
    }
}
