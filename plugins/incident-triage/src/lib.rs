//! `incident-triage`: classifies an incident by the alert hierarchy, with
//! the reason for the severity it gives.
//!
//! | severity | when |
//! |---|---|
//! | critical | a probed target is down, or data is at risk (`data_loss_risk`) |
//! | high | p95 latency over `p95_factor` (2) times normal, error rate over 1 %, CPU or memory over 80 % |
//! | medium | the health score is trending worse |
//! | low | room for optimization: cache hit rate under 90 %, a probed target slower than its threshold |
//! | none | nothing above: no incident |
//!
//! An Alertmanager alert's `severity` label (`critical`/`page`,
//! `high`/`error`, `warning`/`medium`, `low`/`info`) and a severity the
//! person starting the incident declared are floors: the result is never
//! under them, and each says so among the reasons.
//!
//! It reads the data of an `http-probe` step (`probes`), the service's own
//! signals (`service`, e.g. from prometheus-query), a health-score trend
//! (`trend`), the `alert` param of an alert-started run and `declared`, all
//! from its config. Pure: it must not call the host at all — no HTTP,
//! state, secrets, files or environment.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tend_plugin_sdk::{
    Guest, PluginInfo, SeverityLevel, StepContext, StepError, StepOutput, export, finding, invalid_config, metric,
    parse_config, schema,
};

/// The plugin; see the crate docs.
struct IncidentTriage;

/// High when the error rate is over this, in percent: by default 1 %.
const ERROR_RATE_PERCENT: f64 = 1.0;
/// High when CPU or memory use is over this, in percent: by default 80 %.
const CAPACITY_PERCENT: f64 = 80.0;
/// High when p95 latency is over this many times normal: by default 2.
const P95_FACTOR: f64 = 2.0;
/// Low when the cache hit rate is under this, in percent: by default 90 %.
const CACHE_HIT_PERCENT: f64 = 90.0;

/// The step's `with:` block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// The data of an http-probe step.
    probes: Option<Probes>,
    /// The service's own signals; null values are not judged.
    service: Service,
    /// The service's normal values.
    normal: Normal,
    /// The trend of a health-score step (`steps.<id>.output.trend`), or null.
    trend: Option<Trend>,
    /// The `alert` param of a run an Alertmanager alert started, or null.
    alert: Option<Value>,
    /// A severity the person starting the incident declared ("" or null: none).
    declared: Option<String>,
    /// Whether data is at risk (critical whatever else holds).
    data_loss_risk: bool,
    /// The levels of the hierarchy.
    levels: Levels,
}

/// A service's own signals, each optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Service {
    error_rate_percent: Option<f64>,
    p95_latency_ms: Option<f64>,
    cpu_percent: Option<f64>,
    memory_percent: Option<f64>,
    cache_hit_percent: Option<f64>,
}

/// What is normal for the service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Normal {
    /// Normal p95 latency, in ms; without it p95 is not judged.
    p95_latency_ms: Option<f64>,
}

/// The levels of the hierarchy; each has a named default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Levels {
    error_rate_percent: f64,
    capacity_percent: f64,
    p95_factor: f64,
    cache_hit_percent: f64,
}

impl Default for Levels {
    fn default() -> Self {
        Levels {
            error_rate_percent: ERROR_RATE_PERCENT,
            capacity_percent: CAPACITY_PERCENT,
            p95_factor: P95_FACTOR,
            cache_hit_percent: CACHE_HIT_PERCENT,
        }
    }
}

/// The part of http-probe's data that is judged.
#[derive(Debug, Clone, Deserialize)]
struct Probes {
    targets: Vec<ProbeResult>,
}

/// One target of http-probe's data.
#[derive(Debug, Clone, Deserialize)]
struct ProbeResult {
    url: String,
    ok: bool,
    #[serde(default)]
    latency_ms: Option<f64>,
    #[serde(default)]
    error: Option<String>,
}

/// The part of a health-score trend that is judged.
#[derive(Debug, Clone, Deserialize)]
struct Trend {
    direction: String,
    #[serde(default)]
    change: Option<f64>,
}

