//! `tls-check`: certificate expiry, chain and hostname validity, protocol.
//!
//! For each configured `host:port` it asks the host for a TLS handshake
//! (`host.tls-inspect`; the step needs a `hosts` grant for each target) and
//! reports the days to expiry of the leaf certificate, whether the chain is
//! trusted (webpki roots plus the target's `trusted_ca_pem`), whether the
//! certificate is valid for the server name, and the protocol version.
//!
//! Findings, the target as resource:
//! - certificate expired: critical;
//! - expiring within `critical_days` ([`DEFAULT_CRITICAL_DAYS`]): critical;
//!   within `warn_days` ([`DEFAULT_WARN_DAYS`]): high;
//! - self-signed and not trusted, or another untrusted chain: high (not
//!   reported for an expired certificate, whose expiry is the reason);
//! - not valid for the server name: high;
//! - protocol below TLS 1.2: high (the host speaks TLS 1.2 and 1.3 only, so
//!   a server limited to older versions fails the handshake; that failure is
//!   reported as this finding);
//! - the handshake cannot be made (refused, not granted, timeout): high.
//!
//! Each problem is fingerprinted by target, server name and kind (never a
//! date or a certificate's content) and compared with the previous run's
//! through the runbook state (`state_key`, see [`compare`]): it is `new`,
//! `still_open` or — gone since — `resolved`; only new ones become
//! findings. A certificate crossing from `warn_days` into `critical_days`
//! is a new (critical) problem.
//!
//! It must not make any call other than one `tls-inspect` per target (and
//! the state reads and writes), and reads no secrets, files or environment.

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};
use tend_plugin_sdk::{
    Guest, Metric, PluginInfo, SeverityLevel, StepContext, StepError, StepOutput, TlsReport, TlsRequest, compare,
    export, host, invalid_config, log, metric, parse_config, round, schema,
};

/// The plugin; see the crate docs.
struct TlsCheck;

/// Port used when a target names none: 443.
const DEFAULT_PORT: u16 = 443;
/// Default days to expiry under which a certificate gets a high finding: 30.
const DEFAULT_WARN_DAYS: u32 = 30;
/// Default days to expiry under which a certificate gets a critical finding: 7.
const DEFAULT_CRITICAL_DAYS: u32 = 7;
/// Default timeout of one handshake: 10 seconds.
const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// Seconds in a day.
const DAY: i64 = 86_400;

fn default_port() -> u16 {
    DEFAULT_PORT
}

fn default_timeout_ms() -> u32 {
    DEFAULT_TIMEOUT_MS
}

fn default_warn_days() -> u32 {
    DEFAULT_WARN_DAYS
}

fn default_critical_days() -> u32 {
    DEFAULT_CRITICAL_DAYS
}

/// One target: `"host:port"` (or `"host"`, port 443) or an object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    /// Host name or IP address.
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    /// Name checked against the certificate (and sent as SNI); by default `host`.
    #[serde(default)]
    server_name: Option<String>,
    /// Extra trusted root certificates, PEM (a private CA).
    #[serde(default)]
    trusted_ca_pem: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u32,
}

impl Target {
    /// `host:port` as the target is shown (`[::1]:443` for IPv6).
    fn label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_address(text: &str) -> Result<(String, u16), String> {
    let expected = || format!("expected \"host:port\" such as \"example.com:443\", found {text:?}");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(expected)?;
        (h, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(expected()),
            None => (text, None),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || "/?#@".contains(c)) {
        return Err(expected());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(expected)?,
    };
    Ok((host.to_string(), port))
}

/// Wraps [`Target`] so a target can be a string or an object.
#[derive(Debug)]
struct TargetEntry(Result<Target, String>);

impl<'de> Deserialize<'de> for TargetEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = TargetEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a \"host:port\" string or an object {host, port, server_name, trusted_ca_pem, timeout_ms}")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<TargetEntry, E> {
                Ok(TargetEntry(parse_address(text).map(|(host, port)| Target {
                    host,
                    port,
                    server_name: None,
                    trusted_ca_pem: None,
                    timeout_ms: DEFAULT_TIMEOUT_MS,
                })))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TargetEntry, A::Error> {
                Target::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| TargetEntry(Ok(t)))
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    targets: Vec<TargetEntry>,
    #[serde(default = "default_warn_days")]
    warn_days: u32,
    #[serde(default = "default_critical_days")]
    critical_days: u32,
    #[serde(default)]
    state_key: Option<String>,
}

