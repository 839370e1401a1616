//! Request and response types of the HTTP API (serde for the wire, utoipa for
//! `/openapi.json`). Chat types follow the OpenAI chat completions API closely enough for its
//! official clients; unknown request fields are ignored there, as other compatible servers do.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorDetail;
use crate::model::ModelKind;

/// An image given inline (base64, optionally as a `data:` URL) or by URL.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageInput {
    /// Base64 bytes of a PNG, JPEG or WebP file (a `data:image/...;base64,` prefix is allowed).
    #[serde(default)]
    pub base64: Option<String>,
    /// `http(s)://` URL fetched by the server with a timeout and a size cap.
    #[serde(default)]
    pub url: Option<String>,
}

/// One item to classify.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    /// Caller's id, echoed in the answer.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub images: Vec<ImageInput>,
    /// Also generate a short reason (constrained JSON answer; generative models only).
    #[serde(default)]
    pub reason: bool,
}

/// Many items in one request; each gets its own result or error.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchClassifyRequest {
    pub items: Vec<ClassifyRequest>,
}

/// Probability of one label.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct LabelProbability {
    pub label: String,
    pub probability: f64,
}

/// The keep / review / demote decision of a binary-policy task, with the thresholds used.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct PolicyDecision {
    /// `keep`, `review` or `demote`.
    pub decision: String,
    /// The label whose probability drives the decision.
    pub positive_label: String,
    pub probability: f64,
    /// At or above this probability: review.
    pub review_threshold: f64,
    /// At or above this probability: demote.
    pub demote_threshold: f64,
}

/// The answer for one item.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct ClassifyResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Most probable label (single-label models).
    pub label: Option<String>,
    /// Labels at or above the threshold (multi-label models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Every label's probability, in the model's label order.
    pub probabilities: Vec<LabelProbability>,
    /// Present when the task defines a keep / review / demote policy.
    pub decision: Option<PolicyDecision>,
    /// Present when `reason` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub model: String,
    pub adapter: Option<String>,
    /// Server time for this item (or the whole request, for batches), in milliseconds.
    pub latency_ms: f64,
}

/// One item of a batch answer: a result or an error.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct BatchItemResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ClassifyResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct BatchClassifyResponse {
    pub results: Vec<BatchItemResult>,
    pub latency_ms: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct HealthResponse {
    pub status: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadyResponse {
    pub ready: bool,
    pub model: String,
    pub kind: Option<ModelKind>,
    pub labels: Vec<String>,
    pub adapter: Option<String>,
}

// ---- chat completions ----

/// Image part of a chat message.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct ImageUrl {
    /// `data:image/...;base64,...` or an `http(s)://` URL.
    pub url: String,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    #[serde(default)]
    pub content: Option<MessageContent>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct JsonSchemaFormat {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// The JSON schema the answer must satisfy.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `{"type": "text"}`, `{"type": "json_object"}` or
/// `{"type": "json_schema", "json_schema": {...}}`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct ChatCompletionRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub max_completion_tokens: Option<usize>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<usize>,
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    /// Only 1 is supported.
    #[serde(default)]
    pub n: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f64,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct TokenLogprobOut {
    pub token: String,
    pub logprob: f64,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct ChoiceLogprobs {
    pub content: Vec<TokenLogprobOut>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct AssistantMessage {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct ChatChoice {
    pub index: usize,
    pub message: AssistantMessage,
    /// `stop` or `length`.
    pub finish_reason: String,
    pub logprobs: Option<ChoiceLogprobs>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
pub struct ChunkDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct ChunkChoice {
    pub index: usize,
    pub delta: ChunkDelta,
    pub finish_reason: Option<String>,
    pub logprobs: Option<ChoiceLogprobs>,
}

/// One server-sent event of a streamed completion (`data: {...}`), ended by `data: [DONE]`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct ChatCompletionChunk {
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
}
