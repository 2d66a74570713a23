//! `echo`: returns its input, for tests and docs.
//!
//! With no config, the step's `input` comes back as its output `data`
//! (empty input is `null`). Config can make it do each thing a step can do,
//! so the engine's tests can drive every path through one small plugin:
//! return a fixed `output`, emit `metrics` and `findings`, write a `log`
//! line, return an `error`, fail the first `fail_attempts` attempts with a
//! retryable error, or count its calls in the runbook state (`state_key`).
//!
//! It must not do anything else: no HTTP, no secrets, no files, no
//! environment, and no host call at all unless `log` or `state_key` asks
//! for one.

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tend_plugin_sdk::{
    Finding, Guest, Metric, PluginInfo, SeverityLevel, StepContext, StepError, StepOutput, export, failed, finding,
    host, log, parse_config, parse_json, retryable, schema,
};

/// The plugin; see the crate docs.
struct Echo;

/// The step's `with:` block; everything is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// Returned as `data` instead of the input; `null` counts as given.
    #[serde(deserialize_with = "present")]
    output: Option<Value>,
    /// Emitted as-is.
    metrics: Vec<MetricSpec>,
    /// Emitted as-is.
    findings: Vec<FindingSpec>,
    /// Written to the step's log at info level.
    log: Option<String>,
    /// Returned instead of an output.
    error: Option<ErrorSpec>,
    /// The first N attempts fail with a retryable error.
    fail_attempts: u32,
    /// Count calls in this key of the runbook state.
    state_key: Option<String>,
}

/// A metric to emit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object {name, value, labels}")]
struct MetricSpec {
    name: String,
    value: f64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// A finding to emit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object {severity, title, detail, resource}")]
struct FindingSpec {
    severity: SeverityLevel,
    title: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    resource: Option<String>,
}

/// An error to return.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object {kind, message}")]
struct ErrorSpec {
    kind: ErrorKind,
    message: String,
}

/// The kinds of `step-error`, as written in config.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ErrorKind {
    InvalidConfig,
    Retryable,
    Failed,
}

/// Deserializes a field that is present as `Some`, even when it is `null`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl Guest for Echo {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "echo".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Returns its input as its output data, unchanged (empty input is null). For tests \
                          and docs: its config can replace the output, emit given metrics and findings, write \
                          a log line, return a given error, fail the first N attempts with a retryable error \
                          to exercise retries, or count its calls in the runbook's persistent state."
                .into(),
            config_schema: schema::to_text(&config_schema()),
            capabilities: Vec::new(),
        }
    }

    fn run(ctx: StepContext, config: String, input: String) -> Result<StepOutput, StepError> {
        let config: Config = parse_config(&config)?;
        if let Some(line) = &config.log {
            log::info(line);
        }
        if config.fail_attempts > 0 && ctx.attempt <= config.fail_attempts {
            let (attempt, n) = (ctx.attempt, config.fail_attempts);
            return Err(retryable(format!("attempt {attempt} of the first {n} fails on purpose")));
        }
        if let Some(error) = config.error {
            return Err(error.into());
        }
        let counted = config.state_key.as_deref().map(count_call).transpose()?;
        let data = match (config.output, counted) {
            (Some(output), _) => output,
            (None, Some(counted)) => counted,
            (None, None) => parse_json(&input).map_err(|e| e.into_step_error("input"))?,
        };
        let metrics = config.metrics.into_iter().map(Metric::from).collect();
        let findings = config.findings.into_iter().map(Finding::from).collect();
        tend_plugin_sdk::output(&data, metrics, findings)
    }
}

/// Increments the counter kept at `key` of the runbook state and returns
/// `{"previous": <old value or null>, "count": <new value>}`. A value that
/// is not a counter (not a non-negative integer) counts as 0.
fn count_call(key: &str) -> Result<Value, StepError> {
    let previous = host::state_get(key).map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text)));
    let count = previous.as_ref().and_then(Value::as_u64).unwrap_or(0).saturating_add(1);
    host::state_set(key, &count.to_string()).map_err(|e| failed(format!("state key {key:?}: {e}")))?;
    Ok(json!({ "previous": previous, "count": count }))
}

impl From<MetricSpec> for Metric {
    fn from(spec: MetricSpec) -> Self {
        Metric { name: spec.name, value: spec.value, labels: spec.labels.into_iter().collect() }
    }
}

impl From<FindingSpec> for Finding {
    fn from(spec: FindingSpec) -> Self {
        finding(spec.severity, spec.title, spec.detail, spec.resource.as_deref())
    }
}

impl From<ErrorSpec> for StepError {
    fn from(spec: ErrorSpec) -> Self {
        match spec.kind {
            ErrorKind::InvalidConfig => StepError::InvalidConfig(spec.message),
            ErrorKind::Retryable => StepError::Retryable(spec.message),
            ErrorKind::Failed => StepError::Failed(spec.message),
        }
    }
}

