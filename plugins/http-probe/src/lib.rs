//! `http-probe`: checks that a list of URLs answer, and how fast.
//!
//! For each target it makes one request through the host's `http-fetch`
//! (the only way out of the sandbox; the step needs a `hosts` grant for each
//! target), times it, and decides whether the target is up: the request
//! went through, the status is one of the expected ones (any 2xx or 3xx by
//! default) and, if asked, the body contains a given text. It returns
//! per-target results and a summary as data, `http_up` / `http_latency_ms`
//! / `http_status` metrics labelled by URL, a finding per down target and
//! one per slow target.
//!
//! A target that cannot be reached (refused, timed out, host not granted)
//! is a result, not an error: the step still succeeds and reports it down,
//! with the host's message verbatim. Only bad config fails the step.
//!
//! It must not make any request other than one per configured target, must
//! not send a body, and must not read secrets, files or the environment.

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;
use tend_plugin_sdk::{
    Finding, Guest, HttpRequest, HttpResponse, Metric, PluginInfo, SeverityLevel, StepContext, StepError, StepOutput,
    export, finding, host, invalid_config, is_http_url, log, metric, parse_config, round, schema,
};

/// The plugin; see the crate docs.
struct HttpProbe;

/// Default per-request timeout.
const DEFAULT_TIMEOUT_MS: u32 = 5_000;
/// Default latency past which an up target is reported slow.
const DEFAULT_LATENCY_THRESHOLD_MS: u64 = 1_000;

/// The step's `with:` block, parsed and checked (see [`parse`]).
#[derive(Debug)]
struct Config {
    /// What to probe, in order.
    targets: Vec<Target>,
    /// An up target slower than this gets a `medium` finding.
    latency_threshold_ms: u64,
    /// Severity of the finding for a down target.
    down_severity: SeverityLevel,
    /// Follow redirects (the host allows up to 10; every hop must be granted).
    follow_redirects: bool,
}

fn default_latency_threshold_ms() -> u64 {
    DEFAULT_LATENCY_THRESHOLD_MS
}

fn default_down_severity() -> SeverityLevel {
    SeverityLevel::High
}

fn default_true() -> bool {
    true
}

fn default_method() -> String {
    "GET".into()
}

fn default_timeout_ms() -> u32 {
    DEFAULT_TIMEOUT_MS
}

/// One target: written as a bare URL string or as an object.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    /// Absolute http or https URL.
    url: String,
    /// Request method.
    #[serde(default = "default_method")]
    method: String,
    /// Statuses that count as up; any 2xx or 3xx when absent.
    #[serde(default)]
    expect_status: Option<Vec<u16>>,
    /// Text the body must contain for the target to count as up.
    #[serde(default)]
    body_contains: Option<String>,
    /// Request headers.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Per-request timeout.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u32,
}

