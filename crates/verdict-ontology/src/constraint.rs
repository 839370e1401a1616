//! Constrained decoding of a multi-label answer along ontology dimensions.
//!
//! The output is forced into exactly
//! `{"Area": ["Counting"], "Scope": ["NumbersSmaller10"], "Ability": ["ProcedureExecution"]}`:
//! every dimension once, in ontology order, each with a list of distinct concept names of that
//! dimension. Like the single-label answer grammar of `verdict-models`, it is a byte-level
//! automaton over token byte strings, so a token may cross any boundary (`"],` or `":["`), and
//! every complete walk is valid JSON that [`parse_answer`] accepts. Lists are bounded
//! (`max_labels`) and whitespace runs too, so generation always ends.

use std::sync::Arc;

use verdict_models::constraint::TokenConstraint;
use verdict_models::token_bytes::TokenBytes;

use crate::error::{OntologyError, Result};

/// Most labels a dimension may have (the used-label set is a fixed-size bit set).
pub const MAX_DIMENSION_LABELS: usize = 256;

/// Shape of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerSchema {
    /// Dimension names and their label names, in answer order.
    pub dimensions: Vec<(String, Vec<String>)>,
    /// Fewest labels per dimension (0 allows `[]`).
    pub min_labels: usize,
    /// Most labels per dimension.
    pub max_labels: usize,
    /// Longest run of whitespace between two structural tokens.
    pub max_whitespace: usize,
}

impl AnswerSchema {
    /// At least one and at most three labels per dimension, up to 2 whitespace bytes.
    pub fn new(dimensions: Vec<(String, Vec<String>)>) -> Result<Self> {
        let schema = Self {
            dimensions,
            min_labels: 1,
            max_labels: 3,
            max_whitespace: 2,
        };
        schema.check()?;
        Ok(schema)
    }