/// JSON Schema of [`Config`].
fn config_schema() -> Value {
    let metric = schema::object(
        "A metric to emit as-is.",
        json!({
            "name": {"type": "string", "description": "Metric name, e.g. \"queue_depth\"."},
            "value": {"type": "number", "description": "Measured value."},
            "labels": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Labels that tell series apart, e.g. {\"queue\": \"mail\"}.",
            },
        }),
        &["name", "value"],
    );
    let finding = schema::object(
        "A finding to emit as-is.",
        json!({
            "severity": {"enum": SeverityLevel::NAMES, "description": "How serious it is."},
            "title": {"type": "string", "description": "One line."},
            "detail": {"type": "string", "description": "Details and evidence; empty by default."},
            "resource": {"type": "string", "description": "The thing the finding is about."},
        }),
        &["severity", "title"],
    );
    let error = schema::object(
        "An error to return instead of an output.",
        json!({
            "kind": {"enum": ["invalid-config", "retryable", "failed"], "description": "Kind of step error."},
            "message": {"type": "string", "description": "Its message."},
        }),
        &["kind", "message"],
    );
    schema::config(
        "echo",
        "Configuration of the echo plugin; every option is for tests and docs, and all are optional.",
        json!({
            "output": {"description": "Any JSON value, returned as data instead of the input (null included)."},
            "metrics": {"type": "array", "items": metric, "description": "Metrics to emit."},
            "findings": {"type": "array", "items": finding, "description": "Findings to emit."},
            "log": {"type": "string", "description": "A line written to the step's log at info level."},
            "error": error,
            "fail_attempts": {
                "type": "integer",
                "minimum": 0,
                "default": 0,
                "description": "Attempts 1 to N fail with a retryable error, to exercise retries.",
            },
            "state_key": {
                "type": "string",
                "minLength": 1,
                "description": "Key of the runbook state holding a call counter: each call increments it and \
                                returns {\"previous\": <old value or null>, \"count\": <new value>} as data \
                                (unless `output` is given).",
            },
        }),
        &[],
    )
}

export!(Echo);

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(attempt: u32) -> StepContext {
        StepContext { run_id: "r".into(), step_id: "s".into(), runbook: "b".into(), attempt, iteration: 0 }
    }

    fn data(config: &str, input: &str) -> Value {
        let out = Echo::run(ctx(1), config.into(), input.into()).expect("ok");
        serde_json::from_str(&out.data).expect("data is JSON")
    }

    #[test]
    fn returns_its_input() {
        assert_eq!(data("", r#"{"hello": [1, 2]}"#), json!({"hello": [1, 2]}));
        assert_eq!(data("{}", ""), Value::Null);
        assert_eq!(data("null", "3"), json!(3));
    }

    #[test]
    fn output_replaces_the_input_even_when_null() {
        assert_eq!(data(r#"{"output": {"a": 1}}"#, "2"), json!({"a": 1}));
        assert_eq!(data(r#"{"output": null}"#, "2"), Value::Null);
    }

    #[test]
    fn emits_metrics_and_findings() {
        let config = json!({
            "metrics": [{"name": "m", "value": 1.5, "labels": {"b": "2", "a": "1"}}],
            "findings": [{"severity": "high", "title": "t", "detail": "d", "resource": "r"}],
        });
        let out = Echo::run(ctx(1), config.to_string(), "".into()).expect("ok");
        assert_eq!(out.metrics[0].labels, vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert!(matches!(out.findings[0].severity, tend_plugin_sdk::Severity::High));
        assert_eq!(out.findings[0].resource.as_deref(), Some("r"));
    }

    #[test]
    fn errors_and_retries() {
        let e = Echo::run(ctx(1), r#"{"error": {"kind": "failed", "message": "disk on fire"}}"#.into(), "".into());
        assert!(matches!(e, Err(StepError::Failed(m)) if m == "disk on fire"));
        let config = r#"{"fail_attempts": 2}"#;
        let e = Echo::run(ctx(2), config.into(), "".into());
        assert!(matches!(e, Err(StepError::Retryable(m)) if m == "attempt 2 of the first 2 fails on purpose"));
        assert!(Echo::run(ctx(3), config.into(), "".into()).is_ok());
    }

    #[test]
    fn bad_config_names_the_field() {
        let e = Echo::run(ctx(1), r#"{"findings": [{"severity": "urgent", "title": "t"}]}"#.into(), "".into());
        assert!(
            matches!(&e, Err(StepError::InvalidConfig(m)) if m.starts_with("field `findings[0].severity`: unknown variant `urgent`")),
            "{e:?}"
        );
        let e = Echo::run(ctx(1), r#"{"outptu": 1}"#.into(), "".into());
        assert!(
            matches!(&e, Err(StepError::InvalidConfig(m)) if m.starts_with("field `outptu`: unknown field")),
            "{e:?}"
        );
    }

    #[test]
    fn schema_is_valid_json_with_descriptions() {
        let schema: Value = serde_json::from_str(&Echo::describe().config_schema.expect("schema")).expect("JSON");
        for (name, property) in schema["properties"].as_object().expect("properties") {
            assert!(property["description"].is_string(), "{name} has a description");
        }
    }
}
