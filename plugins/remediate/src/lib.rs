//! `remediate`: calls the admin HTTP actions a runbook grants (restart,
//! scale, clear a cache, ...) and says what it did.
//!
//! Each action is one request through the host's `http-fetch` (the step
//! needs a `hosts` grant for the service), sent in the order written; the
//! first action answered with a status it does not expect fails the step
//! and the actions after it are not sent.
//!
//! Config (`with:`):
//!
//! ```yaml
//! actions:                      # one or more, run in order
//!   - name: restart             # letters, digits, `-` and `_`; unique; the `action` label of its metric
//!     method: POST              # GET, POST, PUT, PATCH or DELETE; by default POST
//!     url: "http://127.0.0.1:9100/admin/restart"   # absolute http or https URL
//!     body: {replicas: 3}       # optional JSON, sent as application/json
//!     headers: {X-Reason: tend} # optional
//!     expect_status: [202]      # by default any 2xx
//!     bearer_secret: demo-token # optional; by default the top-level one
//! bearer_secret: demo-token     # optional: `Authorization: Bearer <secret value>`
//! dry_run: false                # by default false: true sends nothing and says what it would send
//! reason: "score 3/10"          # optional, echoed in the output
//! timeout_ms: 10000             # per request, by default 10 s
//! ```
//!
//! Output data:
//!
//! ```json
//! {"dry_run": false, "reason": "score 3/10",
//!  "actions": [{"name": "restart", "method": "POST", "url": "http://127.0.0.1:9100/admin/restart",
//!               "request_body": null, "status": 202, "ok": true, "expected": "202",
//!               "response": {"status": "restarting", "restart_ms": 500}, "duration_ms": 3.2,
//!               "summary": "restart: POST http://127.0.0.1:9100/admin/restart answered 202 Accepted"}],
//!  "summary": "sent 1 action (restart); each answered as expected"}
//! ```
//!
//! `expected` is `"2xx"` or the statuses written (`"200 or 204"`).
//! `response` is the answer's body as JSON when it parses (and is at most
//! [`MAX_JSON_RESPONSE_BYTES`]), else its text cut at
//! [`MAX_RESPONSE_TEXT_CHARS`] characters; `null` when empty. In a dry run
//! `status`, `ok`, `response` and `duration_ms` are `null`, each summary
//! reads `restart: would POST http://...`, and an `info` finding per action
//! says what was not sent.
//!
//! Metrics: `remediation_duration_ms{action="restart"}` per action sent,
//! and `remediation_actions`, the number of actions sent (0 in a dry run).
//!
//! Errors: a config error is `invalid-config` naming the field and quoting
//! the value; so is a bearer secret that is not granted or not set (the
//! host reports a secret outside the grant as a denied capability, with
//! this message after it). An unexpected status is `failed`, naming the
//! action, method, URL, the status, the statuses expected and an excerpt of
//! the body, and saying which later actions were not sent; 429, 502, 503
//! and 504, connection failures and timeouts are `retryable`. A retry of
//! the step sends every action again from the first: give an action that
//! must not repeat a step of its own.
//!
//! Grants: the plugin declares only the `http` capability. `bearer_secret`
//! also needs the secret in the step's `secrets` grant (`--secret NAME` with
//! `tend plugins call`); declaring `secrets` would make every step grant
//! one, including those of services that need no token.
//!
//! It must not make any request but the configured actions (one each, in
//! order, none in a dry run), must not follow redirects, must not read any
//! secret but the configured bearer secrets, and never puts a token in
//! data, logs or errors.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Instant;
use tend_plugin_sdk::{
    Finding, Guest, HttpRequest, HttpResponse, Metric, PluginInfo, SeverityLevel, StepContext, StepError, StepOutput,
    export, failed, finding, host, invalid_config, log, metric, parse_config, retryable, round, schema,
};

/// The plugin; see the crate docs.
struct Remediate;

/// Method of an action without `method`. By default POST.
const DEFAULT_METHOD: Method = Method::Post;
/// Timeout of one request. By default 10 seconds.
const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// Largest response body kept as JSON in the output; a larger one is kept
/// as cut text. By default 64 KiB.
const MAX_JSON_RESPONSE_BYTES: usize = 64 * 1024;
/// Most characters of a response body kept as text in the output. By
/// default 2000.
const MAX_RESPONSE_TEXT_CHARS: usize = 2000;
/// Most characters of a response body quoted in an error. By default 200.
const MAX_QUOTED_BODY_CHARS: usize = 200;
/// Statuses that say "try again later": too many requests, bad gateway,
/// service unavailable, gateway timeout.
const RETRYABLE_STATUSES: [u16; 4] = [429, 502, 503, 504];
/// Headers the host sets itself; an action may not set them.
const HOST_HEADERS: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];
/// Name of the metric of each action's duration.
const DURATION_METRIC: &str = "remediation_duration_ms";
/// Name of the metric of the number of actions sent.
const COUNT_METRIC: &str = "remediation_actions";

fn default_method() -> String {
    DEFAULT_METHOD.as_str().into()
}

fn default_timeout_ms() -> u32 {
    DEFAULT_TIMEOUT_MS
}

/// The step's `with:` block as written; [`parse`] checks it into a [`Config`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    actions: Vec<RawAction>,
    #[serde(default)]
    bearer_secret: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u32,
}

/// One action as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    name: String,
    #[serde(default = "default_method")]
    method: String,
    url: String,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    expect_status: Option<Vec<u16>>,
    #[serde(default)]
    bearer_secret: Option<String>,
}

/// The HTTP methods an action may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// All of them, for messages and the schema.
    const NAMES: [&'static str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "GET" => Ok(Method::Get),
            "POST" => Ok(Method::Post),
            "PUT" => Ok(Method::Put),
            "PATCH" => Ok(Method::Patch),
            "DELETE" => Ok(Method::Delete),
            other => Err(format!(
                "{other:?} is not a method this plugin sends: expected one of {}",
                Method::NAMES.join(", ")
            )),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The statuses an action expects.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    /// Any 2xx (no `expect_status`).
    AnySuccess,
    /// Exactly these.
    Statuses(Vec<u16>),
}