/// How serious the incident is, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    /// The name in output and messages, e.g. `critical`.
    fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    /// Reads a severity as people and alerting rules write it, or None.
    fn parse(text: &str) -> Option<Level> {
        match text.trim().to_ascii_lowercase().as_str() {
            "critical" | "page" => Some(Level::Critical),
            "high" | "error" => Some(Level::High),
            "medium" | "warning" => Some(Level::Medium),
            "low" | "info" => Some(Level::Low),
            "none" => Some(Level::None),
            _ => None,
        }
    }

    /// The finding's severity.
    fn finding_severity(self) -> SeverityLevel {
        match self {
            Level::None => SeverityLevel::Info,
            Level::Low => SeverityLevel::Low,
            Level::Medium => SeverityLevel::Medium,
            Level::High => SeverityLevel::High,
            Level::Critical => SeverityLevel::Critical,
        }
    }
}

/// One reason for a severity.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Reason {
    severity: Level,
    reason: String,
}

/// The output data.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Triage {
    /// The highest severity among the reasons; `none` without any.
    severity: Level,
    /// Whether there is an incident (severity other than none).
    incident: bool,
    /// Most serious first.
    reasons: Vec<Reason>,
    /// One line: the severity and the most serious reason.
    summary: String,
}

/// Classifies what `config` holds. Pure. `Err` for a declared or alert
/// severity that is not one.
fn triage(c: &Config) -> Result<Triage, String> {
    let mut reasons = Vec::new();
    let mut add = |severity: Level, reason: String| reasons.push(Reason { severity, reason });
    let levels = &c.levels;

    for t in c.probes.iter().flat_map(|p| &p.targets) {
        if !t.ok {
            let why = t.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            add(Level::Critical, format!("{} is down{why}", t.url));
        }
    }
    if c.data_loss_risk {
        add(Level::Critical, "data is at risk (data_loss_risk)".into());
    }
    let s = &c.service;
    if let Some(rate) = s.error_rate_percent.filter(|r| *r > levels.error_rate_percent) {
        add(Level::High, format!("error rate {rate:.2}% is over {}%", levels.error_rate_percent));
    }
    if let (Some(p95), Some(normal)) = (s.p95_latency_ms, c.normal.p95_latency_ms)
        && p95 > levels.p95_factor * normal
    {
        add(
            Level::High,
            format!("p95 latency {p95:.0} ms is over {} times the normal {normal:.0} ms", levels.p95_factor),
        );
    }
    for (what, value) in [("CPU", s.cpu_percent), ("memory", s.memory_percent)] {
        if let Some(v) = value.filter(|v| *v > levels.capacity_percent) {
            add(Level::High, format!("{what} {v:.1}% is over the capacity level of {}%", levels.capacity_percent));
        }
    }
    if let Some(t) = &c.trend
        && t.direction == "worsening"
    {
        let change = t.change.map(|c| format!(" ({c:+} points)")).unwrap_or_default();
        add(Level::Medium, format!("the health score is trending worse{change}"));
    }
    if let Some(hit) = s.cache_hit_percent.filter(|h| *h < levels.cache_hit_percent) {
        add(Level::Low, format!("cache hit rate {hit:.1}% is under {}%", levels.cache_hit_percent));
    }
    for t in c.probes.iter().flat_map(|p| &p.targets) {
        if let (true, Some(ms)) = (t.ok, t.latency_ms)
            && let Some(normal) = c.normal.p95_latency_ms
            && ms > levels.p95_factor * normal
        {
            add(
                Level::Low,
                format!("{} answered in {ms:.0} ms, over {} times the normal {normal:.0} ms", t.url, levels.p95_factor),
            );
        }
    }
    if let Some(declared) = c.declared.as_deref().filter(|d| !d.trim().is_empty()) {
        let level = Level::parse(declared).ok_or_else(|| {
            format!("field `declared`: {declared:?} is not a severity; expected critical, high, medium, low or none")
        })?;
        if level > Level::None {
            add(level, format!("declared {} by whoever started the incident", level.as_str()));
        }
    }
    if let Some(alert) = &c.alert {
        let name = alert.pointer("/labels/alertname").and_then(Value::as_str).unwrap_or("an alert");
        if let Some(label) = alert.pointer("/labels/severity").and_then(Value::as_str)
            && let Some(level) = Level::parse(label).filter(|l| *l > Level::None)
        {
            add(level, format!("alert {name} has severity {label:?}"));
        }
    }

    // Stable: equal severities keep the order they were found in.
    reasons.sort_by_key(|r| std::cmp::Reverse(r.severity));
    let severity = reasons.first().map_or(Level::None, |r| r.severity);
    let summary = match reasons.as_slice() {
        [] => "none: no sign of an incident".to_string(),
        [only] => format!("{}: {}", severity.as_str(), only.reason),
        [first, rest @ ..] => format!("{}: {} (and {} more)", severity.as_str(), first.reason, rest.len()),
    };
    Ok(Triage { severity, incident: severity > Level::None, reasons, summary })
}

