//! Schema-directed decoding of a classifier's JSON answer.
//!
//! The output is forced into exactly
//! `{"label": <one of the labels>, "confidence": <number in [0, 1]>, "reason": <string>}`,
//! keys in this order (label first, so the decision is made before the explanation), with JSON
//! whitespace allowed between tokens. The grammar is a small byte-level automaton: a token is
//! allowed when the automaton accepts all of its bytes from the current state, so any token
//! boundary works (a token may close the label and open the next key at once). Every walk
//! through the automaton ends in valid JSON that [`parse_label_json`] accepts: numbers and
//! strings have length caps, whitespace runs are bounded, and the strings stay valid UTF-8.

use std::sync::Arc;

use crate::constraint::TokenConstraint;
use crate::token_bytes::TokenBytes;
use crate::{Error, Result};

/// Knobs of the answer grammar.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelJsonSchema {
    /// Allowed labels, written as JSON strings (escaped as needed).
    pub labels: Vec<String>,
    /// Longest `reason` in bytes (its escapes included); then only the closing quote fits.
    pub max_reason_bytes: usize,
    /// Most digits after the decimal point of `confidence`.
    pub max_fraction_digits: usize,
    /// Longest run of whitespace between two structural tokens.
    pub max_whitespace: usize,
}

impl LabelJsonSchema {
    pub fn new(labels: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            labels: labels.into_iter().map(Into::into).collect(),
            max_reason_bytes: 400,
            max_fraction_digits: 4,
            max_whitespace: 4,
        }
    }
}

impl LabelJsonSchema {
    /// Upper bound on the answer length in bytes, hence on its tokens: generation with this
    /// constraint needs at most this many new tokens to finish (set `max_new_tokens` to it).
    pub fn max_output_bytes(&self) -> usize {
        let longest_label = self.labels.iter().map(String::len).max().unwrap_or(0);
        ITEMS
            .iter()
            .map(|item| match item {
                Item::Literal(text) => text.len(),
                Item::Whitespace => self.max_whitespace,
                Item::Label => longest_label,
                Item::Number => 2 + self.max_fraction_digits,
                // An escape or a multi-byte character may start just below the cap.
                Item::Text => self.max_reason_bytes + 5,
            })
            .sum()
    }
}

/// One piece of the answer grammar.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Item {
    Literal(&'static str),
    Whitespace,
    Label,
    Number,
    Text,
}

const ITEMS: [Item; 29] = [
    Item::Literal("{"),
    Item::Whitespace,
    Item::Literal("\"label\""),
    Item::Whitespace,
    Item::Literal(":"),
    Item::Whitespace,
    Item::Literal("\""),
    Item::Label,
    Item::Literal("\""),
    Item::Whitespace,
    Item::Literal(","),
    Item::Whitespace,
    Item::Literal("\"confidence\""),
    Item::Whitespace,
    Item::Literal(":"),
    Item::Whitespace,
    Item::Number,
    Item::Whitespace,
    Item::Literal(","),
    Item::Whitespace,
    Item::Literal("\"reason\""),
    Item::Whitespace,
    Item::Literal(":"),
    Item::Whitespace,
    Item::Literal("\""),
    Item::Text,
    Item::Literal("\""),
    Item::Whitespace,
    Item::Literal("}"),
];

/// Sub-state of the `confidence` number: `0`, `0.d+`, `1`, `1.0+`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberState {
    Start,
    Zero,
    One,
    ZeroDot(usize),
    OneDot(usize),
}

/// Sub-state of the `reason` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextState {
    Plain,
    Escape,
    /// Hex digits still expected after `\u`.
    Unicode(u8),
    /// UTF-8 continuation bytes still expected, and the allowed range of the next one.
    Utf8 {
        remaining: u8,
        low: u8,
        high: u8,
    },
}

/// Position in the grammar; small and `Copy` so every candidate token is tried on a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    item: usize,
    /// Bytes consumed inside the current item.
    offset: usize,
    /// A label consistent with the label bytes so far.
    label: usize,
    number: NumberState,
    text: TextState,
}

impl Cursor {
    fn start() -> Self {
        Self {
            item: 0,
            offset: 0,
            label: 0,
            number: NumberState::Start,
            text: TextState::Plain,
        }
    }

    fn next_item(self) -> Self {
        Self {
            item: self.item + 1,
            offset: 0,
            number: NumberState::Start,
            text: TextState::Plain,
            ..self
        }
    }

    fn is_done(&self) -> bool {
        self.item == ITEMS.len()
    }

