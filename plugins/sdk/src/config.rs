//! Typed parsing of the JSON a step receives, with errors a person can act
//! on: they name the field (`targets[0].url`) and what was expected there.

use crate::StepError;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;

/// Why JSON did not fit the type it was parsed into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Path of the offending field, e.g. `targets[0].url`; empty for the
    /// document itself.
    pub path: String,
    /// What is wrong there, e.g. `expected a string, found integer `5``.
    pub message: String,
}

impl ParseError {
    /// An error about the document as a whole.
    pub fn whole(message: impl Into<String>) -> Self {
        ParseError { path: String::new(), message: message.into() }
    }

    /// An error about the field at `path`.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ParseError { path: path.into(), message: message.into() }
    }

    /// The error as a [`StepError::InvalidConfig`]. `what` names the
    /// document when the error is about it as a whole ("config", "input")
    /// and prefixes field errors unless it is "config": config errors read
    /// "field `targets[0].url`: expected a string, found integer `5`",
    /// input errors "input field `probes.targets`: ...".
    pub fn into_step_error(self, what: &str) -> StepError {
        let message = match (self.path.is_empty(), what) {
            (true, _) => format!("{what}: {}", self.message),
            (false, "config") => format!("field `{}`: {}", self.path, self.message),
            (false, _) => format!("{what} field `{}`: {}", self.path, self.message),
        };
        StepError::InvalidConfig(message)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "field `{}`: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses a step's `config` into `T`.
///
/// Empty text, `null` and `{}` all mean "no options given": `T` is parsed
/// from an empty object, so its `#[serde(default)]`s apply and required
/// fields are reported missing. Errors are [`StepError::InvalidConfig`]
/// naming the field, e.g. "field `targets[0].url`: expected a string, found
/// integer `5`".
pub fn parse_config<T: DeserializeOwned>(text: &str) -> Result<T, StepError> {
    let value = match parse_json(text).map_err(|e| e.into_step_error("config"))? {
        Value::Null => Value::Object(Default::default()),
        value @ Value::Object(_) => value,
        other => {
            let found = json_type(&other);
            return Err(ParseError::whole(format!("expected an object, found {found}")).into_step_error("config"));
        }
    };
    parse_value(value).map_err(|e| e.into_step_error("config"))
}

/// Parses a step's `input` into `T`; empty text is `null`. Errors are
/// [`StepError::InvalidConfig`] (the runbook wires the input, so retrying
/// will not help) and read "input field `probes.targets`: ...".
pub fn parse_input<T: DeserializeOwned>(text: &str) -> Result<T, StepError> {
    let value = parse_json(text).map_err(|e| e.into_step_error("input"))?;
    parse_value(value).map_err(|e| e.into_step_error("input"))
}

/// Parses JSON text into a [`Value`]; empty (or all-blank) text is `null`.
pub fn parse_json(text: &str) -> Result<Value, ParseError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| ParseError::whole(format!("not valid JSON: {e}")))
}

/// "a string", "a list", ... for the JSON type of `value`.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Converts a [`Value`] into `T`, tracking the path to the offending field.
pub fn parse_value<T: DeserializeOwned>(value: Value) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = display_path(e.path());
        let message = e.into_inner().to_string();
        readable(path, &message)
    })
}

/// `targets[0].url` for a serde_path_to_error path; empty for the root.
fn display_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => push_key(&mut out, key),
            Segment::Enum { variant } => push_key(&mut out, variant),
            Segment::Unknown => push_key(&mut out, "?"),
        }
    }
    out
}

fn push_key(out: &mut String, key: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(key);
}

/// Rewrites serde's messages ("invalid type: integer `5`, expected a
/// string") into "expected a string, found integer `5`", naming JSON types
/// rather than Rust ones.
fn readable(path: String, message: &str) -> ParseError {
    if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
        let mut path = path;
        push_key(&mut path, field);
        return ParseError::at(path, "is required but missing");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.rsplit_once(", expected ")
        {
            let text = format!("expected {}, found {}", json_expected(expected), json_found(found));
            return ParseError::at(path, text);
        }
    }
    ParseError::at(path, message)
}

/// serde's name for an expected Rust type, as a JSON type.
fn json_expected(expected: &str) -> String {
    let name = match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a sequence" => "a list",
        "a map" => "an object",
        "a borrowed string" | "a string" => "a string",
        other if other.starts_with("struct ") => "an object",
        other => return other.to_string(),
    };
    name.to_string()
}

/// serde's name for an unexpected value, as JSON.
fn json_found(found: &str) -> String {
    match found {
        "unit value" => "null".into(),
        "map" => "an object".into(),
        "sequence" => "a list".into(),
        other => other.replace("floating point", "number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Config {
        targets: Vec<Target>,
        threshold: u32,
        ratio: f64,
        headers: BTreeMap<String, String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only parsed
    struct Target {
        url: String,
        #[serde(default)]
        retries: u8,
    }

    fn err(text: &str) -> String {
        match parse_config::<Config>(text) {
            Err(StepError::InvalidConfig(m)) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    #[test]
    fn empty_null_and_empty_object_are_defaults() {
        for text in ["", "  ", "null", "{}"] {
            let c: Config = parse_config(text).unwrap();
            assert!(c.targets.is_empty() && c.threshold == 0, "{text:?}");
        }
    }

    #[test]
    fn wrong_types_name_the_field() {
        assert_eq!(err(r#"{"targets": [{"url": 5}]}"#), "field `targets[0].url`: expected a string, found integer `5`");
        assert_eq!(
            err(r#"{"threshold": -1}"#),
            "field `threshold`: expected a non-negative integer, found integer `-1`"
        );
        assert_eq!(
            err(r#"{"threshold": "x"}"#),
            "field `threshold`: expected a non-negative integer, found string \"x\""
        );
        assert_eq!(err(r#"{"ratio": null}"#), "field `ratio`: expected a number, found null");
        assert_eq!(err(r#"{"targets": {}}"#), "field `targets`: expected a list, found an object");
        assert_eq!(err(r#"{"headers": {"a": 1}}"#), "field `headers.a`: expected a string, found integer `1`");
        assert_eq!(
            err(r#"{"targets": [{"url": "x", "retries": 1.5}]}"#),
            "field `targets[0].retries`: expected a non-negative integer, found number `1.5`"
        );
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        assert_eq!(err(r#"{"targets": [{}]}"#), "field `targets[0].url`: is required but missing");
        let m = err(r#"{"targets": [{"url": "x", "urll": 1}]}"#);
        assert!(m.starts_with("field `targets[0].urll`: unknown field `urll`, expected"), "{m}");
        let m = err(r#"{"nope": 1}"#);
        assert!(m.starts_with("field `nope`: unknown field `nope`, expected one of"), "{m}");
    }

    #[test]
    fn documents_of_the_wrong_shape_are_named() {
        assert_eq!(err("[1]"), "config: expected an object, found a list");
        assert!(err("{nope").starts_with("config: not valid JSON: key must be a string"));
        match parse_input::<Config>(r#"{"targets": 3}"#) {
            Err(StepError::InvalidConfig(m)) => {
                assert_eq!(m, "input field `targets`: expected a list, found integer `3`")
            }
            other => panic!("{other:?}"),
        }
    }
}
