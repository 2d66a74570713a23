//! `prometheus-query`: reads numbers out of Prometheus with PromQL.
//!
//! For each named query in the config it makes one request to the
//! Prometheus HTTP API through the host's `http-fetch` (the step needs a
//! `hosts` grant for Prometheus): an instant query (`POST /api/v1/query`,
//! evaluated at Prometheus's "now") or, when `range` is given, a range query
//! (`POST /api/v1/query_range` over a window relative to the step's clock).
//! The query goes form-encoded in the body, so any PromQL fits.
//!
//! Config (`with:`):
//!
//! ```yaml
//! url: http://127.0.0.1:9090          # base URL; a path prefix is fine, /api/v1/... is not
//! queries:
//!   - name: error_rate                # [A-Za-z_][A-Za-z0-9_]*, unique; the key in `by_name`/`values`
//!     query: sum(rate(demo_requests_total{status=~"5.."}[1m])) / sum(rate(demo_requests_total[1m]))
//!     metric_name: demo_error_rate    # optional; the metric is named `name` by default
//!     expect: {max: 0.05}             # optional: a finding for each series outside [min, max] or NaN
//! range: {start: "-10m", end: now, step: 15s}   # optional; end defaults to now, step to 15s
//! timeout_ms: 10000                   # per request, by default 10 s
//! bearer_secret: prom-token           # optional: sent as `Authorization: Bearer <secret>`
//! no_data_severity: low               # finding for a query with no series; null for none
//! ```
//!
//! Output data:
//!
//! ```json
//! {"queries": [{"name": "error_rate", "query": "...", "result_type": "vector",
//!               "series": [{"labels": {"job": "demo"}, "value": 0.01}], "value": 0.01}],
//!  "by_name": {"error_rate": {...the same object...}},
//!  "values":  {"error_rate": 0.01}}
//! ```
//!
//! A vector series is `{labels, value}`, a matrix series `{labels, values:
//! [[unix_seconds, value], ...]}`; a scalar is one series without labels; a
//! string result has no series and its text as `value`. A query's `value`
//! is the single value when there is exactly one series (for a matrix, that
//! series' latest sample), else `null`; `values` maps every name to it, for
//! CEL such as `steps.prom.output.values.error_rate < 0.05`. An empty result
//! is not an error: `series` is empty, `value` is `null`, and a `low`
//! finding "no data for error_rate" is raised (`no_data_severity`). JSON has
//! no NaN or infinities, so those values appear as Prometheus writes them,
//! as the strings `"NaN"`, `"+Inf"` and `"-Inf"`; every other value is a
//! number.
//!
//! Metrics: one per series per query, named by `metric_name` (or `name`),
//! labelled with the series' labels except `__name__`, valued with its
//! (latest) sample. NaN and infinite samples are not recorded as metrics: a
//! metric series of tend holds numbers only.
//!
//! Errors: Prometheus's own error answers keep its message verbatim, after
//! the query's name: `bad_data` (a PromQL syntax error, a bad parameter)
//! is `invalid-config`; `timeout`, `canceled`, `unavailable` and `internal`
//! are `retryable`; `execution` and `not_found` are `failed`. Without such
//! an answer: connection failures and timeouts (the host's message), 429
//! and 5xx are `retryable`; 401 and 403 are `failed`, naming the bearer
//! secret; a host not in the `hosts` grant fails with the host's message,
//! which names the grant; any other status is `failed`. The first query that
//! fails fails the step.
//!
//! Grants: the plugin declares only the `http` capability. `bearer_secret`
//! also needs the secret in the step's `secrets` grant (`--secret NAME` with
//! `tend plugins call`); declaring `secrets` would make every step grant a
//! secret, including those without one. A secret that is not granted or not
//! set fails the step with a message naming `bearer_secret` and the grant.
//!
//! It must not make any request but one `POST` per configured query to the
//! configured Prometheus, must not follow redirects, must not read any secret
//! but `bearer_secret`, and never puts the token in data, logs or errors.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tend_plugin_sdk::{
    Finding, Guest, HttpRequest, HttpResponse, Metric, PluginInfo, SeverityLevel, StepContext, StepError, StepOutput,
    export, failed, finding, host, invalid_config, log, parse_config, retryable, round, schema,
};

/// The plugin; see the crate docs.
struct PrometheusQuery;

/// Default per-request timeout: 10 seconds.
const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// Default end of a range query: now.
const DEFAULT_RANGE_END: &str = "now";
/// Default step of a range query: 15 seconds, Prometheus's default scrape interval.
const DEFAULT_RANGE_STEP: &str = "15s";
/// Default severity of the finding for a query that returns no series: low.
const DEFAULT_NO_DATA_SEVERITY: SeverityLevel = SeverityLevel::Low;
/// Default severity of the finding for a series outside its `expect` range: medium.
const DEFAULT_EXPECT_SEVERITY: SeverityLevel = SeverityLevel::Medium;
/// Most steps a range query may span: Prometheus refuses more than 11 000
/// points per series.
const MAX_RANGE_STEPS: u64 = 11_000;
/// Most characters of an unexpected response body quoted in an error.
const MAX_QUOTED_BODY_CHARS: usize = 200;
/// Most characters of an unexpected JSON value quoted in an error.
const MAX_QUOTED_JSON_CHARS: usize = 80;

fn default_timeout_ms() -> u32 {
    DEFAULT_TIMEOUT_MS
}

fn default_range_end() -> String {
    DEFAULT_RANGE_END.into()
}

fn default_range_step() -> String {
    DEFAULT_RANGE_STEP.into()
}

fn default_no_data_severity() -> Option<SeverityLevel> {
    Some(DEFAULT_NO_DATA_SEVERITY)
}

fn default_expect_severity() -> SeverityLevel {
    DEFAULT_EXPECT_SEVERITY
}

/// The step's `with:` block as written; [`parse`] checks it into a [`Config`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    url: String,
    queries: Vec<QuerySpec>,
    #[serde(default)]
    range: Option<RawRange>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u32,
    #[serde(default)]
    bearer_secret: Option<String>,
    #[serde(default = "default_no_data_severity")]
    no_data_severity: Option<SeverityLevel>,
}

/// One named query.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuerySpec {
    /// Key of the query in the output, e.g. `error_rate`.
    name: String,
    /// The PromQL expression.
    query: String,
    /// Name of the metrics recorded for the query; `name` when absent.
    #[serde(default)]
    metric_name: Option<String>,
    /// Range each series' value should lie in.
    #[serde(default)]
    expect: Option<Expect>,
}

impl QuerySpec {
    /// `query "error_rate"`, the start of every message about the query.
    fn what(&self) -> String {
        format!("query {:?}", self.name)
    }

    /// The name of the metrics recorded for the query.
    fn metric_name(&self) -> &str {
        self.metric_name.as_deref().unwrap_or(&self.name)
    }
}

/// Bounds a series' value should stay within, or a finding is raised.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default = "default_expect_severity")]
    severity: SeverityLevel,
}

/// How a value misses its [`Expect`] range.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outside {
    /// NaN is in no range.
    NotANumber,
    /// Under `min`.
    Below(f64),
    /// Over `max`.
    Above(f64),
}

impl Expect {
    /// How `value` misses the range; none when it lies within.
    fn check(&self, value: f64) -> Option<Outside> {
        if value.is_nan() {
            return Some(Outside::NotANumber);
        }
        match (self.min, self.max) {
            (Some(min), _) if value < min => Some(Outside::Below(min)),
            (_, Some(max)) if value > max => Some(Outside::Above(max)),
            _ => None,
        }
    }

    /// "between 0 and 0.05", "at least 0.8", "at most 0.05".
    fn describe(&self) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("between {min} and {max}"),
            (Some(min), None) => format!("at least {min}"),
            (None, Some(max)) => format!("at most {max}"),
            (None, None) => "any value".into(),
        }
    }
}

