//! Constrained decoding for flat object answers: the JSON schemas of labelling jobs
//! (`{"clean_title": string, "style": one of [...], "seats": integer, ...}`).
//!
//! A schema is accepted when every answer the grammar can produce satisfies it, following
//! structured-output strict mode: `type: object`, every property listed in `required`,
//! `additionalProperties: false`, and properties of type `string` (with `enum`, or free with
//! an optional `maxLength`), `boolean`, `integer` or `number`. Numeric bounds are accepted
//! where decoding enforces them: `minimum: 0` (no sign), integer ranges of at most
//! [`MAX_INTEGER_CHOICES`] values (decoded as a choice), and number bounds containing [0, 1]
//! (decoded in [0, 1]). Other bounds are refused with a 400 rather than decoded into answers
//! that might not validate.
//!
//! The grammar is a list of pieces (literals, whitespace, choices, strings, numbers) walked
//! by a byte-level cursor, like the label answer grammar of `verdict_models`: a token is
//! allowed when the cursor accepts all of its bytes, and every piece is bounded, so every
//! walk ends in a complete answer.

use serde_json::{Map, Value};
use verdict_models::constraint::TokenConstraint;
use verdict_models::json_constraint::LabelJsonSchema;
use verdict_models::token_bytes::TokenBytes;

/// Longest integer range decoded as a choice of its values.
pub const MAX_INTEGER_CHOICES: i64 = 1000;
const MAX_WHITESPACE: usize = 2;
const MAX_INTEGER_DIGITS: usize = 12;
const MAX_FRACTION_DIGITS: usize = 6;
/// Cap of a free string without `maxLength`, in bytes.
pub const DEFAULT_STRING_BYTES: usize = 256;

/// The answer grammar of a chat request: the label answer or a flat object.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerSchema {
    Label(LabelJsonSchema),
    Object(ObjectGrammar),
}

impl AnswerSchema {
    /// Upper bound on the answer's bytes, hence on its tokens.
    pub fn max_output_bytes(&self) -> usize {
        match self {
            AnswerSchema::Label(schema) => schema.max_output_bytes(),
            AnswerSchema::Object(grammar) => grammar.max_output_bytes(),
        }
    }
}

/// The label answer schema if `schema` is one, otherwise a flat object grammar.
pub fn answer_schema(schema: &Value, default_reason_bytes: usize) -> Result<AnswerSchema, String> {
    match crate::schema::label_schema(schema, default_reason_bytes) {
        Ok(label) => Ok(AnswerSchema::Label(label)),
        Err(label_error) => match ObjectGrammar::from_schema(schema) {
            Ok(grammar) => Ok(AnswerSchema::Object(grammar)),
            Err(object_error) => Err(format!(
                "{object_error} (nor is it the label answer schema: {label_error})"
            )),
        },
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Whitespace,
    /// One of these exact byte strings (quoted strings, `true`/`false`, integers).
    Choice(Vec<String>),
    /// The inside of a JSON string, at most this many bytes.
    Text(usize),
    Number {
        integer: bool,
        signed: bool,
    },
    /// A number in [0, 1]: `0`, `0.d+`, `1`, `1.0+`.
    Unit,
}

/// A flat object answer as a sequence of pieces.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectGrammar {
    pieces: Vec<Piece>,
}

