//! `http-security`: grades the security headers of a list of endpoints.
//!
//! For each endpoint it makes one GET through the host's `http-fetch` (the
//! step needs a `hosts` grant for each endpoint) and runs seven checks on
//! the answer's headers, each passing, failing or not applying, with the
//! reason:
//!
//! | check                    | passes when                                                                 |
//! |--------------------------|-----------------------------------------------------------------------------|
//! | `hsts`                   | (https only) `Strict-Transport-Security` has max-age ≥ 180 days and includeSubDomains |
//! | `csp`                    | `Content-Security-Policy` is set, without `'unsafe-inline'`, `'unsafe-eval'` or wildcard sources (`*`, `http:`, `https:`) |
//! | `content-type-options`   | `X-Content-Type-Options: nosniff`                                           |
//! | `frame-ancestors`        | CSP `frame-ancestors` (without `*`) or `X-Frame-Options` DENY / SAMEORIGIN  |
//! | `referrer-policy`        | `Referrer-Policy` is no-referrer, same-origin, strict-origin or strict-origin-when-cross-origin |
//! | `cookies`                | every `Set-Cookie` is Secure, HttpOnly and has SameSite Strict, Lax or None |
//! | `server-disclosure`      | no version in `Server`, no `X-Powered-By` / `X-AspNet-Version` / `X-AspNetMvc-Version` |
//!
//! Score: the sum of the weights (`WEIGHT_*`) of the passing checks over
//! the sum of the weights of the checks that apply, times 100, rounded.
//! Grade: A from [`GRADE_A`], B from [`GRADE_B`], C from [`GRADE_C`], D
//! from [`GRADE_D`], F below.
//!
//! One finding per problem, the endpoint as resource, with this severity:
//! high for a missing HSTS header, a cookie without Secure and an endpoint
//! that cannot be fetched; medium for a short or invalid HSTS max-age, a
//! missing CSP, `'unsafe-inline'`, `'unsafe-eval'`, wildcard sources, no
//! framing protection and a cookie without HttpOnly; low for HSTS without
//! includeSubDomains, X-Content-Type-Options, Referrer-Policy, a cookie
//! without (or with an invalid) SameSite, and a disclosed server version.
//!
//! Each problem is fingerprinted by endpoint, check and kind (never a
//! header value) and compared with the previous run's through the runbook
//! state (`state_key`, see [`compare`]): it is `new`, `still_open` or —
//! gone since — `resolved`, and only new problems become findings.
//!
//! A finding never quotes a cookie's value, only its name. The plugin must
//! make no request other than one GET per endpoint, and reads no secrets,
//! files or environment.

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;
use tend_plugin_sdk::{
    Guest, HttpRequest, HttpResponse, Metric, PluginInfo, SeverityLevel, StepContext, StepError, StepOutput, compare,
    export, host, invalid_config, is_http_url, log, metric, parse_config, schema,
};

/// The plugin; see the crate docs.
struct HttpSecurity;

/// Default per-request timeout: 10 seconds.
const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// Shortest HSTS max-age that passes: 180 days, in seconds.
const HSTS_MIN_MAX_AGE: u64 = 180 * 24 * 3600;

/// Weight of the `hsts` check in the score.
const WEIGHT_HSTS: u32 = 20;
/// Weight of the `csp` check in the score.
const WEIGHT_CSP: u32 = 20;
/// Weight of the `content-type-options` check in the score.
const WEIGHT_CONTENT_TYPE_OPTIONS: u32 = 10;
/// Weight of the `frame-ancestors` check in the score.
const WEIGHT_FRAME_ANCESTORS: u32 = 15;
/// Weight of the `referrer-policy` check in the score.
const WEIGHT_REFERRER_POLICY: u32 = 10;
/// Weight of the `cookies` check in the score.
const WEIGHT_COOKIES: u32 = 15;
/// Weight of the `server-disclosure` check in the score.
const WEIGHT_SERVER_DISCLOSURE: u32 = 10;

/// Lowest score graded A.
const GRADE_A: u32 = 90;
/// Lowest score graded B.
const GRADE_B: u32 = 80;
/// Lowest score graded C.
const GRADE_C: u32 = 70;
/// Lowest score graded D; anything lower is F.
const GRADE_D: u32 = 60;

/// Referrer-Policy values that do not leak the path across origins.
const SAFE_REFERRER_POLICIES: [&str; 4] =
    ["no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"];
/// Headers whose mere presence discloses the software stack.
const DISCLOSING_HEADERS: [&str; 3] = ["x-powered-by", "x-aspnet-version", "x-aspnetmvc-version"];
/// CSP sources that allow any host.
const WILDCARD_SOURCES: [&str; 3] = ["*", "http:", "https:"];

fn default_timeout_ms() -> u32 {
    DEFAULT_TIMEOUT_MS
}

fn default_true() -> bool {
    true
}

/// One endpoint: written as a bare URL string or as an object.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Endpoint {
    /// Absolute http or https URL.
    url: String,
    /// Request headers, e.g. a cookie to reach a logged-in page.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Per-request timeout.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u32,
}

