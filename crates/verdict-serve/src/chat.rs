//! `POST /v1/chat/completions`: OpenAI-compatible chat completions for Qwen3-VL models,
//! whole or streamed as server-sent events, with JSON-schema answers enforced by
//! constrained decoding and per-token log-probabilities.

use std::convert::Infallible;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use image::RgbImage;
use rand::Rng;
use tokio::sync::mpsc;
use verdict_models::qwen3_vl::chat::{Content, ContentPart as ModelPart, Message};

use crate::api::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest,
    ChoiceLogprobs, ChunkChoice, ChunkDelta, ContentPart, MessageContent, ResponseFormat,
    TokenLogprobOut, TopLogprob, Usage,
};
use crate::batcher::{Job, SubmitError};
use crate::decode::{ChatEvent, ChatFinish, ChatJob, TokenLogprob};
use crate::error::{AppError, ErrorBody};
use crate::inputs::{decode_base64, decode_image, fetch_url};
use crate::model::{ModelError, ServedModel};
use crate::object_schema::answer_schema;
use crate::state::AppState;

const DEFAULT_MAX_TOKENS: usize = 256;
const MAX_TOP_LOGPROBS: usize = 20;

/// Chat completion (OpenAI-compatible).
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, body = ChatCompletion, description = "A completion, or with `stream: true` a `text/event-stream` of ChatCompletionChunk events ending with `data: [DONE]`"),
        (status = 400, body = ErrorBody, description = "invalid_request, invalid_json, unsupported_model, unsupported_response_format, unsupported_parameter, invalid_image"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 503, body = ErrorBody, description = "overloaded (with Retry-After) or not_ready"),
        (status = 504, body = ErrorBody, description = "timeout"),
    ),
    security((), ("bearer" = [])),
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    body: Result<Json<ChatCompletionRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let engine = state.ready_engine()?;
    let Json(request) = body?;
    if !matches!(engine.model.as_ref(), ServedModel::Qwen(_)) {
        return Err(AppError::bad_request(
            "unsupported_model",
            "chat completions need a Qwen3-VL model; this server runs a text baseline \
             (use /v1/classify)",
        ));
    }
    let job = build_job(&state, &request).await?;
    let (events, mut receiver) = mpsc::unbounded_channel();
    match engine.batcher.submit(Job::Chat {
        job: Box::new(job),
        events,
    }) {
        Ok(()) => {}
        Err(SubmitError::Full) => {
            state.metrics().observe_rejection();
            return Err(AppError::overloaded(state.config().retry_after_seconds));
        }
        Err(SubmitError::Closed) => return Err(AppError::not_ready()),
    }
    let id = format!("chatcmpl-{:016x}", rand::rng().random::<u64>());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let model = request
        .model
        .clone()
        .unwrap_or_else(|| state.info().id.clone());
    let with_logprobs = request.logprobs.unwrap_or(false);
    if request.stream.unwrap_or(false) {
        // The first event decides the status: a request that fails before its first token
        // still gets a proper error response instead of a stream.
        let first = receiver.recv().await;
        if let Some(ChatEvent::Failed(error)) = &first {
            return Err(model_error(error.clone()));
        }
        let header = Header { id, created, model };
        let stream = sse_stream(header, first, receiver, with_logprobs);
        return Ok(Sse::new(stream).into_response());
    }
    let mut text = String::new();
    let mut logprobs = Vec::new();
    let mut prompt_tokens = 0;
    loop {
        match receiver.recv().await {
            Some(ChatEvent::Started { prompt_tokens: n }) => prompt_tokens = n,
            Some(ChatEvent::Token {
                text: delta,
                logprob,
            }) => {
                text.push_str(&delta);
                logprobs.extend(logprob.map(logprob_out));
            }
            Some(ChatEvent::Finished {
                finish,
                completion_tokens,
            }) => {
                return Ok(Json(ChatCompletion {
                    id,
                    object: "chat.completion".into(),
                    created,
                    model,
                    choices: vec![ChatChoice {
                        index: 0,
                        message: AssistantMessage {
                            role: "assistant".into(),
                            content: text,
                        },
                        finish_reason: finish_name(finish).into(),
                        logprobs: with_logprobs.then_some(ChoiceLogprobs { content: logprobs }),
                    }],
                    usage: Usage {
                        prompt_tokens,
                        completion_tokens,
                        total_tokens: prompt_tokens + completion_tokens,
                    },
                })
                .into_response())
            }
            Some(ChatEvent::Failed(error)) => return Err(model_error(error)),
            None => return Err(AppError::internal("the model thread ended a chat early")),
        }
    }
}

struct Header {
    id: String,
    created: u64,
    model: String,
}

impl Header {
    fn chunk(
        &self,
        delta: ChunkDelta,
        finish: Option<&str>,
        logprobs: Option<ChoiceLogprobs>,
    ) -> Event {
        let chunk = ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(String::from),
                logprobs,
            }],
        };
        Event::default().data(serde_json::to_string(&chunk).unwrap_or_default())
    }
}

