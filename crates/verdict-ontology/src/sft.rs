//! Chat SFT examples in the `messages` JSONL format the trainer reads:
//! `{"messages": [{"role": "system", "content": ..}, {"role": "user", "content": [{"type":
//! "image", "image": PATH}, {"type": "text", "text": ..}]}, {"role": "assistant", "content": ..}]}`,
//! built from labelled images (`meta.json` folders) and from knowledge questions, and mixed
//! at a configurable ratio.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use verdict_core::LabelValue;

use crate::constraint::Answer;
use crate::error::{OntologyError, Result};
use crate::hierarchy::HierarchyPolicy;
use crate::ontology::Ontology;
use crate::prompt;

/// One chat example, in the record shape of the project's SFT builder: `sample_id`, `label`
/// (here the exact assistant answer, which is what validation by answer scoring compares) and
/// `messages` whose contents are lists of `{"type": "text" | "image", ...}` parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatExample {
    pub sample_id: String,
    pub label: String,
    pub messages: Vec<serde_json::Value>,
}

fn turn(role: &str, parts: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"role": role, "content": parts})
}

impl ChatExample {
    /// A text-only exchange (knowledge questions).
    pub fn text(sample_id: &str, system: &str, question: &str, answer: &str) -> Self {
        Self {
            sample_id: sample_id.to_string(),
            label: answer.to_string(),
            messages: vec![
                turn(
                    "system",
                    serde_json::json!([{"type": "text", "text": system}]),
                ),
                turn(
                    "user",
                    serde_json::json!([{"type": "text", "text": question}]),
                ),
                turn(
                    "assistant",
                    serde_json::json!([{"type": "text", "text": answer}]),
                ),
            ],
        }
    }

    /// An image followed by an instruction.
    pub fn image(
        sample_id: &str,
        system: &str,
        image: &str,
        instruction: &str,
        answer: &str,
    ) -> Self {
        Self {
            sample_id: sample_id.to_string(),
            label: answer.to_string(),
            messages: vec![
                turn(
                    "system",
                    serde_json::json!([{"type": "text", "text": system}]),
                ),
                turn(
                    "user",
                    serde_json::json!([
                        {"type": "image", "image": image},
                        {"type": "text", "text": instruction},
                    ]),
                ),
                turn(
                    "assistant",
                    serde_json::json!([{"type": "text", "text": answer}]),
                ),
            ],
        }
    }
}

/// Writes examples as JSONL through a temporary file renamed into place, so an interrupted
/// run never leaves a half-written file under the final name.
pub fn write_jsonl(path: &Path, examples: &[ChatExample]) -> Result<()> {
    write_atomic(path, |file| {
        for example in examples {
            let line = serde_json::to_string(example).map_err(|source| OntologyError::Json {
                path: path.to_path_buf(),
                source,
            })?;
            writeln!(file, "{line}").map_err(|e| OntologyError::io(path, e))?;
        }
        Ok(())
    })
}

/// Writes pretty JSON atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    write_atomic(path, |file| {
        serde_json::to_writer_pretty(&mut *file, value).map_err(|source| OntologyError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        writeln!(file).map_err(|e| OntologyError::io(path, e))
    })
}

pub(crate) fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<()>,
) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| OntologyError::io(parent, e))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    let file = std::fs::File::create(&temporary).map_err(|e| OntologyError::io(&temporary, e))?;
    let mut writer = std::io::BufWriter::new(file);
    fill(&mut writer)?;
    writer
        .flush()
        .map_err(|e| OntologyError::io(&temporary, e))?;
    drop(writer);
    std::fs::rename(&temporary, path).map_err(|e| OntologyError::io(path, e))
}

/// A labelled image read from a `meta.json` folder, labels normalised by the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledImage {
    pub sample_id: String,
    pub image: PathBuf,
    pub labels: Answer,
}