/// Wraps [`Endpoint`] so an endpoint can be a URL string or an object.
#[derive(Debug)]
struct EndpointEntry(Endpoint);

impl<'de> Deserialize<'de> for EndpointEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = EndpointEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL string or an object {url, headers, timeout_ms}")
            }

            fn visit_str<E: de::Error>(self, url: &str) -> Result<EndpointEntry, E> {
                Ok(EndpointEntry(Endpoint {
                    url: url.to_string(),
                    headers: BTreeMap::new(),
                    timeout_ms: DEFAULT_TIMEOUT_MS,
                }))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EndpointEntry, A::Error> {
                Endpoint::deserialize(de::value::MapAccessDeserializer::new(map)).map(EndpointEntry)
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

/// The step's `with:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    endpoints: Vec<EndpointEntry>,
    #[serde(default = "default_true")]
    follow_redirects: bool,
    #[serde(default)]
    state_key: Option<String>,
}

/// The config, parsed and checked.
#[derive(Debug)]
struct Config {
    endpoints: Vec<Endpoint>,
    follow_redirects: bool,
    /// Key of the runbook state holding the previous run's problems.
    state_key: Option<String>,
}

fn parse(text: &str) -> Result<Config, StepError> {
    let raw: RawConfig = parse_config(text)?;
    let config = Config {
        endpoints: raw.endpoints.into_iter().map(|EndpointEntry(e)| e).collect(),
        follow_redirects: raw.follow_redirects,
        state_key: raw.state_key,
    };
    if config.endpoints.is_empty() {
        return Err(invalid_config("field `endpoints`: expected at least one endpoint, found an empty list"));
    }
    for (i, e) in config.endpoints.iter().enumerate() {
        if !is_http_url(&e.url) {
            return Err(invalid_config(format!(
                "field `endpoints[{i}].url`: expected an absolute http or https URL, found {:?}",
                e.url
            )));
        }
        if e.timeout_ms == 0 {
            return Err(invalid_config(format!(
                "field `endpoints[{i}].timeout_ms`: expected a positive number of milliseconds, found 0"
            )));
        }
    }
    Ok(config)
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Pass,
    Fail,
    /// The check does not apply (HSTS over plain http); not in the score.
    Skip,
}

/// One problem a check found, with its finding's severity.
#[derive(Debug, Clone, PartialEq)]
struct Problem {
    severity: SeverityLevel,
    /// What is wrong, stable across runs (no header values): with the
    /// endpoint and the check, the problem's fingerprint.
    kind: String,
    message: String,
}

fn problem(severity: SeverityLevel, kind: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem { severity, kind: kind.into(), message: message.into() }
}

/// One graded check, as it appears in the output.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Check {
    check: &'static str,
    status: Status,
    /// Why it passed, failed or was skipped.
    why: String,
    #[serde(skip)]
    weight: u32,
    #[serde(skip)]
    problems: Vec<Problem>,
    #[serde(skip)]
    advice: &'static str,
}

impl Check {
    /// A check that passes with `why`, or fails with its problems joined.
    fn judged(check: &'static str, weight: u32, advice: &'static str, problems: Vec<Problem>, why: String) -> Check {
        if problems.is_empty() {
            Check { check, status: Status::Pass, why, weight, problems, advice }
        } else {
            let why = problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ");
            Check { check, status: Status::Fail, why, weight, problems, advice }
        }
    }
}

/// The response headers, by lowercase name, every value kept.
struct Headers(Vec<(String, String)>);

impl Headers {
    fn new(headers: &[(String, String)]) -> Headers {
        Headers(headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string())).collect())
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn first(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }
}

/// Runs every check on one response. `https` is whether the final URL is https.
fn grade_headers(headers: &[(String, String)], https: bool) -> Vec<Check> {
    let h = Headers::new(headers);
    let policies: Vec<Csp> = h.all("content-security-policy").map(Csp::parse).collect();
    vec![
        check_hsts(&h, https),
        check_csp(&policies),
        check_content_type_options(&h),
        check_frame_ancestors(&h, &policies),
        check_referrer_policy(&h),
        check_cookies(&h),
        check_server_disclosure(&h),
    ]
}

