//! End-to-end tests of the `http-security` and `tls-check` plugins and the
//! host's `tls-inspect` capability: the real `tend` binary (`tend plugins
//! call` and one runbook) against loopback HTTP servers with and without the
//! security headers and loopback TLS servers whose certificates (expired,
//! self-signed, signed by a CA made here) are generated at test time. Only
//! 127.0.0.1 is contacted.

mod loopback;

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

fn tend(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(dir)
        .env("TEND_CACHE_DIR", std::env::temp_dir().join("tend-test-cache"))
        .env("TEND_PLUGINS", dir.join("plugins"))
        .env("TEND_DB", dir.join("tend.db"))
        .env("TEND_RUNBOOKS", dir)
        .env_remove("TEND_LOG")
        .output()
        .expect("tend runs")
}

/// `tend plugins call <plugin> --config <config> --record <flags...>`: the
/// call's record (outcome, output, denials).
fn call(plugin: &str, config: &Value, flags: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let config = config.to_string();
    let mut args = vec!["plugins", "call", plugin, "--config", &config, "--record"];
    args.extend_from_slice(flags);
    let out = tend(&args, dir.path());
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The (severity, title) of every finding of a call's record.
fn findings(record: &Value) -> Vec<(String, String)> {
    record["output"]["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings in {record}"))
        .iter()
        .map(|f| (f["severity"].as_str().unwrap().to_string(), f["title"].as_str().unwrap().to_string()))
        .collect()
}

fn pair(severity: &str, title: String) -> (String, String) {
    (severity.to_string(), title)
}

/// Headers an endpoint should send; every check passes on them.
const GOOD_HEADERS: &str = "strict-transport-security: max-age=31536000; includeSubDomains\r\n\
    content-security-policy: default-src 'self'; frame-ancestors 'none'\r\n\
    x-content-type-options: nosniff\r\n\
    referrer-policy: no-referrer\r\n\
    set-cookie: sid=abc; Path=/; Secure; HttpOnly; SameSite=Strict\r\n\
    server: nginx\r\n";

/// Headers of a careless endpoint: a version disclosed, a bare cookie.
const BAD_HEADERS: &str =
    "server: nginx/1.18.0\r\nx-powered-by: PHP/7.4.3\r\nset-cookie: sid=s3cr3t-session; Path=/\r\n";

#[test]
fn an_endpoint_missing_the_security_headers_gets_a_finding_for_each_problem() {
    let addr = loopback::with_headers(BAD_HEADERS);
    let url = format!("http://{addr}/");
    let record = call("http-security", &json!({"endpoints": [url]}), &["--allow-host", &addr]);
    assert_eq!(record["outcome"]["status"], "ok", "{record}");
    let report = &record["output"]["data"]["endpoints"][0];
    assert_eq!((report["score"].clone(), report["grade"].clone()), (json!(0), json!("F")), "{report}");
    let statuses: Vec<(&str, &str)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("hsts", "skip"),
            ("csp", "fail"),
            ("content-type-options", "fail"),
            ("frame-ancestors", "fail"),
            ("referrer-policy", "fail"),
            ("cookies", "fail"),
            ("server-disclosure", "fail"),
        ]
    );
    assert_eq!(
        findings(&record),
        [
            pair("medium", format!("{url}: Content-Security-Policy is missing")),
            pair("low", format!("{url}: X-Content-Type-Options is missing")),
            pair(
                "medium",
                format!("{url}: neither Content-Security-Policy frame-ancestors nor X-Frame-Options is set")
            ),
            pair("low", format!("{url}: Referrer-Policy is missing")),
            pair("high", format!("{url}: cookie \"sid\" is not Secure")),
            pair("medium", format!("{url}: cookie \"sid\" is not HttpOnly")),
            pair("low", format!("{url}: cookie \"sid\" has no SameSite")),
            pair("low", format!("{url}: Server discloses a version: \"nginx/1.18.0\"")),
            pair("low", format!("{url}: X-Powered-By discloses \"PHP/7.4.3\"")),
        ]
    );
    assert!(!record.to_string().contains("s3cr3t-session"), "a cookie value leaked: {record}");
    assert_eq!(record["output"]["metrics"][0]["name"], "http_security_score");
    assert_eq!(record["output"]["metrics"][0]["value"], 0.0);
}

#[test]
fn an_endpoint_with_every_header_right_gets_an_a_and_no_findings() {
    let addr = loopback::with_headers(GOOD_HEADERS);
    let record = call("http-security", &json!({"endpoints": [format!("http://{addr}/")]}), &["--allow-host", &addr]);
    let report = &record["output"]["data"]["endpoints"][0];
    assert_eq!((report["score"].clone(), report["grade"].clone()), (json!(100), json!("A")), "{report}");
    assert_eq!(findings(&record), []);
}