/// Reads every `meta.json` below `root` and checks its labels against the ontology.
///
/// A dimension missing from a file gets no labels; a label outside its dimension is an error
/// naming the file.
pub fn read_labelled_images(
    root: &Path,
    ontology: &Ontology,
    policy: HierarchyPolicy,
) -> Result<Vec<LabelledImage>> {
    let outcome = verdict_core::import::import_meta_json(root)?;
    if let Some(reject) = outcome.rejects.first() {
        let problems: Vec<String> = reject.problems.iter().map(|p| p.to_string()).collect();
        return Err(OntologyError::ontology(
            &reject.origin.file,
            problems.join("; "),
        ));
    }
    let dimensions = ontology.dimension_names();
    let mut images = Vec::with_capacity(outcome.samples.len());
    for imported in outcome.samples {
        let file = imported.origin.file.clone();
        let sample = imported.sample;
        let Some(LabelValue::PerDimension(map)) = &sample.label else {
            return Err(OntologyError::ontology(&file, "no labels per dimension"));
        };
        if let Some(unknown) = map.keys().find(|k| !dimensions.contains(&k.as_str())) {
            return Err(OntologyError::ontology(
                &file,
                format!("labels.{unknown}: not a dimension of the ontology (dimensions: {dimensions:?})"),
            ));
        }
        let mut answer = Answer::default();
        for (d, name) in dimensions.iter().enumerate() {
            let given = map.get(*name).cloned().unwrap_or_default();
            let labels = policy
                .normalise(ontology, d, &given)
                .map_err(|e| OntologyError::ontology(&file, format!("labels.{name}: {e}")))?;
            answer.dimensions.push((name.to_string(), labels));
        }
        let image = sample.images.first().ok_or_else(|| {
            OntologyError::ontology(&file, "no image (set \"image\" in meta.json)")
        })?;
        images.push(LabelledImage {
            sample_id: sample.sample_id.clone(),
            image: PathBuf::from(image),
            labels: answer,
        });
    }
    Ok(images)
}

/// Whether a sample goes to validation: a seeded hash of its id below `val_fraction`, so the
/// split is stable when samples are added.
pub fn is_val(sample_id: &str, seed: u64, val_fraction: f64) -> bool {
    let digest = Sha256::digest(format!("{seed}:{sample_id}").as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(head) as f64 / u64::MAX as f64) < val_fraction
}

/// Chat examples of labelled images, with the classification prompt used at prediction time.
pub fn image_examples(ontology: &Ontology, images: &[LabelledImage]) -> Vec<ChatExample> {
    let system = prompt::system_prompt(ontology);
    let instruction = prompt::classification_instruction(ontology);
    images
        .iter()
        .map(|image| {
            ChatExample::image(
                &image.sample_id,
                &system,
                &image.image.to_string_lossy(),
                &instruction,
                &prompt::answer_text(&image.labels),
            )
        })
        .collect()
}

/// How knowledge questions and labelled images are mixed for training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixConfig {
    /// Knowledge questions per labelled image in the mixed set (0 = images only). Questions are
    /// repeated when more are asked for than exist.
    pub ki_per_image: f64,
    pub seed: u64,
}

impl Default for MixConfig {
    fn default() -> Self {
        Self {
            ki_per_image: 1.0,
            seed: 42,
        }
    }
}

/// Mixes image and knowledge examples: `round(images * ki_per_image)` knowledge examples
/// (cycling through a shuffled copy), then one seeded shuffle of everything.
pub fn mix(images: &[ChatExample], ki: &[ChatExample], config: &MixConfig) -> Vec<ChatExample> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let wanted = (images.len() as f64 * config.ki_per_image.max(0.0)).round() as usize;
    let mut pool: Vec<&ChatExample> = ki.iter().collect();
    pool.shuffle(&mut rng);
    let mut mixed: Vec<ChatExample> = images.to_vec();
    if !pool.is_empty() {
        mixed.extend((0..wanted).map(|i| pool[i % pool.len()].clone()));
    }
    mixed.shuffle(&mut rng);
    mixed
}