    /// Rejects schemas the automaton cannot serve.
    pub fn check(&self) -> Result<()> {
        let plain =
            |s: &str| !s.is_empty() && !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
        if self.dimensions.is_empty() {
            return Err(OntologyError::Input(
                "the answer needs at least one dimension".into(),
            ));
        }
        if self.max_labels == 0 || self.min_labels > self.max_labels {
            return Err(OntologyError::Input(format!(
                "label count bounds [{}, {}] are empty",
                self.min_labels, self.max_labels
            )));
        }
        for (dimension, labels) in &self.dimensions {
            if !plain(dimension) || labels.iter().any(|l| !plain(l)) {
                return Err(OntologyError::Input(format!(
                    "dimension `{dimension}`: names must be non-empty, without quotes, backslashes or control characters"
                )));
            }
            if labels.len() < self.min_labels || labels.len() > MAX_DIMENSION_LABELS {
                return Err(OntologyError::Input(format!(
                    "dimension `{dimension}` has {} labels; between {} and {MAX_DIMENSION_LABELS} are supported",
                    labels.len(),
                    self.min_labels
                )));
            }
            for (i, label) in labels.iter().enumerate() {
                if labels[..i].contains(label) {
                    return Err(OntologyError::Input(format!(
                        "dimension `{dimension}` lists `{label}` twice"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Upper bound on the answer length in bytes, hence on its tokens.
    pub fn max_output_bytes(&self) -> usize {
        let ws = self.max_whitespace;
        2 + self
            .dimensions
            .iter()
            .map(|(dimension, labels)| {
                let longest = labels.iter().map(String::len).max().unwrap_or(0);
                (dimension.len() + 2) + 4 * ws + 3 + self.max_labels * (longest + 3 + 2 * ws) + 1
            })
            .sum::<usize>()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before `{`.
    Open,
    /// Inside `"Dimension"`; `offset` bytes of it matched.
    Key,
    /// Before `:`.
    Colon,
    /// Before `[`.
    Bracket,
    /// After `[`: a label's quote or (if allowed) `]`.
    ArrayStart,
    /// Inside a label string; `offset` bytes matched, consistent with label `label`.
    Label,
    /// After a label: `,` or `]`.
    AfterLabel,
    /// After `,` in a list: the next label's quote.
    Comma,
    /// After `]`: `,` and the next dimension, or `}`.
    AfterArray,
    Done,
}

/// Position in the grammar; `Copy` so every candidate token is tried on a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    phase: Phase,
    dimension: usize,
    offset: usize,
    label: usize,
    count: usize,
    used: [u64; MAX_DIMENSION_LABELS / 64],
    whitespace: usize,
}

impl Cursor {
    fn start() -> Self {
        Self {
            phase: Phase::Open,
            dimension: 0,
            offset: 0,
            label: 0,
            count: 0,
            used: [0; MAX_DIMENSION_LABELS / 64],
            whitespace: 0,
        }
    }

    fn is_used(&self, label: usize) -> bool {
        self.used[label / 64] & (1 << (label % 64)) != 0
    }

    fn go(self, phase: Phase) -> Self {
        Self {
            phase,
            whitespace: 0,
            offset: 0,
            ..self
        }
    }

    fn can_add(&self, schema: &AnswerSchema) -> bool {
        let labels = &schema.dimensions[self.dimension].1;
        self.count < schema.max_labels && (0..labels.len()).any(|l| !self.is_used(l))
    }

    /// The cursor after `byte`, or `None` if the grammar rejects it.
    fn step(self, schema: &AnswerSchema, byte: u8) -> Option<Self> {
        use Phase::*;
        let whitespace = matches!(byte, b' ' | b'\n' | b'\t' | b'\r');
        let spaced = matches!(
            self.phase,
            Key | Colon | Bracket | ArrayStart | AfterLabel | Comma | AfterArray
        ) && !(self.phase == Key && self.offset > 0);
        if whitespace && spaced {
            return (self.whitespace < schema.max_whitespace).then_some(Self {
                whitespace: self.whitespace + 1,
                ..self
            });
        }
        let (dimension, labels) = &schema.dimensions.get(self.dimension)?;
        match (self.phase, byte) {
            (Open, b'{') => Some(self.go(Key)),
            (Key, _) => {
                let key = dimension.as_bytes();
                let expected = if self.offset == 0 || self.offset == key.len() + 1 {
                    b'"'
                } else {
                    key[self.offset - 1]
                };
                if byte != expected {
                    return None;
                }
                if self.offset == key.len() + 1 {
                    Some(self.go(Colon))
                } else {
                    Some(Self {
                        offset: self.offset + 1,
                        whitespace: 0,
                        ..self
                    })
                }
            }
            (Colon, b':') => Some(self.go(Bracket)),
            (Bracket, b'[') => Some(Self {
                count: 0,
                used: [0; MAX_DIMENSION_LABELS / 64],
                ..self.go(ArrayStart)
            }),
            (ArrayStart, b']') if schema.min_labels == 0 => Some(self.go(AfterArray)),
            (ArrayStart | Comma, b'"') if self.can_add(schema) => Some(self.go(Label)),
            (Label, b'"') => {
                let matched = &labels[self.label].as_bytes()[..self.offset];
                let complete = labels
                    .iter()
                    .enumerate()
                    .position(|(l, label)| label.as_bytes() == matched && !self.is_used(l))?;
                if self.offset == 0 {
                    return None;
                }
                let mut next = self.go(AfterLabel);
                next.used[complete / 64] |= 1 << (complete % 64);
                next.count += 1;
                Some(next)
            }
            (Label, _) => {
                let matched = &labels[self.label].as_bytes()[..self.offset];
                let label = labels.iter().enumerate().position(|(l, label)| {
                    let label = label.as_bytes();
                    !self.is_used(l)
                        && label.len() > self.offset
                        && label.starts_with(matched)
                        && label[self.offset] == byte
                })?;
                Some(Self {
                    label,
                    offset: self.offset + 1,
                    ..self
                })
            }
            (AfterLabel, b',') if self.can_add(schema) => Some(self.go(Comma)),
            (AfterLabel, b']') if self.count >= schema.min_labels => Some(self.go(AfterArray)),
            (AfterArray, b',') if self.dimension + 1 < schema.dimensions.len() => Some(Self {
                dimension: self.dimension + 1,
                label: 0,
                ..self.go(Key)
            }),
            (AfterArray, b'}') if self.dimension + 1 == schema.dimensions.len() => {
                Some(self.go(Done))
            }
            _ => None,
        }
    }

    fn accepts(self, schema: &AnswerSchema, bytes: &[u8]) -> Option<Self> {
        bytes
            .iter()
            .try_fold(self, |cursor, &byte| cursor.step(schema, byte))
    }
}

/// [`TokenConstraint`] for the ontology answer grammar.
#[derive(Debug, Clone)]
pub struct AnswerConstraint {
    schema: Arc<AnswerSchema>,
    tokens: Arc<TokenBytes>,
    stop_tokens: Vec<u32>,
    cursor: Cursor,
    output: Vec<u8>,
}

impl AnswerConstraint {
    /// `stop_tokens` (e.g. `<|im_end|>`) are offered once the answer is complete.
    pub fn new(
        schema: Arc<AnswerSchema>,
        tokens: Arc<TokenBytes>,
        stop_tokens: Vec<u32>,
    ) -> Result<Self> {
        schema.check()?;
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
}

impl TokenConstraint for AnswerConstraint {
    fn allowed(&self) -> Option<Vec<u32>> {
        if self.cursor.phase == Phase::Done {
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

    fn advance(&mut self, token: u32) -> verdict_models::Result<()> {
        if self.cursor.phase == Phase::Done {
            return if self.stop_tokens.contains(&token) {
                Ok(())
            } else {
                Err(verdict_models::Error::Constraint(format!(
                    "token {token} after the complete answer"
                )))
            };
        }
        let bytes = self.tokens.get(token).ok_or_else(|| {
            verdict_models::Error::Constraint(format!(
                "token {token} has no text and cannot appear in the answer"
            ))
        })?;
        let cursor = self.cursor.accepts(&self.schema, bytes).ok_or_else(|| {
            verdict_models::Error::Constraint(format!(
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
        self.cursor.phase == Phase::Done
    }
}

/// Labels per dimension, in dimension order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub dimensions: Vec<(String, Vec<String>)>,
}

impl Answer {
    /// The answer as a JSON object whose keys keep dimension order.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.dimensions
                .iter()
                .map(|(d, labels)| (d.clone(), serde_json::json!(labels)))
                .collect(),
        )
    }

    /// Labels of one dimension (empty when absent).
    pub fn labels(&self, dimension: &str) -> &[String] {
        self.dimensions
            .iter()
            .find(|(d, _)| d == dimension)
            .map(|(_, l)| l.as_slice())
            .unwrap_or(&[])
    }
}

/// Parses and checks an answer: an object with exactly the schema's dimensions, each a list of
/// distinct labels of that dimension within the count bounds.
pub fn parse_answer(text: &str, schema: &AnswerSchema) -> Result<Answer> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| OntologyError::Answer(format!("not JSON ({e}): {text:?}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| OntologyError::Answer(format!("not a JSON object: {text:?}")))?;
    if let Some(key) = object
        .keys()
        .find(|k| !schema.dimensions.iter().any(|(d, _)| d == *k))
    {
        return Err(OntologyError::Answer(format!("unknown dimension {key:?}")));
    }
    let mut answer = Answer::default();
    for (dimension, allowed) in &schema.dimensions {
        let list = object
            .get(dimension)
            .and_then(|v| v.as_array())
            .ok_or_else(|| OntologyError::Answer(format!("no list for dimension {dimension:?}")))?;
        let mut labels: Vec<String> = Vec::with_capacity(list.len());
        for item in list {
            let label = item.as_str().ok_or_else(|| {
                OntologyError::Answer(format!("{dimension}: {item} is not a string"))
            })?;
            if !allowed.iter().any(|a| a == label) {
                return Err(OntologyError::Answer(format!(
                    "{dimension}: {label:?} is not a concept of this dimension"
                )));
            }
            if labels.iter().any(|l| l == label) {
                return Err(OntologyError::Answer(format!(
                    "{dimension}: {label:?} twice"
                )));
            }
            labels.push(label.to_string());
        }
        if labels.len() < schema.min_labels || labels.len() > schema.max_labels {
            return Err(OntologyError::Answer(format!(
                "{dimension}: {} labels, expected {} to {}",
                labels.len(),
                schema.min_labels,
                schema.max_labels
            )));
        }
        answer.dimensions.push((dimension.clone(), labels));
    }
    Ok(answer)
}