/// The config, parsed and checked.
#[derive(Debug)]
struct Config {
    targets: Vec<Target>,
    warn_days: u32,
    critical_days: u32,
    /// Key of the runbook state holding the previous run's problems.
    state_key: Option<String>,
}

fn parse(text: &str) -> Result<Config, StepError> {
    let raw: RawConfig = parse_config(text)?;
    if raw.targets.is_empty() {
        return Err(invalid_config("field `targets`: expected at least one target, found an empty list"));
    }
    let mut targets = Vec::new();
    for (i, TargetEntry(t)) in raw.targets.into_iter().enumerate() {
        let t = t.map_err(|e| invalid_config(format!("field `targets[{i}]`: {e}")))?;
        if t.host.trim().is_empty() {
            return Err(invalid_config(format!(
                "field `targets[{i}].host`: expected a host name or IP address, found \"\""
            )));
        }
        if t.timeout_ms == 0 {
            return Err(invalid_config(format!(
                "field `targets[{i}].timeout_ms`: expected a positive number of milliseconds, found 0"
            )));
        }
        if let Some(pem) = &t.trusted_ca_pem
            && !pem.contains("-----BEGIN CERTIFICATE-----")
        {
            return Err(invalid_config(format!(
                "field `targets[{i}].trusted_ca_pem`: expected PEM text with a \"-----BEGIN CERTIFICATE-----\" block"
            )));
        }
        targets.push(t);
    }
    if raw.critical_days > raw.warn_days {
        return Err(invalid_config(format!(
            "field `critical_days`: expected at most warn_days ({}), found {}",
            raw.warn_days, raw.critical_days
        )));
    }
    Ok(Config { targets, warn_days: raw.warn_days, critical_days: raw.critical_days, state_key: raw.state_key })
}

/// The result for one target, as it appears in the output data.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Check {
    target: String,
    server_name: String,
    /// True when the handshake worked and nothing was found.
    ok: bool,
    /// Why the handshake could not be made; none when it was.
    error: Option<String>,
    protocol_version: Option<String>,
    cipher_suite: Option<String>,
    subject: Option<String>,
    issuer: Option<String>,
    subject_alt_names: Vec<String>,
    /// End of validity of the leaf, seconds since the Unix epoch.
    not_after: Option<i64>,
    /// Days until the leaf expires (negative once expired), two decimals.
    days_to_expiry: Option<f64>,
    chain_length: usize,
    chain_valid: Option<bool>,
    hostname_valid: Option<bool>,
    self_signed: Option<bool>,
    verify_error: Option<String>,
    /// Severity, kind (stable across runs: with the target, the problem's
    /// fingerprint) and message of each problem.
    #[serde(skip)]
    problems: Vec<(SeverityLevel, &'static str, String)>,
}

