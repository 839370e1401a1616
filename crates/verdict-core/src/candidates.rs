//! Candidate base models of a task (`[[candidates]]`) and the fine-tuning of the chosen one
//! (`[finetune]`).
//!
//! `verdict run` scores every candidate zero-shot (or with a cheap trained head where the
//! model cannot answer the task's labels by itself) on val, test and the sealed benchmark,
//! picks the best by benchmark macro-F1 and, when `[finetune]` is enabled and the winner can
//! be fine-tuned, trains a LoRA adapter on it. Candidates name local checkpoint directories,
//! so a team with real Qwen3-VL or CLIP checkpoints on disk lists them here; `opennsfw` is a
//! named default that `verdict models fetch` obtains.
//!
//! ```toml
//! [[candidates]]
//! name = "qwen3-vl-2b"
//! kind = "qwen3_vl"
//! path = "/models/Qwen3-VL-2B-Instruct"   # relative paths are relative to the task file
//! max_samples = 200                        # per split, for slow models on CPU
//!
//! [finetune]
//! enabled = true
//! epochs = 1
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a candidate is and how it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateKind {
    /// The pretrained OpenNSFW classifier (named default): p(nsfw) mapped onto the labels when
    /// the task has an `nsfw` label, and a logistic-regression head on its features.
    Opennsfw,
    /// A Qwen3-VL checkpoint directory: label scoring from the answer's first tokens.
    Qwen3Vl,
    /// A CLIP checkpoint directory: zero-shot by label prompts.
    Clip,
    /// A SigLIP checkpoint directory: zero-shot by label prompts.
    Siglip,
}

impl CandidateKind {
    /// Whether the candidate reads a checkpoint directory (`path` is required).
    pub fn needs_path(self) -> bool {
        !matches!(self, CandidateKind::Opennsfw)
    }

    /// Whether `verdict run` can fine-tune the candidate with LoRA when it wins.
    pub fn can_finetune(self) -> bool {
        matches!(self, CandidateKind::Qwen3Vl)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateSpec {
    /// Run folder and model id in reports (`runs/<name>/`).
    pub name: String,
    pub kind: CandidateKind,
    /// Checkpoint directory, relative to the task file when not absolute.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Score at most this many samples per split (the first ones in manifest order), so a
    /// large model on CPU stays affordable. Every candidate must see the same samples to be
    /// compared, so candidates with a cap are compared on the capped rows only.
    #[serde(default)]
    pub max_samples: Option<usize>,
    /// Instruction text for Qwen3-VL candidates (default: the task's labels and description).
    #[serde(default)]
    pub prompt: Option<String>,
}

impl CandidateSpec {
    /// The checkpoint directory, resolved against the task file's folder.
    pub fn resolved_path(&self, task_dir: &Path) -> Option<PathBuf> {
        self.path.as_ref().map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                task_dir.join(p)
            }
        })
    }
}

/// LoRA fine-tuning of the selected candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneSpec {
    #[serde(default)]
    pub enabled: bool,
    /// Fine-tune this candidate instead of the benchmark winner.
    #[serde(default)]
    pub candidate: Option<String>,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Peak learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// LoRA rank.
    #[serde(default = "default_rank")]
    pub rank: usize,
    /// Use only the first N train and val rows.
    #[serde(default)]
    pub max_rows: Option<usize>,
}

fn default_epochs() -> usize {
    1
}
fn default_lr() -> f64 {
    2e-4
}
fn default_rank() -> usize {
    16
}

impl Default for FinetuneSpec {
    fn default() -> Self {
        FinetuneSpec {
            enabled: false,
            candidate: None,
            epochs: default_epochs(),
            lr: default_lr(),
            rank: default_rank(),
            max_rows: None,
        }
    }
}

/// Checks names, paths and the fine-tuning target; returns a message naming the field.
pub fn check(candidates: &[CandidateSpec], finetune: &FinetuneSpec) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for (index, candidate) in candidates.iter().enumerate() {
        let name = candidate.name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "candidates[{index}].name `{}` must be non-empty letters, digits, `-`, `_` or `.` (it names a folder)",
                candidate.name
            ));
        }
        if matches!(name, "baseline" | "finetuned") {
            return Err(format!(
                "candidates[{index}].name `{name}` is reserved for Verdict's own runs"
            ));
        }
        if !seen.insert(name) {
            return Err(format!("candidates: the name `{name}` is used twice"));
        }
        if candidate.kind.needs_path() && candidate.path.is_none() {
            return Err(format!(
                "candidates[{index}] (`{name}`, kind {:?}) needs `path`: a local checkpoint directory",
                candidate.kind
            ));
        }
        if candidate.max_samples == Some(0) {
            return Err(format!("candidates[{index}].max_samples must be positive"));
        }
    }
    if finetune.epochs == 0 || finetune.rank == 0 || finetune.lr.is_nan() || finetune.lr <= 0.0 {
        return Err("finetune.epochs, finetune.rank and finetune.lr must be positive".into());
    }
    if let Some(name) = &finetune.candidate {
        match candidates.iter().find(|c| &c.name == name) {
            None => return Err(format!("finetune.candidate `{name}` is not a [[candidates]] name")),
            Some(c) if !c.kind.can_finetune() => {
                return Err(format!(
                    "finetune.candidate `{name}` is a {:?} model; only qwen3_vl candidates are fine-tuned",
                    c.kind
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: CandidateKind, path: Option<&str>) -> CandidateSpec {
        CandidateSpec {
            name: name.into(),
            kind,
            path: path.map(PathBuf::from),
            max_samples: None,
            prompt: None,
        }
    }

    #[test]
    fn checks_name_path_and_finetune_target() {
        let ok = vec![
            spec("nsfw", CandidateKind::Opennsfw, None),
            spec("qwen", CandidateKind::Qwen3Vl, Some("m")),
        ];
        assert!(check(&ok, &FinetuneSpec::default()).is_ok());
        let missing = vec![spec("clip", CandidateKind::Clip, None)];
        assert!(check(&missing, &FinetuneSpec::default())
            .unwrap_err()
            .contains("needs `path`"));
        let twice = vec![ok[0].clone(), ok[0].clone()];
        assert!(check(&twice, &FinetuneSpec::default())
            .unwrap_err()
            .contains("used twice"));
        let bad = vec![spec("../x", CandidateKind::Opennsfw, None)];
        assert!(check(&bad, &FinetuneSpec::default()).is_err());
        let target = FinetuneSpec {
            candidate: Some("nsfw".into()),
            ..FinetuneSpec::default()
        };
        assert!(check(&ok, &target).unwrap_err().contains("only qwen3_vl"));
    }

    #[test]
    fn relative_paths_resolve_against_the_task_folder() {
        let c = spec("q", CandidateKind::Qwen3Vl, Some("models/q"));
        assert_eq!(
            c.resolved_path(Path::new("/tasks")).unwrap(),
            PathBuf::from("/tasks/models/q")
        );
    }
}