impl Expected {
    fn contains(&self, status: u16) -> bool {
        match self {
            Expected::AnySuccess => (200..300).contains(&status),
            Expected::Statuses(list) => list.contains(&status),
        }
    }
}

impl fmt::Display for Expected {
    /// `2xx`, `202`, `200 or 204`, `200, 201 or 204`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::AnySuccess => f.write_str("2xx"),
            Expected::Statuses(list) => {
                let texts: Vec<String> = list.iter().map(u16::to_string).collect();
                match texts.split_last() {
                    Some((last, [])) => f.write_str(last),
                    Some((last, rest)) => write!(f, "{} or {last}", rest.join(", ")),
                    None => f.write_str("nothing"),
                }
            }
        }
    }
}

/// One action, checked.
#[derive(Debug, Clone)]
struct Action {
    /// Position in `actions`, for messages.
    index: usize,
    name: String,
    method: Method,
    url: String,
    body: Option<Value>,
    headers: Vec<(String, String)>,
    expected: Expected,
    /// The secret whose value is sent as the bearer token, if any: the
    /// action's own, else the top-level one.
    bearer_secret: Option<String>,
    /// Where `bearer_secret` was written, e.g. `actions[0].bearer_secret`.
    secret_field: String,
}

impl Action {
    /// `restart: POST http://...`, the start of every line about the action.
    fn what(&self) -> String {
        format!("{}: {} {}", self.name, self.method, self.url)
    }
}

/// The config, checked.
#[derive(Debug)]
struct Config {
    actions: Vec<Action>,
    dry_run: bool,
    reason: Option<String>,
    timeout_ms: u32,
}

/// Parses and checks the config. Errors name the field at fault and quote
/// its value.
fn parse(text: &str) -> Result<Config, StepError> {
    let raw: RawConfig = parse_config(text)?;
    if raw.actions.is_empty() {
        return Err(invalid_config("field `actions`: expected at least one action, found an empty list"));
    }
    check_secret_name("bearer_secret", raw.bearer_secret.as_deref())?;
    if raw.timeout_ms == 0 {
        return Err(invalid_config("field `timeout_ms`: expected a positive number of milliseconds, found 0"));
    }
    let mut actions: Vec<Action> = Vec::with_capacity(raw.actions.len());
    for (i, a) in raw.actions.into_iter().enumerate() {
        let action = check_action(i, a, raw.bearer_secret.as_deref(), &actions)?;
        actions.push(action);
    }
    Ok(Config { actions, dry_run: raw.dry_run, reason: raw.reason, timeout_ms: raw.timeout_ms })
}

/// Checks action `i` as written; `top_secret` is the top-level
/// `bearer_secret`, `earlier` the actions before it.
fn check_action(i: usize, a: RawAction, top_secret: Option<&str>, earlier: &[Action]) -> Result<Action, StepError> {
    let field = |path: String, message: String| invalid_config(format!("field `{path}`: {message}"));
    let at = |name: &str| format!("actions[{i}].{name}");
    if !is_name(&a.name) {
        return Err(field(
            at("name"),
            format!("{:?} is not a name of letters, digits, `-` and `_`, e.g. \"restart\"", a.name),
        ));
    }
    if let Some(first) = earlier.iter().find(|b| b.name == a.name) {
        return Err(field(
            at("name"),
            format!("{:?} is already the name of actions[{}]; each action needs its own name", a.name, first.index),
        ));
    }
    let method: Method = a.method.parse().map_err(|m| field(at("method"), m))?;
    if !is_http_url(&a.url) {
        return Err(field(
            at("url"),
            format!("{:?} is not an absolute http or https URL, e.g. \"http://127.0.0.1:9100/admin/restart\"", a.url),
        ));
    }
    check_secret_name(&at("bearer_secret"), a.bearer_secret.as_deref())?;
    let (bearer_secret, secret_field) = match (a.bearer_secret, top_secret) {
        (Some(own), _) => (Some(own), at("bearer_secret")),
        (None, Some(top)) => (Some(top.to_string()), "bearer_secret".to_string()),
        (None, None) => (None, String::new()),
    };
    let headers = check_headers(&a.headers, bearer_secret.as_deref()).map_err(|(n, m)| field(at(&n), m))?;
    let expected = match a.expect_status {
        None => Expected::AnySuccess,
        Some(list) if list.is_empty() => {
            return Err(field(
                at("expect_status"),
                "expected at least one status, found an empty list (leave it out to expect any 2xx)".into(),
            ));
        }
        Some(list) => {
            if let Some((j, bad)) = list.iter().enumerate().find(|(_, s)| !(100..=599).contains(*s)) {
                return Err(field(
                    format!("actions[{i}].expect_status[{j}]"),
                    format!("{bad} is not an HTTP status: expected a number from 100 to 599"),
                ));
            }
            Expected::Statuses(list)
        }
    };
    let body = a.body.filter(|b| !b.is_null());
    Ok(Action { index: i, name: a.name, method, url: a.url, body, headers, expected, bearer_secret, secret_field })
}

/// True for a non-empty name of `[A-Za-z0-9_-]`.
fn is_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// True for `http://HOST...` or `https://HOST...` with no whitespace or fragment.
fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let rest = lower.strip_prefix("http://").or_else(|| lower.strip_prefix("https://"));
    let authority = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    authority.is_some_and(|a| !a.is_empty())
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && !url.contains('#')
}