/// Judges one handshake's outcome at `now` (Unix seconds).
fn judge(target: &Target, result: Result<TlsReport, String>, now: i64, config: &Config) -> Check {
    let server_name = target.server_name.clone().unwrap_or_else(|| target.host.clone());
    let mut check = Check {
        target: target.label(),
        server_name,
        ok: false,
        error: None,
        protocol_version: None,
        cipher_suite: None,
        subject: None,
        issuer: None,
        subject_alt_names: Vec::new(),
        not_after: None,
        days_to_expiry: None,
        chain_length: 0,
        chain_valid: None,
        hostname_valid: None,
        self_signed: None,
        verify_error: None,
        problems: Vec::new(),
    };
    let report = match result {
        Ok(r) => r,
        Err(error) => {
            let (kind, message) = if is_old_protocol(&error) {
                ("old-protocol", format!("protocol below TLS 1.2: the server offers no TLS 1.2 or 1.3 ({error})"))
            } else {
                ("handshake-failed", format!("TLS check failed: {error}"))
            };
            check.problems.push((SeverityLevel::High, kind, message));
            check.error = Some(error);
            return check;
        }
    };
    check.server_name = report.server_name.clone();
    check.chain_length = report.chain.len();
    check.chain_valid = Some(report.chain_valid);
    check.hostname_valid = Some(report.hostname_valid);
    check.verify_error = report.verify_error.clone();
    if !matches!(report.protocol_version.as_str(), "TLSv1.2" | "TLSv1.3") {
        check.problems.push((
            SeverityLevel::High,
            "old-protocol",
            format!("protocol {} is below TLS 1.2", report.protocol_version),
        ));
    }
    check.protocol_version = Some(report.protocol_version);
    check.cipher_suite = Some(report.cipher_suite);
    let Some(leaf) = report.chain.first() else {
        check.problems.push((SeverityLevel::High, "no-certificate", "the server presented no certificate".into()));
        return check;
    };
    check.subject = Some(leaf.subject.clone());
    check.issuer = Some(leaf.issuer.clone());
    check.subject_alt_names = leaf.subject_alt_names.clone();
    check.not_after = Some(leaf.not_after);
    check.self_signed = Some(leaf.self_signed);
    let left = leaf.not_after - now;
    check.days_to_expiry = Some(round(left as f64 / DAY as f64, 2));
    let on = format_utc(leaf.not_after);
    let expired = left < 0;
    if expired {
        let ago = (-left) / DAY;
        check.problems.push((
            SeverityLevel::Critical,
            "expired",
            format!("certificate expired {} ago, on {on}", days(ago)),
        ));
    } else if left < i64::from(config.critical_days) * DAY {
        let msg = format!(
            "certificate expires in {}, on {on} (critical under {} days)",
            days(left / DAY),
            config.critical_days
        );
        check.problems.push((SeverityLevel::Critical, "expiring-critical", msg));
    } else if left < i64::from(config.warn_days) * DAY {
        let msg =
            format!("certificate expires in {}, on {on} (warning under {} days)", days(left / DAY), config.warn_days);
        check.problems.push((SeverityLevel::High, "expiring", msg));
    }
    let why = report.verify_error.as_deref().unwrap_or("unknown reason");
    // An expired certificate fails verification for that reason alone; the
    // expiry finding says so, and whether it would be trusted otherwise is
    // unknown.
    if !report.chain_valid && !expired && leaf.self_signed {
        check.problems.push((
            SeverityLevel::High,
            "self-signed",
            format!("certificate is self-signed and not trusted ({})", leaf.subject),
        ));
    } else if !report.chain_valid && !expired {
        check.problems.push((
            SeverityLevel::High,
            "untrusted-chain",
            format!("certificate chain is not trusted: {why}"),
        ));
    }
    if !report.hostname_valid {
        let names = if leaf.subject_alt_names.is_empty() { "none".into() } else { leaf.subject_alt_names.join(", ") };
        check.problems.push((
            SeverityLevel::High,
            "hostname-mismatch",
            format!("certificate is not valid for {} (it names {names})", check.server_name),
        ));
    }
    check.ok = check.problems.is_empty();
    check
}

/// True when a handshake error says the server speaks only TLS below 1.2.
fn is_old_protocol(error: &str) -> bool {
    ["ServerDoesNotSupportTls12Or13", "ProtocolVersion", "protocol version"].iter().any(|s| error.contains(s))
}

/// "1 day", "3 days".
fn days(n: i64) -> String {
    if n == 1 { "1 day".into() } else { format!("{n} days") }
}

