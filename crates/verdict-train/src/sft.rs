//! Supervised fine-tuning data: a task and its samples as chat conversations.
//!
//! Each sample becomes one conversation in the common `messages` JSONL format other trainers
//! (TRL, Unsloth, LLaMA-Factory) read: a system turn stating the labels and the strict answer
//! format, a user turn with the sample's images first and then its text, and the assistant
//! answer (the label, or a JSON object with a reason). An image that is missing on disk is
//! replaced by a short note, so the model learns to answer from the remaining evidence rather
//! than the sample being dropped silently.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use verdict_core::task::TaskKind;
use verdict_core::{Sample, TaskSpec};

use crate::{Error, Result};

/// Note put in place of an image that cannot be found.
pub const IMAGE_UNAVAILABLE: &str = "[image unavailable]";

/// What the assistant answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerFormat {
    /// The label name alone.
    #[default]
    Label,
    /// `{"label": "...", "reason": "..."}`, the reason taken from the sample's notes.
    Json,
}

/// One part of a message: an image file or text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Part {
    Image { image: String },
    Text { text: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftMessage {
    pub role: String,
    pub content: Vec<Part>,
}

/// One training conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftRecord {
    pub sample_id: String,
    /// The gold label (also inside the assistant answer).
    pub label: String,
    pub messages: Vec<SftMessage>,
}

impl SftRecord {
    fn text_of(&self, role: &str) -> Option<String> {
        let message = self.messages.iter().find(|m| m.role == role)?;
        let texts: Vec<&str> = message
            .content
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text.as_str()),
                Part::Image { .. } => None,
            })
            .collect();
        Some(texts.join("\n"))
    }

    pub fn system(&self) -> Option<String> {
        self.text_of("system")
    }

    pub fn user_text(&self) -> String {
        self.text_of("user").unwrap_or_default()
    }

    pub fn answer(&self) -> String {
        self.text_of("assistant").unwrap_or_default()
    }

    /// Image files of the user turn, in order.
    pub fn images(&self) -> Vec<PathBuf> {
        self.messages
            .iter()
            .filter(|m| m.role == "user")
            .flat_map(|m| m.content.iter())
            .filter_map(|p| match p {
                Part::Image { image } => Some(PathBuf::from(image)),
                Part::Text { .. } => None,
            })
            .collect()
    }
}

/// The system prompt: task, labels with their meaning, strict output format.
pub fn system_prompt(task: &TaskSpec, format: AnswerFormat) -> String {
    let mut text = format!("You classify content for the task \"{}\".", task.name);
    if !task.description.trim().is_empty() {
        text.push(' ');
        text.push_str(task.description.trim());
    }
    text.push_str("\nLabels:");
    for label in &task.labels {
        text.push_str(&format!("\n- {}", label.name));
        if !label.description.trim().is_empty() {
            text.push_str(&format!(": {}", label.description.trim()));
        }
    }
    let names = task.label_names().join(", ");
    match format {
        AnswerFormat::Label => text.push_str(&format!(
            "\nAnswer with exactly one label from [{names}] and nothing else."
        )),
        AnswerFormat::Json => text.push_str(&format!(
            "\nAnswer with one JSON object {{\"label\": one of [{names}], \"reason\": a short reason}} and nothing else."
        )),
    }
    text
}

/// Conversations for the labelled samples; `base` resolves relative image paths (the
/// manifest's folder). Samples without a label are skipped; a label outside the task is an
/// error naming the sample.
pub fn build_records(
    task: &TaskSpec,
    samples: &[Sample],
    base: &Path,
    format: AnswerFormat,
) -> Result<Vec<SftRecord>> {
    if task.kind == TaskKind::MultiLabel {
        return Err(Error::Invalid(format!(
            "task {}: fine-tuning supports single-label and binary tasks, not multi_label",
            task.name
        )));
    }
    let system = system_prompt(task, format);
    let names = task.label_names();
    let mut records = Vec::new();
    for sample in samples {
        let Some(label) = sample.label.as_ref().and_then(|l| l.as_single()) else {
            continue;
        };
        if !names.contains(&label) {
            return Err(Error::Invalid(format!(
                "sample {}: label {label:?} is not one of the task labels {names:?}",
                sample.sample_id
            )));
        }
        let mut user = Vec::new();
        let mut missing = 0;
        for reference in &sample.images {
            let path = Sample::resolve(base, reference);
            if path.is_file() {
                user.push(Part::Image {
                    image: path.to_string_lossy().into_owned(),
                });
            } else {
                missing += 1;
            }
        }
        let mut text = String::new();
        if missing > 0 {
            text.push_str(IMAGE_UNAVAILABLE);
            if missing > 1 {
                text.push_str(&format!(" x{missing}"));
            }
            text.push('\n');
        }
        text.push_str(sample.text.as_deref().unwrap_or("").trim());
        if text.trim().is_empty() {
            text.push_str("Classify this sample.");
        }
        user.push(Part::Text { text });
        let answer = match format {
            AnswerFormat::Label => label.to_string(),
            AnswerFormat::Json => serde_json::json!({
                "label": label,
                "reason": sample.notes.as_deref().unwrap_or(""),
            })
            .to_string(),
        };
        records.push(SftRecord {
            sample_id: sample.sample_id.clone(),
            label: label.to_string(),
            messages: vec![
                SftMessage {
                    role: "system".into(),
                    content: vec![Part::Text {
                        text: system.clone(),
                    }],
                },
                SftMessage {
                    role: "user".into(),
                    content: user,
                },
                SftMessage {
                    role: "assistant".into(),
                    content: vec![Part::Text { text: answer }],
                },
            ],
        });
    }
    Ok(records)
}