fn check_hsts(h: &Headers, https: bool) -> Check {
    const ADVICE: &str =
        "Send `Strict-Transport-Security: max-age=31536000; includeSubDomains` on every https response.";
    if !https {
        return Check {
            check: "hsts",
            status: Status::Skip,
            why: "not applicable: the endpoint is not served over https".into(),
            weight: WEIGHT_HSTS,
            problems: Vec::new(),
            advice: ADVICE,
        };
    }
    let Some(value) = h.first("strict-transport-security") else {
        let p = vec![problem(SeverityLevel::High, "missing", "Strict-Transport-Security is missing")];
        return Check::judged("hsts", WEIGHT_HSTS, ADVICE, p, String::new());
    };
    let mut max_age = None;
    let mut subdomains = false;
    for part in value.split(';').map(str::trim) {
        let lower = part.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("max-age=") {
            max_age = v.trim().trim_matches('"').parse::<u64>().ok();
        } else if lower == "includesubdomains" {
            subdomains = true;
        }
    }
    let mut problems = Vec::new();
    match max_age {
        None => problems.push(problem(
            SeverityLevel::Medium,
            "invalid-max-age",
            format!("Strict-Transport-Security has no valid max-age: {value:?}"),
        )),
        Some(age) if age < HSTS_MIN_MAX_AGE => problems.push(problem(
            SeverityLevel::Medium,
            "short-max-age",
            format!("Strict-Transport-Security max-age is {age} seconds, below {HSTS_MIN_MAX_AGE} (180 days)"),
        )),
        Some(_) => {}
    }
    if !subdomains {
        problems.push(problem(
            SeverityLevel::Low,
            "no-include-subdomains",
            "Strict-Transport-Security lacks includeSubDomains",
        ));
    }
    let why = format!("max-age={} with includeSubDomains", max_age.unwrap_or_default());
    Check::judged("hsts", WEIGHT_HSTS, ADVICE, problems, why)
}

/// A parsed Content-Security-Policy: directive name (lowercase) and sources.
struct Csp(Vec<(String, Vec<String>)>);

impl Csp {
    fn parse(value: &str) -> Csp {
        Csp(value
            .split(';')
            .filter_map(|d| {
                let mut words = d.split_whitespace();
                let name = words.next()?.to_ascii_lowercase();
                Some((name, words.map(str::to_string).collect()))
            })
            .collect())
    }

    /// The directives whose sources include one that `pred` accepts, as
    /// "directive source".
    fn sources_where(&self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut found = Vec::new();
        for (name, sources) in &self.0 {
            for s in sources.iter().filter(|s| pred(&s.to_ascii_lowercase())) {
                found.push(format!("{name} {s}"));
            }
        }
        found
    }
}

fn check_csp(policies: &[Csp]) -> Check {
    const ADVICE: &str = "Send a Content-Security-Policy that lists the allowed sources explicitly, without \
                          'unsafe-inline', 'unsafe-eval' or wildcards (use nonces or hashes for inline scripts).";
    if policies.is_empty() {
        let p = vec![problem(SeverityLevel::Medium, "missing", "Content-Security-Policy is missing")];
        return Check::judged("csp", WEIGHT_CSP, ADVICE, p, String::new());
    }
    let mut problems = Vec::new();
    let all =
        |pred: &dyn Fn(&str) -> bool| -> Vec<String> { policies.iter().flat_map(|p| p.sources_where(pred)).collect() };
    for keyword in ["'unsafe-inline'", "'unsafe-eval'"] {
        let found = all(&|s: &str| s == keyword);
        if !found.is_empty() {
            let directives: Vec<&str> = found.iter().filter_map(|f| f.split(' ').next()).collect();
            problems.push(problem(
                SeverityLevel::Medium,
                keyword.trim_matches('\''),
                format!("Content-Security-Policy allows {keyword} in {}", directives.join(", ")),
            ));
        }
    }
    let wildcards = all(&|s: &str| WILDCARD_SOURCES.contains(&s));
    if !wildcards.is_empty() {
        problems.push(problem(
            SeverityLevel::Medium,
            "wildcard-sources",
            format!("Content-Security-Policy has wildcard sources: {}", wildcards.join(", ")),
        ));
    }
    let count: usize = policies.iter().map(|p| p.0.len()).sum();
    Check::judged("csp", WEIGHT_CSP, ADVICE, problems, format!("set with {count} directives, none unsafe"))
}

fn check_content_type_options(h: &Headers) -> Check {
    const ADVICE: &str = "Send `X-Content-Type-Options: nosniff`.";
    let problems = match h.first("x-content-type-options") {
        Some(v) if v.eq_ignore_ascii_case("nosniff") => Vec::new(),
        Some(v) => vec![problem(
            SeverityLevel::Low,
            "not-nosniff",
            format!("X-Content-Type-Options is {v:?}, expected \"nosniff\""),
        )],
        None => vec![problem(SeverityLevel::Low, "missing", "X-Content-Type-Options is missing")],
    };
    Check::judged("content-type-options", WEIGHT_CONTENT_TYPE_OPTIONS, ADVICE, problems, "nosniff".into())
}