/// Unix seconds as "2026-12-06 13:05:00 UTC".
fn format_utc(secs: i64) -> String {
    let (day, rem) = (secs.div_euclid(DAY), secs.rem_euclid(DAY));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Every problem of `check`, fingerprinted by target, server name and kind.
fn problems(check: &Check) -> Vec<compare::Problem> {
    let t = check.target.as_str();
    check
        .problems
        .iter()
        .map(|(severity, kind, message)| {
            let mut detail = format!("TLS check of {t} (server name {}): {message}.", check.server_name);
            if let Some(v) = &check.verify_error {
                detail.push_str(&format!(" Verification: {v}."));
            }
            if let (Some(p), Some(c)) = (&check.protocol_version, &check.cipher_suite) {
                detail.push_str(&format!(" Negotiated {p} with {c}."));
            }
            compare::Problem {
                fingerprint: compare::fingerprint(&[t, &check.server_name, kind]),
                severity: *severity,
                resource: t.to_string(),
                title: format!("{t}: {message}"),
                detail,
            }
        })
        .collect()
}

/// The state key: `state_key`, or `tls-check:` and the targets.
fn state_key(config: &Config) -> String {
    config.state_key.clone().unwrap_or_else(|| {
        let targets: Vec<String> = config.targets.iter().map(Target::label).collect();
        compare::state_key("tls-check", &targets)
    })
}

/// The output data: the checks, a summary, and the problems against the
/// previous run (`counts`, `new`, `still_open`, `resolved`).
fn output_data(checks: &[Check], comparison: &compare::Comparison) -> Value {
    let summary = json!({
        "total": checks.len(),
        "ok": checks.iter().filter(|c| c.ok).count(),
        "problems": comparison.new.len() + comparison.still_open.len(),
        "min_days_to_expiry": checks.iter().filter_map(|c| c.days_to_expiry).reduce(f64::min),
    });
    let mut data = comparison.data();
    data["targets"] = json!(checks);
    data["summary"] = summary;
    data
}

fn check_metrics(check: &Check) -> Vec<Metric> {
    let labels = [("target", check.target.as_str())];
    let mut metrics = vec![metric("tls_ok", if check.ok { 1.0 } else { 0.0 }, &labels)];
    if let Some(days) = check.days_to_expiry {
        metrics.push(metric("tls_days_to_expiry", days, &labels));
    }
    metrics
}

impl Guest for TlsCheck {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "tls-check".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Checks the TLS certificates of a list of host:port targets through the host's \
                          tls-inspect capability (granted per host like HTTP): days to expiry, whether the chain \
                          is trusted (webpki roots plus an optional private CA), whether the certificate is valid \
                          for the server name, and the protocol version. Findings: expired (critical), expiring \
                          within critical_days (critical) or warn_days (high), self-signed or untrusted chain, \
                          hostname mismatch, protocol below TLS 1.2 and failed handshakes (high), each compared with \
                          the previous run through the runbook state (new, still_open or resolved; only new ones \
                          become findings). Metrics tls_days_to_expiry and tls_ok per target."
                .into(),
            config_schema: schema::to_text(&config_schema()),
            capabilities: vec!["tls".into(), "state".into()],
        }
    }

    fn run(_ctx: StepContext, config: String, _input: String) -> Result<StepOutput, StepError> {
        let config = parse(&config)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default();
        let checks: Vec<Check> = config
            .targets
            .iter()
            .map(|t| {
                let request = TlsRequest {
                    host: t.host.clone(),
                    port: t.port,
                    server_name: t.server_name.clone(),
                    trusted_ca_pem: t.trusted_ca_pem.clone(),
                    timeout_ms: Some(t.timeout_ms),
                };
                judge(t, host::tls_inspect(&request), now, &config)
            })
            .collect();
        let key = state_key(&config);
        let comparison = compare::compare(checks.iter().flat_map(problems).collect(), &compare::load(&key));
        compare::save(&key, &comparison.saved)?;
        let c = &comparison;
        log::info(&format!("{} new, {} still open, {} resolved", c.new.len(), c.still_open.len(), c.resolved.len()));
        let metrics = checks.iter().flat_map(check_metrics).collect();
        tend_plugin_sdk::output(&output_data(&checks, c), metrics, c.findings())
    }
}

