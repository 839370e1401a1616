//! Which `response_format` JSON schemas constrained decoding can enforce.
//!
//! The decoder's grammar is the classifier answer
//! `{"label": <one of N strings>, "confidence": <number in [0, 1]>, "reason": <string>}`
//! (see `verdict_models::json_constraint`). A schema is accepted when every answer of that
//! grammar satisfies it: an object whose properties are exactly `label` (a string `enum`),
//! `confidence` (a number or integer-free `number`, any bounds containing [0, 1]) and `reason`
//! (a string, optionally with `maxLength`, which bounds the generated reason). Anything else
//! is refused with a 400 naming the part that does not fit, rather than decoding something
//! that might not validate.

use serde_json::{Map, Value};
use verdict_models::json_constraint::LabelJsonSchema;

/// Checks `schema` and returns the grammar settings that enforce it.
pub fn label_schema(
    schema: &Value,
    default_reason_bytes: usize,
) -> Result<LabelJsonSchema, String> {
    let object = schema
        .as_object()
        .ok_or("the schema must be a JSON object")?;
    expect_type(object, "object", "the schema")?;
    for key in object.keys() {
        if !matches!(
            key.as_str(),
            "type"
                | "properties"
                | "required"
                | "additionalProperties"
                | "title"
                | "description"
                | "$schema"
        ) {
            return Err(format!(
                "schema keyword `{key}` is not supported at the top level"
            ));
        }
    }
    if let Some(additional) = object.get("additionalProperties") {
        if additional != &Value::Bool(false) && additional != &Value::Bool(true) {
            return Err("`additionalProperties` must be true or false".into());
        }
    }
    let properties = object
        .get("properties")
        .and_then(Value::as_object)
        .ok_or("the schema needs `properties`")?;
    let mut names: Vec<&str> = properties.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names != ["confidence", "label", "reason"] {
        return Err(format!(
            "supported answers have exactly the properties label, confidence and reason; \
             this schema has {names:?}"
        ));
    }
    if let Some(required) = object.get("required") {
        let required = required.as_array().ok_or("`required` must be an array")?;
        for name in required {
            if !name.as_str().is_some_and(|n| properties.contains_key(n)) {
                return Err(format!("`required` names {name}, which is not a property"));
            }
        }
    }
    let labels = label_enum(&properties["label"])?;
    check_confidence(&properties["confidence"])?;
    let max_reason_bytes = reason_length(&properties["reason"], default_reason_bytes)?;
    let mut grammar = LabelJsonSchema::new(labels);
    grammar.max_reason_bytes = max_reason_bytes;
    Ok(grammar)
}

fn expect_type(object: &Map<String, Value>, expected: &str, what: &str) -> Result<(), String> {
    match object.get("type") {
        Some(Value::String(t)) if t == expected => Ok(()),
        Some(other) => Err(format!(
            "{what} must have \"type\": \"{expected}\", not {other}"
        )),
        None => Err(format!("{what} must say \"type\": \"{expected}\"")),
    }
}

fn only_keys(object: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(format!("{what}: keyword `{key}` is not supported")),
        None => Ok(()),
    }
}

fn label_enum(property: &Value) -> Result<Vec<String>, String> {
    let object = property
        .as_object()
        .ok_or("`label` must be a schema object")?;
    expect_type(object, "string", "`label`")?;
    only_keys(object, &["type", "enum", "description", "title"], "`label`")?;
    let values = object
        .get("enum")
        .and_then(Value::as_array)
        .ok_or("`label` needs an `enum` of the allowed labels")?;
    let mut labels = Vec::with_capacity(values.len());
    for value in values {
        let label = value
            .as_str()
            .ok_or_else(|| format!("`label.enum` holds {value}, not a string"))?;
        if label.is_empty() || label.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            return Err(format!(
                "label {label:?}: labels must be non-empty, without quotes, backslashes or \
                 control characters"
            ));
        }
        if labels.iter().any(|l| l == label) {
            return Err(format!("label {label:?} is listed twice"));
        }
        labels.push(label.to_string());
    }
    if labels.is_empty() {
        return Err("`label.enum` is empty".into());
    }
    Ok(labels)
}

fn check_confidence(property: &Value) -> Result<(), String> {
    let object = property
        .as_object()
        .ok_or("`confidence` must be a schema object")?;
    expect_type(object, "number", "`confidence`")?;
    only_keys(
        object,
        &["type", "minimum", "maximum", "description", "title"],
        "`confidence`",
    )?;
    let bound = |key: &str| {
        object.get(key).map(|v| {
            v.as_f64()
                .ok_or(format!("`confidence.{key}` must be a number"))
        })
    };
    if let Some(minimum) = bound("minimum").transpose()? {
        if minimum > 0.0 {
            return Err(format!(
                "`confidence.minimum` must be at most 0 (answers range over [0, 1]), got {minimum}"
            ));
        }
    }
    if let Some(maximum) = bound("maximum").transpose()? {
        if maximum < 1.0 {
            return Err(format!("`confidence.maximum` must be at least 1 (answers range over [0, 1]), got {maximum}"));
        }
    }
    Ok(())
}

fn reason_length(property: &Value, default: usize) -> Result<usize, String> {
    let object = property
        .as_object()
        .ok_or("`reason` must be a schema object")?;
    expect_type(object, "string", "`reason`")?;
    only_keys(
        object,
        &["type", "maxLength", "description", "title"],
        "`reason`",
    )?;
    match object.get("maxLength") {
        // maxLength counts characters; a byte cap of the same number is never longer.
        Some(value) => value
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| "`reason.maxLength` must be a non-negative integer".to_string()),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "label": {"type": "string", "enum": ["safe", "unsafe"]},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "reason": {"type": "string", "maxLength": 40}
            },
            "required": ["label", "confidence", "reason"],
            "additionalProperties": false
        })
    }

    #[test]
    fn the_label_schema_is_accepted() {
        let grammar = label_schema(&schema(), 200).unwrap();
        assert_eq!(grammar.labels, ["safe", "unsafe"]);
        assert_eq!(grammar.max_reason_bytes, 40);
    }

    #[test]
    fn other_shapes_are_refused_with_the_reason() {
        let mut extra = schema();
        extra["properties"]["score"] = json!({"type": "integer"});
        assert!(label_schema(&extra, 200)
            .unwrap_err()
            .contains("exactly the properties"));
        let mut no_enum = schema();
        no_enum["properties"]["label"] = json!({"type": "string"});
        assert!(label_schema(&no_enum, 200).unwrap_err().contains("enum"));
        let mut narrow = schema();
        narrow["properties"]["confidence"]["maximum"] = json!(0.5);
        assert!(label_schema(&narrow, 200).unwrap_err().contains("maximum"));
        let mut pattern = schema();
        pattern["properties"]["reason"]["pattern"] = json!("^a");
        assert!(label_schema(&pattern, 200).unwrap_err().contains("pattern"));
        assert!(label_schema(&json!({"type": "array"}), 200).is_err());
    }
}
