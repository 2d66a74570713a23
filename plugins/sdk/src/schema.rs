//! Helpers to write the JSON Schema (draft 2020-12) a plugin's `describe()`
//! returns as `config-schema`.

use serde_json::{Map, Value, json};

/// The `$schema` URI of JSON Schema draft 2020-12.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// A closed object schema (`additionalProperties: false`) at the root of a
/// config schema: `$schema`, `title`, `description`, `type: object`,
/// `properties` and `required`.
pub fn config(title: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    let mut schema = object(description, properties, required);
    if let Value::Object(map) = &mut schema {
        let mut root = Map::new();
        root.insert("$schema".into(), json!(DRAFT_2020_12));
        root.insert("title".into(), json!(title));
        root.append(map);
        return Value::Object(root);
    }
    schema
}

/// A closed object schema (`additionalProperties: false`) with
/// `description`, `properties` and `required`.
pub fn object(description: &str, properties: Value, required: &[&str]) -> Value {
    let mut schema = json!({
        "description": description,
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

/// The schema text of `schema`, for `PluginInfo::config_schema`.
pub fn to_text(schema: &Value) -> Option<String> {
    Some(schema.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_schema_is_closed_and_draft_2020_12() {
        let s = config("t", "d", json!({"a": {"type": "string", "description": "x"}}), &["a"]);
        assert_eq!(s["$schema"], DRAFT_2020_12);
        assert_eq!(s["type"], "object");
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["required"], json!(["a"]));
        let o = object("d", json!({}), &[]);
        assert!(o.get("required").is_none());
    }
}