/// JSON Schema of the config.
fn config_schema() -> Value {
    let address = json!({
        "type": "string",
        "minLength": 1,
        "description": "\"host:port\" (or \"host\" for port 443); the host must be in the step's `hosts` grant.",
    });
    let target = schema::object(
        "A target with options.",
        json!({
            "host": {"type": "string", "minLength": 1, "description": "Host name or IP address."},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": DEFAULT_PORT, "description": "TCP port."},
            "server_name": {"type": "string", "description": "Name checked against the certificate and sent as SNI; by default host."},
            "trusted_ca_pem": {"type": "string", "description": "Extra trusted root certificates as PEM text (a private CA)."},
            "timeout_ms": {
                "type": "integer",
                "minimum": 1,
                "maximum": u32::MAX,
                "default": DEFAULT_TIMEOUT_MS,
                "description": "Timeout of the connection and handshake in milliseconds.",
            },
        }),
        &["host"],
    );
    schema::config(
        "tls-check",
        "Configuration of the tls-check plugin.",
        json!({
            "targets": {
                "type": "array",
                "minItems": 1,
                "items": {"oneOf": [address, target]},
                "description": "Targets to check, in order.",
            },
            "warn_days": {
                "type": "integer",
                "minimum": 0,
                "default": DEFAULT_WARN_DAYS,
                "description": "A certificate expiring within this many days gets a high finding.",
            },
            "critical_days": {
                "type": "integer",
                "minimum": 0,
                "default": DEFAULT_CRITICAL_DAYS,
                "description": "A certificate expiring within this many days gets a critical finding.",
            },
            "state_key": {
                "type": "string",
                "minLength": 1,
                "maxLength": compare::MAX_KEY_BYTES,
                "description": "Key of the runbook state holding the previous run's problems; by default `tls-check:` \
                                followed by the targets, so steps checking the same targets compare with each other.",
            },
        }),
        &["targets"],
    )
}

export!(TlsCheck);

#[cfg(test)]
mod tests {
    use super::*;
    use tend_plugin_sdk::{Severity, TlsCertificate};

    const NOW: i64 = 1_796_558_400; // 2026-12-06 12:00:00 UTC