fn check_frame_ancestors(h: &Headers, policies: &[Csp]) -> Check {
    const ADVICE: &str = "Send `Content-Security-Policy: frame-ancestors 'none'` (or 'self'), or \
                          `X-Frame-Options: DENY` (or SAMEORIGIN).";
    let name = "frame-ancestors";
    let ancestors = policies.iter().flat_map(|p| &p.0).find(|(n, _)| n == "frame-ancestors");
    if let Some((_, sources)) = ancestors
        && !sources.iter().any(|s| WILDCARD_SOURCES.contains(&s.as_str()))
    {
        let why = format!("Content-Security-Policy frame-ancestors {}", sources.join(" "));
        return Check::judged(name, WEIGHT_FRAME_ANCESTORS, ADVICE, Vec::new(), why);
    }
    let xfo = h.first("x-frame-options");
    if let Some(v) = xfo
        && (v.eq_ignore_ascii_case("deny") || v.eq_ignore_ascii_case("sameorigin"))
    {
        let why = format!("X-Frame-Options {}", v.to_ascii_uppercase());
        return Check::judged(name, WEIGHT_FRAME_ANCESTORS, ADVICE, Vec::new(), why);
    }
    let (kind, message) = match (ancestors, xfo) {
        (Some(_), _) => ("any-origin", "Content-Security-Policy frame-ancestors allows any origin".to_string()),
        (None, Some(v)) => {
            ("invalid-x-frame-options", format!("X-Frame-Options is {v:?}, expected DENY or SAMEORIGIN"))
        }
        (None, None) => {
            ("missing", "neither Content-Security-Policy frame-ancestors nor X-Frame-Options is set".to_string())
        }
    };
    let p = vec![problem(SeverityLevel::Medium, kind, message)];
    Check::judged(name, WEIGHT_FRAME_ANCESTORS, ADVICE, p, String::new())
}

fn check_referrer_policy(h: &Headers) -> Check {
    const ADVICE: &str = "Send `Referrer-Policy: strict-origin-when-cross-origin` (or no-referrer).";
    let Some(value) = h.first("referrer-policy") else {
        let p = vec![problem(SeverityLevel::Low, "missing", "Referrer-Policy is missing")];
        return Check::judged("referrer-policy", WEIGHT_REFERRER_POLICY, ADVICE, p, String::new());
    };
    // Browsers use the last value they understand.
    let last = value.split(',').map(|v| v.trim().to_ascii_lowercase()).rfind(|v| !v.is_empty()).unwrap_or_default();
    let problems = if SAFE_REFERRER_POLICIES.contains(&last.as_str()) {
        Vec::new()
    } else {
        vec![problem(
            SeverityLevel::Low,
            "unsafe",
            format!("Referrer-Policy is {value:?}, expected one of {}", SAFE_REFERRER_POLICIES.join(", ")),
        )]
    };
    Check::judged("referrer-policy", WEIGHT_REFERRER_POLICY, ADVICE, problems, last)
}

fn check_cookies(h: &Headers) -> Check {
    const ADVICE: &str = "Set every cookie with `Secure; HttpOnly; SameSite=Lax` (or Strict); a cookie scripts must \
                          read may drop HttpOnly.";
    let mut problems = Vec::new();
    let mut count = 0;
    for cookie in h.all("set-cookie") {
        count += 1;
        let mut parts = cookie.split(';');
        let name = parts.next().unwrap_or_default().split('=').next().unwrap_or_default().trim().to_string();
        let mut secure = false;
        let mut http_only = false;
        let mut same_site = None;
        for attr in parts {
            let (key, value) = attr.split_once('=').unwrap_or((attr, ""));
            match key.trim().to_ascii_lowercase().as_str() {
                "secure" => secure = true,
                "httponly" => http_only = true,
                "samesite" => same_site = Some(value.trim().to_string()),
                _ => {}
            }
        }
        if !secure {
            problems.push(problem(
                SeverityLevel::High,
                format!("cookie-not-secure:{name}"),
                format!("cookie {name:?} is not Secure"),
            ));
        }
        if !http_only {
            problems.push(problem(
                SeverityLevel::Medium,
                format!("cookie-not-httponly:{name}"),
                format!("cookie {name:?} is not HttpOnly"),
            ));
        }
        match same_site {
            None => problems.push(problem(
                SeverityLevel::Low,
                format!("cookie-no-samesite:{name}"),
                format!("cookie {name:?} has no SameSite"),
            )),
            Some(v) if !["strict", "lax", "none"].contains(&v.to_ascii_lowercase().as_str()) => problems.push(problem(
                SeverityLevel::Low,
                format!("cookie-invalid-samesite:{name}"),
                format!("cookie {name:?} has SameSite={v}, expected Strict, Lax or None"),
            )),
            Some(_) => {}
        }
    }
    let why = if count == 0 {
        "no cookies set".to_string()
    } else {
        format!("{count} cookie{} Secure, HttpOnly and SameSite", if count == 1 { "" } else { "s" })
    };
    Check::judged("cookies", WEIGHT_COOKIES, ADVICE, problems, why)
}

fn check_server_disclosure(h: &Headers) -> Check {
    const ADVICE: &str = "Remove version numbers from `Server` (nginx: server_tokens off; Apache: ServerTokens Prod) \
                          and drop X-Powered-By and X-AspNet-Version headers.";
    let mut problems = Vec::new();
    if let Some(server) = h.first("server")
        && server.bytes().any(|b| b.is_ascii_digit())
    {
        problems.push(problem(SeverityLevel::Low, "server-version", format!("Server discloses a version: {server:?}")));
    }
    for name in DISCLOSING_HEADERS {
        if let Some(v) = h.first(name) {
            problems.push(problem(SeverityLevel::Low, name, format!("{} discloses {v:?}", canonical(name))));
        }
    }
    let why = "no server version disclosed".to_string();
    Check::judged("server-disclosure", WEIGHT_SERVER_DISCLOSURE, ADVICE, problems, why)
}