/// A secret name, when written, must not be blank.
fn check_secret_name(path: &str, name: Option<&str>) -> Result<(), StepError> {
    match name {
        Some(n) if n.trim().is_empty() => {
            Err(invalid_config(format!("field `{path}`: expected the name of a secret, found {n:?}")))
        }
        _ => Ok(()),
    }
}

/// The headers to send, in name order, or (the field under the action,
/// what is wrong).
fn check_headers(
    headers: &BTreeMap<String, String>,
    bearer_secret: Option<&str>,
) -> Result<Vec<(String, String)>, (String, String)> {
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let at = format!("headers.{name}");
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err((
                "headers".into(),
                format!("{name:?} is not a header name: expected letters, digits and `-`, e.g. \"X-Reason\""),
            ));
        }
        let lower = name.to_ascii_lowercase();
        if HOST_HEADERS.contains(&lower.as_str()) {
            return Err((at, format!("{name:?} is set by the host; leave it out")));
        }
        if let (true, Some(secret)) = (lower == "authorization", bearer_secret) {
            return Err((
                at,
                format!(
                    "conflicts with the bearer secret {secret:?}, which sets the Authorization header; keep one of \
                     them"
                ),
            ));
        }
        if value.chars().any(|c| c.is_control()) {
            return Err((at, format!("{value:?} has control characters, which a header cannot carry")));
        }
        out.push((name.clone(), value.clone()));
    }
    Ok(out)
}

/// Reads the bearer token from secret `name`, configured at `field`.
fn read_token(field: &str, name: &str) -> Result<String, StepError> {
    let Some(value) = host::secret(name) else {
        return Err(invalid_config(format!(
            "field `{field}`: secret {name:?} is not available to this step: grant it (`secrets: [{name}]` in the \
             step's grants, or `--secret {name}` with `tend plugins call`) and set it"
        )));
    };
    check_token(field, name, value.trim())
}

/// The token, unless it is empty or has characters a header cannot carry.
fn check_token(field: &str, name: &str, token: &str) -> Result<String, StepError> {
    if token.is_empty() {
        return Err(invalid_config(format!("field `{field}`: secret {name:?} is empty; expected a bearer token")));
    }
    if token.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(invalid_config(format!(
            "field `{field}`: secret {name:?} holds control or non-ASCII characters; expected a bearer token"
        )));
    }
    Ok(token.to_string())
}

/// The token of every configured secret, by name, read before anything is
/// sent (in a dry run too, so a dry run proves the step could run).
fn read_tokens(config: &Config) -> Result<BTreeMap<String, String>, StepError> {
    let mut tokens = BTreeMap::new();
    for action in &config.actions {
        if let Some(name) = &action.bearer_secret
            && !tokens.contains_key(name)
        {
            tokens.insert(name.clone(), read_token(&action.secret_field, name)?);
        }
    }
    Ok(tokens)
}

/// The request for `action`.
fn request(config: &Config, action: &Action, token: Option<&str>) -> HttpRequest {
    let mut headers = action.headers.clone();
    let has = |headers: &[(String, String)], name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has(&headers, "accept") {
        headers.push(("accept".into(), "application/json".into()));
    }
    if action.body.is_some() && !has(&headers, "content-type") {
        headers.push(("content-type".into(), "application/json".into()));
    }
    if let Some(token) = token {
        headers.push(("authorization".into(), format!("Bearer {token}")));
    }
    HttpRequest {
        method: action.method.as_str().into(),
        url: action.url.clone(),
        headers,
        body: action.body.as_ref().map(|b| b.to_string().into_bytes()),
        timeout_ms: Some(config.timeout_ms),
        follow_redirects: false,
    }
}

/// What a status means for the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusClass {
    /// One the action expects.
    Expected,
    /// Not expected, but may pass: 429, 502, 503, 504.
    Retryable,
    /// Not expected.
    Failed,
}

impl StatusClass {
    fn of(expected: &Expected, status: u16) -> StatusClass {
        if expected.contains(status) {
            StatusClass::Expected
        } else if RETRYABLE_STATUSES.contains(&status) {
            StatusClass::Retryable
        } else {
            StatusClass::Failed
        }
    }
}

/// `202 Accepted`, or the number alone for a status without a known phrase.
fn status_text(status: u16) -> String {
    let phrase = match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => return status.to_string(),
    };
    format!("{status} {phrase}")
}

/// The response body for the output: JSON when it parses (and is small
/// enough), else its text cut at [`MAX_RESPONSE_TEXT_CHARS`]; null when
/// empty.
fn response_value(body: &[u8]) -> Value {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    if body.len() <= MAX_JSON_RESPONSE_BYTES
        && let Ok(value) = serde_json::from_slice::<Value>(body)
    {
        return value;
    }
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(MAX_RESPONSE_TEXT_CHARS) {
        Some((cut, _)) => Value::String(format!("{}...", &text[..cut])),
        None => Value::String(text.into_owned()),
    }
}

/// An excerpt of a body for a message: the `error` (or `message`) string of
/// a JSON object, else the body on one line; quoted, cut at
/// [`MAX_QUOTED_BODY_CHARS`].
fn excerpt(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| ["error", "message"].iter().find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_string)));
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "(empty body)".into();
    }
    match line.char_indices().nth(MAX_QUOTED_BODY_CHARS) {
        Some((cut, _)) => format!("{:?}...", &line[..cut]),
        None => format!("{line:?}"),
    }
}

/// `; sent before it: restart; not sent: scale, clear-cache`: what the
/// actions around a failed one did; nothing for a lone action.
fn not_sent(config: &Config, action: &Action) -> String {
    let names = |actions: &[Action]| actions.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ");
    let (before, after) = (&config.actions[..action.index], &config.actions[action.index + 1..]);
    let mut out = String::new();
    if !before.is_empty() {
        out.push_str(&format!("; sent before it: {}", names(before)));
    }
    if !after.is_empty() {
        out.push_str(&format!("; not sent: {}", names(after)));
    }
    out
}