impl Target {
    /// A target given as a bare URL: GET, defaults for the rest.
    fn from_url(url: &str) -> Self {
        Target {
            url: url.to_string(),
            method: default_method(),
            expect_status: None,
            body_contains: None,
            headers: BTreeMap::new(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }
}

/// Wraps [`Target`] so a target can be a URL string or an object, with
/// errors inside the object still naming their field.
#[derive(Debug)]
struct TargetEntry(Target);

impl<'de> Deserialize<'de> for TargetEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = TargetEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a URL string or an object {url, method, expect_status, body_contains, headers, timeout_ms}",
                )
            }

            fn visit_str<E: de::Error>(self, url: &str) -> Result<TargetEntry, E> {
                Ok(TargetEntry(Target::from_url(url)))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TargetEntry, A::Error> {
                Target::deserialize(de::value::MapAccessDeserializer::new(map)).map(TargetEntry)
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

/// The step's `with:` block as written; becomes a [`Config`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    targets: Vec<TargetEntry>,
    #[serde(default = "default_latency_threshold_ms")]
    latency_threshold_ms: u64,
    #[serde(default = "default_down_severity")]
    down_severity: SeverityLevel,
    #[serde(default = "default_true")]
    follow_redirects: bool,
}

impl From<RawConfig> for Config {
    fn from(raw: RawConfig) -> Self {
        Config {
            targets: raw.targets.into_iter().map(|TargetEntry(t)| t).collect(),
            latency_threshold_ms: raw.latency_threshold_ms,
            down_severity: raw.down_severity,
            follow_redirects: raw.follow_redirects,
        }
    }
}

/// Parses and checks the config; methods come back upper-cased.
fn parse(text: &str) -> Result<Config, StepError> {
    let mut config: Config = parse_config::<RawConfig>(text)?.into();
    if config.targets.is_empty() {
        return Err(invalid_config("field `targets`: expected at least one target, found an empty list"));
    }
    for (i, target) in config.targets.iter_mut().enumerate() {
        check_target(target)
            .map_err(|(field, message)| invalid_config(format!("field `targets[{i}].{field}`: {message}")))?;
    }
    Ok(config)
}

/// Checks one target and upper-cases its method. An error names the
/// target's field at fault and what is wrong with it.
fn check_target(target: &mut Target) -> Result<(), (&'static str, String)> {
    if !is_http_url(&target.url) {
        return Err(("url", format!("expected an absolute http or https URL, found {:?}", target.url)));
    }
    if target.method.is_empty() || !target.method.bytes().all(is_token_byte) {
        return Err(("method", format!("expected an HTTP method such as \"GET\", found {:?}", target.method)));
    }
    target.method.make_ascii_uppercase();
    if let Some(statuses) = &target.expect_status {
        if statuses.is_empty() {
            return Err(("expect_status", "expected at least one status, found an empty list".into()));
        }
        if let Some(bad) = statuses.iter().find(|s| !(100..=599).contains(*s)) {
            return Err(("expect_status", format!("expected HTTP statuses from 100 to 599, found {bad}")));
        }
    }
    if target.timeout_ms == 0 {
        return Err(("timeout_ms", "expected a positive number of milliseconds, found 0".into()));
    }
    Ok(())
}

/// A `tchar` of RFC 9110 (what a method name is made of).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The result of probing one target, as it appears in the output data.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Probe {
    url: String,
    ok: bool,
    /// Status of the (final) response; none when no response came.
    status: Option<u16>,
    /// Time from sending the request to the answer or the error.
    latency_ms: f64,
    /// Why the target is down; none when it is up.
    error: Option<String>,
    /// Whether the body contained `body_contains`; none when not asked or
    /// when no response came.
    body_match: Option<bool>,
}

/// Counts over all probes.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Summary {
    total: usize,
    up: usize,
    down: usize,
    all_up: bool,
    /// Over the targets that answered; none when none did.
    avg_latency_ms: Option<f64>,
    /// Over the targets that answered; none when none did.
    max_latency_ms: Option<f64>,
}

/// Sends the request for `target` through the host and judges the answer.
fn probe(target: &Target, follow_redirects: bool) -> Probe {
    let request = HttpRequest {
        method: target.method.clone(),
        url: target.url.clone(),
        headers: target.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        body: None,
        timeout_ms: Some(target.timeout_ms),
        follow_redirects,
    };
    let started = Instant::now();
    let result = host::http_fetch(&request);
    let latency_ms = round(started.elapsed().as_secs_f64() * 1000.0, 3);
    let probe = match result {
        Ok(response) => judge(target, &response, latency_ms),
        Err(error) => {
            Probe { url: target.url.clone(), ok: false, status: None, latency_ms, error: Some(error), body_match: None }
        }
    };
    log::debug(&describe_probe(target, &probe));
    probe
}

/// Decides whether `response` means the target is up.
fn judge(target: &Target, response: &HttpResponse, latency_ms: f64) -> Probe {
    let status_ok = match &target.expect_status {
        Some(expected) => expected.contains(&response.status),
        None => (200..400).contains(&response.status),
    };
    let body_match = target.body_contains.as_deref().map(|needle| contains(&response.body, needle.as_bytes()));
    let mut problems = Vec::new();
    if !status_ok {
        problems.push(format!("status {}, expected {}", response.status, expected_statuses(target)));
    }
    if let (Some(false), Some(needle)) = (body_match, &target.body_contains) {
        let cut = if response.truncated { " (the host cut the body at its size limit)" } else { "" };
        problems.push(format!("body does not contain {needle:?}{cut}"));
    }
    Probe {
        url: target.url.clone(),
        ok: problems.is_empty(),
        status: Some(response.status),
        latency_ms,
        error: (!problems.is_empty()).then(|| problems.join("; ")),
        body_match,
    }
}