impl ObjectGrammar {
    pub fn from_schema(schema: &Value) -> Result<Self, String> {
        let object = schema
            .as_object()
            .ok_or("the schema must be a JSON object")?;
        if object.get("type") != Some(&Value::from("object")) {
            return Err("the schema must say \"type\": \"object\"".into());
        }
        if let Some(key) = object.keys().find(|k| {
            !matches!(
                k.as_str(),
                "type"
                    | "properties"
                    | "required"
                    | "additionalProperties"
                    | "title"
                    | "description"
                    | "$schema"
            )
        }) {
            return Err(format!(
                "schema keyword `{key}` is not supported at the top level"
            ));
        }
        let properties = object
            .get("properties")
            .and_then(Value::as_object)
            .filter(|p| !p.is_empty())
            .ok_or("the schema needs non-empty `properties`")?;
        let required: Vec<&str> = object
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if properties.keys().any(|k| !required.contains(&k.as_str()))
            || object.get("additionalProperties") != Some(&Value::Bool(false))
        {
            return Err(
                "constrained answers follow strict mode: list every property in \
                        `required` and set `additionalProperties: false`"
                    .into(),
            );
        }
        let mut pieces = Vec::new();
        for (index, (name, property)) in properties.iter().enumerate() {
            if name.is_empty() || name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
                return Err(format!(
                    "property {name:?}: names must be non-empty, without quotes, backslashes \
                     or control characters"
                ));
            }
            pieces.push(Piece::Literal(if index == 0 { "{" } else { "," }.into()));
            pieces.push(Piece::Whitespace);
            pieces.push(Piece::Literal(format!("\"{name}\"")));
            pieces.push(Piece::Whitespace);
            pieces.push(Piece::Literal(":".into()));
            pieces.push(Piece::Whitespace);
            value_pieces(name, property, &mut pieces)?;
            pieces.push(Piece::Whitespace);
        }
        pieces.push(Piece::Literal("}".into()));
        Ok(Self { pieces })
    }

    pub fn max_output_bytes(&self) -> usize {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Literal(text) => text.len(),
                Piece::Whitespace => MAX_WHITESPACE,
                Piece::Choice(choices) => choices.iter().map(String::len).max().unwrap_or(0),
                // An escape or a multi-byte character may start just below the cap.
                Piece::Text(max) => max + 5,
                Piece::Number { .. } => 2 + MAX_INTEGER_DIGITS + MAX_FRACTION_DIGITS,
                Piece::Unit => 2 + MAX_FRACTION_DIGITS,
            })
            .sum()
    }
}

fn value_pieces(name: &str, property: &Value, pieces: &mut Vec<Piece>) -> Result<(), String> {
    let property = property
        .as_object()
        .ok_or_else(|| format!("property `{name}` must be a schema object"))?;
    let kind = property.get("type").and_then(Value::as_str).unwrap_or("");
    let allowed: &[&str] = match kind {
        "string" => &["type", "enum", "maxLength", "description", "title"],
        "integer" | "number" => &["type", "minimum", "maximum", "description", "title"],
        "boolean" => &["type", "description", "title"],
        _ => {
            return Err(format!(
                "property `{name}`: type must be string, number, integer or boolean"
            ))
        }
    };
    if let Some(key) = property.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "property `{name}`: keyword `{key}` is not supported for {kind}"
        ));
    }
    match kind {
        "string" => match property.get("enum") {
            Some(values) => {
                let values = values.as_array().filter(|v| !v.is_empty()).ok_or_else(|| {
                    format!("property `{name}`: `enum` must be a non-empty array")
                })?;
                let mut choices = Vec::new();
                for value in values {
                    let text = value.as_str().ok_or_else(|| {
                        format!("property `{name}`: `enum` holds {value}, not a string")
                    })?;
                    choices.push(Value::from(text).to_string());
                }
                pieces.push(Piece::Choice(choices));
            }
            None => {
                let max = match property.get("maxLength") {
                    // maxLength counts characters; a byte cap of the same number is never longer.
                    Some(value) => value.as_u64().ok_or_else(|| {
                        format!("property `{name}`: `maxLength` must be a non-negative integer")
                    })? as usize,
                    None => DEFAULT_STRING_BYTES,
                };
                pieces.push(Piece::Literal("\"".into()));
                pieces.push(Piece::Text(max));
                pieces.push(Piece::Literal("\"".into()));
            }
        },
        "boolean" => pieces.push(Piece::Choice(vec!["true".into(), "false".into()])),
        _ => pieces.push(number_piece(name, kind == "integer", property)?),
    }
    Ok(())
}