/// The error for an answer with a status the action does not expect.
fn status_error(config: &Config, action: &Action, response: &HttpResponse, class: StatusClass) -> StepError {
    let status = response.status;
    let mut message = format!(
        "action {:?}: {} {} answered {}, expected {}: {}",
        action.name,
        action.method,
        action.url,
        status_text(status),
        action.expected,
        excerpt(&response.body)
    );
    if (300..400).contains(&status) {
        let location = response
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("location"))
            .map_or("nowhere", |(_, v)| v.as_str());
        message.push_str(&format!("; it redirects to {location}, which is not followed: set `url` to where it points"));
    }
    if status == 401 || status == 403 {
        message.push_str(&match &action.bearer_secret {
            Some(name) => format!("; check that secret {name:?} holds a token the service accepts"),
            None => "; the service may need a token: set `bearer_secret` to the name of a secret holding it".into(),
        });
    }
    message.push_str(&not_sent(config, action));
    if class == StatusClass::Retryable { retryable(message) } else { failed(message) }
}

/// The error for an action that got no answer. The host's messages start
/// with `hosts: ` for a host outside the grant and `URL ` for a URL it
/// cannot parse (see `host/src/runtime/caps/http.rs`); everything else
/// (refused, reset, timed out) is worth retrying.
fn fetch_error(config: &Config, action: &Action, message: &str) -> StepError {
    let rest = not_sent(config, action);
    if message.starts_with("URL ") {
        invalid_config(format!("field `actions[{}].url`: {message}", action.index))
    } else if message.starts_with("hosts: ") {
        failed(format!("action {:?}: {message}{rest}", action.name))
    } else {
        retryable(format!("action {:?}: {} {} got no answer: {message}{rest}", action.name, action.method, action.url))
    }
}

/// What happened to one action, as it appears in the output data.
#[derive(Debug, Clone, Serialize)]
struct ActionResult {
    name: String,
    method: Method,
    url: String,
    /// The JSON body sent (or that would be sent).
    request_body: Option<Value>,
    /// None in a dry run.
    status: Option<u16>,
    ok: Option<bool>,
    /// `2xx`, `202`, `200 or 204`.
    expected: String,
    response: Option<Value>,
    duration_ms: Option<f64>,
    summary: String,
}

impl ActionResult {
    /// An action a dry run did not send.
    fn not_sent(action: &Action) -> ActionResult {
        ActionResult {
            name: action.name.clone(),
            method: action.method,
            url: action.url.clone(),
            request_body: action.body.clone(),
            status: None,
            ok: None,
            expected: action.expected.to_string(),
            response: None,
            duration_ms: None,
            summary: format!("{}: would {} {}", action.name, action.method, action.url),
        }
    }

    /// An action answered as expected after `duration_ms`.
    fn answered(action: &Action, response: &HttpResponse, duration_ms: f64) -> ActionResult {
        ActionResult {
            status: Some(response.status),
            ok: Some(true),
            response: Some(response_value(&response.body)),
            duration_ms: Some(round(duration_ms, 1)),
            summary: format!("{} answered {}", action.what(), status_text(response.status)),
            ..ActionResult::not_sent(action)
        }
    }
}

/// The output data.
#[derive(Debug, Serialize)]
struct Data {
    dry_run: bool,
    reason: Option<String>,
    actions: Vec<ActionResult>,
    summary: String,
}

impl Data {
    fn new(config: &Config, actions: Vec<ActionResult>) -> Data {
        let names: Vec<&str> = actions.iter().map(|a| a.name.as_str()).collect();
        let count = match names.len() {
            1 => "1 action".to_string(),
            n => format!("{n} actions"),
        };
        let summary = if config.dry_run {
            format!("dry run: would send {count} ({}); nothing was sent", names.join(", "))
        } else {
            format!("sent {count} ({}); each answered as expected", names.join(", "))
        };
        Data { dry_run: config.dry_run, reason: config.reason.clone(), actions, summary }
    }
}

/// The metrics of a run: a duration per action sent and the count sent.
fn metrics(results: &[ActionResult]) -> Vec<Metric> {
    let mut out: Vec<Metric> = results
        .iter()
        .filter_map(|r| Some(metric(DURATION_METRIC, r.duration_ms?, &[("action", r.name.as_str())])))
        .collect();
    out.push(metric(COUNT_METRIC, out.len() as f64, &[]));
    out
}

/// Sends the actions in order through `fetch` (the host's `http-fetch`),
/// stopping at the first that fails; in a dry run, sends nothing.
fn execute(
    config: &Config,
    tokens: &BTreeMap<String, String>,
    mut fetch: impl FnMut(&HttpRequest) -> Result<HttpResponse, String>,
) -> Result<Vec<ActionResult>, StepError> {
    if config.dry_run {
        return Ok(config.actions.iter().map(ActionResult::not_sent).collect());
    }
    let mut results = Vec::with_capacity(config.actions.len());
    for action in &config.actions {
        let token = action.bearer_secret.as_ref().and_then(|name| tokens.get(name)).map(String::as_str);
        let started = Instant::now();
        let response = fetch(&request(config, action, token)).map_err(|e| fetch_error(config, action, &e))?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let class = StatusClass::of(&action.expected, response.status);
        if class != StatusClass::Expected {
            return Err(status_error(config, action, &response, class));
        }
        results.push(ActionResult::answered(action, &response, ms));
    }
    Ok(results)
}

/// An `info` finding per action a dry run did not send.
fn dry_run_findings(config: &Config, results: &[ActionResult]) -> Vec<Finding> {
    if !config.dry_run {
        return Vec::new();
    }
    config
        .actions
        .iter()
        .zip(results)
        .map(|(action, result)| {
            let body = action.body.as_ref().map_or(String::new(), |b| format!(" with body {b}"));
            finding(
                SeverityLevel::Info,
                format!("dry run: {} not sent", action.name),
                format!("{}{body}, expecting {}; nothing was sent", result.summary, action.expected),
                Some(&action.name),
            )
        })
        .collect()
}