    /// The cursor after `byte`, or `None` if the grammar rejects it.
    fn step(mut self, schema: &LabelJsonSchema, byte: u8) -> Option<Self> {
        loop {
            let item = *ITEMS.get(self.item)?;
            match item {
                Item::Literal(text) => {
                    if text.as_bytes()[self.offset] != byte {
                        return None;
                    }
                    self.offset += 1;
                    return Some(if self.offset == text.len() {
                        self.next_item()
                    } else {
                        self
                    });
                }
                Item::Whitespace => {
                    if matches!(byte, b' ' | b'\n' | b'\t' | b'\r')
                        && self.offset < schema.max_whitespace
                    {
                        self.offset += 1;
                        return Some(self);
                    }
                    self = self.next_item();
                }
                Item::Label => {
                    let matched = &schema.labels[self.label].as_bytes()[..self.offset];
                    let extended = schema.labels.iter().position(|label| {
                        let label = label.as_bytes();
                        label.len() > self.offset
                            && label.starts_with(matched)
                            && label[self.offset] == byte
                    });
                    if let Some(label) = extended {
                        return Some(Self {
                            label,
                            offset: self.offset + 1,
                            ..self
                        });
                    }
                    let complete = schema
                        .labels
                        .iter()
                        .any(|label| label.as_bytes() == matched);
                    if !complete || self.offset == 0 {
                        return None;
                    }
                    self = self.next_item();
                }
                Item::Number => {
                    use NumberState::*;
                    let digit = byte.is_ascii_digit();
                    let max = schema.max_fraction_digits;
                    let next = match (self.number, byte) {
                        (Start, b'0') => Some(Zero),
                        (Start, b'1') => Some(One),
                        (Zero, b'.') if max > 0 => Some(ZeroDot(0)),
                        (One, b'.') if max > 0 => Some(OneDot(0)),
                        (ZeroDot(n), _) if digit && n < max => Some(ZeroDot(n + 1)),
                        (OneDot(n), b'0') if n < max => Some(OneDot(n + 1)),
                        _ => None,
                    };
                    if let Some(number) = next {
                        return Some(Self { number, ..self });
                    }
                    if !matches!(self.number, Zero | One | ZeroDot(1..) | OneDot(1..)) {
                        return None;
                    }
                    self = self.next_item();
                }
                Item::Text => return self.step_text(schema, byte),
            }
        }
    }

    fn step_text(mut self, schema: &LabelJsonSchema, byte: u8) -> Option<Self> {
        let text = match self.text {
            TextState::Plain => match byte {
                b'"' => return self.next_item().step(schema, byte),
                _ if self.offset >= schema.max_reason_bytes => return None,
                b'\\' => TextState::Escape,
                0x00..=0x1F => return None,
                0x20..=0x7F => TextState::Plain,
                0xC2..=0xDF => TextState::Utf8 {
                    remaining: 1,
                    low: 0x80,
                    high: 0xBF,
                },
                0xE0 => TextState::Utf8 {
                    remaining: 2,
                    low: 0xA0,
                    high: 0xBF,
                },
                0xED => TextState::Utf8 {
                    remaining: 2,
                    low: 0x80,
                    high: 0x9F,
                },
                0xE1..=0xEF => TextState::Utf8 {
                    remaining: 2,
                    low: 0x80,
                    high: 0xBF,
                },
                0xF0 => TextState::Utf8 {
                    remaining: 3,
                    low: 0x90,
                    high: 0xBF,
                },
                0xF1..=0xF3 => TextState::Utf8 {
                    remaining: 3,
                    low: 0x80,
                    high: 0xBF,
                },
                0xF4 => TextState::Utf8 {
                    remaining: 3,
                    low: 0x80,
                    high: 0x8F,
                },
                _ => return None,
            },
            TextState::Escape => match byte {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => TextState::Plain,
                b'u' => TextState::Unicode(4),
                _ => return None,
            },
            TextState::Unicode(left) if byte.is_ascii_hexdigit() => {
                if left == 1 {
                    TextState::Plain
                } else {
                    TextState::Unicode(left - 1)
                }
            }
            TextState::Unicode(_) => return None,
            TextState::Utf8 {
                remaining,
                low,
                high,
            } if (low..=high).contains(&byte) => {
                if remaining == 1 {
                    TextState::Plain
                } else {
                    TextState::Utf8 {
                        remaining: remaining - 1,
                        low: 0x80,
                        high: 0xBF,
                    }
                }
            }
            TextState::Utf8 { .. } => return None,
        };
        // Escapes and multi-byte characters may overrun the cap by a few bytes; the cap only
        // has to make every walk finite.
        self.offset += 1;
        self.text = text;
        Some(self)
    }