fn sse_stream(
    header: Header,
    first: Option<ChatEvent>,
    receiver: mpsc::UnboundedReceiver<ChatEvent>,
    with_logprobs: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let opening = header.chunk(
        ChunkDelta {
            role: Some("assistant".into()),
            content: Some(String::new()),
        },
        None,
        None,
    );
    let events = stream::iter(first).chain(tokio_stream::wrappers::UnboundedReceiverStream::new(
        receiver,
    ));
    let body = events.scan(false, move |finished, event| {
        if *finished {
            return std::future::ready(None);
        }
        let out = match event {
            ChatEvent::Started { .. } => None,
            ChatEvent::Token { text, logprob } => Some(header.chunk(
                ChunkDelta {
                    role: None,
                    content: Some(text),
                },
                None,
                with_logprobs.then(|| ChoiceLogprobs {
                    content: logprob.map(logprob_out).into_iter().collect(),
                }),
            )),
            ChatEvent::Finished { finish, .. } => {
                *finished = true;
                Some(header.chunk(ChunkDelta::default(), Some(finish_name(finish)), None))
            }
            ChatEvent::Failed(error) => {
                *finished = true;
                let body = model_error(error).body();
                Some(Event::default().data(serde_json::to_string(&body).unwrap_or_default()))
            }
        };
        std::future::ready(Some(out))
    });
    stream::once(std::future::ready(opening))
        .chain(body.filter_map(std::future::ready))
        .chain(stream::once(std::future::ready(
            Event::default().data("[DONE]"),
        )))
        .map(Ok)
}

fn finish_name(finish: ChatFinish) -> &'static str {
    match finish {
        ChatFinish::Stop => "stop",
        ChatFinish::Length => "length",
    }
}

fn logprob_out(logprob: TokenLogprob) -> TokenLogprobOut {
    TokenLogprobOut {
        token: logprob.token,
        bytes: logprob.bytes,
        logprob: logprob.logprob,
        top_logprobs: logprob
            .top
            .into_iter()
            .map(|(token, bytes, logprob)| TopLogprob {
                token,
                bytes,
                logprob,
            })
            .collect(),
    }
}

fn model_error(error: ModelError) -> AppError {
    match error {
        ModelError::Input(message) => AppError::bad_request("invalid_input", message),
        ModelError::Internal(detail) => AppError::internal(detail),
    }
}

/// Checks the request and turns it into a model job (messages, decoded images, limits).
async fn build_job(state: &AppState, request: &ChatCompletionRequest) -> Result<ChatJob, AppError> {
    let config = state.config();
    if request.n.is_some_and(|n| n != 1) {
        return Err(AppError::bad_request(
            "unsupported_parameter",
            "only n = 1 is supported",
        ));
    }
    if request.messages.is_empty() {
        return Err(AppError::invalid("`messages` is empty"));
    }
    let schema = match &request.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => {
            return Err(AppError::bad_request(
                "unsupported_response_format",
                "`json_object` is not supported: use `json_schema` with the label answer \
                 schema (properties label (string enum), confidence (number), reason (string))",
            ))
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => Some(
            answer_schema(&json_schema.schema, config.max_reason_bytes).map_err(|message| {
                AppError::bad_request(
                    "unsupported_response_format",
                    format!("response_format.json_schema: {message}"),
                )
            })?,
        ),
    };
    let top_logprobs = request.top_logprobs.unwrap_or(0);
    if top_logprobs > MAX_TOP_LOGPROBS {
        return Err(AppError::bad_request(
            "unsupported_parameter",
            format!("top_logprobs is at most {MAX_TOP_LOGPROBS}"),
        ));
    }
    let temperature = request.temperature.unwrap_or(0.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(AppError::invalid("temperature must lie in [0, 2]"));
    }
    let requested = request
        .max_completion_tokens
        .or(request.max_tokens)
        .unwrap_or(match &schema {
            Some(schema) => schema.max_output_bytes() + 1,
            None => DEFAULT_MAX_TOKENS,
        });
    if requested == 0 {
        return Err(AppError::invalid("max_tokens must be at least 1"));
    }
    let mut messages = Vec::with_capacity(request.messages.len());
    let mut images: Vec<RgbImage> = Vec::new();
    for (index, message) in request.messages.iter().enumerate() {
        let what = format!("messages[{index}]");
        if !matches!(message.role.as_str(), "system" | "user" | "assistant") {
            return Err(AppError::invalid(format!(
                "{what}: role {:?} is not supported (system, user, assistant)",
                message.role
            )));
        }
        let content = match &message.content {
            None => Content::Text(String::new()),
            Some(MessageContent::Text(text)) => Content::Text(text.clone()),
            Some(MessageContent::Parts(parts)) => {
                let mut out = Vec::with_capacity(parts.len());
                for (part_index, part) in parts.iter().enumerate() {
                    match part {
                        ContentPart::Text { text } => {
                            out.push(ModelPart::Text { text: text.clone() })
                        }
                        ContentPart::ImageUrl { image_url } => {
                            if images.len() >= config.max_images_per_item {
                                return Err(AppError::too_large(
                                    "too_many_images",
                                    format!(
                                        "the limit is {} images per request",
                                        config.max_images_per_item
                                    ),
                                ));
                            }
                            let label = format!("{what}.content[{part_index}]");
                            let bytes = if image_url.url.starts_with("data:") {
                                decode_base64(&image_url.url, &label)?
                            } else {
                                fetch_url(
                                    state.http(),
                                    &image_url.url,
                                    config.url_timeout,
                                    config.max_url_bytes,
                                )
                                .await?
                            };
                            let max_pixels = config.max_image_pixels;
                            let image = tokio::task::spawn_blocking(move || {
                                decode_image(&bytes, max_pixels, &label)
                            })
                            .await
                            .map_err(|e| {
                                AppError::internal(format!("image decoding task: {e}"))
                            })??;
                            images.push(image);
                            out.push(ModelPart::Image);
                        }
                    }
                }
                Content::Parts(out)
            }
        };
        messages.push(Message {
            role: message.role.clone(),
            content,
        });
    }
    Ok(ChatJob {
        messages,
        images,
        max_new_tokens: requested.min(config.max_new_tokens),
        temperature,
        seed: request.seed.unwrap_or(0),
        logprobs: request.logprobs.unwrap_or(false).then_some(top_logprobs),
        schema,
        deadline: Instant::now() + config.request_timeout,
    })
}