/// `range:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    start: String,
    #[serde(default = "default_range_end")]
    end: String,
    #[serde(default = "default_range_step")]
    step: String,
}

/// The config, checked.
#[derive(Debug)]
struct Config {
    /// Base URL of Prometheus without a trailing `/`.
    url: String,
    queries: Vec<QuerySpec>,
    /// Range queries over this window; instant queries when none.
    range: Option<Range>,
    timeout_ms: u32,
    bearer_secret: Option<String>,
    no_data_severity: Option<SeverityLevel>,
}

/// The window of range queries, relative to the time of the step.
#[derive(Debug, Clone, PartialEq)]
struct Range {
    /// `start` and `end` as written, for messages.
    start_text: String,
    end_text: String,
    /// How long before now the window starts and ends, in milliseconds.
    start_ago_ms: u64,
    end_ago_ms: u64,
    /// Resolution in milliseconds.
    step_ms: u64,
}

impl Range {
    /// The absolute window for a step run at `now_ms` (Unix milliseconds).
    fn window(&self, now_ms: u64) -> Window {
        Window {
            start_ms: now_ms.saturating_sub(self.start_ago_ms),
            end_ms: now_ms.saturating_sub(self.end_ago_ms),
            step_ms: self.step_ms,
        }
    }
}

/// An absolute range-query window.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    start_ms: u64,
    end_ms: u64,
    step_ms: u64,
}

/// Parses and checks the config. Errors name the field at fault.
fn parse(text: &str) -> Result<Config, StepError> {
    let raw: RawConfig = parse_config(text)?;
    let url = check_url(&raw.url).map_err(|m| invalid_config(format!("field `url`: {m}")))?;
    if raw.queries.is_empty() {
        return Err(invalid_config("field `queries`: expected at least one query, found an empty list"));
    }
    for (i, query) in raw.queries.iter().enumerate() {
        check_query(query).map_err(|(field, m)| invalid_config(format!("field `queries[{i}].{field}`: {m}")))?;
        if let Some(first) = raw.queries[..i].iter().position(|q| q.name == query.name) {
            return Err(invalid_config(format!(
                "field `queries[{i}].name`: expected a unique name, found {:?}, already the name of queries[{first}]",
                query.name
            )));
        }
    }
    let range = raw.range.as_ref().map(check_range).transpose()?;
    if raw.timeout_ms == 0 {
        return Err(invalid_config("field `timeout_ms`: expected a positive number of milliseconds, found 0"));
    }
    if raw.bearer_secret.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return Err(invalid_config("field `bearer_secret`: expected the name of a secret, found an empty string"));
    }
    Ok(Config {
        url,
        queries: raw.queries,
        range,
        timeout_ms: raw.timeout_ms,
        bearer_secret: raw.bearer_secret,
        no_data_severity: raw.no_data_severity,
    })
}

/// The base URL without trailing `/`s, or what is wrong with it.
fn check_url(url: &str) -> Result<String, String> {
    let lower = url.to_ascii_lowercase();
    let rest = lower.strip_prefix("http://").or_else(|| lower.strip_prefix("https://"));
    let authority = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    if authority.is_none_or(str::is_empty) || url.chars().any(char::is_whitespace) {
        return Err(format!(
            "expected the http or https base URL of Prometheus, e.g. \"http://127.0.0.1:9090\", found {url:?}"
        ));
    }
    if url.contains(['?', '#']) {
        return Err(format!("expected a base URL without a query or fragment, found {url:?}"));
    }
    let base = url.trim_end_matches('/');
    if base.ends_with("/api/v1") || base.contains("/api/v1/") {
        return Err(format!(
            "expected the base URL of Prometheus without the API path, e.g. \"http://127.0.0.1:9090\", found {url:?}"
        ));
    }
    Ok(base.to_string())
}

/// Checks one query; an error names the query's field at fault.
fn check_query(query: &QuerySpec) -> Result<(), (&'static str, String)> {
    if !is_name(&query.name, false) {
        return Err((
            "name",
            format!(
                "expected a name of letters, digits and `_` that does not start with a digit, e.g. \"error_rate\", \
                 found {:?}",
                query.name
            ),
        ));
    }
    if query.query.trim().is_empty() {
        return Err(("query", "expected a PromQL expression, found an empty string".into()));
    }
    if let Some(name) = &query.metric_name
        && !is_name(name, true)
    {
        return Err((
            "metric_name",
            format!(
                "expected a metric name of letters, digits, `_` and `:` that does not start with a digit, found \
                 {name:?}"
            ),
        ));
    }
    if let Some(expect) = &query.expect {
        match (expect.min, expect.max) {
            (None, None) => return Err(("expect", "expected `min`, `max` or both, found neither".into())),
            (Some(min), Some(max)) if min > max => {
                return Err(("expect.max", format!("expected a number not below `min` ({min}), found {max}")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// True for `[A-Za-z_][A-Za-z0-9_]*`, with `:` allowed too when `colons`
/// (a Prometheus metric name).
fn is_name(name: &str, colons: bool) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':');
    name.chars().next().is_some_and(|c| ok(c) && !c.is_ascii_digit()) && name.chars().all(ok)
}

/// Checks `range:` into a [`Range`].
fn check_range(raw: &RawRange) -> Result<Range, StepError> {
    let field = |name: &str, message: String| invalid_config(format!("field `range.{name}`: {message}"));
    let start_ago_ms = parse_relative_time(&raw.start).map_err(|m| field("start", m))?;
    let end_ago_ms = parse_relative_time(&raw.end).map_err(|m| field("end", m))?;
    let step_ms = parse_duration(&raw.step).map_err(|m| field("step", m))?;
    if step_ms == 0 {
        return Err(field("step", format!("expected a positive duration, found {:?}", raw.step)));
    }
    if start_ago_ms <= end_ago_ms {
        return Err(field(
            "start",
            format!("expected a time before `range.end` ({:?}), found {:?}", raw.end, raw.start),
        ));
    }
    let span_ms = start_ago_ms - end_ago_ms;
    if span_ms / step_ms > MAX_RANGE_STEPS {
        let min_step_s = span_ms.div_ceil(MAX_RANGE_STEPS * 1000);
        return Err(field(
            "step",
            format!(
                "expected at most {MAX_RANGE_STEPS} steps from {:?} to {:?} (Prometheus refuses more), found {:?}, \
                 which makes {}; use a step of at least {min_step_s}s",
                raw.start,
                raw.end,
                raw.step,
                span_ms / step_ms
            ),
        ));
    }
    Ok(Range { start_text: raw.start.clone(), end_text: raw.end.clone(), start_ago_ms, end_ago_ms, step_ms })
}

/// `now` → 0; `-10m` or `now-10m` → 600 000: milliseconds before now.
fn parse_relative_time(text: &str) -> Result<u64, String> {
    let expected = || format!("expected \"now\" or a time before now such as \"-10m\" or \"now-1h\", found {text:?}");
    if text == "now" {
        return Ok(0);
    }
    let ago = text.strip_prefix("now-").or_else(|| text.strip_prefix('-')).ok_or_else(expected)?;
    parse_duration(ago).map_err(|_| expected())
}

/// A Prometheus-style duration (`15s`, `500ms`, `1h30m`; units `ms`, `s`,
/// `m`, `h`, `d`, `w`, `y` = 365 days) in milliseconds.
fn parse_duration(text: &str) -> Result<u64, String> {
    let expected = || format!("expected a duration such as \"15s\", \"10m\" or \"1h30m\", found {text:?}");
    let too_long = || format!("expected a duration shorter than 10 000 years, found {text:?}");
    let mut rest = text;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(expected());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| too_long())?;
        rest = &rest[digits..];
        let (unit_ms, unit_len) = match rest.as_bytes() {
            [b'm', b's', ..] => (1, 2),
            [b's', ..] => (1_000, 1),
            [b'm', ..] => (60_000, 1),
            [b'h', ..] => (3_600_000, 1),
            [b'd', ..] => (86_400_000, 1),
            [b'w', ..] => (7 * 86_400_000, 1),
            [b'y', ..] => (365 * 86_400_000, 1),
            _ => return Err(expected()),
        };
        rest = &rest[unit_len..];
        total = amount.checked_mul(unit_ms).and_then(|ms| total.checked_add(ms)).ok_or_else(too_long)?;
    }
    if text.is_empty() {
        return Err(expected());
    }
    if total > 10_000 * 365 * 86_400_000 {
        return Err(too_long());
    }
    Ok(total)
}

/// Unix milliseconds as the decimal seconds Prometheus takes: `1700000000.250`.
fn unix_seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// `application/x-www-form-urlencoded` text of `pairs`.
fn form_encode(pairs: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_component(&mut out, key);
        out.push('=');
        encode_component(&mut out, value);
    }
    out
}

/// Appends `text` form-encoded: unreserved bytes as they are, space as
/// `+`, every other byte as `%XX`.
fn encode_component(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'*' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xF)]));
            }
        }
    }
}

