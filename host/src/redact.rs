//! Redaction of secret values from anything tend stores, logs, sends or
//! prints. A [`Redactor`] holds the values to hide and replaces each with
//! [`MASK`] in text and in every string (keys included) of a JSON value.
//!
//! Besides each raw value it also hides the value as JSON writes it inside
//! a string (`"` as `\"`, `\` as `\\`, control characters escaped), so a
//! secret a plugin prints inside JSON text is caught too.
//!
//! A leaf: plain data and string work, no I/O; imports nothing of tend.

use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;

/// What a secret value is replaced with.
pub const MASK: &str = "***";

/// The secret values to hide. Cheap to clone; empty hides nothing.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Every form to replace, longest first (so a secret that contains
    /// another is hidden whole).
    forms: Arc<[String]>,
}

impl Redactor {
    /// A redactor for `values`; empty values are ignored.
    pub fn new<I, S>(values: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut forms: Vec<String> = Vec::new();
        for v in values {
            let v = v.as_ref();
            if v.is_empty() {
                continue;
            }
            forms.push(v.to_string());
            let escaped = json_escaped(v);
            if escaped != v {
                forms.push(escaped);
            }
        }
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Redactor { forms: forms.into() }
    }

    /// Whether there is nothing to hide.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for form in self.forms.iter() {
            if out.contains(form.as_str()) {
                out = Cow::Owned(out.replace(form.as_str(), MASK));
            }
        }
        out
    }

    /// [`Redactor::text`] as an owned string.
    pub fn string(&self, text: &str) -> String {
        self.text(text).into_owned()
    }

    /// Rewrites `text` in place.
    pub fn in_place(&self, text: &mut String) {
        if let Cow::Owned(s) = self.text(text) {
            *text = s;
        }
    }

    /// `value` with every string and object key redacted.
    pub fn json(&self, value: &Value) -> Value {
        let mut v = value.clone();
        self.json_in_place(&mut v);
        v
    }

    /// Redacts every string and object key of `value` in place.
    pub fn json_in_place(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => self.in_place(s),
            Value::Array(items) => items.iter_mut().for_each(|i| self.json_in_place(i)),
            Value::Object(map) => {
                let needs_new_keys = map.keys().any(|k| matches!(self.text(k), Cow::Owned(_)));
                if needs_new_keys {
                    let old = std::mem::take(map);
                    for (k, mut v) in old {
                        self.json_in_place(&mut v);
                        map.insert(self.string(&k), v);
                    }
                } else {
                    map.values_mut().for_each(|v| self.json_in_place(v));
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// `value` as it appears between the quotes of a JSON string.
fn json_escaped(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_occurrence_of_every_secret_is_masked() {
        let r = Redactor::new(["hunter2", "s3cr3t"]);
        assert_eq!(r.text("pw=hunter2 and hunter2, token s3cr3t!"), "pw=*** and ***, token ***!");
        assert_eq!(r.text("nothing here"), "nothing here");
        assert!(matches!(r.text("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_secret_containing_another_is_masked_whole() {
        let r = Redactor::new(["abc", "xxabcxx"]);
        assert_eq!(r.text("1 xxabcxx 2 abc"), "1 *** 2 ***");
    }

    #[test]
    fn a_secret_written_inside_json_text_is_masked_too() {
        let secret = "q\"u|o\\te ✓";
        let r = Redactor::new([secret]);
        let printed = serde_json::to_string(&json!({ "token": secret })).unwrap();
        assert_eq!(r.text(&printed), r#"{"token":"***"}"#);
    }

    #[test]
    fn json_values_are_redacted_in_strings_and_keys() {
        let r = Redactor::new(["hunter2"]);
        let v = json!({"a": ["x hunter2", 1, null], "hunter2": {"k": "hunter2"}});
        assert_eq!(r.json(&v), json!({"a": ["x ***", 1, null], "***": {"k": "***"}}));
    }

    #[test]
    fn empty_values_hide_nothing() {
        let r = Redactor::new(["", ""]);
        assert!(r.is_empty());
        assert_eq!(r.text("abc"), "abc");
    }
}