#[test]
fn an_endpoint_not_granted_is_denied_with_the_exact_message() {
    let addr = loopback::with_headers(GOOD_HEADERS);
    let url = format!("http://{addr}/");
    let record = call("http-security", &json!({"endpoints": [url]}), &[]);
    let denial = format!("hosts: {addr} is not granted to this step (granted: none)");
    assert_eq!(record["denials"], json!([denial]), "{record}");
    assert_eq!(findings(&record), [pair("high", format!("{url}: security headers cannot be checked: {denial}"))]);
}

/// A certificate and its key, made here.
struct Made {
    cert: CertificateDer<'static>,
    pem: String,
    key: KeyPair,
}

fn params(cn: &str, names: &[&str], not_after: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = OffsetDateTime::now_utc() - time::Duration::days(400);
    p.not_after = not_after;
    p
}

/// A self-signed certificate for `localhost` valid until `not_after`.
fn self_signed(not_after: OffsetDateTime) -> Made {
    let key = KeyPair::generate().unwrap();
    let cert = params("localhost", &["localhost"], not_after).self_signed(&key).unwrap();
    Made { cert: cert.der().clone(), pem: cert.pem(), key }
}

/// A CA, and a leaf for `localhost` it signed, valid until `not_after`.
fn ca_and_leaf(not_after: OffsetDateTime) -> (Made, Made) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = params("tend test CA", &[], OffsetDateTime::now_utc() + time::Duration::days(3650));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = Made { cert: ca_cert.der().clone(), pem: ca_cert.pem(), key: ca_key };
    let leaf_key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca.key);
    let leaf_cert = params("localhost", &["localhost"], not_after).signed_by(&leaf_key, &issuer).unwrap();
    let leaf = Made { cert: leaf_cert.der().clone(), pem: leaf_cert.pem(), key: leaf_key };
    (ca, leaf)
}

/// A loopback TLS server presenting `leaf`: it makes the handshake and waits
/// for the client to close. Returns its address.
fn tls_server(leaf: &Made) -> String {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.cert.clone()], key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut tcp) = stream else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(mut conn) = rustls::ServerConnection::new(config) else { return };
                while conn.is_handshaking() {
                    if conn.complete_io(&mut tcp).is_err() {
                        return;
                    }
                }
                let _ = conn.complete_io(&mut tcp);
                let mut buf = [0u8; 512];
                while matches!(tcp.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

#[test]
fn an_expired_certificate_is_a_critical_finding() {
    let not_after = OffsetDateTime::now_utc() - days(10) - time::Duration::hours(1);
    let cert = self_signed(not_after);
    let addr = tls_server(&cert);
    let target = json!({"host": "127.0.0.1", "port": addr.split(':').nth(1).unwrap().parse::<u16>().unwrap(),
        "server_name": "localhost", "trusted_ca_pem": cert.pem});
    let record = call("tls-check", &json!({"targets": [target]}), &["--allow-host", &addr]);
    let check = &record["output"]["data"]["targets"][0];
    assert_eq!(check["not_after"], not_after.unix_timestamp(), "{check}");
    assert_eq!(check["chain_valid"], false);
    assert_eq!(check["hostname_valid"], true);
    let f = findings(&record);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "critical");
    assert!(f[0].1.starts_with(&format!("{addr}: certificate expired 10 days ago, on ")), "{f:?}");
    assert!(f[0].1.ends_with(" UTC"), "{f:?}");
    let days_left = check["days_to_expiry"].as_f64().unwrap();
    assert!((-10.1..-10.0).contains(&days_left), "{check}");
}

#[test]
fn a_self_signed_certificate_is_an_untrusted_chain() {
    let cert = self_signed(OffsetDateTime::now_utc() + days(90));
    let addr = tls_server(&cert);
    let port: u16 = addr.split(':').nth(1).unwrap().parse().unwrap();
    let target = json!({"host": "127.0.0.1", "port": port, "server_name": "localhost"});
    let record = call("tls-check", &json!({"targets": [target]}), &["--allow-host", &addr]);
    let check = &record["output"]["data"]["targets"][0];
    assert_eq!((check["self_signed"].clone(), check["chain_valid"].clone()), (json!(true), json!(false)), "{check}");
    assert_eq!(check["verify_error"], "invalid peer certificate: UnknownIssuer");
    assert_eq!(
        findings(&record),
        [pair("high", format!("{addr}: certificate is self-signed and not trusted (CN=localhost)"))]
    );
}