    fn config() -> Config {
        parse(r#"{"targets": ["127.0.0.1:8443"]}"#).unwrap()
    }

    fn cert(not_after: i64, self_signed: bool) -> TlsCertificate {
        TlsCertificate {
            subject: "CN=localhost".into(),
            issuer: if self_signed { "CN=localhost".into() } else { "CN=Test CA".into() },
            serial: "01".into(),
            not_before: NOW - 10 * DAY,
            not_after,
            subject_alt_names: vec!["localhost".into()],
            self_signed,
            sha256_fingerprint: "00".into(),
        }
    }

    fn report(leaf: TlsCertificate, chain_valid: bool, hostname_valid: bool, error: Option<&str>) -> TlsReport {
        TlsReport {
            protocol_version: "TLSv1.3".into(),
            cipher_suite: "TLS13_AES_256_GCM_SHA384".into(),
            server_name: "localhost".into(),
            chain: vec![leaf],
            chain_valid,
            hostname_valid,
            verify_error: error.map(str::to_string),
        }
    }

    fn titles(check: &Check) -> Vec<(Severity, String)> {
        problems(check).into_iter().map(|p| (Severity::from(p.severity), p.title)).collect()
    }

    #[test]
    fn problems_are_new_then_still_open_then_resolved() {
        let c = config();
        let at = |days_left: i64, now: i64| {
            judge(&c.targets[0], Ok(report(cert(NOW + days_left * DAY, false), true, true, None)), now, &c)
        };
        let first = compare::compare(problems(&at(20, NOW)), &compare::Saved::default());
        let data = output_data(&[at(20, NOW)], &first);
        assert_eq!(data["counts"], json!({"new": 1, "still_open": 0, "resolved": 0, "open": 1}));
        assert_eq!(data["new"][0]["fingerprint"], "127.0.0.1:8443|localhost|expiring");
        assert_eq!((data["summary"]["problems"].clone(), data["targets"][0]["ok"].clone()), (json!(1), json!(false)));
        assert_eq!(first.findings().len(), 1);

        // A day later: fewer days left, the same problem, not raised again.
        let second = compare::compare(problems(&at(20, NOW + DAY)), &first.saved);
        assert_eq!((second.new.len(), second.still_open.len(), second.resolved.len()), (0, 1, 0));
        assert!(second.still_open[0].title.contains("expires in 19 days"), "{:?}", second.still_open);
        assert!(second.findings().is_empty());

        // Within critical_days: a new, critical problem; the warning is resolved.
        let third = compare::compare(problems(&at(20, NOW + 15 * DAY)), &second.saved);
        assert_eq!((third.new.len(), third.still_open.len(), third.resolved.len()), (1, 0, 1));
        assert_eq!(third.new[0].severity, SeverityLevel::Critical);
        assert_eq!(third.resolved[0].fingerprint, "127.0.0.1:8443|localhost|expiring");

        // Renewed: nothing open, the critical one resolved.
        let fourth = compare::compare(problems(&at(400, NOW)), &third.saved);
        assert_eq!(output_data(&[], &fourth)["counts"], json!({"new": 0, "still_open": 0, "resolved": 1, "open": 0}));
    }

    #[test]
    fn the_default_state_key_names_the_targets() {
        assert_eq!(state_key(&parse(r#"{"targets": ["a:1", "[::1]"]}"#).unwrap()), "tls-check:a:1,[::1]:443");
        assert_eq!(state_key(&parse(r#"{"targets": ["a:1"], "state_key": "k"}"#).unwrap()), "k");
    }

    fn invalid(text: &str) -> String {
        match parse(text) {
            Err(StepError::InvalidConfig(m)) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_certificate_far_from_expiry_is_ok() {
        let c = config();
        let check = judge(&c.targets[0], Ok(report(cert(NOW + 90 * DAY, false), true, true, None)), NOW, &c);
        assert!(check.ok);
        assert_eq!(check.days_to_expiry, Some(90.0));
        assert!(titles(&check).is_empty());
        assert_eq!(check_metrics(&check).len(), 2);
    }

    #[test]
    fn an_expired_certificate_is_critical_and_names_the_day() {
        let c = config();
        let r = report(cert(NOW - 10 * DAY - 3600, false), false, true, Some("invalid peer certificate: Expired"));
        let check = judge(&c.targets[0], Ok(r), NOW, &c);
        assert_eq!(
            titles(&check),
            vec![(
                Severity::Critical,
                "127.0.0.1:8443: certificate expired 10 days ago, on 2026-11-26 11:00:00 UTC".into()
            )]
        );
        assert_eq!(check.days_to_expiry, Some(-10.04));
    }

    #[test]
    fn expiry_within_warn_days_is_high_and_within_critical_days_critical() {
        let c = config();
        let check = judge(&c.targets[0], Ok(report(cert(NOW + 20 * DAY + 60, false), true, true, None)), NOW, &c);
        assert_eq!(
            titles(&check),
            vec![(
                Severity::High,
                "127.0.0.1:8443: certificate expires in 20 days, on 2026-12-26 12:01:00 UTC (warning under 30 days)"
                    .into()
            )]
        );
        let check = judge(&c.targets[0], Ok(report(cert(NOW + DAY + 60, false), true, true, None)), NOW, &c);
        assert_eq!(
            titles(&check),
            vec![(
                Severity::Critical,
                "127.0.0.1:8443: certificate expires in 1 day, on 2026-12-07 12:01:00 UTC (critical under 7 days)"
                    .into()
            )]
        );
    }

    #[test]
    fn self_signed_untrusted_and_wrong_name_are_high() {
        let c = config();
        let r = report(cert(NOW + 90 * DAY, true), false, true, Some("invalid peer certificate: UnknownIssuer"));
        let check = judge(&c.targets[0], Ok(r), NOW, &c);
        assert_eq!(
            titles(&check),
            vec![(Severity::High, "127.0.0.1:8443: certificate is self-signed and not trusted (CN=localhost)".into())]
        );
        let r = report(cert(NOW + 90 * DAY, false), false, true, Some("invalid peer certificate: UnknownIssuer"));
        let check = judge(&c.targets[0], Ok(r), NOW, &c);
        assert_eq!(
            titles(&check),
            vec![(
                Severity::High,
                "127.0.0.1:8443: certificate chain is not trusted: invalid peer certificate: UnknownIssuer".into()
            )]
        );
        let r = report(cert(NOW + 90 * DAY, false), true, false, Some("certificate not valid for name"));
        let check = judge(&c.targets[0], Ok(r), NOW, &c);
        assert_eq!(
            titles(&check),
            vec![(
                Severity::High,
                "127.0.0.1:8443: certificate is not valid for localhost (it names localhost)".into()
            )]
        );
    }

    #[test]
    fn an_old_protocol_and_a_failed_handshake_are_high() {
        let c = config();
        let mut r = report(cert(NOW + 90 * DAY, false), true, true, None);
        r.protocol_version = "TLSv1_1".into();
        let check = judge(&c.targets[0], Ok(r), NOW, &c);
        assert_eq!(titles(&check), vec![(Severity::High, "127.0.0.1:8443: protocol TLSv1_1 is below TLS 1.2".into())]);
        let e = "TLS handshake with 127.0.0.1:8443 failed: received fatal alert: ProtocolVersion";
        let check = judge(&c.targets[0], Err(e.into()), NOW, &c);
        assert_eq!(
            titles(&check),
            vec![(
                Severity::High,
                format!("127.0.0.1:8443: protocol below TLS 1.2: the server offers no TLS 1.2 or 1.3 ({e})")
            )]
        );
        let e = "hosts: 127.0.0.1:8443 is not granted to this step (granted: none)";
        let check = judge(&c.targets[0], Err(e.into()), NOW, &c);
        assert_eq!(titles(&check), vec![(Severity::High, format!("127.0.0.1:8443: TLS check failed: {e}"))]);
        assert_eq!(check_metrics(&check).len(), 1);
    }

    #[test]
    fn targets_are_addresses_or_objects() {
        let c = parse(r#"{"targets": ["example.com", "[::1]:8443", {"host": "127.0.0.1", "port": 9443, "server_name": "localhost"}]}"#)
            .unwrap();
        assert_eq!(
            c.targets.iter().map(Target::label).collect::<Vec<_>>(),
            ["example.com:443", "[::1]:8443", "127.0.0.1:9443"]
        );
        assert_eq!((c.warn_days, c.critical_days), (30, 7));
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn bad_config_names_the_field() {
        assert_eq!(invalid("{}"), "field `targets`: is required but missing");
        assert_eq!(invalid(r#"{"targets": []}"#), "field `targets`: expected at least one target, found an empty list");
        assert_eq!(
            invalid(r#"{"targets": ["x:99999"]}"#),
            "field `targets[0]`: expected \"host:port\" such as \"example.com:443\", found \"x:99999\""
        );
        assert_eq!(
            invalid(r#"{"targets": [{"host": "x", "trusted_ca_pem": "nope"}]}"#),
            "field `targets[0].trusted_ca_pem`: expected PEM text with a \"-----BEGIN CERTIFICATE-----\" block"
        );
        assert_eq!(
            invalid(r#"{"targets": ["x"], "warn_days": 5}"#),
            "field `critical_days`: expected at most warn_days (5), found 7"
        );
        assert!(
            invalid(r#"{"targets": [{"hostname": "x"}]}"#).starts_with("field `targets[0].hostname`: unknown field")
        );
    }
}