/// The request for `query`: an instant query, or a range query over `window`.
fn request(config: &Config, query: &QuerySpec, window: Option<Window>, token: Option<&str>) -> HttpRequest {
    let mut form = vec![("query", query.query.clone())];
    let path = match window {
        Some(w) => {
            form.push(("start", unix_seconds(w.start_ms)));
            form.push(("end", unix_seconds(w.end_ms)));
            form.push(("step", unix_seconds(w.step_ms)));
            "/api/v1/query_range"
        }
        None => "/api/v1/query",
    };
    // Prometheus stops evaluating at the same deadline and says so.
    form.push(("timeout", unix_seconds(u64::from(config.timeout_ms))));
    let mut headers = vec![
        ("content-type".to_string(), "application/x-www-form-urlencoded".to_string()),
        ("accept".to_string(), "application/json".to_string()),
    ];
    if let Some(token) = token {
        headers.push(("authorization".to_string(), format!("Bearer {token}")));
    }
    HttpRequest {
        method: "POST".into(),
        url: format!("{}{path}", config.url),
        headers,
        body: Some(form_encode(&form).into_bytes()),
        timeout_ms: Some(config.timeout_ms),
        follow_redirects: false,
    }
}

/// Reads the bearer token from the secret `name`.
fn read_token(name: &str) -> Result<String, StepError> {
    let Some(value) = host::secret(name) else {
        return Err(failed(format!(
            "field `bearer_secret`: secret {name:?} is not available to this step: it must be in the step's \
             `secrets` grant (e.g. `secrets: [{name}]`, or `--secret {name}` with `tend plugins call`) and set"
        )));
    };
    check_token(name, value.trim())
}

/// The token, unless it is empty or has characters a header cannot carry.
fn check_token(name: &str, token: &str) -> Result<String, StepError> {
    if token.is_empty() {
        return Err(failed(format!("field `bearer_secret`: secret {name:?} is empty; expected a bearer token")));
    }
    if token.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(failed(format!(
            "field `bearer_secret`: secret {name:?} holds control or non-ASCII characters; expected a bearer token"
        )));
    }
    Ok(token.to_string())
}

/// The error for an `http-fetch` that got no answer. The host's messages
/// start with `hosts: ` for a host outside the grant and `URL ` for a URL
/// it cannot parse (see `host/src/runtime/caps/http.rs`); everything else
/// (refused, reset, timed out) is worth retrying.
fn fetch_error(query: &QuerySpec, message: &str) -> StepError {
    let what = query.what();
    if message.starts_with("hosts: ") {
        failed(format!("{what}: {message}"))
    } else if message.starts_with("URL ") {
        invalid_config(format!("field `url`: {message}"))
    } else {
        retryable(format!("{what}: {message}"))
    }
}

/// What a result is, as Prometheus names it in `resultType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum ResultType {
    Vector,
    Matrix,
    Scalar,
    String,
}

impl ResultType {
    /// All of them, for messages.
    const NAMES: [&'static str; 4] = ["vector", "matrix", "scalar", "string"];

    fn as_str(self) -> &'static str {
        match self {
            ResultType::Vector => "vector",
            ResultType::Matrix => "matrix",
            ResultType::Scalar => "scalar",
            ResultType::String => "string",
        }
    }
}

impl FromStr for ResultType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vector" => Ok(ResultType::Vector),
            "matrix" => Ok(ResultType::Matrix),
            "scalar" => Ok(ResultType::Scalar),
            "string" => Ok(ResultType::String),
            other => Err(format!("expected one of {}, found {other:?}", ResultType::NAMES.join(", "))),
        }
    }
}

impl fmt::Display for ResultType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Prometheus's `errorType`, and what each means for the step.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ApiErrorType {
    /// A bad parameter, e.g. a PromQL syntax error.
    BadData,
    /// The query could not be evaluated, e.g. many-to-many matching.
    Execution,
    /// Evaluation ran past its timeout.
    Timeout,
    /// The query was canceled, e.g. on shutdown.
    Canceled,
    /// Prometheus failed internally.
    Internal,
    /// Prometheus (or its storage) is not ready.
    Unavailable,
    /// Nothing there, e.g. an unknown endpoint.
    NotFound,
    /// A type this plugin does not know, as written.
    Other(String),
}

impl ApiErrorType {
    fn as_str(&self) -> &str {
        match self {
            ApiErrorType::BadData => "bad_data",
            ApiErrorType::Execution => "execution",
            ApiErrorType::Timeout => "timeout",
            ApiErrorType::Canceled => "canceled",
            ApiErrorType::Internal => "internal",
            ApiErrorType::Unavailable => "unavailable",
            ApiErrorType::NotFound => "not_found",
            ApiErrorType::Other(other) => other,
        }
    }
}

impl FromStr for ApiErrorType {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "bad_data" => ApiErrorType::BadData,
            "execution" => ApiErrorType::Execution,
            "timeout" => ApiErrorType::Timeout,
            "canceled" => ApiErrorType::Canceled,
            "internal" => ApiErrorType::Internal,
            "unavailable" => ApiErrorType::Unavailable,
            "not_found" => ApiErrorType::NotFound,
            other => ApiErrorType::Other(other.to_string()),
        })
    }
}

impl fmt::Display for ApiErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `status` of an API answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ApiStatus {
    Success,
    Error,
}

/// The JSON every answer of the Prometheus HTTP API is wrapped in.
#[derive(Debug, Deserialize)]
struct Envelope {
    status: ApiStatus,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

/// A sample value. Serializes as a number, or as Prometheus spells the
/// values JSON has no number for: `"NaN"`, `"+Inf"`, `"-Inf"`.
#[derive(Debug, Clone, Copy)]
struct Sample(f64);

impl Sample {
    /// Parses a value as Prometheus writes it: `"0.25"`, `"1e+06"`, `"NaN"`, `"+Inf"`.
    fn parse(text: &str) -> Option<Sample> {
        match text {
            "NaN" => Some(Sample(f64::NAN)),
            "+Inf" | "Inf" => Some(Sample(f64::INFINITY)),
            "-Inf" => Some(Sample(f64::NEG_INFINITY)),
            _ => text.parse().ok().filter(|v: &f64| v.is_finite()).map(Sample),
        }
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            v if v == f64::INFINITY => f.write_str("+Inf"),
            v if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            v => write!(f, "{v}"),
        }
    }
}

impl Serialize for Sample {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() { serializer.serialize_f64(self.0) } else { serializer.collect_str(self) }
    }
}

/// Labels of a series, sorted by name.
type Labels = BTreeMap<String, String>;

/// One series of a result.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum Series {
    /// A vector element or a scalar: one sample.
    Instant { labels: Labels, value: Sample },
    /// A matrix element: `[unix_seconds, value]` samples, oldest first.
    Range { labels: Labels, values: Vec<(f64, Sample)> },
}