#[test]
fn a_certificate_from_a_trusted_ca_is_valid_and_a_wrong_name_is_a_mismatch() {
    let (ca, leaf) = ca_and_leaf(OffsetDateTime::now_utc() + days(90));
    let addr = tls_server(&leaf);
    let port: u16 = addr.split(':').nth(1).unwrap().parse().unwrap();
    let trusted = json!({"host": "127.0.0.1", "port": port, "server_name": "localhost", "trusted_ca_pem": ca.pem});
    let record = call("tls-check", &json!({"targets": [trusted]}), &["--allow-host", &addr]);
    let check = &record["output"]["data"]["targets"][0];
    assert_eq!(check["ok"], true, "{record}");
    assert_eq!((check["chain_valid"].clone(), check["hostname_valid"].clone()), (json!(true), json!(true)));
    assert_eq!(check["protocol_version"], "TLSv1.3");
    assert_eq!((check["subject"].clone(), check["issuer"].clone()), (json!("CN=localhost"), json!("CN=tend test CA")));
    assert_eq!(findings(&record), []);
    let metric = &record["output"]["metrics"][1];
    assert_eq!(metric["name"], "tls_days_to_expiry");
    assert!((89.9..=90.0).contains(&metric["value"].as_f64().unwrap()), "{metric}");

    let mut wrong_name = trusted.clone();
    wrong_name["server_name"] = json!("other.test");
    let untrusted = json!({"host": "127.0.0.1", "port": port, "server_name": "localhost"});
    let record = call("tls-check", &json!({"targets": [wrong_name, untrusted]}), &["--allow-host", &addr]);
    assert_eq!(
        findings(&record),
        [
            pair("high", format!("{addr}: certificate is not valid for other.test (it names localhost)")),
            pair("high", format!("{addr}: certificate chain is not trusted: invalid peer certificate: UnknownIssuer")),
        ]
    );
}

#[test]
fn a_tls_target_not_granted_is_denied_with_the_exact_message() {
    let cert = self_signed(OffsetDateTime::now_utc() + days(90));
    let addr = tls_server(&cert);
    let record = call("tls-check", &json!({"targets": [addr]}), &["--allow-host", "127.0.0.1:1"]);
    let denial = format!("hosts: {addr} is not granted to this step (granted: 127.0.0.1:1)");
    assert_eq!(record["denials"], json!([denial]), "{record}");
    assert_eq!(findings(&record), [pair("high", format!("{addr}: TLS check failed: {denial}"))]);
}

#[test]
fn a_runbook_grades_headers_and_checks_certificates() {
    let http = loopback::with_headers(BAD_HEADERS);
    let (ca, leaf) = ca_and_leaf(OffsetDateTime::now_utc() + days(20) + time::Duration::hours(1));
    let tls = tls_server(&leaf);
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = serde_json::to_string(&ca.pem).unwrap();
    let runbook = format!(
        r#"
name: security
steps:
  - id: headers
    plugin: http-security
    with:
      endpoints: ["http://{http}/"]
    grants:
      hosts: ["{http}"]
  - id: tls
    plugin: tls-check
    with:
      targets:
        - host: 127.0.0.1
          port: {port}
          server_name: localhost
          trusted_ca_pem: {ca_pem}
    grants:
      hosts: ["{tls}"]
"#,
        port = tls.split(':').nth(1).unwrap()
    );
    std::fs::write(dir.path().join("security.yaml"), runbook).unwrap();
    let record = run_json("security", dir.path());
    assert_eq!(record["run"]["status"], "succeeded", "{record}");
    let steps = record["steps"].as_array().unwrap();
    assert_eq!(steps[0]["output"]["endpoints"][0]["grade"], "F", "{record}");
    assert_eq!(steps[0]["findings"].as_array().unwrap().len(), 9, "{record}");
    assert_eq!(steps[1]["output"]["targets"][0]["chain_valid"], true, "{record}");
    let titles: Vec<&str> =
        steps[1]["findings"].as_array().unwrap().iter().map(|f| f["title"].as_str().unwrap()).collect();
    assert_eq!(titles.len(), 1, "{record}");
    assert!(titles[0].starts_with(&format!("{tls}: certificate expires in 20 days, on ")), "{titles:?}");
    assert!(titles[0].ends_with(" UTC (warning under 30 days)"), "{titles:?}");
    assert_eq!(steps[1]["findings"][0]["severity"], "high");
}