/// True when `needle` occurs in `haystack` (an empty needle always does).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// "2xx or 3xx", "200", "200 or 204", "200, 201 or 204".
fn expected_statuses(target: &Target) -> String {
    let Some(statuses) = &target.expect_status else {
        return "2xx or 3xx".into();
    };
    let names: Vec<String> = statuses.iter().map(u16::to_string).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// One log line for a probe: "GET https://x/health: 200 in 12.3 ms".
fn describe_probe(target: &Target, probe: &Probe) -> String {
    let outcome = match (probe.status, &probe.error) {
        (Some(status), None) => format!("{status}, up"),
        (Some(status), Some(error)) => format!("{status}, down: {error}"),
        (None, Some(error)) => format!("down: {error}"),
        (None, None) => "no answer".into(),
    };
    format!("{} {}: {outcome} in {:.1} ms", target.method, target.url, probe.latency_ms)
}

/// Counts and latency figures over `probes`.
fn summarize(probes: &[Probe]) -> Summary {
    let up = probes.iter().filter(|p| p.ok).count();
    let answered: Vec<f64> = probes.iter().filter(|p| p.status.is_some()).map(|p| p.latency_ms).collect();
    let avg = (!answered.is_empty()).then(|| round(answered.iter().sum::<f64>() / answered.len() as f64, 3));
    let max = answered.iter().copied().reduce(f64::max);
    Summary {
        total: probes.len(),
        up,
        down: probes.len() - up,
        all_up: up == probes.len(),
        avg_latency_ms: avg,
        max_latency_ms: max,
    }
}

/// `http_up`, and `http_latency_ms` / `http_status` when a response came.
fn probe_metrics(probe: &Probe) -> Vec<Metric> {
    let labels = [("url", probe.url.as_str())];
    let mut metrics = vec![metric("http_up", if probe.ok { 1.0 } else { 0.0 }, &labels)];
    if let Some(status) = probe.status {
        metrics.push(metric("http_latency_ms", probe.latency_ms, &labels));
        metrics.push(metric("http_status", f64::from(status), &labels));
    }
    metrics
}

/// A finding for a down target, or for an up target slower than the
/// threshold; none otherwise.
fn probe_finding(target: &Target, probe: &Probe, config: &Config) -> Option<Finding> {
    let url = probe.url.as_str();
    if let Some(error) = &probe.error {
        let detail = match probe.status {
            Some(status) => {
                format!("{} {url} answered {status} after {:.1} ms: {error}.", target.method, probe.latency_ms)
            }
            None => format!("{} {url} failed after {:.1} ms: {error}", target.method, probe.latency_ms),
        };
        return Some(finding(config.down_severity, format!("{url} is down: {error}"), detail, Some(url)));
    }
    let threshold = config.latency_threshold_ms as f64;
    (probe.latency_ms > threshold).then(|| {
        finding(
            SeverityLevel::Medium,
            format!("{url} is slow: {:.0} ms, threshold {threshold:.0} ms", probe.latency_ms),
            format!(
                "{} {url} answered {} in {:.1} ms, over the latency threshold of {threshold:.0} ms.",
                target.method,
                probe.status.map_or_else(|| "?".into(), |s| s.to_string()),
                probe.latency_ms
            ),
            Some(url),
        )
    })
}

impl Guest for HttpProbe {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "http-probe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Checks a list of HTTP(S) URLs through the host's allow-listed HTTP client: for each \
                          target it sends one request, measures its latency and decides whether the target is \
                          up (expected status, by default any 2xx or 3xx, and optionally a text the body must \
                          contain). Returns per-target results and a summary, http_up / http_latency_ms / \
                          http_status metrics labelled by URL, a finding for every target that is down and one \
                          for every target slower than the latency threshold. Unreachable or not-granted \
                          targets are reported down; only bad config fails the step."
                .into(),
            config_schema: schema::to_text(&config_schema()),
            capabilities: vec!["http".into()],
        }
    }

    fn run(_ctx: StepContext, config: String, _input: String) -> Result<StepOutput, StepError> {
        let config = parse(&config)?;
        let probes: Vec<Probe> = config.targets.iter().map(|t| probe(t, config.follow_redirects)).collect();
        let metrics = probes.iter().flat_map(probe_metrics).collect();
        let findings = config.targets.iter().zip(&probes).filter_map(|(t, p)| probe_finding(t, p, &config)).collect();
        let data = json!({ "targets": probes, "summary": summarize(&probes) });
        tend_plugin_sdk::output(&data, metrics, findings)
    }
}

