//! `slo-budget`: a tend plugin in Rust, the smallest complete one to copy.
//!
//! Each run records whether a service was up (from a previous step's
//! output, e.g. http-probe's) into the runbook's state, keeps the last
//! `window` samples, and reports the availability over them against an
//! objective (99.9 % by default) and how much of the error budget is left.
//! A finding says when the budget is spent (high) or under a quarter
//! (medium).
//!
//! What a plugin needs is all here: `describe()` with a JSON Schema of the
//! config, `run()` returning metrics, findings and JSON data, config errors
//! naming the field, a host call (`state-get`/`state-set`, which need no
//! grant: state is the runbook's own), and unit tests of the logic that run
//! natively with `cargo test`.

use serde::Deserialize;
use serde_json::{Value, json};

wit_bindgen::generate!({ path: "wit", world: "plugin" });

use exports::tend::plugin::step::Guest;
use tend::plugin::host;
use tend::plugin::types::{Finding, LogLevel, Metric, PluginInfo, Severity, StepContext, StepError, StepOutput};

/// The objective when the config gives none: 99.9 % of samples up.
const DEFAULT_OBJECTIVE_PERCENT: f64 = 99.9;
/// Samples kept when the config gives no window: a day of 5-minute runs.
const DEFAULT_WINDOW: usize = 288;
/// The largest window (the state holds one character per sample).
const MAX_WINDOW: usize = 100_000;
/// Under this share of the budget left, a medium finding.
const LOW_BUDGET_PERCENT: f64 = 25.0;

struct SloBudget;

/// The step's `with:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_objective")]
    objective_percent: f64,
    #[serde(default = "default_window")]
    window: usize,
    /// Names the service in findings and state; by default the step's id.
    service: Option<String>,
}

fn default_objective() -> f64 {
    DEFAULT_OBJECTIVE_PERCENT
}

fn default_window() -> usize {
    DEFAULT_WINDOW
}

impl Guest for SloBudget {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "slo-budget".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Tracks a service's availability against an objective over the last `window` runs \
                          (kept in the runbook's state) and reports the error budget left; a finding when it is \
                          spent (high) or under a quarter (medium)."
                .into(),
            config_schema: Some(config_schema().to_string()),
            capabilities: vec!["state".into()],
        }
    }

    fn run(ctx: StepContext, config: String, input: String) -> Result<StepOutput, StepError> {
        let config = parse_config(&config)?;
        let input: Value = if input.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&input).map_err(|e| StepError::Failed(format!("input is not JSON: {e}")))?
        };
        let up = is_up(&input).map_err(StepError::Failed)?;
        let service = config.service.clone().unwrap_or(ctx.step_id);
        let key = format!("samples:{service}");
        let history = host::state_get(&key).unwrap_or_default();
        let history = record(&history, up, config.window);
        host::state_set(&key, &history).map_err(|e| StepError::Retryable(format!("saving the samples: {e}")))?;
        let budget = assess(&history, config.objective_percent);
        host::log(LogLevel::Info, &format!("{service}: {} of {} samples up", budget.good, budget.samples));
        Ok(output(&service, up, &budget, config.objective_percent))
    }
}

/// Checks the config; errors name the field and quote the value.
fn parse_config(text: &str) -> Result<Config, StepError> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    let config: Config = serde_json::from_str(text).map_err(|e| StepError::InvalidConfig(e.to_string()))?;
    if !(config.objective_percent > 0.0 && config.objective_percent < 100.0) {
        return Err(StepError::InvalidConfig(format!(
            "objective_percent: {} is out of range; expected more than 0 and less than 100",
            config.objective_percent
        )));
    }
    if config.window == 0 || config.window > MAX_WINDOW {
        return Err(StepError::InvalidConfig(format!(
            "window: {} is out of range; expected 1 to {MAX_WINDOW} samples",
            config.window
        )));
    }
    Ok(config)
}

/// Whether the input says the service is up: `true`/`false`, an object
/// with `up`, or http-probe's output (up when every target is).
fn is_up(input: &Value) -> Result<bool, String> {
    if let Some(up) = input.as_bool() {
        return Ok(up);
    }
    if let Some(up) = input.get("up").and_then(Value::as_bool) {
        return Ok(up);
    }
    if let Some(targets) = input.get("targets").and_then(Value::as_array) {
        let ups: Option<Vec<bool>> = targets.iter().map(|t| t.get("up").and_then(Value::as_bool)).collect();
        if let Some(ups) = ups.filter(|u| !u.is_empty()) {
            return Ok(ups.into_iter().all(|u| u));
        }
    }
    Err(format!(
        "input {} does not say whether the service is up; expected true/false, {{\"up\": bool}} or \
         http-probe's output",
        excerpt(input)
    ))
}

fn excerpt(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 { format!("{}...", text.chars().take(60).collect::<String>()) } else { text }
}

/// The samples with `up` appended (`1` up, `0` down), the last `window` kept.
fn record(history: &str, up: bool, window: usize) -> String {
    let mut samples: Vec<char> = history.chars().filter(|c| matches!(c, '0' | '1')).collect();
    samples.push(if up { '1' } else { '0' });
    let skip = samples.len().saturating_sub(window);
    samples[skip..].iter().collect()
}

/// Availability over the samples and the error budget it leaves.
#[derive(Debug, PartialEq)]
struct Budget {
    samples: usize,
    good: usize,
    availability_percent: f64,
    /// Share of the allowed bad samples not yet used; negative when overspent.
    remaining_percent: f64,
}