impl Guest for IncidentTriage {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "incident-triage".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Classifies an incident by the alert hierarchy, with every reason: critical when a \
                          probed target is down or data is at risk; high when p95 latency is over twice normal, \
                          the error rate over 1% or CPU or memory over 80%; medium when the health score is \
                          trending worse; low for optimizations (cache hit rate under 90%, a slow target); none \
                          otherwise. An alert's severity label and a declared severity are floors. Emits an \
                          incident_severity metric (0 none to 4 critical) and a finding with the severity."
                .into(),
            config_schema: schema::to_text(&config_schema()),
            capabilities: Vec::new(),
        }
    }

    fn run(_ctx: StepContext, config: String, _input: String) -> Result<StepOutput, StepError> {
        let config: Config = parse_config(&config)?;
        let result = triage(&config).map_err(invalid_config)?;
        let metrics = vec![metric("incident_severity", f64::from(result.severity as u8), &[])];
        let mut findings = Vec::new();
        if result.incident {
            let detail = result.reasons.iter().map(|r| format!("- {}: {}", r.severity.as_str(), r.reason));
            findings.push(finding(
                result.severity.finding_severity(),
                result.summary.clone(),
                detail.collect::<Vec<_>>().join("\n"),
                None,
            ));
        }
        tend_plugin_sdk::output(&result, metrics, findings)
    }
}

/// JSON Schema of [`Config`]. The data objects are open: other plugins'
/// outputs may gain fields.
fn config_schema() -> Value {
    let number = |description: &str| json!({"type": ["number", "null"], "description": description});
    let level = |default: f64, description: &str| json!({"type": "number", "minimum": 0, "default": default, "description": description});
    schema::config(
        "incident-triage",
        "Configuration of the incident-triage plugin: the signals to judge and the levels of the hierarchy.",
        json!({
            "probes": {"type": ["object", "null"], "description": "The data of an http-probe step: a target down is critical."},
            "service": schema::object(
                "The service's own signals, e.g. from prometheus-query; null values are not judged.",
                json!({
                    "error_rate_percent": number("Share of requests that failed, in percent."),
                    "p95_latency_ms": number("95th percentile latency, in ms."),
                    "cpu_percent": number("CPU use, in percent."),
                    "memory_percent": number("Memory use, in percent."),
                    "cache_hit_percent": number("Cache hit rate, in percent."),
                }),
                &[],
            ),
            "normal": schema::object(
                "What is normal for the service.",
                json!({"p95_latency_ms": number("Normal p95 latency, in ms; without it latency is not judged.")}),
                &[],
            ),
            "trend": {"type": ["object", "null"], "description": "A health-score step's `trend`: `worsening` is medium."},
            "alert": {"type": ["object", "null"], "description": "The `alert` param of an alert-started run: its `severity` label is a floor."},
            "declared": {"type": ["string", "null"], "description": "A severity declared by whoever started the incident (critical, high, medium, low, none or empty): a floor."},
            "data_loss_risk": {"type": "boolean", "default": false, "description": "Data is at risk: critical."},
            "levels": schema::object(
                "The levels of the hierarchy.",
                json!({
                    "error_rate_percent": level(ERROR_RATE_PERCENT, "High over this error rate, in percent."),
                    "capacity_percent": level(CAPACITY_PERCENT, "High over this CPU or memory use, in percent."),
                    "p95_factor": level(P95_FACTOR, "High when p95 latency is over this many times normal."),
                    "cache_hit_percent": level(CACHE_HIT_PERCENT, "Low under this cache hit rate, in percent."),
                }),
                &[],
            ),
        }),
        &[],
    )
}

export!(IncidentTriage);

#[cfg(test)]
mod tests {
    use super::*;

    fn triaged(config: Value) -> Result<Triage, String> {
        let config: Config = serde_json::from_value(config).map_err(|e| e.to_string())?;
        triage(&config)
    }

