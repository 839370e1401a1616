//! Chat-completion requests for items and the batch API's request files.
//!
//! Each request line is `{"custom_id", "method": "POST", "url": "/v1/chat/completions",
//! "body"}`. The `custom_id` names the item and the attempt (`item-<row>-try-<n>`), so an
//! answer is matched to its row even when it comes back twice. Files are split so each stays
//! under the configured byte and request limits; a single request larger than the byte limit
//! is an error naming the item.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{LabelError, Result};
use crate::input::Item;
use crate::spec::{FileLimits, ImageFormat, JobSpec};

/// The batch API endpoint every request line targets.
pub const CHAT_PATH: &str = "/v1/chat/completions";

/// One try of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Row index in the input.
    pub item: usize,
    /// 1 for the first try.
    pub attempt: u32,
    /// Asked with the stricter prompt (after a schema-invalid answer).
    #[serde(default)]
    pub strict: bool,
}

impl Attempt {
    pub fn custom_id(&self) -> String {
        format!("item-{}-try-{}", self.item, self.attempt)
    }

    /// `(row, attempt)` of a custom id written by [`Attempt::custom_id`].
    pub fn parse_custom_id(id: &str) -> Option<(usize, u32)> {
        let rest = id.strip_prefix("item-")?;
        let (item, attempt) = rest.split_once("-try-")?;
        Some((item.parse().ok()?, attempt.parse().ok()?))
    }
}

/// Builds request bodies for a job.
pub struct RequestBuilder<'a> {
    spec: &'a JobSpec,
    input_dir: PathBuf,
    schema: Value,
}

impl<'a> RequestBuilder<'a> {
    pub fn new(spec: &'a JobSpec) -> Self {
        let input_dir = spec
            .input
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Self {
            spec,
            input_dir,
            schema: spec.answer_schema(),
        }
    }

    /// The user prompt for an item: `{column}` placeholders filled in.
    pub fn prompt(&self, item: &Item, strict: bool) -> String {
        let mut text = self.spec.prompt.clone();
        for (column, value) in &item.values {
            text = text.replace(&format!("{{{column}}}"), value);
        }
        if strict {
            text.push_str(&format!(
                "\n\nYour previous answer did not match the required format. Reply with a \
                 single JSON object and nothing else. It must have exactly these fields, with \
                 these types and allowed values: {}",
                self.schema
            ));
        }
        text
    }

    /// The `/v1/chat/completions` body for one try of an item.
    pub fn body(&self, item: &Item, strict: bool) -> Result<Value> {
        let mut content = vec![json!({"type": "text", "text": self.prompt(item, strict)})];
        if let Some(column) = &self.spec.image_column {
            let value = item.values.get(column).map(String::as_str).unwrap_or("");
            if !value.is_empty() {
                let url = self.image_url(value)?;
                content.insert(0, json!({"type": "image_url", "image_url": {"url": url}}));
            }
        }
        let mut messages = Vec::new();
        if let Some(system) = &self.spec.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": content}));
        let endpoint = &self.spec.endpoint;
        let mut body = json!({
            "messages": messages,
            "temperature": endpoint.temperature,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "labels", "schema": self.schema, "strict": true},
            },
        });
        if let Some(model) = &endpoint.model {
            body["model"] = json!(model);
        }
        if let Some(max_tokens) = endpoint.max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        Ok(body)
    }

    /// A URL stays a URL; a file is resized and inlined as a `data:` URL.
    fn image_url(&self, value: &str) -> Result<String> {
        if ["http://", "https://", "data:"]
            .iter()
            .any(|p| value.starts_with(p))
        {
            return Ok(value.to_string());
        }
        let path = self.input_dir.join(value);
        let image_error = |message: String| LabelError::Image {
            path: path.display().to_string(),
            message,
        };
        let image = image::open(&path).map_err(|e| image_error(e.to_string()))?;
        let settings = &self.spec.images;
        let max_side = settings.max_side.max(1);
        let image = if image.width().max(image.height()) > max_side {
            image.resize(max_side, max_side, image::imageops::FilterType::Triangle)
        } else {
            image
        };
        let mut bytes = Vec::new();
        let mime = match settings.format {
            ImageFormat::Jpeg => {
                let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(
                    Cursor::new(&mut bytes),
                    settings.quality.clamp(1, 100),
                );
                image
                    .to_rgb8()
                    .write_with_encoder(encoder)
                    .map_err(|e| image_error(e.to_string()))?;
                "image/jpeg"
            }
            ImageFormat::Png => {
                image
                    .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
                    .map_err(|e| image_error(e.to_string()))?;
                "image/png"
            }
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        Ok(format!("data:{mime};base64,{encoded}"))
    }
}

/// A request file written to disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestFile {
    /// File name inside the job's `requests/` folder.
    pub name: String,
    pub attempts: Vec<Attempt>,
    pub bytes: u64,
    pub sha256: String,
}

