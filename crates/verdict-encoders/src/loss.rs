//! Contrastive objectives on an image-text logit matrix whose diagonal holds the true pairs.

use candle_core::{Tensor, D};
use verdict_models::nn::ops::log_softmax_last_dim;

use crate::{Error, Result};

/// Cross-entropy of each row against its diagonal entry, averaged.
fn diagonal_cross_entropy(logits: &Tensor) -> Result<Tensor> {
    let n = logits.dim(0)?;
    let log_probs = log_softmax_last_dim(logits)?;
    let eye = Tensor::eye(n, log_probs.dtype(), log_probs.device())?;
    Ok((log_probs * eye)?.sum_all()?.affine(-1.0 / n as f64, 0.0)?)
}

/// CLIP's symmetric InfoNCE: mean of image->text and text->image cross-entropy.
///
/// # Shapes
/// `logits`: `(n, n)` image-by-text -> scalar.
pub fn info_nce_loss(logits: &Tensor) -> Result<Tensor> {
    let (n, m) = logits.dims2()?;
    if n != m || n == 0 {
        return Err(Error::Input(format!(
            "InfoNCE needs a square, non-empty logit matrix, got {n}x{m}"
        )));
    }
    let image_to_text = diagonal_cross_entropy(logits)?;
    let text_to_image = diagonal_cross_entropy(&logits.t()?.contiguous()?)?;
    Ok(((image_to_text + text_to_image)? * 0.5)?)
}

/// `log(1 + exp(x))`, stable for large |x| and differentiable (`relu` and `abs` have backward).
pub fn softplus(xs: &Tensor) -> Result<Tensor> {
    let tail = (xs.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok((xs.relu()? + tail)?)
}

/// SigLIP's pairwise sigmoid loss: every pair is a binary problem, positive on the diagonal;
/// `-sum(log sigmoid(label * logit)) / n` with labels `+1` / `-1`.
///
/// # Shapes
/// `logits`: `(n, n)` -> scalar.
pub fn sigmoid_loss(logits: &Tensor) -> Result<Tensor> {
    let (n, m) = logits.dims2()?;
    if n != m || n == 0 {
        return Err(Error::Input(format!(
            "the sigmoid loss needs a square, non-empty logit matrix, got {n}x{m}"
        )));
    }
    let eye = Tensor::eye(n, logits.dtype(), logits.device())?;
    let labels = ((eye * 2.0)? - 1.0)?;
    // -log sigmoid(z) = softplus(-z)
    let per_pair = softplus(&(labels * logits)?.neg()?)?;
    Ok(per_pair.sum_all()?.affine(1.0 / n as f64, 0.0)?)
}

/// Mean binary cross-entropy with logits, for multi-label heads.
///
/// # Shapes
/// `logits`, `targets` (0/1): `(n, k)` -> scalar.
pub fn binary_cross_entropy_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    // softplus(z) - y * z
    let loss = (softplus(logits)? - (targets * logits)?)?;
    Ok(loss.mean_all()?)
}

/// Mean softmax cross-entropy against class indices.
///
/// # Shapes
/// `logits`: `(n, k)`, `targets`: `(n,)` u32 -> scalar.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let log_probs = log_softmax_last_dim(logits)?;
    let picked = log_probs.gather(&targets.unsqueeze(1)?, D::Minus1)?;
    Ok(picked.mean_all()?.neg()?)
}
