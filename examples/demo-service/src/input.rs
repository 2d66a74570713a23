//! Reading the JSON bodies of admin requests: a JSON object, or an error
//! that says what was expected; and how a rejected value is quoted in an
//! error message. Imports nothing from the crate.

use serde_json::{Map, Value};

/// Longest quoted value in an error message, in characters; a longer one is
/// cut and ends with "…". By default 60.
pub const MAX_QUOTED_CHARS: usize = 60;

/// Parses `body` as a JSON object. `example` is a valid body, shown when the
/// body is empty or not an object.
pub fn json_object(body: &[u8], example: &str) -> Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("the request body is empty: send a JSON object such as {example}"));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("the request body is not valid JSON: {e}"))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(format!("the request body must be a JSON object such as {example}, got {}", kind(&other))),
    }
}

/// The object's entries sorted by key, so errors come in the same order
/// whatever map type serde_json was built with.
pub fn sorted(map: Map<String, Value>) -> Vec<(String, Value)> {
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// "an array", "a string", ...: what kind of JSON value this is.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The value as JSON, cut after [`MAX_QUOTED_CHARS`] characters.
pub fn quote(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > MAX_QUOTED_CHARS {
        format!("{}…", text.chars().take(MAX_QUOTED_CHARS).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"down": true}"#;

    #[test]
    fn an_empty_body_is_refused_with_an_example() {
        assert_eq!(
            json_object(b"  \n", EXAMPLE).unwrap_err(),
            r#"the request body is empty: send a JSON object such as {"down": true}"#
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_refused_with_the_parser_position() {
        assert_eq!(
            json_object(b"{down", EXAMPLE).unwrap_err(),
            "the request body is not valid JSON: key must be a string at line 1 column 2"
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_names_what_it_is() {
        assert_eq!(
            json_object(b"[1, 2]", EXAMPLE).unwrap_err(),
            r#"the request body must be a JSON object such as {"down": true}, got an array"#
        );
    }

    #[test]
    fn a_long_value_is_cut_when_quoted() {
        let long = Value::String("x".repeat(100));
        let quoted = quote(&long);
        assert_eq!(quoted.chars().count(), MAX_QUOTED_CHARS + 1);
        assert!(quoted.starts_with("\"xxx") && quoted.ends_with('…'));
        assert_eq!(quote(&Value::from(1.5)), "1.5");
    }
}
