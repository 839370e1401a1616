//! The job spec: what to read, what to ask, which fields to extract and where to send it.
//!
//! A spec is TOML (or JSON) written by people, so unknown keys are refused and every default
//! is spelled out here. Paths are relative to the spec file. The fields become the JSON
//! schema sent as `response_format` (every field required, no others), and the same fields
//! validate each answer, so an endpoint without constrained decoding is still checked.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{LabelError, Result};

/// Verdict's own server, as `verdict serve` binds it by default.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080/v1";

/// A labelling job as written down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Shown by `status`; defaults to the spec file's stem.
    #[serde(default)]
    pub name: Option<String>,
    /// CSV with a header row, or JSONL (one object per line).
    pub input: PathBuf,
    /// Column holding each item's unique id.
    #[serde(default = "default_id_column")]
    pub id_column: String,
    /// Column holding an image path (relative to the input file) or an `http(s)` URL.
    #[serde(default)]
    pub image_column: Option<String>,
    /// The user message; `{column}` is replaced by that column's value.
    pub prompt: String,
    #[serde(default)]
    pub system: Option<String>,
    /// Fields to extract, in answer order.
    pub fields: Vec<FieldSpec>,
    /// Where the labelled table goes (default: `labelled.csv` in the job folder). Never the
    /// input file.
    #[serde(default)]
    pub output: Option<PathBuf>,
    #[serde(default)]
    pub mode: Mode,
    /// Tries per item before it is given up as `failed` (schema-invalid answers get one
    /// stricter retry on top of the first answer, counted here too).
    #[serde(default = "default_item_attempts")]
    pub max_item_attempts: u32,
    #[serde(default)]
    pub endpoint: EndpointSpec,
    #[serde(default)]
    pub images: ImageSpec,
    #[serde(default)]
    pub limits: FileLimits,
    #[serde(default)]
    pub polling: PollingSpec,
    #[serde(default)]
    pub retry: RetrySpec,
    #[serde(default)]
    pub direct: DirectSpec,
}

fn default_id_column() -> String {
    "id".into()
}
fn default_item_attempts() -> u32 {
    3
}

/// `batch`: request files through `/v1/files` + `/v1/batches`; `direct`: concurrent
/// `/v1/chat/completions` calls (small jobs, or endpoints without a batch API).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Batch,
    Direct,
}

/// One field of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub description: Option<String>,
    /// Allowed values of a string field.
    #[serde(default, rename = "enum")]
    pub allowed: Option<Vec<String>>,
    /// Longest value of a free string field, in characters.
    #[serde(default)]
    pub max_length: Option<usize>,
    #[serde(default)]
    pub minimum: Option<f64>,
    #[serde(default)]
    pub maximum: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Number,
    Integer,
    Boolean,
}

/// Where requests go. The key is read from the environment variable named here, so it never
/// lands in the spec or the job folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub temperature: f64,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.into()
}

impl Default for EndpointSpec {
    fn default() -> Self {
        Self {
            base_url: default_base_url(),
            api_key_env: None,
            model: None,
            max_tokens: None,
            temperature: 0.0,
        }
    }
}

/// Images are resized so their longer side is at most `max_side` and sent inline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageSpec {
    pub max_side: u32,
    pub format: ImageFormat,
    /// JPEG quality, 1-100.
    pub quality: u8,
}