    fn reasons(t: &Triage) -> Vec<(&str, &str)> {
        t.reasons.iter().map(|r| (r.severity.as_str(), r.reason.as_str())).collect()
    }

    #[test]
    fn a_down_target_is_critical_with_its_error_first() {
        let t = triaged(json!({
            "probes": {"targets": [{"url": "http://127.0.0.1:9100/healthz", "ok": false, "error": "status 503"}]},
            "service": {"error_rate_percent": 40.0, "cache_hit_percent": 95.0},
        }))
        .unwrap();
        assert_eq!(t.severity, Level::Critical);
        assert_eq!(
            reasons(&t),
            [
                ("critical", "http://127.0.0.1:9100/healthz is down: status 503"),
                ("high", "error rate 40.00% is over 1%")
            ]
        );
        assert_eq!(t.summary, "critical: http://127.0.0.1:9100/healthz is down: status 503 (and 1 more)");
    }

    #[test]
    fn each_level_of_the_hierarchy_has_its_reason() {
        let t = triaged(json!({
            "service": {"error_rate_percent": 0.5, "p95_latency_ms": 900, "cpu_percent": 85, "memory_percent": 50, "cache_hit_percent": 40},
            "normal": {"p95_latency_ms": 200},
            "trend": {"direction": "worsening", "change": -1.5},
        }))
        .unwrap();
        assert_eq!(
            reasons(&t),
            [
                ("high", "p95 latency 900 ms is over 2 times the normal 200 ms"),
                ("high", "CPU 85.0% is over the capacity level of 80%"),
                ("medium", "the health score is trending worse (-1.5 points)"),
                ("low", "cache hit rate 40.0% is under 90%"),
            ]
        );
        assert!(t.incident);
        let calm = triaged(
            json!({"service": {"error_rate_percent": 0.1, "cache_hit_percent": 99}, "trend": {"direction": "steady"}}),
        )
        .unwrap();
        assert_eq!(
            (calm.severity, calm.incident, calm.summary.as_str()),
            (Level::None, false, "none: no sign of an incident")
        );
    }

    #[test]
    fn an_alert_label_and_a_declared_severity_are_floors() {
        let alert = json!({"status": "firing", "labels": {"alertname": "DemoErrors", "severity": "page"}});
        let t = triaged(json!({"alert": alert, "service": {"error_rate_percent": 3}})).unwrap();
        assert_eq!(t.severity, Level::Critical);
        assert_eq!(reasons(&t)[0], ("critical", "alert DemoErrors has severity \"page\""));
        let t = triaged(json!({"declared": "high"})).unwrap();
        assert_eq!(reasons(&t), [("high", "declared high by whoever started the incident")]);
        assert_eq!(triaged(json!({"declared": ""})).unwrap().severity, Level::None);
        assert_eq!(
            triaged(json!({"declared": "urgent"})).unwrap_err(),
            "field `declared`: \"urgent\" is not a severity; expected critical, high, medium, low or none"
        );
    }

    #[test]
    fn data_at_risk_is_critical_and_levels_are_configurable() {
        let t = triaged(json!({"data_loss_risk": true})).unwrap();
        assert_eq!(reasons(&t), [("critical", "data is at risk (data_loss_risk)")]);
        let t = triaged(json!({"service": {"error_rate_percent": 3}, "levels": {"error_rate_percent": 5}})).unwrap();
        assert_eq!(t.severity, Level::None);
    }

    #[test]
    fn the_plugin_reports_a_finding_and_a_metric() {
        let ctx =
            StepContext { run_id: "r".into(), step_id: "s".into(), runbook: "b".into(), attempt: 1, iteration: 0 };
        let out = IncidentTriage::run(ctx.clone(), json!({"declared": "medium"}).to_string(), String::new()).unwrap();
        assert_eq!(out.metrics[0].name, "incident_severity");
        assert_eq!(out.metrics[0].value, 2.0);
        assert_eq!(out.findings.len(), 1);
        assert_eq!(out.findings[0].title, "medium: declared medium by whoever started the incident");
        let e = IncidentTriage::run(ctx, json!({"severity": "x"}).to_string(), String::new()).unwrap_err();
        assert!(matches!(&e, StepError::InvalidConfig(m) if m.starts_with("field `severity`: unknown field")), "{e:?}");
    }
}
