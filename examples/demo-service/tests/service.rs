//! End-to-end tests of demo-service over a loopback port: the metrics in
//! the text exposition format, the admin token, the items endpoint, the
//! exact 4xx errors for bad input, and the command line. Fault and cure
//! tests are in faults.rs.

mod common;

use common::{Service, TOKEN, parse_exposition, request};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

/// Every metric, with its type, in the order /metrics lists them.
const FAMILIES: [(&str, &str); 11] = [
    ("demo_up", "gauge"),
    ("demo_requests_total", "counter"),
    ("demo_request_duration_seconds", "histogram"),
    ("demo_cpu_usage_ratio", "gauge"),
    ("demo_memory_usage_ratio", "gauge"),
    ("demo_cache_hit_ratio", "gauge"),
    ("demo_cache_hits_total", "counter"),
    ("demo_cache_misses_total", "counter"),
    ("demo_cache_entries", "gauge"),
    ("demo_replicas", "gauge"),
    ("demo_restarts_total", "counter"),
];

/// Every admin endpoint.
const ADMIN: [(&str, &str, Option<&str>); 6] = [
    ("POST", "/admin/restart", None),
    ("POST", "/admin/scale", Some(r#"{"replicas": 2}"#)),
    ("POST", "/admin/cache/clear", None),
    ("GET", "/admin/faults", None),
    ("POST", "/admin/faults", Some(r#"{"down": true}"#)),
    ("DELETE", "/admin/faults", None),
];

fn scrape_with_traffic() -> (Service, String) {
    let service = Service::start(&[]);
    service.eventually("the built-in traffic is counted", || service.metrics().requests() >= 50.0);
    let reply = service.get("/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    (service, reply.body)
}

#[test]
fn the_metrics_parse_as_the_text_exposition_format_with_every_metric_and_its_help() {
    let (_service, text) = scrape_with_traffic();
    let metrics = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let families: Vec<(&str, &str)> = metrics.families.iter().map(|f| (f.name.as_str(), f.kind.as_str())).collect();
    assert_eq!(families, FAMILIES);
    for family in &metrics.families {
        assert!(!family.help.is_empty(), "{} has no HELP", family.name);
        assert!(!family.samples.is_empty(), "{} has no sample", family.name);
    }
    let statuses: Vec<String> =
        metrics.family("demo_requests_total").unwrap().samples.iter().map(|s| s.series()).collect();
    assert_eq!(
        statuses,
        [
            "demo_requests_total{status=\"200\"}",
            "demo_requests_total{status=\"500\"}",
            "demo_requests_total{status=\"503\"}"
        ]
    );
    let bounds: Vec<f64> = metrics.buckets().iter().map(|(le, _)| *le).collect();
    assert_eq!(bounds, [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, f64::INFINITY]);
    for ratio in ["demo_cpu_usage_ratio", "demo_memory_usage_ratio", "demo_cache_hit_ratio"] {
        let v = metrics.value(ratio).unwrap();
        assert!((0.0..=1.0).contains(&v), "{ratio} = {v}");
    }
    assert_eq!(metrics.value("demo_up"), Some(1.0));
    assert_eq!(metrics.value("demo_replicas"), Some(1.0));
    assert_eq!(metrics.value("demo_restarts_total"), Some(0.0));
    assert_eq!(metrics.requests_with("500") + metrics.requests_with("503"), 0.0);
}

#[test]
fn promtool_accepts_the_metrics() {
    let (_service, text) = scrape_with_traffic();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool (Debian's prometheus package: apt-get install prometheus): {e}"));
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}\n{text}");
}

#[test]
fn the_exposition_parser_rejects_what_prometheus_rejects() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n";
    assert!(parse_exposition(good).is_ok());
    let bad = [
        ("a_total 3\n", "no TYPE line before it"),
        ("# TYPE a_total counter\na_total 3", "does not end with a line feed"),
        ("# TYPE a_total counter\na_total{x=1} 3\n", "without quotes"),
        ("# TYPE a_total counter\na_total three\n", "bad value"),
        ("# TYPE a_total counter\na_total -1\n", "negative"),
        ("# TYPE a_total counter\na_total 1\na_total 2\n", "appears twice"),
        ("# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\n", "after the lines of another metric"),
        ("# TYPE a gauge\na 1\n# HELP a A.\n", "after its samples"),
        ("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "counts less"),
        ("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", "not le=\"+Inf\""),
        ("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n", "_count differs"),
        ("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", "no _sum"),
        ("# TYPE 1a gauge\n", "bad metric name"),
    ];
    for (text, expected) in bad {
        let err = parse_exposition(text).expect_err(text);
        assert!(err.contains(expected), "{text:?}: {err}");
    }
}

#[test]
fn healthz_answers_ok() {
    let service = Service::start(&[]);
    let reply = service.get("/healthz");
    assert_eq!((reply.status, reply.json()), (200, json!({"status": "ok"})));
}

#[test]
fn admin_endpoints_refuse_a_request_without_a_token() {
    let service = Service::start(&[]);
    for (method, path, body) in ADMIN {
        let reply = request(&service.addr, method, path, &[], body);
        assert_eq!(reply.status, 401, "{method} {path}");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert_eq!(reply.error(), "missing admin token: send the header \"Authorization: Bearer TOKEN\"");
    }
    assert_eq!(service.admin_ok("GET", "/admin/faults", None)["down"], false, "nothing was applied");
}

#[test]
fn admin_endpoints_refuse_a_wrong_token_and_a_header_that_is_not_bearer() {
    let service = Service::start(&[]);
    let near = format!("Bearer {TOKEN}x");
    for (method, path, body) in ADMIN {
        for auth in ["Bearer wrong", near.as_str(), "Bearer  wrong "] {
            let reply = request(&service.addr, method, path, &[("Authorization", auth)], body);
            assert_eq!((reply.status, reply.error()), (401, "the admin token is not valid".to_string()), "{auth}");
        }
        for auth in [format!("Basic {TOKEN}"), TOKEN.to_string(), "Bearer ".to_string()] {
            let reply = request(&service.addr, method, path, &[("Authorization", &auth)], body);
            assert_eq!(
                (reply.status, reply.error()),
                (401, "the Authorization header must be \"Bearer TOKEN\"".to_string()),
                "{auth}"
            );
        }
    }
    assert_eq!(service.value("demo_replicas"), 1.0, "nothing was applied");
    let reply = request(&service.addr, "GET", "/admin/faults", &[("Authorization", &format!("bearer {TOKEN}"))], None);
    assert_eq!(reply.status, 200, "the scheme is case-insensitive");
}

#[test]
fn admin_endpoints_are_refused_when_no_token_is_configured() {
    for env in [&[][..], &[("DEMO_TOKEN", "")][..]] {
        let service = Service::start_exactly(&["--traffic-rps", "0"], env);
        for (method, path, body) in ADMIN {
            let auth = format!("Bearer {TOKEN}");
            for headers in [&[][..], &[("Authorization", auth.as_str())][..]] {
                let reply = request(&service.addr, method, path, headers, body);
                assert_eq!(reply.status, 403, "{method} {path}");
                assert_eq!(
                    reply.error(),
                    "admin endpoints are disabled because no admin token is configured: \
                     start demo-service with --token TOKEN or set DEMO_TOKEN"
                );
            }
        }
        service.eventually("a warning on stderr", || service.stderr().contains("no admin token is configured"));
    }
}

#[test]
fn the_token_can_come_from_demo_token_and_is_never_printed() {
    let service = Service::start_exactly(&["--traffic-rps", "0"], &[("DEMO_TOKEN", TOKEN)]);
    service.admin_ok("POST", "/admin/scale", Some(r#"{"replicas": 4}"#));
    service.admin_ok("POST", "/admin/cache/clear", None);
    assert!(!service.stderr().contains(TOKEN), "{}", service.stderr());
    let help =
        Command::new(env!("CARGO_BIN_EXE_demo-service")).arg("--help").env("DEMO_TOKEN", TOKEN).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[env: DEMO_TOKEN]") && !help.contains(TOKEN), "{help}");
}

#[test]
fn an_item_is_served_through_the_cache_and_counted() {
    let service = Service::start(&["--traffic-rps", "0"]);
    let before = service.metrics();
    assert_eq!(before.value("demo_cache_hit_ratio"), None, "no sample before the first lookup");
    assert_eq!(before.requests(), 0.0, "no built-in traffic");
    let first = service.get("/api/items/7");
    assert_eq!((first.status, first.json()), (200, json!({"id": 7, "value": "item 7", "cache": "miss"})));
    let second = service.get("/api/items/7");
    assert_eq!(second.json()["cache"], "hit");
    let drawn = service.get("/api/items");
    assert_eq!(drawn.status, 200);
    let id = drawn.json()["id"].as_u64().unwrap();
    assert!(id < 1_000_050, "{id}");
    let after = service.metrics();
    assert_eq!(after.requests_with("200"), 3.0);
    assert_eq!(after.value("demo_request_duration_seconds_count"), Some(3.0));
    assert_eq!(after.value("demo_cache_hits_total"), Some(1.0 + f64::from(id == 7)));
    assert_eq!(after.value("demo_cache_entries"), Some(1.0 + f64::from(id != 7)));
    assert!(after.value("demo_request_duration_seconds_sum").unwrap() > 0.015, "a miss takes 15 ms or more");
}

#[test]
fn the_index_lists_every_endpoint() {
    let service = Service::start(&["--traffic-rps", "0"]);
    let index = service.get("/").json();
    assert_eq!(index["service"], "demo-service");
    let listed: Vec<String> = index["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["method"].as_str().unwrap(), e["path"].as_str().unwrap()))
        .collect();
    let mut expected: Vec<String> =
        ["GET /", "GET /healthz", "GET /metrics", "GET /api/items", "GET /api/items/{id}"].map(String::from).to_vec();
    expected.extend(ADMIN.iter().map(|(m, p, _)| format!("{m} {p}")));
    assert_eq!(listed, expected);
}

#[test]
fn scale_sets_the_replica_count_and_reports_the_previous_one() {
    let service = Service::start(&["--replicas", "3"]);
    assert_eq!(service.value("demo_replicas"), 3.0);
    let reply = service.admin_ok("POST", "/admin/scale", Some(r#"{"replicas": 20}"#));
    assert_eq!(reply, json!({"replicas": 20, "previous": 3}));
    assert_eq!(service.value("demo_replicas"), 20.0);
    assert_eq!(service.admin_ok("POST", "/admin/scale", Some(r#" {"replicas": 1} "#))["previous"], 20);
}

/// Sends an admin request; checks a 400 with exactly `error`.
fn refused(service: &Service, method: &str, path: &str, body: &str, error: &str) {
    let reply = service.admin(method, path, Some(body));
    assert_eq!((reply.status, reply.error().as_str()), (400, error), "{method} {path} {body}");
}

#[test]
fn a_bad_scale_request_gets_400_naming_the_field_and_its_range() {
    let service = Service::start(&["--traffic-rps", "0"]);
    let range = "field \"replicas\" must be a whole number from 1 to 20";
    for (body, error) in [
        (r#"{"replicas": 0}"#, format!("{range}, got 0")),
        (r#"{"replicas": 21}"#, format!("{range}, got 21")),
        (r#"{"replicas": -1}"#, format!("{range}, got -1")),
        (r#"{"replicas": 1.5}"#, format!("{range}, got 1.5")),
        (r#"{"replicas": "3"}"#, format!("{range}, got \"3\"")),
        (r#"{"replicas": null}"#, format!("{range}, got null")),
        ("{}", "field \"replicas\" is required: a whole number from 1 to 20".to_string()),
        (r#"{"replicas": 2, "zone": "a"}"#, "unknown field \"zone\": the only field is \"replicas\"".to_string()),
        ("", "the request body is empty: send a JSON object such as {\"replicas\": 3}".to_string()),
        ("[3]", "the request body must be a JSON object such as {\"replicas\": 3}, got an array".to_string()),
        (
            "{\"replicas\": 3",
            "the request body is not valid JSON: EOF while parsing an object at line 1 column 14".to_string(),
        ),
    ] {
        refused(&service, "POST", "/admin/scale", body, &error);
    }
    assert_eq!(service.value("demo_replicas"), 1.0, "nothing was applied");
}

#[test]
fn a_bad_fault_update_gets_400_naming_every_bad_field_and_changes_nothing() {
    let service = Service::start(&["--traffic-rps", "0"]);
    let known = "expected one of latency_ms, error_rate, high_cpu, memory_growth, cache_misses, down, bad_release";
    for (body, error) in [
        (r#"{"latency": 300}"#, format!("unknown fault \"latency\": {known}")),
        (r#"{"down": "yes"}"#, "fault \"down\" must be true or false, got \"yes\"".to_string()),
        (r#"{"high_cpu": 1}"#, "fault \"high_cpu\" must be true or false, got 1".to_string()),
        (r#"{"error_rate": 50}"#, "fault \"error_rate\" must be a number from 0 to 1, got 50".to_string()),
        (
            r#"{"latency_ms": "300ms"}"#,
            "fault \"latency_ms\" must be a whole number of milliseconds from 0 to 60000, got \"300ms\"".to_string(),
        ),
        (
            r#"{"down": true, "error_rate": -0.1, "typo": false}"#,
            format!("fault \"error_rate\" must be a number from 0 to 1, got -0.1; unknown fault \"typo\": {known}"),
        ),
        ("true", "the request body must be a JSON object such as {\"latency_ms\": 300}, got a boolean".to_string()),
        ("down=true", "the request body is not valid JSON: expected value at line 1 column 1".to_string()),
    ] {
        refused(&service, "POST", "/admin/faults", body, &error);
    }
    let faults = service.admin_ok("GET", "/admin/faults", None);
    assert_eq!(
        faults,
        json!({"latency_ms": 0, "error_rate": 0.0, "high_cpu": false, "memory_growth": false,
               "cache_misses": false, "down": false, "bad_release": false})
    );
}

#[test]
fn unknown_paths_methods_and_item_ids_get_json_errors() {
    let service = Service::start(&["--traffic-rps", "0"]);
    let reply = service.get("/nope");
    assert_eq!((reply.status, reply.error()), (404, "no endpoint GET /nope: GET / lists the endpoints".to_string()));
    let reply = service.admin("POST", "/admin/cache/flush", None);
    assert_eq!(reply.status, 404);
    let reply = request(&service.addr, "POST", "/healthz", &[], None);
    assert_eq!(
        (reply.status, reply.error()),
        (405, "POST is not allowed on /healthz: GET / lists the endpoints".to_string())
    );
    let reply = service.admin("GET", "/admin/restart", None);
    assert_eq!(reply.status, 405);
    let reply = service.get("/api/items/seven");
    assert_eq!(
        (reply.status, reply.error()),
        (400, "item id must be a whole number from 0 to 4294967295, got \"seven\"".to_string())
    );
    let reply = service.get("/api/items/4294967296");
    assert_eq!(reply.status, 400);
    assert_eq!(service.metrics().requests(), 0.0, "refused requests are not in the request path");
}

#[test]
fn a_body_over_the_limit_gets_413_as_json() {
    let service = Service::start(&["--traffic-rps", "0"]);
    let huge = format!("{{\"down\": true, \"pad\": \"{}\"}}", "x".repeat(3 << 20));
    let reply = service.admin("POST", "/admin/faults", Some(&huge));
    assert_eq!(reply.status, 413);
    assert!(reply.error().starts_with("cannot read the request body: "), "{}", reply.body);
    assert_eq!(service.admin_ok("GET", "/admin/faults", None)["down"], false);
}

#[test]
fn a_replica_count_out_of_range_on_the_command_line_is_refused() {
    for bad in ["0", "21", "two"] {
        let out = Command::new(env!("CARGO_BIN_EXE_demo-service")).args(["--replicas", bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "--replicas {bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr
                .contains(&format!("invalid value '{bad}' for '--replicas <N>': expected a whole number from 1 to 20")),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_traffic_rate_or_restart_time_out_of_range_is_refused() {
    for (flag, bad) in [("--traffic-rps", "10001"), ("--restart-ms", "60001"), ("--restart-ms", "-1")] {
        let out = Command::new(env!("CARGO_BIN_EXE_demo-service")).arg(format!("{flag}={bad}")).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("invalid value '{bad}' for '{flag}")), "{stderr}");
    }
}

#[test]
fn a_port_in_use_is_reported_and_the_service_exits() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_demo-service")).args(["--listen", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&format!("demo-service: cannot listen on {addr}: ")), "{stderr}");
    assert!(out.stdout.is_empty());
}