/// `x-powered-by` → `X-Powered-By`.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
        .replace("Aspnet", "AspNet")
        .replace("Aspnetmvc", "AspNetMvc")
}

/// The score (0 to 100) over the checks that apply; 100 when none apply.
fn score(checks: &[Check]) -> u32 {
    let applicable: u32 = checks.iter().filter(|c| c.status != Status::Skip).map(|c| c.weight).sum();
    let passed: u32 = checks.iter().filter(|c| c.status == Status::Pass).map(|c| c.weight).sum();
    if applicable == 0 { 100 } else { (f64::from(passed) * 100.0 / f64::from(applicable)).round() as u32 }
}

/// The letter grade of a score.
fn grade(score: u32) -> &'static str {
    match score {
        s if s >= GRADE_A => "A",
        s if s >= GRADE_B => "B",
        s if s >= GRADE_C => "C",
        s if s >= GRADE_D => "D",
        _ => "F",
    }
}

/// The result for one endpoint, as it appears in the output data.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Report {
    url: String,
    /// The URL that answered, after redirects; none when the request failed.
    final_url: Option<String>,
    status: Option<u16>,
    /// Why the endpoint could not be graded; none when it was.
    error: Option<String>,
    score: Option<u32>,
    grade: Option<&'static str>,
    checks: Vec<Check>,
}

fn report(url: &str, result: Result<HttpResponse, String>) -> Report {
    match result {
        Ok(resp) => {
            let https = resp.final_url.to_ascii_lowercase().starts_with("https://");
            let checks = grade_headers(&resp.headers, https);
            let s = score(&checks);
            Report {
                url: url.to_string(),
                final_url: Some(resp.final_url),
                status: Some(resp.status),
                error: None,
                score: Some(s),
                grade: Some(grade(s)),
                checks,
            }
        }
        Err(error) => Report {
            url: url.to_string(),
            final_url: None,
            status: None,
            error: Some(error),
            score: None,
            grade: None,
            checks: Vec::new(),
        },
    }
}

/// Every problem of `report` (one when it could not be fetched), each
/// fingerprinted by endpoint, check and kind.
fn problems(report: &Report) -> Vec<compare::Problem> {
    let url = report.url.as_str();
    if let Some(error) = &report.error {
        return vec![compare::Problem {
            fingerprint: compare::fingerprint(&[url, "fetch", "failed"]),
            severity: SeverityLevel::High,
            resource: url.to_string(),
            title: format!("{url}: security headers cannot be checked: {error}"),
            detail: format!("GET {url} failed, so its security headers were not graded: {error}"),
        }];
    }
    report
        .checks
        .iter()
        .flat_map(|c| {
            c.problems.iter().map(move |p| compare::Problem {
                fingerprint: compare::fingerprint(&[url, c.check, &p.kind]),
                severity: p.severity,
                resource: url.to_string(),
                title: format!("{url}: {}", p.message),
                detail: format!(
                    "Check {} failed on {url} (score {}, grade {}): {}. {}",
                    c.check,
                    report.score.unwrap_or_default(),
                    report.grade.unwrap_or_default(),
                    p.message,
                    c.advice
                ),
            })
        })
        .collect()
}

/// The state key: `state_key`, or `http-security:` and the endpoint URLs.
fn state_key(config: &Config) -> String {
    config.state_key.clone().unwrap_or_else(|| {
        let urls: Vec<String> = config.endpoints.iter().map(|e| e.url.clone()).collect();
        compare::state_key("http-security", &urls)
    })
}

/// The output data: the reports, a summary, and the problems against the
/// previous run (`counts`, `new`, `still_open`, `resolved`).
fn output_data(reports: &[Report], comparison: &compare::Comparison) -> Value {
    let graded: Vec<u32> = reports.iter().filter_map(|r| r.score).collect();
    let summary = json!({
        "total": reports.len(),
        "graded": graded.len(),
        "problems": comparison.new.len() + comparison.still_open.len(),
        "lowest_score": graded.iter().min(),
        "lowest_grade": graded.iter().min().map(|s| grade(*s)),
    });
    let mut data = comparison.data();
    data["endpoints"] = json!(reports);
    data["summary"] = summary;
    data
}

fn report_metrics(report: &Report) -> Vec<Metric> {
    report.score.map(|s| metric("http_security_score", f64::from(s), &[("url", &report.url)])).into_iter().collect()
}