/// Writes records as JSONL through a temporary file and a rename.
pub fn write_jsonl(path: &Path, records: &[SftRecord]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(crate::error::io_error(parent))?;
    }
    let mut buffer = Vec::new();
    for record in records {
        serde_json::to_writer(&mut buffer, record).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            line: None,
            message: e.to_string(),
        })?;
        buffer.push(b'\n');
    }
    let tmp = path.with_extension("jsonl.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(crate::error::io_error(&tmp))?;
    file.write_all(&buffer)
        .and_then(|_| file.sync_all())
        .map_err(crate::error::io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(crate::error::io_error(path))
}

/// Reads a `messages` JSONL file, naming the line of any malformed record.
pub fn read_jsonl(path: &Path) -> Result<Vec<SftRecord>> {
    let file = std::fs::File::open(path).map_err(crate::error::io_error(path))?;
    let mut records = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(crate::error::io_error(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            line: Some(index + 1),
            message: e.to_string(),
        })?;
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict_core::LabelValue;

    fn task() -> TaskSpec {
        TaskSpec::parse(
            r#"
name = "colours"
description = "Which colour dominates."
kind = "single_label"
[[labels]]
name = "red"
description = "mostly red"
[[labels]]
name = "blue"
"#,
            Path::new("task.toml"),
        )
        .unwrap()
    }

    fn sample(id: &str, label: &str, images: &[&str], text: Option<&str>) -> Sample {
        let mut s = Sample::new(id);
        s.label = Some(LabelValue::Single(label.into()));
        s.images = images.iter().map(|i| i.to_string()).collect();
        s.text = text.map(String::from);
        s
    }

    #[test]
    fn conversation_has_system_images_first_and_answer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"png").unwrap();
        let samples = [
            sample("s1", "red", &["a.png", "gone.png"], Some("a caption")),
            sample("s2", "blue", &[], None),
        ];
        let records = build_records(&task(), &samples, dir.path(), AnswerFormat::Label).unwrap();
        let r = &records[0];
        let system = r.system().unwrap();
        assert!(system.contains("- red: mostly red") && system.contains("[red, blue]"));
        assert_eq!(r.images(), vec![dir.path().join("a.png")]);
        assert!(matches!(r.messages[1].content[0], Part::Image { .. }));
        assert_eq!(r.user_text(), format!("{IMAGE_UNAVAILABLE}\na caption"));
        assert_eq!(r.answer(), "red");
        assert_eq!(records[1].user_text(), "Classify this sample.");

        let path = dir.path().join("out/train.jsonl");
        write_jsonl(&path, &records).unwrap();
        assert_eq!(read_jsonl(&path).unwrap(), records);
        let first: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(first["messages"][1]["content"][0]["type"], "image");
        assert_eq!(first["messages"][2]["role"], "assistant");
    }

    #[test]
    fn json_answers_and_bad_labels() {
        let mut s = sample("s1", "blue", &[], Some("x"));
        s.notes = Some("sky".into());
        let records = build_records(&task(), &[s], Path::new("."), AnswerFormat::Json).unwrap();
        assert_eq!(records[0].answer(), r#"{"label":"blue","reason":"sky"}"#);
        let err = build_records(
            &task(),
            &[sample("s9", "green", &[], None)],
            Path::new("."),
            AnswerFormat::Label,
        )
        .unwrap_err();
        assert!(err.to_string().contains("s9"), "{err}");
    }

    #[test]
    fn malformed_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, "\n{\"nope\": 1}\n").unwrap();
        let err = read_jsonl(&path).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl:2"), "{err}");
    }
}