/// `tend run <name> --json` in `dir`: the run's record.
fn run_json(name: &str, dir: &Path) -> Value {
    let out = tend(&["run", name, "--json"], dir);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

#[test]
fn a_problem_still_open_is_not_raised_again_and_a_fixed_one_comes_out_resolved() {
    let headers = Arc::new(Mutex::new(BAD_HEADERS));
    let http = loopback::with_switchable_headers(headers.clone());
    let url = format!("http://{http}/");
    let (ca, leaf) = ca_and_leaf(OffsetDateTime::now_utc() + days(20) + time::Duration::hours(1));
    let tls = tls_server(&leaf);
    let dir = tempfile::tempdir().unwrap();
    let runbook = format!(
        r#"
name: audit
steps:
  - id: headers
    plugin: http-security
    with:
      endpoints: ["{url}"]
    grants:
      hosts: ["{http}"]
  - id: tls
    plugin: tls-check
    with:
      targets: [{{host: 127.0.0.1, port: {port}, server_name: localhost, trusted_ca_pem: {ca_pem}}}]
    grants:
      hosts: ["{tls}"]
"#,
        port = tls.split(':').nth(1).unwrap(),
        ca_pem = serde_json::to_string(&ca.pem).unwrap(),
    );
    std::fs::write(dir.path().join("audit.yaml"), runbook).unwrap();
    let counts = |step: &Value| step["output"]["counts"].clone();
    let titles = |list: &Value| -> Vec<String> {
        list.as_array().unwrap().iter().map(|f| f["title"].as_str().unwrap().to_string()).collect()
    };

    // First run: every problem is new and a finding.
    let first = run_json("audit", dir.path());
    assert_eq!(first["run"]["status"], "succeeded", "{first}");
    let steps = first["steps"].as_array().unwrap();
    assert_eq!(counts(&steps[0]), json!({"new": 9, "still_open": 0, "resolved": 0, "open": 9}), "{first}");
    assert_eq!(titles(&steps[0]["findings"]), titles(&steps[0]["output"]["new"]));
    assert_eq!(counts(&steps[1]), json!({"new": 1, "still_open": 0, "resolved": 0, "open": 1}), "{first}");
    assert_eq!(steps[1]["findings"].as_array().unwrap().len(), 1, "{first}");

    // Second run, nothing changed: all still open, none raised again.
    let second = run_json("audit", dir.path());
    let steps = second["steps"].as_array().unwrap();
    assert_eq!(counts(&steps[0]), json!({"new": 0, "still_open": 9, "resolved": 0, "open": 9}), "{second}");
    assert_eq!(counts(&steps[1]), json!({"new": 0, "still_open": 1, "resolved": 0, "open": 1}), "{second}");
    assert_eq!((steps[0]["findings"].clone(), steps[1]["findings"].clone()), (json!([]), json!([])), "{second}");

    // The server is fixed: its problems come out resolved, none is raised.
    *headers.lock().unwrap() = GOOD_HEADERS;
    let third = run_json("audit", dir.path());
    let steps = third["steps"].as_array().unwrap();
    assert_eq!(steps[0]["output"]["endpoints"][0]["grade"], "A", "{third}");
    assert_eq!(counts(&steps[0]), json!({"new": 0, "still_open": 0, "resolved": 9, "open": 0}), "{third}");
    let resolved = titles(&steps[0]["output"]["resolved"]);
    assert!(resolved.contains(&format!("{url}: cookie \"sid\" is not Secure")), "{resolved:?}");
    assert!(resolved.contains(&format!("{url}: X-Powered-By discloses \"PHP/7.4.3\"")), "{resolved:?}");
    assert_eq!(steps[0]["findings"], json!([]), "{third}");
    assert_eq!(counts(&steps[1]), json!({"new": 0, "still_open": 1, "resolved": 0, "open": 1}), "{third}");
    assert!(!third.to_string().contains("s3cr3t-session"), "a cookie value leaked: {third}");
}

/// A loopback server that accepts connections and never answers.
fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    addr
}

#[test]
fn a_handshake_that_never_ends_is_bounded_by_its_timeout() {
    let addr = silent_server();
    let port: u16 = addr.split(':').nth(1).unwrap().parse().unwrap();
    let config = json!({"targets": [{"host": "127.0.0.1", "port": port, "timeout_ms": 300}]});
    let started = std::time::Instant::now();
    let record = call("tls-check", &config, &["--allow-host", &addr]);
    assert_eq!(
        findings(&record),
        [pair("high", format!("{addr}: TLS check failed: TLS connection to {addr} timed out after 300ms"))]
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