impl Guest for HttpSecurity {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "http-security".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Grades the security headers of a list of HTTP(S) endpoints through the host's \
                          allow-listed HTTP client: HSTS (https only; max-age of 180 days or more and \
                          includeSubDomains), Content-Security-Policy (present, without 'unsafe-inline', \
                          'unsafe-eval' or wildcards), X-Content-Type-Options nosniff, frame-ancestors or \
                          X-Frame-Options, Referrer-Policy, every cookie's Secure/HttpOnly/SameSite, and server \
                          versions disclosed. Returns each check with pass/fail and why, a score out of 100 and a \
                          letter grade per endpoint, an http_security_score metric, and each problem compared with the \
                          previous run through the runbook state: new, still_open or resolved; only new problems \
                          become findings."
                .into(),
            config_schema: schema::to_text(&config_schema()),
            capabilities: vec!["http".into(), "state".into()],
        }
    }

    fn run(_ctx: StepContext, config: String, _input: String) -> Result<StepOutput, StepError> {
        let config = parse(&config)?;
        let reports: Vec<Report> = config
            .endpoints
            .iter()
            .map(|e| {
                let request = HttpRequest {
                    method: "GET".into(),
                    url: e.url.clone(),
                    headers: e.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    body: None,
                    timeout_ms: Some(e.timeout_ms),
                    follow_redirects: config.follow_redirects,
                };
                report(&e.url, host::http_fetch(&request))
            })
            .collect();
        let key = state_key(&config);
        let comparison = compare::compare(reports.iter().flat_map(problems).collect(), &compare::load(&key));
        compare::save(&key, &comparison.saved)?;
        let c = &comparison;
        log::info(&format!("{} new, {} still open, {} resolved", c.new.len(), c.still_open.len(), c.resolved.len()));
        let metrics = reports.iter().flat_map(report_metrics).collect();
        tend_plugin_sdk::output(&output_data(&reports, c), metrics, c.findings())
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
    let endpoint = schema::object(
        "An endpoint with request options.",
        json!({
            "url": url,
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Request headers, e.g. {\"cookie\": \"session=...\"} to grade a logged-in page.",
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
        "http-security",
        "Configuration of the http-security plugin.",
        json!({
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": {"oneOf": [url, endpoint]},
                "description": "Endpoints to grade, in order: a URL string or an object.",
            },
            "follow_redirects": {
                "type": "boolean",
                "default": true,
                "description": "Follow redirects (up to 10) and grade the final answer; every hop must be granted.",
            },
            "state_key": {
                "type": "string",
                "minLength": 1,
                "maxLength": compare::MAX_KEY_BYTES,
                "description": "Key of the runbook state holding the previous run's problems; by default \
                                `http-security:` followed by the endpoint URLs, so steps grading the same endpoints \
                                compare with each other.",
            },
        }),
        &["endpoints"],
    )
}

export!(HttpSecurity);

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Headers that pass every check.
    const GOOD: &[(&str, &str)] = &[
        ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
        ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("Set-Cookie", "sid=abc; Path=/; Secure; HttpOnly; SameSite=Lax"),
        ("Server", "nginx"),
    ];

    fn whys(checks: &[Check]) -> Vec<(&'static str, Status, String)> {
        checks.iter().map(|c| (c.check, c.status, c.why.clone())).collect()
    }

    fn invalid(text: &str) -> String {
        match parse(text) {
            Err(StepError::InvalidConfig(m)) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    #[test]
    fn headers_that_are_all_right_pass_every_check_with_grade_a() {
        let checks = grade_headers(&headers(GOOD), true);
        assert_eq!(
            whys(&checks),
            vec![
                ("hsts", Status::Pass, "max-age=31536000 with includeSubDomains".into()),
                ("csp", Status::Pass, "set with 2 directives, none unsafe".into()),
                ("content-type-options", Status::Pass, "nosniff".into()),
                ("frame-ancestors", Status::Pass, "Content-Security-Policy frame-ancestors 'none'".into()),
                ("referrer-policy", Status::Pass, "strict-origin-when-cross-origin".into()),
                ("cookies", Status::Pass, "1 cookie Secure, HttpOnly and SameSite".into()),
                ("server-disclosure", Status::Pass, "no server version disclosed".into()),
            ]
        );
        assert_eq!((score(&checks), grade(score(&checks))), (100, "A"));
    }

    #[test]
    fn missing_headers_fail_each_check_with_its_message() {
        let checks = grade_headers(&headers(&[("Server", "nginx/1.18.0"), ("X-Powered-By", "PHP/7.4.3")]), true);
        assert_eq!(
            whys(&checks),
            vec![
                ("hsts", Status::Fail, "Strict-Transport-Security is missing".into()),
                ("csp", Status::Fail, "Content-Security-Policy is missing".into()),
                ("content-type-options", Status::Fail, "X-Content-Type-Options is missing".into()),
                (
                    "frame-ancestors",
                    Status::Fail,
                    "neither Content-Security-Policy frame-ancestors nor X-Frame-Options is set".into()
                ),
                ("referrer-policy", Status::Fail, "Referrer-Policy is missing".into()),
                ("cookies", Status::Pass, "no cookies set".into()),
                (
                    "server-disclosure",
                    Status::Fail,
                    "Server discloses a version: \"nginx/1.18.0\"; X-Powered-By discloses \"PHP/7.4.3\"".into()
                ),
            ]
        );
        // Only the cookies check (15 of 100) passes.
        assert_eq!((score(&checks), grade(score(&checks))), (15, "F"));
    }

    #[test]
    fn weak_values_fail_with_what_is_wrong() {
        let checks = grade_headers(
            &headers(&[
                ("strict-transport-security", "max-age=86400"),
                ("content-security-policy", "default-src *; script-src 'self' 'unsafe-inline' 'unsafe-eval' https:"),
                ("x-content-type-options", "sniff"),
                ("x-frame-options", "ALLOW-FROM https://a"),
                ("referrer-policy", "unsafe-url"),
                ("set-cookie", "sid=secret-value; Path=/"),
                ("set-cookie", "theme=dark; Secure; HttpOnly; SameSite=Sometimes"),
                ("x-aspnet-version", "4.0.30319"),
            ]),
            true,
        );
        assert_eq!(
            whys(&checks),
            vec![
                (
                    "hsts",
                    Status::Fail,
                    "Strict-Transport-Security max-age is 86400 seconds, below 15552000 (180 days); \
                     Strict-Transport-Security lacks includeSubDomains"
                        .into()
                ),
                (
                    "csp",
                    Status::Fail,
                    "Content-Security-Policy allows 'unsafe-inline' in script-src; Content-Security-Policy allows \
                     'unsafe-eval' in script-src; Content-Security-Policy has wildcard sources: default-src *, \
                     script-src https:"
                        .into()
                ),
                (
                    "content-type-options",
                    Status::Fail,
                    "X-Content-Type-Options is \"sniff\", expected \"nosniff\"".into()
                ),
                (
                    "frame-ancestors",
                    Status::Fail,
                    "X-Frame-Options is \"ALLOW-FROM https://a\", expected DENY or SAMEORIGIN".into()
                ),
                (
                    "referrer-policy",
                    Status::Fail,
                    "Referrer-Policy is \"unsafe-url\", expected one of no-referrer, same-origin, strict-origin, \
                     strict-origin-when-cross-origin"
                        .into()
                ),
                (
                    "cookies",
                    Status::Fail,
                    "cookie \"sid\" is not Secure; cookie \"sid\" is not HttpOnly; cookie \"sid\" has no SameSite; \
                     cookie \"theme\" has SameSite=Sometimes, expected Strict, Lax or None"
                        .into()
                ),
                ("server-disclosure", Status::Fail, "X-AspNet-Version discloses \"4.0.30319\"".into()),
            ]
        );
        assert_eq!(score(&checks), 0);
        let r = Report {
            url: "https://x/".into(),
            final_url: Some("https://x/".into()),
            status: Some(200),
            error: None,
            score: Some(0),
            grade: Some("F"),
            checks,
        };
        let f = problems(&r);
        assert_eq!(f.len(), 13);
        assert!(f.iter().all(|f| !f.title.contains("secret-value") && !f.detail.contains("secret-value")));
        assert_eq!(
            f[0].title,
            "https://x/: Strict-Transport-Security max-age is 86400 seconds, below 15552000 (180 days)"
        );
        assert_eq!((f[0].severity, f[1].severity), (SeverityLevel::Medium, SeverityLevel::Low));
        assert_eq!(f[0].fingerprint, "https://x/|hsts|short-max-age");
        assert_eq!(f[3].fingerprint, "https://x/|csp|unsafe-eval");
        assert_eq!(f[8].fingerprint, "https://x/|cookies|cookie-not-secure:sid");
        assert!(f.iter().all(|f| !f.fingerprint.contains("86400")), "no header value in a fingerprint");
        assert_eq!(f[8].title, "https://x/: cookie \"sid\" is not Secure");
        assert_eq!(f[8].severity, SeverityLevel::High);
        assert!(f[8].detail.starts_with(
            "Check cookies failed on https://x/ (score 0, grade F): cookie \"sid\" is not Secure. Set every cookie"
        ));
        assert_eq!(f[0].resource, "https://x/");
    }

    #[test]
    fn hsts_is_skipped_over_plain_http_and_left_out_of_the_score() {
        let mut list = GOOD.to_vec();
        list.retain(|(k, _)| *k != "Strict-Transport-Security");
        let checks = grade_headers(&headers(&list), false);
        assert_eq!(checks[0].status, Status::Skip);
        assert_eq!(checks[0].why, "not applicable: the endpoint is not served over https");
        assert_eq!(score(&checks), 100);
        // Without X-Content-Type-Options (10 of the 80 that apply): 87.5 rounds to 88, a B.
        list.retain(|(k, _)| *k != "X-Content-Type-Options");
        let checks = grade_headers(&headers(&list), false);
        assert_eq!((score(&checks), grade(score(&checks))), (88, "B"));
    }

    #[test]
    fn x_frame_options_stands_in_for_frame_ancestors_and_a_wildcard_ancestor_fails() {
        let h = headers(&[("X-Frame-Options", "sameorigin")]);
        assert_eq!(check_frame_ancestors(&Headers::new(&h), &[]).why, "X-Frame-Options SAMEORIGIN");
        let csp = [Csp::parse("frame-ancestors *")];
        let c = check_frame_ancestors(&Headers::new(&[]), &csp);
        assert_eq!(c.why, "Content-Security-Policy frame-ancestors allows any origin");
        assert_eq!(c.status, Status::Fail);
    }

    #[test]
    fn grades_follow_the_documented_thresholds() {
        assert_eq!(
            [100, 90, 89, 80, 79, 70, 69, 60, 59, 0].map(grade),
            ["A", "A", "B", "B", "C", "C", "D", "D", "F", "F"]
        );
        let total = WEIGHT_HSTS
            + WEIGHT_CSP
            + WEIGHT_CONTENT_TYPE_OPTIONS
            + WEIGHT_FRAME_ANCESTORS
            + WEIGHT_REFERRER_POLICY
            + WEIGHT_COOKIES
            + WEIGHT_SERVER_DISCLOSURE;
        assert_eq!(total, 100);
    }

    #[test]
    fn an_endpoint_that_cannot_be_fetched_is_one_high_finding() {
        let r =
            report("http://127.0.0.1:9/", Err("hosts: 127.0.0.1:9 is not granted to this step (granted: none)".into()));
        assert_eq!((r.score, r.grade), (None, None));
        let f = problems(&r);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].title,
            "http://127.0.0.1:9/: security headers cannot be checked: hosts: 127.0.0.1:9 is not granted to this step \
             (granted: none)"
        );
        assert_eq!(
            (f[0].severity, f[0].fingerprint.as_str()),
            (SeverityLevel::High, "http://127.0.0.1:9/|fetch|failed")
        );
    }

    fn graded(url: &str, list: &[(&str, &str)]) -> Report {
        let resp = HttpResponse {
            status: 200,
            headers: headers(list),
            body: Vec::new(),
            truncated: false,
            final_url: url.into(),
        };
        report(url, Ok(resp))
    }

    #[test]
    fn problems_are_new_then_still_open_then_resolved() {
        let url = "https://x/";
        let bad = [("Content-Security-Policy", "default-src 'self'"), ("Server", "nginx/1.18.0")];
        let reports = [graded(url, &bad)];
        let first = compare::compare(problems(&reports[0]), &compare::Saved::default());
        let data = output_data(&reports, &first);
        assert_eq!(data["counts"], json!({"new": 5, "still_open": 0, "resolved": 0, "open": 5}));
        assert_eq!(data["summary"]["problems"], 5);
        assert_eq!(data["endpoints"][0]["grade"], "F");
        assert_eq!(first.findings().len(), 5);
        assert_eq!(first.findings()[0].title, "https://x/: Strict-Transport-Security is missing");

        // The version changed, still disclosed: the same problem, not raised again.
        let second = compare::compare(problems(&graded(url, &[bad[0], ("Server", "nginx/1.20.1")])), &first.saved);
        assert_eq!(output_data(&[], &second)["counts"], json!({"new": 0, "still_open": 5, "resolved": 0, "open": 5}));
        assert!(second.findings().is_empty());

        let mut good = GOOD.to_vec();
        good[4] = ("Set-Cookie", "sid=abc; Secure; HttpOnly");
        let third = compare::compare(problems(&graded(url, &good)), &second.saved);
        let data = output_data(&[], &third);
        assert_eq!(data["counts"], json!({"new": 1, "still_open": 0, "resolved": 5, "open": 1}));
        assert_eq!(data["new"][0]["title"], "https://x/: cookie \"sid\" has no SameSite");
        assert_eq!(data["resolved"][4]["title"], "https://x/: Server discloses a version: \"nginx/1.20.1\"");
        assert_eq!(data["resolved"][4]["fingerprint"], "https://x/|server-disclosure|server-version");
        assert_eq!(third.findings().len(), 1);
    }

    #[test]
    fn the_default_state_key_names_the_endpoints() {
        let c = parse(r#"{"endpoints": ["https://a/", {"url": "https://b/"}]}"#).unwrap();
        assert_eq!(state_key(&c), "http-security:https://a/,https://b/");
        assert_eq!(state_key(&parse(r#"{"endpoints": ["https://a/"], "state_key": "k"}"#).unwrap()), "k");
    }

    #[test]
    fn bad_config_names_the_field() {
        assert_eq!(invalid("{}"), "field `endpoints`: is required but missing");
        assert_eq!(
            invalid(r#"{"endpoints": []}"#),
            "field `endpoints`: expected at least one endpoint, found an empty list"
        );
        assert_eq!(
            invalid(r#"{"endpoints": ["ftp://x/"]}"#),
            "field `endpoints[0].url`: expected an absolute http or https URL, found \"ftp://x/\""
        );
        assert_eq!(
            invalid(r#"{"endpoints": [{"url": "https://x/", "timeout_ms": 0}]}"#),
            "field `endpoints[0].timeout_ms`: expected a positive number of milliseconds, found 0"
        );
        assert!(
            invalid(r#"{"endpoints": [3]}"#).starts_with("field `endpoints[0]`: expected a URL string or an object")
        );
    }
}