impl Series {
    fn labels(&self) -> &Labels {
        match self {
            Series::Instant { labels, .. } | Series::Range { labels, .. } => labels,
        }
    }

    /// The sample of an instant series, the newest of a range series.
    fn latest(&self) -> Option<Sample> {
        match self {
            Series::Instant { value, .. } => Some(*value),
            Series::Range { values, .. } => values.last().map(|(_, v)| *v),
        }
    }

    /// `{instance="a:1", job="demo"}` (without `__name__`); empty without labels.
    fn selector(&self) -> String {
        let labels: Vec<String> =
            self.labels().iter().filter(|(k, _)| *k != "__name__").map(|(k, v)| format!("{k}={v:?}")).collect();
        if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(", ")) }
    }
}

/// A query's single value: a sample, or the text of a string result.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum Single {
    Number(Sample),
    Text(String),
}

/// The answer to one query, as it appears in the output data.
#[derive(Debug, Clone, Serialize)]
struct QueryResult {
    name: String,
    query: String,
    result_type: ResultType,
    series: Vec<Series>,
    /// The single value when there is exactly one series (its latest
    /// sample), the text of a string result; none otherwise.
    value: Option<Single>,
    /// Warnings Prometheus sent with the answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// Turns Prometheus's answer to `query` into its result or the step's error.
fn interpret(config: &Config, query: &QuerySpec, response: &HttpResponse) -> Result<QueryResult, StepError> {
    let what = query.what();
    let status = response.status;
    if response.truncated {
        return Err(failed(format!(
            "{what}: the answer was cut at the host's size limit; return fewer series (aggregate, filter) or use \
             a coarser `range.step`"
        )));
    }
    if status == 401 || status == 403 {
        let reason = if status == 401 { "Unauthorized" } else { "Forbidden" };
        return Err(failed(match &config.bearer_secret {
            Some(name) => format!(
                "{what}: Prometheus answered {status} {reason} to the token from bearer secret {name:?}; check \
                 that the secret holds a token Prometheus accepts"
            ),
            None => format!(
                "{what}: Prometheus answered {status} {reason}; it needs a token: set `bearer_secret` to the name \
                 of a secret holding one"
            ),
        }));
    }
    match serde_json::from_slice::<Envelope>(&response.body) {
        Ok(Envelope { status: ApiStatus::Error, error_type, error, .. }) => {
            let Ok(kind) = error_type.as_deref().unwrap_or("").parse::<ApiErrorType>();
            let error = error.unwrap_or_default();
            Err(match kind {
                ApiErrorType::BadData => invalid_config(format!("{what}: Prometheus rejected it ({kind}): {error}")),
                ApiErrorType::Timeout | ApiErrorType::Canceled | ApiErrorType::Internal | ApiErrorType::Unavailable => {
                    retryable(format!("{what}: Prometheus answered {status} ({kind}): {error}"))
                }
                ApiErrorType::Other(_) if status == 429 || status >= 500 => {
                    retryable(format!("{what}: Prometheus answered {status} ({kind}): {error}"))
                }
                ApiErrorType::Execution | ApiErrorType::NotFound | ApiErrorType::Other(_) => {
                    failed(format!("{what}: Prometheus answered {status} ({kind}): {error}"))
                }
            })
        }
        Ok(Envelope { status: ApiStatus::Success, data: Some(data), warnings, .. }) if (200..300).contains(&status) => {
            let (result_type, series, value) = parse_data(&data)
                .map_err(|e| failed(format!("{what}: the answer is not a Prometheus query result: {e}")))?;
            Ok(QueryResult {
                name: query.name.clone(),
                query: query.query.clone(),
                result_type,
                series,
                value,
                warnings,
            })
        }
        _ => Err(status_error(config, query, response)),
    }
}

/// The error for an answer that is not a Prometheus API answer.
fn status_error(config: &Config, query: &QuerySpec, response: &HttpResponse) -> StepError {
    let what = query.what();
    let status = response.status;
    let body = quote_body(&response.body);
    let from = format!("{what}: {} answered {status}", response.final_url);
    match status {
        300..=399 => {
            let location = response
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map_or("nowhere", |(_, v)| v.as_str());
            failed(format!(
                "{from}, a redirect to {location}, which is not followed; set `url` to the address that serves the \
                 API (now {:?})",
                config.url
            ))
        }
        429 | 500..=599 => retryable(format!("{from}: {body}")),
        200..=299 => failed(format!("{from} with something that is not a Prometheus API answer: {body}")),
        _ => failed(format!("{from}: {body}; is `url` ({:?}) the base URL of Prometheus?", config.url)),
    }
}

/// The start of a body for a message: trimmed, on one line, cut at
/// [`MAX_QUOTED_BODY_CHARS`].
fn quote_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "(empty body)".into();
    }
    match line.char_indices().nth(MAX_QUOTED_BODY_CHARS) {
        Some((cut, _)) => format!("{:?}...", &line[..cut]),
        None => format!("{line:?}"),
    }
}