    fn accepts(self, schema: &LabelJsonSchema, bytes: &[u8]) -> Option<Self> {
        bytes
            .iter()
            .try_fold(self, |cursor, &byte| cursor.step(schema, byte))
    }
}

/// [`TokenConstraint`] for the classifier answer grammar.
#[derive(Debug, Clone)]
pub struct LabelJsonConstraint {
    schema: Arc<LabelJsonSchema>,
    tokens: Arc<TokenBytes>,
    stop_tokens: Vec<u32>,
    cursor: Cursor,
    output: Vec<u8>,
}

impl LabelJsonConstraint {
    /// `stop_tokens` (e.g. `<|im_end|>`) are offered once the answer is complete.
    pub fn new(
        schema: Arc<LabelJsonSchema>,
        tokens: Arc<TokenBytes>,
        stop_tokens: Vec<u32>,
    ) -> Result<Self> {
        if schema.labels.is_empty() || schema.labels.iter().any(String::is_empty) {
            return Err(Error::Constraint(
                "the label set must be non-empty and labels non-empty".into(),
            ));
        }
        if let Some(label) = schema
            .labels
            .iter()
            .find(|l| l.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20))
        {
            return Err(Error::Constraint(format!(
                "label {label:?} must be given JSON-escaped without quotes or backslashes"
            )));
        }
        Ok(Self {
            schema,
            tokens,
            stop_tokens,
            cursor: Cursor::start(),
            output: Vec::new(),
        })
    }

    /// Bytes emitted so far.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// Whether a token would be accepted now.
    pub fn allows(&self, token: u32) -> bool {
        match self.tokens.get(token) {
            Some(bytes) => self.cursor.accepts(&self.schema, bytes).is_some(),
            None => self.cursor.is_done() && self.stop_tokens.contains(&token),
        }
    }
}

impl TokenConstraint for LabelJsonConstraint {
    fn allowed(&self) -> Option<Vec<u32>> {
        if self.cursor.is_done() {
            return Some(self.stop_tokens.clone());
        }
        let mut allowed = Vec::new();
        for first in 0..=255u8 {
            let Some(after_first) = self.cursor.step(&self.schema, first) else {
                continue;
            };
            for &id in self.tokens.starting_with(first) {
                let bytes = self.tokens.get(id).unwrap_or_default();
                if after_first.accepts(&self.schema, &bytes[1..]).is_some() {
                    allowed.push(id);
                }
            }
        }
        allowed.sort_unstable();
        Some(allowed)
    }

    fn advance(&mut self, token: u32) -> Result<()> {
        if self.cursor.is_done() {
            return if self.stop_tokens.contains(&token) {
                Ok(())
            } else {
                Err(Error::Constraint(format!(
                    "token {token} after the complete answer"
                )))
            };
        }
        let bytes = self.tokens.get(token).ok_or_else(|| {
            Error::Constraint(format!(
                "token {token} has no text and cannot appear in the answer"
            ))
        })?;
        let cursor = self.cursor.accepts(&self.schema, bytes).ok_or_else(|| {
            Error::Constraint(format!(
                "token {token} ({:?}) does not fit after {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&self.output)
            ))
        })?;
        self.cursor = cursor;
        self.output.extend_from_slice(bytes);
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.cursor.is_done()
    }
}

/// A parsed classifier answer.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelJson {
    pub label: String,
    pub confidence: f64,
    pub reason: String,
}

/// Parses and checks an answer against the schema (label in the set, confidence in [0, 1]).
pub fn parse_label_json(text: &str, labels: &[String]) -> Result<LabelJson> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|err| Error::Constraint(format!("answer is not JSON ({err}): {text:?}")))?;
    let field = |key: &str| {
        value
            .get(key)
            .ok_or_else(|| Error::Constraint(format!("answer has no \"{key}\": {text:?}")))
    };
    let label = field("label")?
        .as_str()
        .ok_or_else(|| Error::Constraint("\"label\" is not a string".into()))?;
    if !labels.iter().any(|l| l == label) {
        return Err(Error::Constraint(format!(
            "label {label:?} is not one of {labels:?}"
        )));
    }
    let confidence = field("confidence")?
        .as_f64()
        .ok_or_else(|| Error::Constraint("\"confidence\" is not a number".into()))?;
    if !(0.0..=1.0).contains(&confidence) {
        return Err(Error::Constraint(format!(
            "confidence {confidence} is outside [0, 1]"
        )));
    }
    let reason = field("reason")?
        .as_str()
        .ok_or_else(|| Error::Constraint("\"reason\" is not a string".into()))?;
    Ok(LabelJson {
        label: label.to_string(),
        confidence,
        reason: reason.to_string(),
    })
}