/// JSON Schema of the config.
fn config_schema() -> Value {
    let url = json!({
        "type": "string",
        "format": "uri",
        "pattern": "^[hH][tT][tT][pP][sS]?://[^/?#\\s]+\\S*$",
        "description": "Absolute http or https URL; its host must be in the step's `hosts` grant.",
    });
    let target = schema::object(
        "A target with request options.",
        json!({
            "url": url,
            "method": {"type": "string", "default": "GET", "description": "Request method, e.g. GET or HEAD."},
            "expect_status": {
                "type": "array",
                "items": {"type": "integer", "minimum": 100, "maximum": 599},
                "minItems": 1,
                "description": "Statuses that count as up; by default any 2xx or 3xx.",
            },
            "body_contains": {"type": "string", "description": "Text the response body must contain to count as up."},
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Request headers, e.g. {\"accept\": \"application/json\"}.",
            },
            "timeout_ms": {
                "type": "integer",
                "minimum": 1,
                "maximum": u32::MAX,
                "default": DEFAULT_TIMEOUT_MS,
                "description": "Timeout of the request in milliseconds (never past the step's own deadline).",
            },
        }),
        &["url"],
    );
    schema::config(
        "http-probe",
        "Configuration of the http-probe plugin.",
        json!({
            "targets": {
                "type": "array",
                "minItems": 1,
                "items": {"oneOf": [url, target]},
                "description": "What to probe, in order: a URL string (GET, any 2xx or 3xx is up) or an object.",
            },
            "latency_threshold_ms": {
                "type": "integer",
                "minimum": 0,
                "default": DEFAULT_LATENCY_THRESHOLD_MS,
                "description": "An up target slower than this many milliseconds gets a medium finding.",
            },
            "down_severity": {
                "enum": SeverityLevel::NAMES,
                "default": "high",
                "description": "Severity of the finding for each target that is down.",
            },
            "follow_redirects": {
                "type": "boolean",
                "default": true,
                "description": "Follow redirects (up to 10); every hop's host must be granted.",
            },
        }),
        &["targets"],
    )
}