impl Guest for Remediate {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "remediate".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Calls the admin HTTP actions a runbook grants (restart, scale, clear a cache, ...) in \
                          order through the host's allow-listed HTTP client: method, URL, JSON body, headers, \
                          expected statuses, and an optional bearer token from a secret (which needs a secrets \
                          grant). Returns what each action answered with a one-line summary, a duration metric \
                          per action and the count sent; a dry run sends nothing and says what it would send. An \
                          unexpected status fails the step naming the action and the answer, and the actions \
                          after it are not sent; 429, 502, 503, 504 and unreachable services are retryable."
                .into(),
            config_schema: schema::to_text(&config_schema()),
            capabilities: vec!["http".into()],
        }
    }

    fn run(_ctx: StepContext, config: String, _input: String) -> Result<StepOutput, StepError> {
        let config = parse(&config)?;
        let tokens = read_tokens(&config)?;
        if let Some(reason) = &config.reason {
            log::info(&format!("reason: {reason}"));
        }
        let results = execute(&config, &tokens, host::http_fetch)?;
        for result in &results {
            let ms = result.duration_ms.map_or(String::new(), |ms| format!(" in {ms} ms"));
            log::info(&format!("{}{ms}", result.summary));
        }
        let (metrics, findings) = (metrics(&results), dry_run_findings(&config, &results));
        tend_plugin_sdk::output(&Data::new(&config, results), metrics, findings)
    }
}

/// JSON Schema of the config.
fn config_schema() -> Value {
    let secret = |what: &str| {
        json!({
            "type": "string",
            "minLength": 1,
            "description": format!(
                "Name of a secret holding a bearer token, sent as `Authorization: Bearer <token>`{what}; the step \
                 needs it in its `secrets` grant."
            ),
        })
    };
    let action = schema::object(
        "One admin HTTP action.",
        json!({
            "name": {
                "type": "string",
                "pattern": "^[A-Za-z0-9_-]+$",
                "description": "Name of the action, unique in `actions`: letters, digits, `-` and `_`. Labels its \
                                duration metric (`action`).",
            },
            "method": {"enum": Method::NAMES, "default": "POST", "description": "HTTP method."},
            "url": {
                "type": "string",
                "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]+",
                "description": "Absolute http or https URL; its host must be in the step's `hosts` grant.",
            },
            "body": {"description": "JSON sent as the request body, as application/json; none when absent."},
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Extra request headers, e.g. {\"X-Reason\": \"tend\"}.",
            },
            "expect_status": {
                "type": "array",
                "items": {"type": "integer", "minimum": 100, "maximum": 599},
                "minItems": 1,
                "description": "Statuses that mean success; by default any 2xx.",
            },
            "bearer_secret": secret(" for this action, instead of the top-level `bearer_secret`"),
        }),
        &["name", "url"],
    );
    schema::config(
        "remediate",
        "Admin HTTP actions, sent in order; the first unexpected answer fails the step.",
        json!({
            "actions": {"type": "array", "items": action, "minItems": 1, "description": "The actions, in order."},
            "bearer_secret": secret(" for every action without its own"),
            "dry_run": {
                "type": "boolean",
                "default": false,
                "description": "Send nothing; say what would be sent.",
            },
            "reason": {"type": "string", "description": "Why the runbook acts, echoed in the output."},
            "timeout_ms": {
                "type": "integer",
                "minimum": 1,
                "default": DEFAULT_TIMEOUT_MS,
                "description": "Timeout of each request, in milliseconds.",
            },
        }),
        &["actions"],
    )
}

export!(Remediate);

#[cfg(test)]
mod tests {
    use super::*;

    const RESTART: &str = "http://127.0.0.1:9100/admin/restart";
    const SCALE: &str = "http://127.0.0.1:9100/admin/scale";

    /// The kind and message of an error, for comparisons.
    fn kind(e: StepError) -> (&'static str, String) {
        match e {
            StepError::InvalidConfig(m) => ("invalid-config", m),
            StepError::Retryable(m) => ("retryable", m),
            StepError::Failed(m) => ("failed", m),
        }
    }

    fn invalid(config: Value) -> String {
        match parse(&config.to_string()) {
            Err(StepError::InvalidConfig(m)) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    /// One restart action plus `extra` (top-level fields, or `action` fields
    /// merged into the action).
    fn with_action(action: Value) -> Value {
        let mut a = json!({"name": "restart", "url": RESTART});
        for (k, v) in action.as_object().unwrap() {
            a[k] = v.clone();
        }
        json!({"actions": [a]})
    }

    fn config(value: Value) -> Config {
        parse(&value.to_string()).unwrap()
    }

    fn two_actions() -> Config {
        config(json!({"bearer_secret": "demo-token", "actions": [
            {"name": "restart", "url": RESTART, "expect_status": [202]},
            {"name": "scale", "url": SCALE, "body": {"replicas": 3}},
            {"name": "clear", "url": "http://127.0.0.1:9100/admin/cache/clear"},
        ]}))
    }

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            truncated: false,
            final_url: RESTART.into(),
        }
    }

    fn tokens() -> BTreeMap<String, String> {
        BTreeMap::from([("demo-token".to_string(), "s3cret".to_string())])
    }

    /// Runs `config` against answers given in order; returns the requests sent too.
    fn run_with(
        config: &Config,
        answers: Vec<Result<HttpResponse, String>>,
    ) -> (Result<Vec<ActionResult>, StepError>, Vec<HttpRequest>) {
        let mut answers = answers.into_iter();
        let mut sent = Vec::new();
        let result = execute(config, &tokens(), |r| {
            sent.push(r.clone());
            answers.next().expect("no more answers")
        });
        (result, sent)
    }