fn number_piece(name: &str, integer: bool, property: &Map<String, Value>) -> Result<Piece, String> {
    let bound = |key: &str| -> Result<Option<f64>, String> {
        property
            .get(key)
            .map(|v| {
                v.as_f64()
                    .ok_or(format!("property `{name}`: `{key}` must be a number"))
            })
            .transpose()
    };
    let (minimum, maximum) = (bound("minimum")?, bound("maximum")?);
    Ok(match (minimum, maximum) {
        (None, None) => Piece::Number {
            integer,
            signed: true,
        },
        (Some(0.0), None) => Piece::Number {
            integer,
            signed: false,
        },
        (Some(min), Some(max))
            if integer && max >= min && (max.floor() - min.ceil()) < MAX_INTEGER_CHOICES as f64 =>
        {
            let (low, high) = (min.ceil() as i64, max.floor() as i64);
            Piece::Choice((low..=high).map(|n| n.to_string()).collect())
        }
        (Some(min), Some(max)) if !integer && min <= 0.0 && max >= 1.0 => Piece::Unit,
        _ => {
            return Err(format!(
                "property `{name}`: decoding can enforce `minimum: 0`, integer ranges of at most \
                 {MAX_INTEGER_CHOICES} values and number bounds containing [0, 1]; drop other \
                 bounds (and check them after) or use an enum"
            ))
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberState {
    Start,
    Sign,
    Zero,
    Int(usize),
    Frac(usize),
    One,
    OneFrac(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextState {
    Plain,
    Escape,
    Unicode(u8),
    Utf8 { remaining: u8, low: u8, high: u8 },
}

/// Position in the grammar; `Copy` so each candidate token is tried on a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    piece: usize,
    offset: usize,
    choice: usize,
    number: NumberState,
    text: TextState,
}

impl Cursor {
    fn start() -> Self {
        Self {
            piece: 0,
            offset: 0,
            choice: 0,
            number: NumberState::Start,
            text: TextState::Plain,
        }
    }

    fn next_piece(self) -> Self {
        Self {
            piece: self.piece + 1,
            ..Self::start()
        }
    }

    fn is_done(&self, grammar: &ObjectGrammar) -> bool {
        self.piece == grammar.pieces.len()
    }

    fn step(mut self, grammar: &ObjectGrammar, byte: u8) -> Option<Self> {
        loop {
            match grammar.pieces.get(self.piece)? {
                Piece::Literal(text) => {
                    if text.as_bytes()[self.offset] != byte {
                        return None;
                    }
                    self.offset += 1;
                    return Some(if self.offset == text.len() {
                        self.next_piece()
                    } else {
                        self
                    });
                }
                Piece::Whitespace => {
                    if matches!(byte, b' ' | b'\n') && self.offset < MAX_WHITESPACE {
                        self.offset += 1;
                        return Some(self);
                    }
                    self = self.next_piece();
                }
                Piece::Choice(choices) => {
                    let matched = &choices[self.choice].as_bytes()[..self.offset];
                    let extended = choices.iter().position(|choice| {
                        let choice = choice.as_bytes();
                        choice.len() > self.offset
                            && choice.starts_with(matched)
                            && choice[self.offset] == byte
                    });
                    if let Some(choice) = extended {
                        return Some(Self {
                            choice,
                            offset: self.offset + 1,
                            ..self
                        });
                    }
                    let complete = choices.iter().any(|c| c.as_bytes() == matched);
                    if !complete || self.offset == 0 {
                        return None;
                    }
                    self = self.next_piece();
                }
                Piece::Number { integer, signed } => {
                    use NumberState::*;
                    let digit = byte.is_ascii_digit();
                    let next = match (self.number, byte) {
                        (Start, b'-') if *signed => Some(Sign),
                        // `-0` would parse as a float, not an integer.
                        (Start, b'0') => Some(Zero),
                        (Sign, b'0') if !integer => Some(Zero),
                        (Start | Sign, b'1'..=b'9') => Some(Int(1)),
                        (Int(n), _) if digit && n < MAX_INTEGER_DIGITS => Some(Int(n + 1)),
                        (Zero | Int(_), b'.') if !integer => Some(Frac(0)),
                        (Frac(n), _) if digit && n < MAX_FRACTION_DIGITS => Some(Frac(n + 1)),
                        _ => None,
                    };
                    if let Some(number) = next {
                        return Some(Self { number, ..self });
                    }
                    if !matches!(self.number, Zero | Int(_) | Frac(1..)) {
                        return None;
                    }
                    self = self.next_piece();
                }
                Piece::Unit => {
                    use NumberState::*;
                    let next = match (self.number, byte) {
                        (Start, b'0') => Some(Zero),
                        (Start, b'1') => Some(One),
                        (Zero, b'.') => Some(Frac(0)),
                        (One, b'.') => Some(OneFrac(0)),
                        (Frac(n), _) if byte.is_ascii_digit() && n < MAX_FRACTION_DIGITS => {
                            Some(Frac(n + 1))
                        }
                        (OneFrac(n), b'0') if n < MAX_FRACTION_DIGITS => Some(OneFrac(n + 1)),
                        _ => None,
                    };
                    if let Some(number) = next {
                        return Some(Self { number, ..self });
                    }
                    if !matches!(self.number, Zero | One | Frac(1..) | OneFrac(1..)) {
                        return None;
                    }
                    self = self.next_piece();
                }
                Piece::Text(max) => return self.step_text(grammar, *max, byte),
            }
        }
    }

    fn step_text(mut self, grammar: &ObjectGrammar, max: usize, byte: u8) -> Option<Self> {
        let utf8 = |remaining, low, high| TextState::Utf8 {
            remaining,
            low,
            high,
        };
        let text = match self.text {
            TextState::Plain => match byte {
                b'"' => return self.next_piece().step(grammar, byte),
                _ if self.offset >= max => return None,
                b'\\' => TextState::Escape,
                0x00..=0x1F => return None,
                0x20..=0x7F => TextState::Plain,
                0xC2..=0xDF => utf8(1, 0x80, 0xBF),
                0xE0 => utf8(2, 0xA0, 0xBF),
                0xED => utf8(2, 0x80, 0x9F),
                0xE1..=0xEF => utf8(2, 0x80, 0xBF),
                0xF0 => utf8(3, 0x90, 0xBF),
                0xF1..=0xF3 => utf8(3, 0x80, 0xBF),
                0xF4 => utf8(3, 0x80, 0x8F),
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
                    utf8(remaining - 1, 0x80, 0xBF)
                }
            }
            TextState::Utf8 { .. } => return None,
        };
        self.offset += 1;
        self.text = text;
        Some(self)
    }

    fn accepts(self, grammar: &ObjectGrammar, bytes: &[u8]) -> Option<Self> {
        bytes
            .iter()
            .try_fold(self, |cursor, &byte| cursor.step(grammar, byte))
    }
}

/// [`TokenConstraint`] for an [`ObjectGrammar`].
pub struct ObjectConstraint<'a> {
    grammar: ObjectGrammar,
    tokens: &'a TokenBytes,
    stop_tokens: Vec<u32>,
    cursor: Cursor,
}

impl<'a> ObjectConstraint<'a> {
    /// `stop_tokens` (e.g. `<|im_end|>`) are offered once the answer is complete.
    pub fn new(grammar: ObjectGrammar, tokens: &'a TokenBytes, stop_tokens: Vec<u32>) -> Self {
        Self {
            grammar,
            tokens,
            stop_tokens,
            cursor: Cursor::start(),
        }
    }
}

impl TokenConstraint for ObjectConstraint<'_> {
    fn allowed(&self) -> Option<Vec<u32>> {
        if self.cursor.is_done(&self.grammar) {
            return Some(self.stop_tokens.clone());
        }
        let mut allowed = Vec::new();
        for first in 0..=255u8 {
            let Some(after_first) = self.cursor.step(&self.grammar, first) else {
                continue;
            };
            for &id in self.tokens.starting_with(first) {
                let bytes = self.tokens.get(id).unwrap_or_default();
                if after_first.accepts(&self.grammar, &bytes[1..]).is_some() {
                    allowed.push(id);
                }
            }
        }
        allowed.sort_unstable();
        Some(allowed)
    }

    fn advance(&mut self, token: u32) -> verdict_models::Result<()> {
        let error = |message: String| verdict_models::Error::Constraint(message);
        if self.cursor.is_done(&self.grammar) {
            return if self.stop_tokens.contains(&token) {
                Ok(())
            } else {
                Err(error(format!("token {token} after the complete answer")))
            };
        }
        let bytes = self
            .tokens
            .get(token)
            .ok_or_else(|| error(format!("token {token} has no text")))?;
        self.cursor = self
            .cursor
            .accepts(&self.grammar, bytes)
            .ok_or_else(|| error(format!("token {token} does not fit the answer grammar")))?;
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.cursor.is_done(&self.grammar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "style": {"type": "string", "enum": ["modern", "mod", "rustic \"old\""]},
                "title": {"type": "string", "maxLength": 12},
                "seats": {"type": "integer", "minimum": 1, "maximum": 12},
                "weight": {"type": "number", "minimum": 0},
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "delta": {"type": "integer"},
                "indoor": {"type": "boolean"}
            },
            "required": ["style", "title", "seats", "weight", "score", "delta", "indoor"],
            "additionalProperties": false
        })
    }

    /// Random walks through the grammar byte by byte always end in JSON that fits.
    #[test]
    fn every_walk_is_a_valid_answer() {
        let grammar = ObjectGrammar::from_schema(&schema()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..300 {
            let mut cursor = Cursor::start();
            let mut out = Vec::new();
            while !cursor.is_done(&grammar) {
                let options: Vec<(u8, Cursor)> = (0..=255u8)
                    .filter_map(|b| cursor.step(&grammar, b).map(|c| (b, c)))
                    .collect();
                assert!(
                    !options.is_empty(),
                    "stuck after {:?}",
                    String::from_utf8_lossy(&out)
                );
                let (byte, next) = options[rng.random_range(0..options.len())];
                out.push(byte);
                cursor = next;
                assert!(out.len() <= grammar.max_output_bytes());
            }
            let text = String::from_utf8(out).unwrap();
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let style = value["style"].as_str().unwrap();
            assert!(
                ["modern", "mod", "rustic \"old\""].contains(&style),
                "{text}"
            );
            assert!(value["title"].as_str().unwrap().chars().count() <= 12);
            let seats = value["seats"].as_i64().unwrap();
            assert!((1..=12).contains(&seats));
            assert!(value["weight"].as_f64().unwrap() >= 0.0);
            let score = value["score"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&score), "{text}");
            assert!(value["delta"].is_i64() || value["delta"].is_u64(), "{text}");
            assert!(value["indoor"].is_boolean());
            assert_eq!(value.as_object().unwrap().len(), 7);
        }
    }

    #[test]
    fn unenforceable_schemas_are_refused() {
        let mut optional = schema();
        optional["required"] = json!(["style"]);
        assert!(ObjectGrammar::from_schema(&optional)
            .unwrap_err()
            .contains("strict"));
        let mut bounded = schema();
        bounded["properties"]["weight"]["minimum"] = json!(2);
        bounded["properties"]["weight"]["maximum"] = json!(5.5);
        assert!(ObjectGrammar::from_schema(&bounded)
            .unwrap_err()
            .contains("bounds"));
        let mut array = schema();
        array["properties"]["style"] = json!({"type": "array"});
        assert!(ObjectGrammar::from_schema(&array).is_err());
        assert!(matches!(
            answer_schema(
                &json!({
                    "type": "object",
                    "properties": {
                        "label": {"type": "string", "enum": ["a", "b"]},
                        "confidence": {"type": "number"},
                        "reason": {"type": "string"}
                    }
                }),
                200
            ),
            Ok(AnswerSchema::Label(_))
        ));
        assert!(matches!(
            answer_schema(&schema(), 200),
            Ok(AnswerSchema::Object(_))
        ));
    }
}