/// Writes `attempts` as request files `part-<n>.jsonl` in `dir`, numbered from
/// `first_number`, each within `limits`. Each file is written to a temporary name and renamed,
/// so a file that exists is complete.
pub fn write_request_files(
    dir: &Path,
    first_number: usize,
    attempts: &[Attempt],
    items: &[Item],
    builder: &RequestBuilder,
    limits: &FileLimits,
) -> Result<Vec<RequestFile>> {
    std::fs::create_dir_all(dir).map_err(|e| LabelError::io(dir, e))?;
    let mut files = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut current_attempts: Vec<Attempt> = Vec::new();
    let mut flush = |buffer: &mut Vec<u8>, taken: &mut Vec<Attempt>| -> Result<()> {
        if taken.is_empty() {
            return Ok(());
        }
        let name = format!("part-{:04}.jsonl", first_number + files.len());
        crate::state::write_atomic(&dir.join(&name), buffer)?;
        files.push(RequestFile {
            name,
            attempts: std::mem::take(taken),
            bytes: buffer.len() as u64,
            sha256: hex::encode(Sha256::digest(&buffer[..])),
        });
        buffer.clear();
        Ok(())
    };
    for attempt in attempts {
        let item = items.get(attempt.item).ok_or_else(|| {
            LabelError::Protocol(format!("attempt names row {} past the input", attempt.item))
        })?;
        let line = json!({
            "custom_id": attempt.custom_id(),
            "method": "POST",
            "url": CHAT_PATH,
            "body": builder.body(item, attempt.strict)?,
        });
        let mut line = serde_json::to_vec(&line)
            .map_err(|e| LabelError::Protocol(format!("encoding a request: {e}")))?;
        line.push(b'\n');
        if line.len() as u64 > limits.max_bytes {
            return Err(LabelError::Protocol(format!(
                "the request for item {:?} is {} bytes, over the file limit of {} bytes \
                 (lower images.max_side or raise limits.max_bytes)",
                item.id,
                line.len(),
                limits.max_bytes
            )));
        }
        if current_attempts.len() >= limits.max_requests
            || (current.len() + line.len()) as u64 > limits.max_bytes
        {
            flush(&mut current, &mut current_attempts)?;
        }
        current.extend_from_slice(&line);
        current_attempts.push(*attempt);
    }
    flush(&mut current, &mut current_attempts)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn spec() -> JobSpec {
        toml::from_str(
            r#"
            input = "items.csv"
            prompt = "Describe {name}."
            [[fields]]
            name = "style"
            type = "string"
            enum = ["modern", "rustic"]
            "#,
        )
        .unwrap()
    }

    fn items(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| Item {
                id: i.to_string(),
                values: HashMap::from([("name".to_string(), format!("chair {i}"))]),
            })
            .collect()
    }

    #[test]
    fn custom_ids_round_trip() {
        let attempt = Attempt {
            item: 12,
            attempt: 3,
            strict: true,
        };
        assert_eq!(
            Attempt::parse_custom_id(&attempt.custom_id()),
            Some((12, 3))
        );
        assert_eq!(Attempt::parse_custom_id("other"), None);
    }

    #[test]
    fn files_split_at_the_request_and_byte_limits() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec();
        let builder = RequestBuilder::new(&spec);
        let items = items(10);
        let attempts: Vec<Attempt> = (0..10)
            .map(|item| Attempt {
                item,
                attempt: 1,
                strict: false,
            })
            .collect();
        let limits = FileLimits {
            max_bytes: 1 << 20,
            max_requests: 4,
        };
        let files =
            write_request_files(dir.path(), 1, &attempts, &items, &builder, &limits).unwrap();
        assert_eq!(
            files.iter().map(|f| f.attempts.len()).collect::<Vec<_>>(),
            [4, 4, 2]
        );
        assert_eq!(files[2].name, "part-0003.jsonl");
        let text = std::fs::read_to_string(dir.path().join("part-0001.jsonl")).unwrap();
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["custom_id"], "item-0-try-1");
        assert_eq!(first["url"], CHAT_PATH);
        assert_eq!(
            first["body"]["messages"][0]["content"][0]["text"],
            "Describe chair 0."
        );

        let one_line = files[0].bytes / 4;
        let limits = FileLimits {
            max_bytes: one_line * 3 + one_line / 2,
            max_requests: 100,
        };
        let files =
            write_request_files(dir.path(), 1, &attempts, &items, &builder, &limits).unwrap();
        assert!(files.iter().all(|f| f.bytes <= limits.max_bytes));
        assert_eq!(files.iter().map(|f| f.attempts.len()).sum::<usize>(), 10);
        let limits = FileLimits {
            max_bytes: 10,
            max_requests: 100,
        };
        assert!(write_request_files(dir.path(), 1, &attempts, &items, &builder, &limits).is_err());
    }

    #[test]
    fn strict_prompt_repeats_the_schema() {
        let spec = spec();
        let builder = RequestBuilder::new(&spec);
        let prompt = builder.prompt(&items(1)[0], true);
        assert!(prompt.starts_with("Describe chair 0."));
        assert!(
            prompt.contains("\"enum\":[\"modern\",\"rustic\"]"),
            "{prompt}"
        );
    }
}