impl Default for ImageSpec {
    fn default() -> Self {
        Self {
            max_side: 768,
            format: ImageFormat::Jpeg,
            quality: 85,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    Jpeg,
    Png,
}

/// Limits of one request file (the batch API refuses larger ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileLimits {
    pub max_bytes: u64,
    pub max_requests: usize,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_bytes: 95_000_000,
            max_requests: 50_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollingSpec {
    /// Seconds between two looks at the batches in flight.
    pub interval_seconds: f64,
    /// `completion_window` asked of the batch API.
    pub completion_window: String,
}

impl Default for PollingSpec {
    fn default() -> Self {
        Self {
            interval_seconds: 10.0,
            completion_window: "24h".into(),
        }
    }
}

/// Exponential backoff of one HTTP call on connection errors, 429 and 5xx.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySpec {
    pub max_attempts: usize,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Seconds before one HTTP call is abandoned (and retried).
    pub timeout_seconds: f64,
}

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            timeout_seconds: 300.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectSpec {
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Most call starts per second (0: unlimited).
    pub requests_per_second: f64,
}

impl Default for DirectSpec {
    fn default() -> Self {
        Self {
            concurrency: 4,
            requests_per_second: 10.0,
        }
    }
}

impl JobSpec {
    /// Reads a `.toml` or `.json` spec; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| LabelError::io(path, e))?;
        let spec_error = |message: String| LabelError::Spec {
            path: path.to_path_buf(),
            message,
        };
        let mut spec: JobSpec = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| spec_error(e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| spec_error(e.to_string()))?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        spec.input = base.join(&spec.input);
        spec.output = spec.output.map(|output| base.join(output));
        if spec.name.is_none() {
            spec.name = path
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned());
        }
        spec.check().map_err(spec_error)?;
        Ok(spec)
    }

    /// Checks what can be checked without the input: field names and constraints, limits.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.fields.is_empty() {
            return Err("`fields` is empty: name at least one field to extract".into());
        }
        let mut seen = HashSet::new();
        for field in &self.fields {
            let name = &field.name;
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!(
                    "field name {name:?}: use letters, digits, `_` or `-`"
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(format!("field `{name}` is listed twice"));
            }
            if matches!(name.as_str(), "label_status" | "label_error") {
                return Err(format!(
                    "field name `{name}` is reserved for the output table"
                ));
            }
            if field.allowed.is_some() && field.kind != FieldType::String {
                return Err(format!("field `{name}`: `enum` needs type string"));
            }
            if let Some(allowed) = &field.allowed {
                if allowed.is_empty() {
                    return Err(format!("field `{name}`: `enum` is empty"));
                }
            }
            if field.max_length.is_some() && field.kind != FieldType::String {
                return Err(format!("field `{name}`: `max_length` needs type string"));
            }
            let numeric = matches!(field.kind, FieldType::Number | FieldType::Integer);
            if (field.minimum.is_some() || field.maximum.is_some()) && !numeric {
                return Err(format!(
                    "field `{name}`: `minimum`/`maximum` need type number or integer"
                ));
            }
        }
        if self.limits.max_requests == 0 || self.limits.max_bytes == 0 {
            return Err("`limits.max_requests` and `limits.max_bytes` must be positive".into());
        }
        if self.max_item_attempts == 0 {
            return Err("`max_item_attempts` must be at least 1".into());
        }
        if self.direct.concurrency == 0 {
            return Err("`direct.concurrency` must be at least 1".into());
        }
        let seconds_ok = |v: f64| v.is_finite() && (0.0..=86_400.0).contains(&v);
        if !seconds_ok(self.polling.interval_seconds) {
            return Err("`polling.interval_seconds` must lie in [0, 86400]".into());
        }
        if !seconds_ok(self.retry.timeout_seconds) || self.retry.timeout_seconds == 0.0 {
            return Err("`retry.timeout_seconds` must lie in (0, 86400]".into());
        }
        if !(self.direct.requests_per_second.is_finite() && self.direct.requests_per_second >= 0.0)
        {
            return Err("`direct.requests_per_second` must be >= 0 (0: unlimited)".into());
        }
        Ok(())
    }

    /// The answer schema: an object with every field, all required, nothing else.
    pub fn answer_schema(&self) -> Value {
        let mut properties = Map::new();
        for field in &self.fields {
            let mut property = Map::new();
            let kind = match field.kind {
                FieldType::String => "string",
                FieldType::Number => "number",
                FieldType::Integer => "integer",
                FieldType::Boolean => "boolean",
            };
            property.insert("type".into(), json!(kind));
            if let Some(description) = &field.description {
                property.insert("description".into(), json!(description));
            }
            if let Some(allowed) = &field.allowed {
                property.insert("enum".into(), json!(allowed));
            }
            if let Some(max) = field.max_length {
                property.insert("maxLength".into(), json!(max));
            }
            if let Some(minimum) = field.minimum {
                property.insert("minimum".into(), json!(minimum));
            }
            if let Some(maximum) = field.maximum {
                property.insert("maximum".into(), json!(maximum));
            }
            properties.insert(field.name.clone(), Value::Object(property));
        }
        let required: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }

    /// Parses an answer and checks it field by field; the error names the first problem.
    pub fn validate_answer(&self, text: &str) -> std::result::Result<Map<String, Value>, String> {
        let value: Value = serde_json::from_str(text.trim())
            .map_err(|e| format!("the answer is not JSON ({e})"))?;
        let Value::Object(object) = value else {
            return Err("the answer is not a JSON object".into());
        };
        if let Some(extra) = object
            .keys()
            .find(|k| !self.fields.iter().any(|f| &f.name == *k))
        {
            return Err(format!("unexpected field `{extra}`"));
        }
        for field in &self.fields {
            let name = &field.name;
            let value = object
                .get(name)
                .ok_or_else(|| format!("missing field `{name}`"))?;
            match field.kind {
                FieldType::String => {
                    let text = value
                        .as_str()
                        .ok_or_else(|| format!("`{name}` is not a string"))?;
                    if let Some(allowed) = &field.allowed {
                        if !allowed.iter().any(|a| a == text) {
                            return Err(format!("`{name}` = {text:?} is not one of {allowed:?}"));
                        }
                    }
                    if let Some(max) = field.max_length {
                        if text.chars().count() > max {
                            return Err(format!("`{name}` is longer than {max} characters"));
                        }
                    }
                }
                FieldType::Boolean => {
                    value
                        .as_bool()
                        .ok_or_else(|| format!("`{name}` is not a boolean"))?;
                }
                FieldType::Number | FieldType::Integer => {
                    let number = value
                        .as_f64()
                        .ok_or_else(|| format!("`{name}` is not a number"))?;
                    if field.kind == FieldType::Integer && !(value.is_i64() || value.is_u64()) {
                        return Err(format!("`{name}` = {number} is not an integer"));
                    }
                    if field.minimum.is_some_and(|min| number < min)
                        || field.maximum.is_some_and(|max| number > max)
                    {
                        return Err(format!(
                            "`{name}` = {number} is outside [{}, {}]",
                            field.minimum.unwrap_or(f64::NEG_INFINITY),
                            field.maximum.unwrap_or(f64::INFINITY)
                        ));
                    }
                }
            }
        }
        Ok(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> JobSpec {
        toml::from_str(
            r#"
            input = "items.csv"
            prompt = "Describe {name}."
            [[fields]]
            name = "style"
            type = "string"
            enum = ["modern", "rustic"]
            [[fields]]
            name = "clean_title"
            type = "string"
            max_length = 10
            [[fields]]
            name = "weight"
            type = "number"
            minimum = 0
            [[fields]]
            name = "seats"
            type = "integer"
            [[fields]]
            name = "indoor"
            type = "boolean"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn schema_lists_every_field_as_required() {
        let schema = sample().answer_schema();
        assert_eq!(schema["required"].as_array().unwrap().len(), 5);
        assert_eq!(schema["properties"]["style"]["enum"][1], "rustic");
        assert_eq!(schema["properties"]["clean_title"]["maxLength"], 10);
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn answers_are_checked_field_by_field() {
        let spec = sample();
        let good =
            r#"{"style":"modern","clean_title":"Chair","weight":2.5,"seats":1,"indoor":true}"#;
        assert!(spec.validate_answer(good).is_ok());
        let cases = [
            ("not json", "not JSON"),
            (
                r#"{"style":"baroque","clean_title":"a","weight":1,"seats":1,"indoor":true}"#,
                "not one of",
            ),
            (
                r#"{"style":"modern","clean_title":"a much too long title","weight":1,"seats":1,"indoor":true}"#,
                "longer",
            ),
            (
                r#"{"style":"modern","clean_title":"a","weight":-1,"seats":1,"indoor":true}"#,
                "outside",
            ),
            (
                r#"{"style":"modern","clean_title":"a","weight":1,"seats":1.5,"indoor":true}"#,
                "integer",
            ),
            (
                r#"{"style":"modern","clean_title":"a","weight":1,"seats":1}"#,
                "missing field `indoor`",
            ),
            (
                r#"{"style":"modern","clean_title":"a","weight":1,"seats":1,"indoor":true,"x":1}"#,
                "unexpected",
            ),
        ];
        for (answer, expected) in cases {
            let error = spec.validate_answer(answer).unwrap_err();
            assert!(error.contains(expected), "{answer}: {error}");
        }
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let mut spec = sample();
        spec.fields[1].name = "style".into();
        assert!(spec.check().unwrap_err().contains("twice"));
        let mut spec = sample();
        spec.fields[2].allowed = Some(vec!["a".into()]);
        assert!(spec.check().unwrap_err().contains("enum"));
        let mut spec = sample();
        spec.fields.clear();
        assert!(spec.check().unwrap_err().contains("empty"));
    }
}