/// Parses the `data` of a successful query answer. Errors name the JSON
/// path at fault, e.g. `data.result[0].value`.
fn parse_data(data: &Value) -> Result<(ResultType, Vec<Series>, Option<Single>), String> {
    let result_type: ResultType = match data.get("resultType") {
        Some(Value::String(s)) => s.parse().map_err(|e| format!("data.resultType: {e}"))?,
        other => return Err(format!("data.resultType: expected a string, found {}", found(other))),
    };
    let result = data.get("result").unwrap_or(&Value::Null);
    let (series, value) = match result_type {
        ResultType::Vector | ResultType::Matrix => {
            let Value::Array(items) = result else {
                return Err(format!("data.result: expected a list, found {}", found(Some(result))));
            };
            let series = items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_series(item, result_type, &format!("data.result[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            let value = match series.as_slice() {
                [only] => only.latest().map(Single::Number),
                _ => None,
            };
            (series, value)
        }
        ResultType::Scalar => {
            let (_, value) = parse_sample(result, "data.result")?;
            (vec![Series::Instant { labels: Labels::new(), value }], Some(Single::Number(value)))
        }
        ResultType::String => match result.as_array().map(Vec::as_slice) {
            Some([Value::Number(_), Value::String(text)]) => (Vec::new(), Some(Single::Text(text.clone()))),
            _ => return Err(format!("data.result: expected [timestamp, \"text\"], found {}", found(Some(result)))),
        },
    };
    Ok((result_type, series, value))
}

/// One element of a vector or matrix result.
fn parse_series(item: &Value, result_type: ResultType, path: &str) -> Result<Series, String> {
    let labels = match item.get("metric") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("{path}.metric.{k}: expected a string, found {}", found(Some(other)))),
            })
            .collect::<Result<Labels, _>>()?,
        other => return Err(format!("{path}.metric: expected an object of labels, found {}", found(other))),
    };
    let histogram_key = if result_type == ResultType::Vector { "histogram" } else { "histograms" };
    if item.get(histogram_key).is_some() {
        return Err(format!(
            "{path}: native histogram samples are not supported; query a number, e.g. with histogram_quantile()"
        ));
    }
    match result_type {
        ResultType::Matrix => {
            let Some(Value::Array(points)) = item.get("values") else {
                return Err(format!("{path}.values: expected a list, found {}", found(item.get("values"))));
            };
            let values = points
                .iter()
                .enumerate()
                .map(|(i, p)| parse_sample(p, &format!("{path}.values[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Series::Range { labels, values })
        }
        _ => {
            let (_, value) = parse_sample(item.get("value").unwrap_or(&Value::Null), &format!("{path}.value"))?;
            Ok(Series::Instant { labels, value })
        }
    }
}

/// `[1700000000.25, "0.5"]` → (1700000000.25, 0.5).
fn parse_sample(value: &Value, path: &str) -> Result<(f64, Sample), String> {
    if let Some([Value::Number(time), Value::String(text)]) = value.as_array().map(Vec::as_slice)
        && let (Some(time), Some(sample)) = (time.as_f64(), Sample::parse(text))
    {
        return Ok((time, sample));
    }
    Err(format!("{path}: expected [timestamp, \"number\"], found {}", found(Some(value))))
}

/// A JSON value for a message, cut short: `"x"`, `[1,"a"]`, `nothing`.
fn found(value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "nothing".into();
    };
    let text = value.to_string();
    match text.char_indices().nth(MAX_QUOTED_JSON_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// One metric per series with a number: named by the query, labelled by
/// the series (without `__name__`), valued with its latest sample.
fn query_metrics(query: &QuerySpec, result: &QueryResult) -> Vec<Metric> {
    result
        .series
        .iter()
        .filter_map(|series| {
            let value = series.latest().map(|s| s.0).filter(|v| v.is_finite())?;
            let labels =
                series.labels().iter().filter(|(k, _)| *k != "__name__").map(|(k, v)| (k.clone(), v.clone())).collect();
            Some(Metric { name: query.metric_name().to_string(), value, labels })
        })
        .collect()
}

/// A finding when the query found no series, and one per series outside
/// the query's `expect` range.
fn query_findings(config: &Config, query: &QuerySpec, result: &QueryResult) -> Vec<Finding> {
    let mut findings = Vec::new();
    let name = query.name.as_str();
    let empty = matches!(result.result_type, ResultType::Vector | ResultType::Matrix) && result.series.is_empty();
    if let (true, Some(severity)) = (empty, config.no_data_severity) {
        let when = match &config.range {
            Some(r) => format!("from {} to {}", r.start_text, r.end_text),
            None => "now".into(),
        };
        findings.push(finding(
            severity,
            format!("no data for {name}"),
            format!(
                "Prometheus at {} returned no series {when} for {name}: {}. The metrics it reads may not be \
                 scraped (yet), or their labels may not match.",
                config.url, query.query
            ),
            Some(name),
        ));
    }
    let Some(expect) = &query.expect else {
        return findings;
    };
    for series in &result.series {
        let Some(sample) = series.latest() else { continue };
        let Some(outside) = expect.check(sample.0) else { continue };
        let subject = format!("{name}{}", series.selector());
        let expected = expect.describe();
        let title = match outside {
            Outside::NotANumber => format!("{subject} is {sample}, expected {expected}"),
            Outside::Below(min) => format!("{subject} is {sample}, below the expected minimum {min}"),
            Outside::Above(max) => format!("{subject} is {sample}, above the expected maximum {max}"),
        };
        let latest = if result.result_type == ResultType::Matrix { "latest value" } else { "value" };
        findings.push(finding(
            expect.severity,
            title,
            format!("{subject}: {latest} {sample}, expected {expected}. Query: {}", query.query),
            Some(name),
        ));
    }
    findings
}

/// The output data: the results in config order, by name, and their
/// single values by name.
#[derive(Debug, Serialize)]
struct Data<'a> {
    queries: &'a [QueryResult],
    by_name: BTreeMap<&'a str, &'a QueryResult>,
    values: BTreeMap<&'a str, &'a Option<Single>>,
}

impl<'a> Data<'a> {
    fn new(results: &'a [QueryResult]) -> Self {
        Data {
            queries: results,
            by_name: results.iter().map(|r| (r.name.as_str(), r)).collect(),
            values: results.iter().map(|r| (r.name.as_str(), &r.value)).collect(),
        }
    }
}

/// Unix milliseconds now, from the step's clock.
fn now_ms() -> Result<u64, StepError> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| failed("the clock is before 1970; range queries need the current time"))?;
    Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// Runs one query through the host, logging how it went.
fn run_query(
    config: &Config,
    query: &QuerySpec,
    window: Option<Window>,
    token: Option<&str>,
) -> Result<QueryResult, StepError> {
    let request = request(config, query, window, token);
    let started = Instant::now();
    let response = host::http_fetch(&request).map_err(|e| fetch_error(query, &e))?;
    let ms = round(started.elapsed().as_secs_f64() * 1000.0, 1);
    let result = interpret(config, query, &response)?;
    log::debug(&format!(
        "query {}: {} with {} series from {} in {ms} ms",
        query.name,
        result.result_type,
        result.series.len(),
        request.url
    ));
    for warning in &result.warnings {
        log::warn(&format!("query {}: Prometheus warns: {warning}", query.name));
    }
    Ok(result)
}

impl Guest for PrometheusQuery {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "prometheus-query".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Runs named PromQL queries against the Prometheus HTTP API through the host's \
                          allow-listed HTTP client: instant queries, or range queries over a window relative to \
                          now, with an optional bearer token from a secret (which needs a secrets grant). Returns \
                          each query's series with their labels and values, its single value when there is one \
                          series, a map by name, one metric per series named by the query, a finding for a query \
                          without data and for values outside an expected range. A PromQL error is invalid-config \
                          with Prometheus's own message; unreachable, overloaded or timed-out Prometheus is \
                          retryable."
                .into(),
            config_schema: schema::to_text(&config_schema()),
            capabilities: vec!["http".into()],
        }
    }

    fn run(_ctx: StepContext, config: String, _input: String) -> Result<StepOutput, StepError> {
        let config = parse(&config)?;
        let token = config.bearer_secret.as_deref().map(read_token).transpose()?;
        let window = match &config.range {
            Some(range) => Some(range.window(now_ms()?)),
            None => None,
        };
        let results = config
            .queries
            .iter()
            .map(|q| run_query(&config, q, window, token.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        let pairs = config.queries.iter().zip(&results);
        let metrics = pairs.clone().flat_map(|(q, r)| query_metrics(q, r)).collect();
        let findings = pairs.flat_map(|(q, r)| query_findings(&config, q, r)).collect();
        tend_plugin_sdk::output(&Data::new(&results), metrics, findings)
    }
}

/// JSON Schema of the config.
fn config_schema() -> Value {
    let duration = "^([0-9]+(ms|s|m|h|d|w|y))+$";
    let relative = "^(now|(now)?-([0-9]+(ms|s|m|h|d|w|y))+)$";
    let expect = schema::object(
        "Range each series' value (for a range query its latest) should lie in; outside it, and for NaN, a \
         finding is raised.",
        json!({
            "min": {"type": "number", "description": "Lowest expected value."},
            "max": {"type": "number", "description": "Highest expected value."},
            "severity": {
                "enum": SeverityLevel::NAMES,
                "default": "medium",
                "description": "Severity of the finding for a series outside the range.",
            },
        }),
        &[],
    );
    let query = schema::object(
        "A named PromQL query.",
        json!({
            "name": {
                "type": "string",
                "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                "description": "Unique name: the key in `by_name` and `values`, and the metric name by default.",
            },
            "query": {"type": "string", "minLength": 1, "description": "The PromQL expression."},
            "metric_name": {
                "type": "string",
                "pattern": "^[A-Za-z_:][A-Za-z0-9_:]*$",
                "description": "Name of the metrics recorded for the query's series; by default `name`.",
            },
            "expect": expect,
        }),
        &["name", "query"],
    );
    let range = schema::object(
        "Run range queries over this window instead of instant queries.",
        json!({
            "start": {
                "type": "string",
                "pattern": relative,
                "description": "Start of the window before now, e.g. \"-10m\" or \"now-1h\".",
            },
            "end": {
                "type": "string",
                "pattern": relative,
                "default": DEFAULT_RANGE_END,
                "description": "End of the window: \"now\" or a time before now such as \"-1m\".",
            },
            "step": {
                "type": "string",
                "pattern": duration,
                "default": DEFAULT_RANGE_STEP,
                "description": "Resolution, e.g. \"15s\" or \"1m\"; at most 11000 steps per window.",
            },
        }),
        &["start"],
    );
    schema::config(
        "prometheus-query",
        "Configuration of the prometheus-query plugin.",
        json!({
            "url": {
                "type": "string",
                "format": "uri",
                "pattern": "^[hH][tT][tT][pP][sS]?://[^/?#\\s]+[^?#\\s]*$",
                "description": "Base URL of Prometheus, e.g. http://127.0.0.1:9090; its host must be in the step's \
                                `hosts` grant.",
            },
            "queries": {
                "type": "array",
                "minItems": 1,
                "items": query,
                "description": "The queries, run in order; the first that fails fails the step.",
            },
            "range": range,
            "timeout_ms": {
                "type": "integer",
                "minimum": 1,
                "maximum": u32::MAX,
                "default": DEFAULT_TIMEOUT_MS,
                "description": "Timeout of each request in milliseconds (never past the step's own deadline).",
            },
            "bearer_secret": {
                "type": "string",
                "minLength": 1,
                "description": "Name of a secret holding a bearer token for Prometheus; the step needs it in its \
                                `secrets` grant.",
            },
            "no_data_severity": {
                "enum": SeverityLevel::NAMES.iter().map(|s| json!(s)).chain([Value::Null]).collect::<Vec<_>>(),
                "default": "low",
                "description": "Severity of the finding for a query that returns no series; null for no finding.",
            },
        }),
        &["url", "queries"],
    )
}

export!(PrometheusQuery);

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:9090";

    fn invalid(text: &str) -> String {
        match parse(text) {
            Err(StepError::InvalidConfig(m)) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    fn config(extra: Value) -> Config {
        let mut c = json!({"url": URL, "queries": [{"name": "up", "query": "up"}]});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        parse(&c.to_string()).unwrap()
    }

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            truncated: false,
            final_url: format!("{URL}/api/v1/query"),
        }
    }

    /// The result of `body` answered with 200 to the first query of `config`.
    fn answer(config: &Config, body: &str) -> QueryResult {
        interpret(config, &config.queries[0], &response(200, body)).unwrap()
    }

    fn error_of(config: &Config, status: u16, body: &str) -> StepError {
        interpret(config, &config.queries[0], &response(status, body)).unwrap_err()
    }

    #[test]
    fn a_minimal_config_gets_the_defaults() {
        let c = parse(r#"{"url": "http://127.0.0.1:9090/", "queries": [{"name": "up", "query": "up"}]}"#).unwrap();
        assert_eq!(c.url, "http://127.0.0.1:9090");
        assert_eq!(c.timeout_ms, 10_000);
        assert_eq!(c.range, None);
        assert_eq!(c.bearer_secret, None);
        assert_eq!(c.no_data_severity, Some(SeverityLevel::Low));
        assert_eq!(c.queries[0].metric_name(), "up");
        let c = config(json!({"no_data_severity": null, "url": "https://prom.example.com/prometheus"}));
        assert_eq!(c.no_data_severity, None);
        assert_eq!(c.url, "https://prom.example.com/prometheus");
    }

    #[test]
    fn bad_config_names_the_field() {
        assert_eq!(invalid(""), "field `url`: is required but missing");
        assert_eq!(invalid(r#"{"url": "http://a"}"#), "field `queries`: is required but missing");
        assert_eq!(
            invalid(r#"{"url": "http://a", "queries": []}"#),
            "field `queries`: expected at least one query, found an empty list"
        );
        assert_eq!(
            invalid(r#"{"url": "localhost:9090", "queries": [{"name": "a", "query": "up"}]}"#),
            "field `url`: expected the http or https base URL of Prometheus, e.g. \"http://127.0.0.1:9090\", found \
             \"localhost:9090\""
        );
        assert_eq!(
            invalid(r#"{"url": "http://a:9090/api/v1/query", "queries": [{"name": "a", "query": "up"}]}"#),
            "field `url`: expected the base URL of Prometheus without the API path, e.g. \"http://127.0.0.1:9090\", \
             found \"http://a:9090/api/v1/query\""
        );
        assert_eq!(
            invalid(r#"{"url": "http://a/?x=1", "queries": [{"name": "a", "query": "up"}]}"#),
            "field `url`: expected a base URL without a query or fragment, found \"http://a/?x=1\""
        );
        assert_eq!(
            invalid(r#"{"url": "http://a", "queries": [{"name": "error-rate", "query": "up"}]}"#),
            "field `queries[0].name`: expected a name of letters, digits and `_` that does not start with a digit, \
             e.g. \"error_rate\", found \"error-rate\""
        );
        assert_eq!(
            invalid(r#"{"url": "http://a", "queries": [{"name": "a", "query": " "}]}"#),
            "field `queries[0].query`: expected a PromQL expression, found an empty string"
        );
        assert_eq!(
            invalid(r#"{"url": "http://a", "queries": [{"name": "a", "query": "up"}, {"name": "a", "query": "x"}]}"#),
            "field `queries[1].name`: expected a unique name, found \"a\", already the name of queries[0]"
        );
        assert_eq!(
            invalid(r#"{"url": "http://a", "queries": [{"name": "a", "query": "up", "metric_name": "1x"}]}"#),
            "field `queries[0].metric_name`: expected a metric name of letters, digits, `_` and `:` that does not \
             start with a digit, found \"1x\""
        );
        assert_eq!(
            invalid(r#"{"url": "http://a", "queries": [{"name": "a", "query": "up", "expect": {}}]}"#),
            "field `queries[0].expect`: expected `min`, `max` or both, found neither"
        );
        assert_eq!(
            invalid(
                r#"{"url": "http://a", "queries": [{"name": "a", "query": "up", "expect": {"min": 2, "max": 1}}]}"#
            ),
            "field `queries[0].expect.max`: expected a number not below `min` (2), found 1"
        );
        assert_eq!(
            invalid(r#"{"url": "http://a", "queries": [{"name": "a", "query": 5}]}"#),
            "field `queries[0].query`: expected a string, found integer `5`"
        );
        assert!(
            invalid(r#"{"url": "http://a", "queries": [{"name": "a", "query": "up", "expr": "x"}]}"#)
                .starts_with("field `queries[0].expr`: unknown field `expr`")
        );
        assert_eq!(
            invalid(r#"{"url": "http://a", "queries": [{"name": "a", "query": "up"}], "timeout_ms": 0}"#),
            "field `timeout_ms`: expected a positive number of milliseconds, found 0"
        );
        assert_eq!(
            invalid(r#"{"url": "http://a", "queries": [{"name": "a", "query": "up"}], "bearer_secret": ""}"#),
            "field `bearer_secret`: expected the name of a secret, found an empty string"
        );
        assert!(
            invalid(r#"{"url": "http://a", "queries": [{"name": "a", "query": "up"}], "no_data_severity": "none"}"#)
                .starts_with("field `no_data_severity`: unknown variant `none`")
        );
    }

    #[test]
    fn bad_ranges_name_the_field() {
        let range =
            |r: Value| invalid(&json!({"url": URL, "queries": [{"name": "a", "query": "up"}], "range": r}).to_string());
        assert_eq!(range(json!({})), "field `range.start`: is required but missing");
        assert_eq!(
            range(json!({"start": "10m"})),
            "field `range.start`: expected \"now\" or a time before now such as \"-10m\" or \"now-1h\", found \"10m\""
        );
        assert_eq!(
            range(json!({"start": "-10m", "step": "15"})),
            "field `range.step`: expected a duration such as \"15s\", \"10m\" or \"1h30m\", found \"15\""
        );
        assert_eq!(
            range(json!({"start": "-10m", "step": "0s"})),
            "field `range.step`: expected a positive duration, found \"0s\""
        );
        assert_eq!(
            range(json!({"start": "-1m", "end": "-5m"})),
            "field `range.start`: expected a time before `range.end` (\"-5m\"), found \"-1m\""
        );
        assert_eq!(
            range(json!({"start": "-7d", "step": "15s"})),
            "field `range.step`: expected at most 11000 steps from \"-7d\" to \"now\" (Prometheus refuses more), \
             found \"15s\", which makes 40320; use a step of at least 55s"
        );
        assert_eq!(
            range(json!({"start": "-99999999999999y"})),
            "field `range.start`: expected \"now\" or a time before now such as \"-10m\" or \"now-1h\", found \
             \"-99999999999999y\""
        );
    }

    #[test]
    fn durations_and_relative_times() {
        assert_eq!(parse_duration("15s"), Ok(15_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("1m5ms"), Ok(60_005));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400_000));
        assert!(parse_duration("").is_err() && parse_duration("s").is_err() && parse_duration("5x").is_err());
        assert!(parse_duration("1.5m").is_err());
        assert_eq!(parse_relative_time("now"), Ok(0));
        assert_eq!(parse_relative_time("-10m"), Ok(600_000));
        assert_eq!(parse_relative_time("now-1h"), Ok(3_600_000));
        let c = config(json!({"range": {"start": "-10m", "end": "-1m", "step": "30s"}}));
        let w = c.range.unwrap().window(1_700_000_000_000);
        assert_eq!(w, Window { start_ms: 1_699_999_400_000, end_ms: 1_699_999_940_000, step_ms: 30_000 });
    }

    #[test]
    fn requests_are_form_encoded_posts_to_the_api() {
        let c = config(
            json!({"timeout_ms": 2500, "queries": [{"name": "r", "query": "sum(rate(x{a=~\"5..\"}[1m])) / 2 + 1"}]}),
        );
        let r = request(&c, &c.queries[0], None, None);
        assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", "http://127.0.0.1:9090/api/v1/query"));
        assert_eq!(
            String::from_utf8(r.body.unwrap()).unwrap(),
            "query=sum%28rate%28x%7Ba%3D~%225..%22%7D%5B1m%5D%29%29+%2F+2+%2B+1&timeout=2.500"
        );
        assert_eq!(r.timeout_ms, Some(2500));
        assert!(!r.follow_redirects);
        assert!(r.headers.iter().all(|(k, _)| k != "authorization"));

        let w = Window { start_ms: 1_700_000_000_000, end_ms: 1_700_000_600_250, step_ms: 15_000 };
        let r = request(&c, &c.queries[0], Some(w), Some("t0k3n"));
        assert_eq!(r.url, "http://127.0.0.1:9090/api/v1/query_range");
        let body = String::from_utf8(r.body.unwrap()).unwrap();
        assert!(body.ends_with("&start=1700000000.000&end=1700000600.250&step=15.000&timeout=2.500"), "{body}");
        assert!(r.headers.contains(&("authorization".into(), "Bearer t0k3n".into())));
        assert!(r.headers.contains(&("content-type".into(), "application/x-www-form-urlencoded".into())));
    }

    #[test]
    fn tokens_must_fit_in_a_header() {
        assert_eq!(check_token("prom-token", "abc").ok().as_deref(), Some("abc"));
        match check_token("prom-token", "") {
            Err(StepError::Failed(m)) => {
                assert_eq!(m, "field `bearer_secret`: secret \"prom-token\" is empty; expected a bearer token")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(check_token("p", "a\nb"), Err(StepError::Failed(m)) if m.contains("control or non-ASCII")));
    }

    #[test]
    fn a_vector_has_labels_and_values_and_a_single_value_for_one_series() {
        let c = config(json!({}));
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"demo","instance":"127.0.0.1:1"},"value":[1700000000.5,"1"]}]}}"#;
        let r = answer(&c, body);
        assert_eq!(r.result_type, ResultType::Vector);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"name": "up", "query": "up", "result_type": "vector", "value": 1.0, "series": [
                {"labels": {"__name__": "up", "job": "demo", "instance": "127.0.0.1:1"}, "value": 1.0}]})
        );
        let metrics = query_metrics(&c.queries[0], &r);
        assert_eq!(metrics.len(), 1);
        assert_eq!((metrics[0].name.as_str(), metrics[0].value), ("up", 1.0));
        assert_eq!(metrics[0].labels, vec![("instance".into(), "127.0.0.1:1".into()), ("job".into(), "demo".into())]);

        let two = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job":"a"},"value":[1,"0.25"]},{"metric":{"job":"b"},"value":[1,"1e+06"]}]}}"#;
        let r = answer(&c, two);
        assert_eq!(serde_json::to_value(&r).unwrap()["value"], Value::Null);
        assert_eq!(query_metrics(&c.queries[0], &r).iter().map(|m| m.value).collect::<Vec<_>>(), [0.25, 1e6]);
    }

    #[test]
    fn nan_and_infinities_stay_strings_in_the_data_and_are_not_metrics() {
        let c = config(json!({}));
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"a":"1"},"value":[1,"NaN"]},{"metric":{"a":"2"},"value":[1,"+Inf"]},
            {"metric":{"a":"3"},"value":[1,"-Inf"]},{"metric":{"a":"4"},"value":[1,"-0.5"]}]}}"#;
        let r = answer(&c, body);
        let values: Vec<Value> = serde_json::to_value(&r).unwrap()["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["value"].clone())
            .collect();
        assert_eq!(values, [json!("NaN"), json!("+Inf"), json!("-Inf"), json!(-0.5)]);
        let metrics = query_metrics(&c.queries[0], &r);
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0].value, -0.5);

        let scalar = answer(&c, r#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#);
        assert_eq!(
            serde_json::to_value(&scalar).unwrap(),
            json!({"name": "up", "query": "up", "result_type": "scalar", "value": "NaN",
                   "series": [{"labels": {}, "value": "NaN"}]})
        );
        assert!(query_metrics(&c.queries[0], &scalar).is_empty());
    }

    #[test]
    fn a_matrix_has_every_sample_and_its_latest_as_the_value() {
        let c =
            config(json!({"queries": [{"name": "reqs", "query": "demo_requests_total", "metric_name": "demo:reqs"}]}));
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"demo_requests_total","status":"200"},
             "values":[[1700000000,"10"],[1700000015,"20"],[1700000030,"+Inf"],[1700000045,"40"]]}]},
            "warnings":["something odd"]}"#;
        let r = answer(&c, body);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["result_type"], "matrix");
        assert_eq!(
            v["series"][0]["values"],
            json!([[1700000000.0, 10.0], [1700000015.0, 20.0], [1700000030.0, "+Inf"], [1700000045.0, 40.0]])
        );
        assert_eq!(v["value"], 40.0);
        assert_eq!(v["warnings"], json!(["something odd"]));
        let metrics = query_metrics(&c.queries[0], &r);
        assert_eq!((metrics[0].name.as_str(), metrics[0].value), ("demo:reqs", 40.0));
    }

    #[test]
    fn a_string_result_has_its_text_as_the_value() {
        let c = config(json!({}));
        let r = answer(&c, r#"{"status":"success","data":{"resultType":"string","result":[1,"hello"]}}"#);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"name": "up", "query": "up", "result_type": "string", "value": "hello", "series": []})
        );
        assert!(query_metrics(&c.queries[0], &r).is_empty());
        assert!(query_findings(&c, &c.queries[0], &r).is_empty());
    }

    #[test]
    fn answers_of_the_wrong_shape_are_named_by_their_path() {
        let c = config(json!({}));
        let failure = |body: &str| match error_of(&c, 200, body) {
            StepError::Failed(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            failure(r#"{"status":"success","data":{"resultType":"table","result":[]}}"#),
            "query \"up\": the answer is not a Prometheus query result: data.resultType: expected one of vector, \
             matrix, scalar, string, found \"table\""
        );
        assert_eq!(
            failure(r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#),
            "query \"up\": the answer is not a Prometheus query result: data.result[0].value: expected [timestamp, \
             \"number\"], found [1,\"x\"]"
        );
        assert!(
            failure(r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{}]}]}}"#)
                .ends_with("data.result[0]: native histogram samples are not supported; query a number, e.g. with histogram_quantile()")
        );
        assert_eq!(
            failure("<html>hello</html>"),
            "query \"up\": http://127.0.0.1:9090/api/v1/query answered 200 with something that is not a Prometheus \
             API answer: \"<html>hello</html>\""
        );
    }

    #[test]
    fn prometheus_errors_keep_its_message_and_are_classified() {
        let c = config(json!({}));
        let parse_error = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:4: parse error: unexpected end of input"}"#;
        match error_of(&c, 400, parse_error) {
            StepError::InvalidConfig(m) => assert_eq!(
                m,
                "query \"up\": Prometheus rejected it (bad_data): invalid parameter \"query\": 1:4: parse error: \
                 unexpected end of input"
            ),
            other => panic!("{other:?}"),
        }
        let timeout = r#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#;
        match error_of(&c, 503, timeout) {
            StepError::Retryable(m) => {
                assert_eq!(
                    m,
                    "query \"up\": Prometheus answered 503 (timeout): query timed out in expression evaluation"
                )
            }
            other => panic!("{other:?}"),
        }
        let execution = r#"{"status":"error","errorType":"execution","error":"found duplicate series"}"#;
        assert!(
            matches!(error_of(&c, 422, execution), StepError::Failed(m) if m.ends_with("422 (execution): found duplicate series"))
        );
        let unknown = r#"{"status":"error","errorType":"overloaded","error":"busy"}"#;
        assert!(matches!(error_of(&c, 503, unknown), StepError::Retryable(_)));
        assert!(matches!(error_of(&c, 400, unknown), StepError::Failed(_)));
    }

    #[test]
    fn statuses_without_an_api_answer_are_classified() {
        let c = config(json!({}));
        match error_of(&c, 502, "<html>\n  Bad   Gateway\n</html>") {
            StepError::Retryable(m) => {
                assert_eq!(
                    m,
                    "query \"up\": http://127.0.0.1:9090/api/v1/query answered 502: \"<html> Bad Gateway </html>\""
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(error_of(&c, 429, ""), StepError::Retryable(m) if m.ends_with("answered 429: (empty body)")));
        match error_of(&c, 404, "404 page not found") {
            StepError::Failed(m) => assert_eq!(
                m,
                "query \"up\": http://127.0.0.1:9090/api/v1/query answered 404: \"404 page not found\"; is `url` \
                 (\"http://127.0.0.1:9090\") the base URL of Prometheus?"
            ),
            other => panic!("{other:?}"),
        }
        let mut redirect = response(302, "");
        redirect.headers.push(("location".into(), "/login".into()));
        match interpret(&c, &c.queries[0], &redirect) {
            Err(StepError::Failed(m)) => {
                assert!(m.contains("answered 302, a redirect to /login, which is not followed"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let mut cut = response(200, "{\"status\":\"success\",\"data\":{\"resultType\":\"vec");
        cut.truncated = true;
        assert!(
            matches!(interpret(&c, &c.queries[0], &cut), Err(StepError::Failed(m)) if m.contains("cut at the host's size limit"))
        );
        assert_eq!(quote_body("é".repeat(300).as_bytes()), format!("{:?}...", "é".repeat(200)));
    }

    #[test]
    fn refused_tokens_name_the_bearer_secret() {
        let with = config(json!({"bearer_secret": "prom-token"}));
        match error_of(&with, 401, "Unauthorized") {
            StepError::Failed(m) => assert_eq!(
                m,
                "query \"up\": Prometheus answered 401 Unauthorized to the token from bearer secret \"prom-token\"; \
                 check that the secret holds a token Prometheus accepts"
            ),
            other => panic!("{other:?}"),
        }
        match error_of(&config(json!({})), 403, "") {
            StepError::Failed(m) => assert_eq!(
                m,
                "query \"up\": Prometheus answered 403 Forbidden; it needs a token: set `bearer_secret` to the name \
                 of a secret holding one"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fetch_errors_are_retryable_unless_the_host_is_not_granted() {
        let c = config(json!({}));
        let q = &c.queries[0];
        let refused = "request to http://127.0.0.1:9/api/v1/query failed: Connection refused (os error 111)";
        match fetch_error(q, refused) {
            StepError::Retryable(m) => assert_eq!(m, format!("query \"up\": {refused}")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(fetch_error(q, "request to http://x/ timed out after 10s"), StepError::Retryable(_)));
        let denied = "hosts: 127.0.0.1:9090 is not granted to this step (granted: none)";
        assert!(matches!(fetch_error(q, denied), StepError::Failed(m) if m == format!("query \"up\": {denied}")));
        let bad_url = "URL \"http://a:99999/api/v1/query\" is not valid: invalid port number";
        assert!(
            matches!(fetch_error(q, bad_url), StepError::InvalidConfig(m) if m == format!("field `url`: {bad_url}"))
        );
    }

    #[test]
    fn no_data_gives_a_low_finding_unless_turned_off() {
        let c = config(json!({"queries": [{"name": "error_rate", "query": "sum(rate(x[1m]))"}]}));
        let r = answer(&c, r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#);
        assert_eq!(serde_json::to_value(&r).unwrap()["value"], Value::Null);
        let f = query_findings(&c, &c.queries[0], &r);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].title, "no data for error_rate");
        assert!(matches!(f[0].severity, tend_plugin_sdk::Severity::Low));
        assert!(f[0].detail.starts_with("Prometheus at http://127.0.0.1:9090 returned no series now for error_rate"));
        let off = config(json!({"no_data_severity": null}));
        assert!(query_findings(&off, &off.queries[0], &r).is_empty());
    }

    #[test]
    fn values_outside_the_expected_range_are_findings() {
        let c = config(json!({"queries": [{"name": "hit", "query": "x", "expect": {"min": 0.8, "severity": "high"}}]}));
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"x","job":"a"},"value":[1,"0.5"]},{"metric":{"job":"b"},"value":[1,"0.9"]},
            {"metric":{},"value":[1,"NaN"]}]}}"#;
        let f = query_findings(&c, &c.queries[0], &answer(&c, body));
        let titles: Vec<&str> = f.iter().map(|f| f.title.as_str()).collect();
        assert_eq!(
            titles,
            ["hit{job=\"a\"} is 0.5, below the expected minimum 0.8", "hit is NaN, expected at least 0.8"]
        );
        assert!(matches!(f[0].severity, tend_plugin_sdk::Severity::High));
        assert_eq!(f[0].detail, "hit{job=\"a\"}: value 0.5, expected at least 0.8. Query: x");
        let c = config(json!({"queries": [{"name": "err", "query": "x", "expect": {"min": 0, "max": 0.05}}]}));
        let f = query_findings(
            &c,
            &c.queries[0],
            &answer(&c, r#"{"status":"success","data":{"resultType":"scalar","result":[1,"0.2"]}}"#),
        );
        assert_eq!(f[0].title, "err is 0.2, above the expected maximum 0.05");
        assert!(matches!(f[0].severity, tend_plugin_sdk::Severity::Medium));
    }

    #[test]
    fn data_has_the_queries_in_order_by_name_and_their_values() {
        let c = config(json!({"queries": [{"name": "b", "query": "1"}, {"name": "a", "query": "vector(2)"}]}));
        let one = interpret(
            &c,
            &c.queries[0],
            &response(200, r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#),
        )
        .unwrap();
        let two = interpret(
            &c,
            &c.queries[1],
            &response(200, r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#),
        )
        .unwrap();
        let results = [one, two];
        let v = serde_json::to_value(Data::new(&results)).unwrap();
        assert_eq!(v["queries"].as_array().unwrap().iter().map(|q| q["name"].clone()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(v["by_name"]["b"], v["queries"][0]);
        assert_eq!(v["values"], json!({"a": null, "b": 1.0}));
    }

    #[test]
    fn the_schema_is_closed_and_describes_every_property() {
        let s = config_schema();
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["required"], json!(["url", "queries"]));
        for (name, p) in s["properties"].as_object().unwrap() {
            assert!(p["description"].is_string(), "{name}");
        }
        assert_eq!(s["properties"]["queries"]["items"]["additionalProperties"], false);
    }
}