fn assess(history: &str, objective_percent: f64) -> Budget {
    let samples = history.len();
    let good = history.chars().filter(|c| *c == '1').count();
    let bad = (samples - good) as f64;
    let allowed = samples as f64 * (100.0 - objective_percent) / 100.0;
    Budget {
        samples,
        good,
        availability_percent: 100.0 * good as f64 / samples.max(1) as f64,
        remaining_percent: 100.0 * (allowed - bad) / allowed,
    }
}

fn output(service: &str, up: bool, budget: &Budget, objective_percent: f64) -> StepOutput {
    let status = if budget.remaining_percent < 0.0 {
        "exhausted"
    } else if budget.remaining_percent < LOW_BUDGET_PERCENT {
        "low"
    } else {
        "ok"
    };
    let labels = vec![("service".to_string(), service.to_string())];
    let metric = |name: &str, value: f64| Metric { name: name.into(), value, labels: labels.clone() };
    let mut findings = Vec::new();
    let detail = format!(
        "{service} was up in {} of the last {} samples ({:.3} %; objective {objective_percent} %)",
        budget.good, budget.samples, budget.availability_percent
    );
    if status == "exhausted" {
        findings.push(Finding {
            severity: Severity::High,
            title: format!("{service} has spent its error budget"),
            detail,
            resource: Some(service.to_string()),
        });
    } else if status == "low" {
        findings.push(Finding {
            severity: Severity::Medium,
            title: format!("{service} has {:.0} % of its error budget left", budget.remaining_percent),
            detail,
            resource: Some(service.to_string()),
        });
    }
    let data = json!({
        "service": service,
        "up": up,
        "samples": budget.samples,
        "good": budget.good,
        "availability_percent": budget.availability_percent,
        "objective_percent": objective_percent,
        "budget_remaining_percent": budget.remaining_percent,
        "status": status,
    });
    StepOutput {
        data: data.to_string(),
        metrics: vec![
            metric("availability_percent", budget.availability_percent),
            metric("error_budget_remaining_percent", budget.remaining_percent),
        ],
        findings,
    }
}

fn config_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "slo-budget",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "objective_percent": {
                "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100,
                "default": DEFAULT_OBJECTIVE_PERCENT,
                "description": "Share of samples that must be up, e.g. 99.9."
            },
            "window": {
                "type": "integer", "minimum": 1, "maximum": MAX_WINDOW, "default": DEFAULT_WINDOW,
                "description": "How many of the latest samples count."
            },
            "service": {"type": "string", "description": "Names the service; by default the step's id."}
        }
    })
}

export!(SloBudget);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_appended_and_only_the_window_is_kept() {
        assert_eq!(record("", true, 3), "1");
        assert_eq!(record("110", false, 3), "100");
        assert_eq!(record("garbage", true, 3), "1", "anything but 0 and 1 in the state is dropped");
    }

    #[test]
    fn the_budget_is_the_share_of_allowed_bad_samples_not_yet_used() {
        // 1000 samples at 99 %: 10 bad allowed; 4 used leaves 60 %.
        let history = format!("{}{}", "1".repeat(996), "0".repeat(4));
        let b = assess(&history, 99.0);
        assert_eq!((b.samples, b.good), (1000, 996));
        assert!((b.availability_percent - 99.6).abs() < 1e-9);
        assert!((b.remaining_percent - 60.0).abs() < 1e-9);
        // 12 bad: overspent by 20 %.
        let history = format!("{}{}", "1".repeat(988), "0".repeat(12));
        assert!((assess(&history, 99.0).remaining_percent + 20.0).abs() < 1e-9);
    }

    #[test]
    fn up_is_read_from_a_boolean_an_up_field_or_http_probe_targets() {
        assert_eq!(is_up(&json!(true)), Ok(true));
        assert_eq!(is_up(&json!({"up": false})), Ok(false));
        assert_eq!(is_up(&json!({"targets": [{"up": true}, {"up": false}]})), Ok(false));
        assert_eq!(is_up(&json!({"targets": [{"up": true}]})), Ok(true));
        assert_eq!(
            is_up(&json!({"status": 200})),
            Err("input {\"status\":200} does not say whether the service is up; expected true/false, \
                 {\"up\": bool} or http-probe's output"
                .into())
        );
    }

    #[test]
    fn bad_config_names_the_field_and_the_value() {
        let err = |text: &str| match parse_config(text) {
            Err(StepError::InvalidConfig(m)) => m,
            other => panic!("expected invalid config, got {other:?}"),
        };
        assert_eq!(
            err(r#"{"objective_percent": 100}"#),
            "objective_percent: 100 is out of range; expected more than 0 and less than 100"
        );
        assert_eq!(err(r#"{"window": 0}"#), "window: 0 is out of range; expected 1 to 100000 samples");
        assert!(err(r#"{"windw": 5}"#).starts_with("unknown field `windw`"), "{}", err(r#"{"windw": 5}"#));
        assert_eq!(parse_config("").map(|c| c.window).ok(), Some(DEFAULT_WINDOW));
    }

    #[test]
    fn a_spent_budget_is_a_high_finding_and_a_low_one_medium() {
        let spent = output("api", false, &assess("10", 99.0), 99.0);
        assert_eq!(spent.findings.len(), 1);
        assert!(matches!(spent.findings[0].severity, Severity::High));
        assert_eq!(spent.findings[0].title, "api has spent its error budget");
        let history = format!("{}{}", "1".repeat(992), "0".repeat(8));
        let low = output("api", true, &assess(&history, 99.0), 99.0);
        assert_eq!(low.findings[0].title, "api has 20 % of its error budget left");
        assert!(output("api", true, &assess("1111", 99.0), 99.0).findings.is_empty());
    }
}