export!(HttpProbe);

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> String {
        match parse(text) {
            Err(StepError::InvalidConfig(m)) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            truncated: false,
            final_url: "https://x/health".into(),
        }
    }

    #[test]
    fn targets_are_strings_or_objects() {
        let c =
            parse(r#"{"targets": ["https://a/", {"url": "http://b/x", "method": "head", "expect_status": [204]}]}"#)
                .unwrap();
        assert_eq!(c.targets[0].method, "GET");
        assert_eq!(c.targets[0].timeout_ms, 5000);
        assert_eq!(c.targets[1].method, "HEAD");
        assert_eq!(c.targets[1].expect_status, Some(vec![204]));
        assert_eq!(c.latency_threshold_ms, 1000);
        assert_eq!(c.down_severity, SeverityLevel::High);
        assert!(c.follow_redirects);
    }

    #[test]
    fn bad_config_names_the_field() {
        assert_eq!(invalid(""), "field `targets`: is required but missing");
        assert_eq!(invalid(r#"{"targets": []}"#), "field `targets`: expected at least one target, found an empty list");
        assert_eq!(
            invalid(r#"{"targets": ["ftp://x/"]}"#),
            "field `targets[0].url`: expected an absolute http or https URL, found \"ftp://x/\""
        );
        assert_eq!(
            invalid(r#"{"targets": ["https://a/", {"url": 5}]}"#),
            "field `targets[1].url`: expected a string, found integer `5`"
        );
        assert!(invalid(r#"{"targets": [3]}"#).starts_with("field `targets[0]`: expected a URL string or an object"));
        assert!(
            invalid(r#"{"targets": [{"url": "https://a", "expect": [200]}]}"#)
                .starts_with("field `targets[0].expect`: unknown field")
        );
        assert!(
            invalid(r#"{"targets": ["https://a"], "down_severity": "bad"}"#)
                .starts_with("field `down_severity`: unknown variant")
        );
        assert_eq!(
            invalid(r#"{"targets": [{"url": "https://a", "expect_status": [99]}]}"#),
            "field `targets[0].expect_status`: expected HTTP statuses from 100 to 599, found 99"
        );
        assert!(invalid(r#"{"targets": ["https:///x"]}"#).contains("expected an absolute http or https URL"));
    }

    #[test]
    fn judges_status_and_body() {
        let mut target = Target::from_url("https://x/health");
        let p = judge(&target, &response(503, ""), 12.0);
        assert!(!p.ok);
        assert_eq!(p.error.as_deref(), Some("status 503, expected 2xx or 3xx"));
        target.body_contains = Some("good".into());
        let p = judge(&target, &response(200, "all good"), 12.0);
        assert!(p.ok && p.body_match == Some(true) && p.error.is_none());
        let p = judge(&target, &response(200, "all bad"), 12.0);
        assert_eq!(p.error.as_deref(), Some("body does not contain \"good\""));
        target.expect_status = Some(vec![200, 201, 204]);
        let p = judge(&target, &response(302, "good"), 12.0);
        assert_eq!(p.error.as_deref(), Some("status 302, expected 200, 201 or 204"));
    }

    #[test]
    fn findings_for_down_and_slow_targets() {
        let config = parse(r#"{"targets": ["https://x/health"], "down_severity": "critical"}"#).unwrap();
        let target = &config.targets[0];
        let down = Probe {
            url: target.url.clone(),
            ok: false,
            status: None,
            latency_ms: 0.1,
            error: Some("hosts: x is not granted to this step (granted: none)".into()),
            body_match: None,
        };
        let f = probe_finding(target, &down, &config).unwrap();
        assert_eq!(f.title, "https://x/health is down: hosts: x is not granted to this step (granted: none)");
        assert!(matches!(f.severity, tend_plugin_sdk::Severity::Critical));
        assert_eq!(probe_metrics(&down).len(), 1);
        let slow = Probe { ok: true, status: Some(200), latency_ms: 1520.4, error: None, ..down };
        let f = probe_finding(target, &slow, &config).unwrap();
        assert_eq!(f.title, "https://x/health is slow: 1520 ms, threshold 1000 ms");
        assert!(probe_finding(target, &Probe { latency_ms: 20.0, ..slow.clone() }, &config).is_none());
        assert_eq!(probe_metrics(&slow).len(), 3);
    }

    #[test]
    fn summary_counts_and_latency_over_answers() {
        let base =
            Probe { url: "u".into(), ok: true, status: Some(200), latency_ms: 30.0, error: None, body_match: None };
        let probes = vec![
            Probe { ok: false, status: Some(503), latency_ms: 12.0, error: Some("e".into()), ..base.clone() },
            base.clone(),
            Probe { ok: false, status: None, latency_ms: 0.5, error: Some("e".into()), ..base.clone() },
        ];
        let s = summarize(&probes);
        assert_eq!((s.total, s.up, s.down, s.all_up), (3, 1, 2, false));
        assert_eq!((s.avg_latency_ms, s.max_latency_ms), (Some(21.0), Some(30.0)));
        let s = summarize(&probes[2..]);
        assert_eq!((s.avg_latency_ms, s.max_latency_ms), (None, None));
    }
}