    #[test]
    fn a_minimal_action_gets_the_defaults() {
        let c = config(with_action(json!({})));
        assert!(!c.dry_run);
        assert_eq!(c.reason, None);
        assert_eq!(c.timeout_ms, DEFAULT_TIMEOUT_MS);
        let a = &c.actions[0];
        assert_eq!((a.method, a.expected.clone(), a.body.clone()), (Method::Post, Expected::AnySuccess, None));
        assert_eq!(a.bearer_secret, None);
        let c = two_actions();
        assert_eq!(c.actions[1].bearer_secret.as_deref(), Some("demo-token"));
        assert_eq!(c.actions[1].secret_field, "bearer_secret");
        let own =
            config(json!({"bearer_secret": "a", "actions": [{"name": "x", "url": RESTART, "bearer_secret": "b"}]}));
        assert_eq!(
            (own.actions[0].bearer_secret.as_deref(), own.actions[0].secret_field.as_str()),
            (Some("b"), "actions[0].bearer_secret")
        );
    }

    #[test]
    fn bad_config_names_the_field_and_quotes_the_value() {
        assert_eq!(invalid(json!({})), "field `actions`: is required but missing");
        assert_eq!(
            invalid(json!({"actions": []})),
            "field `actions`: expected at least one action, found an empty list"
        );
        assert_eq!(
            invalid(json!({"actions": [{"name": "a", "url": RESTART}, {"name": "b", "url": "ftp://x"}]})),
            "field `actions[1].url`: \"ftp://x\" is not an absolute http or https URL, e.g. \
             \"http://127.0.0.1:9100/admin/restart\""
        );
        for bad in ["/admin/restart", "http://", "http:// x", "127.0.0.1:9100/admin", "http://a/#frag"] {
            assert!(invalid(with_action(json!({"url": bad}))).starts_with("field `actions[0].url`: "), "{bad}");
        }
        assert_eq!(
            invalid(with_action(json!({"name": "re start"}))),
            "field `actions[0].name`: \"re start\" is not a name of letters, digits, `-` and `_`, e.g. \"restart\""
        );
        assert_eq!(
            invalid(json!({"actions": [{"name": "r", "url": RESTART}, {"name": "r", "url": SCALE}]})),
            "field `actions[1].name`: \"r\" is already the name of actions[0]; each action needs its own name"
        );
        assert_eq!(
            invalid(with_action(json!({"method": "post"}))),
            "field `actions[0].method`: \"post\" is not a method this plugin sends: expected one of GET, POST, PUT, \
             PATCH, DELETE"
        );
        assert_eq!(
            invalid(with_action(json!({"expect_status": []}))),
            "field `actions[0].expect_status`: expected at least one status, found an empty list (leave it out to \
             expect any 2xx)"
        );
        assert_eq!(
            invalid(with_action(json!({"expect_status": [200, 99]}))),
            "field `actions[0].expect_status[1]`: 99 is not an HTTP status: expected a number from 100 to 599"
        );
        assert!(
            invalid(with_action(json!({"expect_status": ["202"]})))
                .starts_with("field `actions[0].expect_status[0]`: ")
        );
        assert_eq!(
            invalid(with_action(json!({"headers": {"X Reason": "tend"}}))),
            "field `actions[0].headers`: \"X Reason\" is not a header name: expected letters, digits and `-`, e.g. \
             \"X-Reason\""
        );
        assert_eq!(
            invalid(with_action(json!({"headers": {"Content-Length": "3"}}))),
            "field `actions[0].headers.Content-Length`: \"Content-Length\" is set by the host; leave it out"
        );
        assert_eq!(
            invalid(with_action(json!({"headers": {"X-Reason": "a\nb"}}))),
            "field `actions[0].headers.X-Reason`: \"a\\nb\" has control characters, which a header cannot carry"
        );
        assert_eq!(
            invalid(with_action(json!({"bearer_secret": "t", "headers": {"Authorization": "Basic x"}}))),
            "field `actions[0].headers.Authorization`: conflicts with the bearer secret \"t\", which sets the \
             Authorization header; keep one of them"
        );
        assert_eq!(
            invalid(with_action(json!({"bearer_secret": " "}))),
            "field `actions[0].bearer_secret`: expected the name of a secret, found \" \""
        );
        let mut top = with_action(json!({}));
        top["bearer_secret"] = json!("");
        assert_eq!(invalid(top), "field `bearer_secret`: expected the name of a secret, found \"\"");
        let mut zero = with_action(json!({}));
        zero["timeout_ms"] = json!(0);
        assert_eq!(invalid(zero), "field `timeout_ms`: expected a positive number of milliseconds, found 0");
        assert!(invalid(with_action(json!({"retries": 2}))).starts_with("field `actions[0].retries`: "));
        assert!(invalid(json!({"actions": [{"name": "x"}]})).starts_with("field `actions[0].url`: is required"));
    }

    #[test]
    fn secrets_that_are_empty_or_not_header_safe_are_config_errors() {
        assert_eq!(
            kind(check_token("bearer_secret", "t", "").unwrap_err()),
            ("invalid-config", "field `bearer_secret`: secret \"t\" is empty; expected a bearer token".to_string())
        );
        assert!(matches!(
            check_token("actions[0].bearer_secret", "t", "a\nb"),
            Err(StepError::InvalidConfig(m)) if m.starts_with("field `actions[0].bearer_secret`: secret \"t\" holds control")
        ));
        assert_eq!(check_token("bearer_secret", "t", "s3cret").unwrap(), "s3cret");
    }

    #[test]
    fn the_request_carries_the_method_body_headers_and_token() {
        let c = config(with_action(json!({
            "method": "PUT", "body": {"replicas": 3}, "headers": {"X-Reason": "tend"}, "bearer_secret": "t"
        })));
        let r = request(&c, &c.actions[0], Some("s3cret"));
        assert_eq!((r.method.as_str(), r.url.as_str(), r.follow_redirects), ("PUT", RESTART, false));
        assert_eq!(r.body.as_deref(), Some(br#"{"replicas":3}"#.as_slice()));
        assert_eq!(r.timeout_ms, Some(DEFAULT_TIMEOUT_MS));
        let h: Vec<(&str, &str)> = r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            h,
            [
                ("X-Reason", "tend"),
                ("accept", "application/json"),
                ("content-type", "application/json"),
                ("authorization", "Bearer s3cret")
            ]
        );
        let plain =
            config(with_action(json!({"headers": {"Content-Type": "application/merge-patch+json"}, "body": {}})));
        let r = request(&plain, &plain.actions[0], None);
        assert!(r.headers.iter().all(|(k, _)| k != "authorization" && k != "content-type"));
        let none = config(with_action(json!({"body": null})));
        assert_eq!(request(&none, &none.actions[0], None).body, None);
    }

    #[test]
    fn statuses_are_classified_against_what_the_action_expects() {
        let any = Expected::AnySuccess;
        assert_eq!(StatusClass::of(&any, 200), StatusClass::Expected);
        assert_eq!(StatusClass::of(&any, 299), StatusClass::Expected);
        for status in [429, 502, 503, 504] {
            assert_eq!(StatusClass::of(&any, status), StatusClass::Retryable, "{status}");
        }
        for status in [301, 400, 401, 404, 409, 500, 501] {
            assert_eq!(StatusClass::of(&any, status), StatusClass::Failed, "{status}");
        }
        let only = Expected::Statuses(vec![202, 409]);
        assert_eq!(StatusClass::of(&only, 409), StatusClass::Expected);
        assert_eq!(StatusClass::of(&only, 200), StatusClass::Failed);
        assert_eq!(StatusClass::of(&Expected::Statuses(vec![503]), 503), StatusClass::Expected);
        assert_eq!(Expected::AnySuccess.to_string(), "2xx");
        assert_eq!(Expected::Statuses(vec![202]).to_string(), "202");
        assert_eq!(Expected::Statuses(vec![200, 204]).to_string(), "200 or 204");
        assert_eq!(Expected::Statuses(vec![200, 201, 204]).to_string(), "200, 201 or 204");
        assert_eq!(status_text(202), "202 Accepted");
        assert_eq!(status_text(418), "418");
    }

    #[test]
    fn every_action_answered_as_expected_is_in_the_output() {
        let c = two_actions();
        let (result, sent) = run_with(
            &c,
            vec![
                Ok(response(202, r#"{"status":"restarting","restart_ms":500}"#)),
                Ok(response(200, r#"{"replicas":3,"previous":1}"#)),
                Ok(response(204, "")),
            ],
        );
        let results = result.unwrap();
        assert_eq!(sent.len(), 3);
        assert!(sent.iter().all(|r| r.headers.contains(&("authorization".into(), "Bearer s3cret".into()))));
        let mut data = serde_json::to_value(Data::new(&c, results.clone())).unwrap();
        for a in data["actions"].as_array_mut().unwrap() {
            assert!(a["duration_ms"].as_f64().unwrap() >= 0.0);
            a["duration_ms"] = json!("ms");
        }
        assert_eq!(
            data,
            json!({
                "dry_run": false, "reason": null,
                "actions": [
                    {"name": "restart", "method": "POST", "url": RESTART, "request_body": null, "status": 202,
                     "ok": true, "expected": "202", "response": {"status": "restarting", "restart_ms": 500},
                     "duration_ms": "ms", "summary": format!("restart: POST {RESTART} answered 202 Accepted")},
                    {"name": "scale", "method": "POST", "url": SCALE, "request_body": {"replicas": 3}, "status": 200,
                     "ok": true, "expected": "2xx", "response": {"replicas": 3, "previous": 1},
                     "duration_ms": "ms", "summary": format!("scale: POST {SCALE} answered 200 OK")},
                    {"name": "clear", "method": "POST", "url": "http://127.0.0.1:9100/admin/cache/clear",
                     "request_body": null, "status": 204, "ok": true, "expected": "2xx", "response": null,
                     "duration_ms": "ms",
                     "summary": "clear: POST http://127.0.0.1:9100/admin/cache/clear answered 204 No Content"},
                ],
                "summary": "sent 3 actions (restart, scale, clear); each answered as expected",
            })
        );
        let m = metrics(&results);
        let names: Vec<(&str, Vec<(String, String)>)> = m.iter().map(|m| (m.name.as_str(), m.labels.clone())).collect();
        assert_eq!(
            names,
            [
                ("remediation_duration_ms", vec![("action".to_string(), "restart".to_string())]),
                ("remediation_duration_ms", vec![("action".to_string(), "scale".to_string())]),
                ("remediation_duration_ms", vec![("action".to_string(), "clear".to_string())]),
                ("remediation_actions", vec![]),
            ]
        );
        assert_eq!(m[3].value, 3.0);
        assert!(dry_run_findings(&c, &results).is_empty());
    }

    #[test]
    fn a_dry_run_sends_nothing_and_says_what_it_would_send() {
        let mut v = with_action(json!({"body": {"replicas": 2}, "expect_status": [200]}));
        v["dry_run"] = json!(true);
        v["reason"] = json!("score 3/10");
        let c = config(v);
        let (result, sent) = run_with(&c, vec![]);
        let results = result.unwrap();
        assert!(sent.is_empty());
        let data = serde_json::to_value(Data::new(&c, results.clone())).unwrap();
        assert_eq!(
            data,
            json!({"dry_run": true, "reason": "score 3/10", "actions": [
                {"name": "restart", "method": "POST", "url": RESTART, "request_body": {"replicas": 2}, "status": null,
                 "ok": null, "expected": "200", "response": null, "duration_ms": null,
                 "summary": format!("restart: would POST {RESTART}")}],
             "summary": "dry run: would send 1 action (restart); nothing was sent"})
        );
        let m = metrics(&results);
        assert_eq!((m.len(), m[0].name.as_str(), m[0].value), (1, "remediation_actions", 0.0));
        let f = dry_run_findings(&c, &results);
        assert_eq!(f.len(), 1);
        assert!(matches!(f[0].severity, tend_plugin_sdk::Severity::Info));
        assert_eq!(f[0].title, "dry run: restart not sent");
        assert_eq!(
            f[0].detail,
            format!("restart: would POST {RESTART} with body {{\"replicas\":2}}, expecting 200; nothing was sent")
        );
    }

    #[test]
    fn an_unexpected_status_fails_naming_the_action_the_answer_and_what_was_not_sent() {
        let c = two_actions();
        let conflict = r#"{"error":"a restart is already in progress: wait until /healthz answers 200"}"#;
        let (result, sent) = run_with(&c, vec![Ok(response(409, conflict))]);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            kind(result.unwrap_err()),
            (
                "failed",
                format!(
                    "action \"restart\": POST {RESTART} answered 409 Conflict, expected 202: \"a restart is already in \
                 progress: wait until /healthz answers 200\"; not sent: scale, clear"
                )
            )
        );
        let (result, sent) = run_with(
            &c,
            vec![Ok(response(202, "{}")), Ok(response(401, r#"{"error":"the admin token is not valid"}"#))],
        );
        assert_eq!(sent.len(), 2);
        assert_eq!(
            kind(result.unwrap_err()),
            (
                "failed",
                format!(
                    "action \"scale\": POST {SCALE} answered 401 Unauthorized, expected 2xx: \"the admin token is not \
                 valid\"; check that secret \"demo-token\" holds a token the service accepts; sent before it: \
                 restart; not sent: clear"
                )
            )
        );
        let lone = config(with_action(json!({})));
        let (result, _) = run_with(&lone, vec![Ok(response(403, "<html>\n  Forbidden\n</html>"))]);
        assert_eq!(
            kind(result.unwrap_err()),
            (
                "failed",
                format!(
                    "action \"restart\": POST {RESTART} answered 403 Forbidden, expected 2xx: \"<html> Forbidden </html>\"; \
                 the service may need a token: set `bearer_secret` to the name of a secret holding it"
                )
            )
        );
        let mut moved = response(302, "");
        moved.headers.push(("Location".into(), "/login".into()));
        let (result, _) = run_with(&lone, vec![Ok(moved)]);
        assert_eq!(
            kind(result.unwrap_err()),
            (
                "failed",
                format!(
                    "action \"restart\": POST {RESTART} answered 302 Found, expected 2xx: (empty body); it redirects to \
                 /login, which is not followed: set `url` to where it points"
                )
            )
        );
    }

    #[test]
    fn overload_answers_and_no_answer_are_retryable() {
        let c = two_actions();
        let (result, _) = run_with(&c, vec![Ok(response(503, r#"{"error":"service unavailable: down"}"#))]);
        assert_eq!(
            kind(result.unwrap_err()),
            (
                "retryable",
                format!(
                    "action \"restart\": POST {RESTART} answered 503 Service Unavailable, expected 202: \"service \
                 unavailable: down\"; not sent: scale, clear"
                )
            )
        );
        let refused = "request to http://127.0.0.1:9100/admin/restart failed: Connection refused (os error 111)";
        let (result, _) = run_with(&c, vec![Err(refused.into())]);
        assert_eq!(
            kind(result.unwrap_err()),
            (
                "retryable",
                format!("action \"restart\": POST {RESTART} got no answer: {refused}; not sent: scale, clear")
            )
        );
        let denied = "hosts: 127.0.0.1:9100 is not granted to this step (granted: none)";
        let (result, _) = run_with(&c, vec![Err(denied.into())]);
        assert_eq!(
            kind(result.unwrap_err()),
            ("failed", format!("action \"restart\": {denied}; not sent: scale, clear"))
        );
        let bad = "URL \"http://a:99999/\" is not valid: invalid port number";
        let (result, _) = run_with(&c, vec![Err(bad.into())]);
        assert_eq!(kind(result.unwrap_err()), ("invalid-config", format!("field `actions[0].url`: {bad}")));
    }

    #[test]
    fn a_response_is_json_when_it_parses_else_cut_text() {
        assert_eq!(response_value(br#"{"a": [1, 2]}"#), json!({"a": [1, 2]}));
        assert_eq!(response_value(b"  \n"), Value::Null);
        assert_eq!(response_value(b"restarting"), json!("restarting"));
        let long = "x".repeat(MAX_RESPONSE_TEXT_CHARS + 5);
        assert_eq!(response_value(long.as_bytes()), json!(format!("{}...", "x".repeat(MAX_RESPONSE_TEXT_CHARS))));
        let big = format!("[{}1]", "1,".repeat(MAX_JSON_RESPONSE_BYTES));
        assert!(response_value(big.as_bytes()).as_str().unwrap().ends_with("..."));
        assert_eq!(excerpt(br#"{"message": "nope"}"#), "\"nope\"");
        assert_eq!(excerpt(&"é".repeat(300).into_bytes()), format!("{:?}...", "é".repeat(MAX_QUOTED_BODY_CHARS)));
    }

    #[test]
    fn the_schema_is_closed_and_describes_every_property() {
        let s = config_schema();
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["required"], json!(["actions"]));
        for (name, p) in s["properties"].as_object().unwrap() {
            assert!(p["description"].is_string(), "{name}");
        }
        let action = &s["properties"]["actions"]["items"];
        assert_eq!(action["additionalProperties"], false);
        assert_eq!(action["required"], json!(["name", "url"]));
        for (name, p) in action["properties"].as_object().unwrap() {
            assert!(p["description"].is_string(), "{name}");
        }
    }
}
