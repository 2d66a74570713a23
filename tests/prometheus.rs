//! End-to-end tests of the `prometheus-query` plugin against a real
//! Prometheus: each test that needs one starts `prometheus` on a free
//! loopback port with its own temporary storage, scraping a small `/metrics`
//! target the test serves itself, and drives the plugin through the `tend`
//! binary (`tend plugins call`, and one runbook run).
//!
//! Needs `prometheus` on PATH (Debian and Ubuntu: `apt-get install -y
//! prometheus`; `.ci/run` installs it); without it those tests fail, saying
//! so. Prometheus runs as the current user, listens on 127.0.0.1 only and is
//! killed when its test ends. Nothing here talks to anything outside
//! 127.0.0.1.

mod loopback;
mod monitoring;

use loopback::read_request;
use monitoring::{Prometheus, free_port};
use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

fn tend(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(dir)
        .env("TEND_CACHE_DIR", std::env::temp_dir().join("tend-test-cache"))
        .env("TEND_PLUGINS", dir.join("plugins"))
        .env("TEND_DB", dir.join("tend.db"))
        .env("TEND_RUNBOOKS", dir)
        .envs(env.iter().copied())
        .env_remove("TEND_LOG")
        .output()
        .expect("tend runs")
}

/// `tend plugins call prometheus-query --config <config> <flags...>`.
fn call(config: &Value, flags: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let config = config.to_string();
    let mut args = vec!["plugins", "call", "prometheus-query", "--config", &config];
    args.extend_from_slice(flags);
    tend(&args, env, dir.path())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_out(out: &Output) -> Value {
    assert!(out.status.success(), "tend failed ({}):\n{}", out.status, stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), stderr(out))
    })
}

/// Serves `/metrics` on loopback in the Prometheus text format: a counter
/// `demo_requests_total{status="200"}` that grows by 10 on every scrape, a
/// constant `demo_requests_total{status="500"} 3` and a gauge
/// `demo_temperature_celsius{room="lab"} 21.5`. Returns its address.
fn metrics_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let scrapes = AtomicU64::new(0);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            read_request(&mut stream);
            let n = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
            let body = format!(
                "# HELP demo_requests_total Requests served by the demo.\n\
                 # TYPE demo_requests_total counter\n\
                 demo_requests_total{{status=\"200\"}} {}\n\
                 demo_requests_total{{status=\"500\"}} 3\n\
                 # HELP demo_temperature_celsius Temperature of the demo room.\n\
                 # TYPE demo_temperature_celsius gauge\n\
                 demo_temperature_celsius{{room=\"lab\"}} 21.5\n",
                n * 10
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// A fake Prometheus that answers every request with `status` and `body`
/// and keeps the requests it got. Returns its address and the requests.
fn fake_prometheus(status: u16, body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    loopback::recorder(status, body)
}

/// Prometheus scraping [`metrics_target`], once it holds at least four
/// samples of the growing counter.
fn scraping_prometheus() -> (Prometheus, String) {
    let target = metrics_target();
    let mut prometheus = Prometheus::start(Some(&target));
    prometheus.wait_for("four scrapes of the demo target", |p| {
        let v = p.query("count_over_time(demo_requests_total{status=\"200\"}[5m])");
        v["data"]["result"][0]["value"][1].as_str().and_then(|s| s.parse::<f64>().ok()).is_some_and(|n| n >= 4.0)
    });
    (prometheus, target)
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn an_instant_query_returns_each_series_with_its_labels_and_value() {
    let (prometheus, target) = scraping_prometheus();
    let config = json!({
        "url": prometheus.url(),
        "queries": [
            {"name": "temperature", "query": "demo_temperature_celsius"},
            {"name": "errors", "query": "demo_requests_total{status=\"500\"}", "metric_name": "demo_errors"},
            {"name": "by_status", "query": "sum by (status) (demo_requests_total)"},
            {"name": "not_a_number", "query": "0 / 0"},
            {"name": "infinite", "query": "1 / 0"},
            {"name": "missing", "query": "demo_nothing_total"},
            {"name": "too_hot", "query": "demo_temperature_celsius", "expect": {"max": 20, "severity": "high"}},
        ],
    });
    let v = json_out(&call(&config, &["--allow-host", "127.0.0.1"], &[]));
    let data = &v["data"];

    let temperature = &data["by_name"]["temperature"];
    assert_eq!(temperature["result_type"], "vector");
    assert_eq!(temperature["query"], "demo_temperature_celsius");
    assert_eq!(
        temperature["series"],
        json!([{"labels": {"__name__": "demo_temperature_celsius", "instance": target, "job": "demo", "room": "lab"},
                "value": 21.5}])
    );
    assert_eq!(temperature["value"], 21.5);
    assert_eq!(data["queries"][0], *temperature);
    assert_eq!(data["values"]["errors"], 3.0);
    let by_status = &data["by_name"]["by_status"];
    assert_eq!(by_status["series"].as_array().unwrap().len(), 2);
    assert_eq!(by_status["value"], Value::Null);
    assert_eq!(data["by_name"]["not_a_number"]["result_type"], "scalar");
    assert_eq!(data["values"]["not_a_number"], "NaN");
    assert_eq!(data["values"]["infinite"], "+Inf");
    assert_eq!(data["by_name"]["missing"]["series"], json!([]));
    assert_eq!(data["values"]["missing"], Value::Null);
    let names: Vec<&str> = data["queries"].as_array().unwrap().iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["temperature", "errors", "by_status", "not_a_number", "infinite", "missing", "too_hot"]);

    let metrics = v["metrics"].as_array().unwrap();
    let labels = json!([["instance", target], ["job", "demo"], ["room", "lab"]]);
    assert!(metrics.contains(&json!({"name": "temperature", "value": 21.5, "labels": labels})), "{metrics:?}");
    let errors = json!({
        "name": "demo_errors",
        "value": 3.0,
        "labels": [["instance", target], ["job", "demo"], ["status", "500"]],
    });
    assert!(metrics.contains(&errors), "{metrics:?}");
    assert_eq!(metrics.iter().filter(|m| m["name"] == "by_status").count(), 2);
    assert!(!metrics.iter().any(|m| m["name"] == "not_a_number" || m["name"] == "infinite"), "{metrics:?}");

    let findings = v["findings"].as_array().unwrap();
    let titles: Vec<&str> = findings.iter().map(|f| f["title"].as_str().unwrap()).collect();
    assert_eq!(
        titles,
        [
            "no data for missing".to_string(),
            format!(
                "too_hot{{instance={target:?}, job=\"demo\", room=\"lab\"}} is 21.5, above the expected maximum 20"
            )
        ]
    );
    assert_eq!((&findings[0]["severity"], &findings[1]["severity"]), (&json!("low"), &json!("high")));
}

#[test]
fn a_range_query_returns_every_sample_of_the_window() {
    let (prometheus, _target) = scraping_prometheus();
    let config = json!({
        "url": prometheus.url(),
        "queries": [{"name": "requests", "query": "demo_requests_total{status=\"200\"}"}],
        "range": {"start": "-2m", "step": "1s"},
    });
    let before = unix_now();
    let v = json_out(&call(&config, &["--allow-host", "127.0.0.1"], &[]));
    let requests = &v["data"]["by_name"]["requests"];
    assert_eq!(requests["result_type"], "matrix");
    let series = requests["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0]["labels"]["status"], "200");
    let points: Vec<(f64, f64)> = series[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    assert!(points.len() >= 4, "{points:?}");
    for pair in points.windows(2) {
        assert!((pair[1].0 - pair[0].0 - 1.0).abs() < 1e-6, "steps of 1s: {points:?}");
        assert!(pair[1].1 >= pair[0].1, "a counter never falls: {points:?}");
    }
    assert!(points.iter().all(|(_, v)| v % 10.0 == 0.0 && *v > 0.0), "{points:?}");
    let (first, last) = (points[0], points[points.len() - 1]);
    assert!(last.1 > first.1, "{points:?}");
    assert!(first.0 >= before - 121.0 && last.0 <= unix_now() + 1.0, "window of the last 2 minutes: {points:?}");
    assert_eq!(requests["value"], last.1);
    let metric = &v["metrics"][0];
    assert_eq!((&metric["name"], metric["value"].as_f64()), (&json!("requests"), Some(last.1)));
}

#[test]
fn a_promql_syntax_error_is_invalid_config_with_prometheus_s_message() {
    let prometheus = Prometheus::start(None);
    let broken = "sum(rate(demo_requests_total[1m])";
    let direct = prometheus.query(broken);
    assert_eq!((&direct["status"], &direct["errorType"]), (&json!("error"), &json!("bad_data")), "{direct}");
    let message = direct["error"].as_str().unwrap();
    assert!(message.contains("parse error"), "{message}");

    let config = json!({
        "url": prometheus.url(),
        "queries": [{"name": "fine", "query": "vector(1)"}, {"name": "broken", "query": broken}],
    });
    let out = call(&config, &["--allow-host", "127.0.0.1", "--record"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "tend: prometheus-query: invalid config: query \"broken\": Prometheus rejected it (bad_data): {message}\n"
        )
    );
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&record["outcome"]["status"], &record["outcome"]["kind"]),
        (&json!("plugin_error"), &json!("invalid-config"))
    );
}

#[test]
fn an_unreachable_prometheus_is_retryable() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let config = json!({"url": url, "queries": [{"name": "up", "query": "up"}], "timeout_ms": 2000});
    let out = call(&config, &["--allow-host", "127.0.0.1", "--record"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let prefix =
        format!("tend: prometheus-query: retryable error: query \"up\": request to {url}/api/v1/query failed: ");
    assert!(stderr(&out).starts_with(&prefix), "{}", stderr(&out));
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["outcome"]["status"], "plugin_error");
    assert_eq!(record["outcome"]["kind"], "retryable");
}

#[test]
fn a_prometheus_not_granted_fails_with_the_host_s_message() {
    let (addr, requests) = fake_prometheus(200, "{}");
    let config = json!({"url": format!("http://{addr}"), "queries": [{"name": "up", "query": "up"}]});
    let out = call(&config, &["--allow-host", "localhost"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let denied = format!("hosts: {addr} is not granted to this step (granted: localhost)");
    assert_eq!(
        stderr(&out),
        format!(
            "tend: prometheus-query: trap: denied capability: hosts ({denied}; the plugin then failed: query \"up\": \
             {denied})\n"
        )
    );
    assert!(requests.lock().unwrap().is_empty());
}

#[test]
fn a_bearer_token_is_sent_and_a_refused_one_names_its_secret() {
    let (addr, requests) = fake_prometheus(401, "Unauthorized");
    let config = json!({
        "url": format!("http://{addr}/prom/"),
        "queries": [{"name": "up", "query": "up{job=\"a b\"}"}],
        "bearer_secret": "prom-token",
    });
    let secret = [("TEND_SECRET_PROM_TOKEN", "s3cr3t-t0ken\n")];
    let out = call(&config, &["--allow-host", "127.0.0.1", "--secret", "prom-token"], &secret);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "tend: prometheus-query: failed: query \"up\": Prometheus answered 401 Unauthorized to the token from bearer \
         secret \"prom-token\"; check that the secret holds a token Prometheus accepts\n"
    );
    let seen = requests.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let request = seen[0].to_ascii_lowercase();
    assert!(request.starts_with("post /prom/api/v1/query http/1.1\r\n"), "{request}");
    assert!(request.contains("\r\nauthorization: bearer s3cr3t-t0ken\r\n"), "{request}");
    assert!(request.contains("\r\ncontent-type: application/x-www-form-urlencoded\r\n"), "{request}");
    assert!(seen[0].ends_with("\r\n\r\nquery=up%7Bjob%3D%22a+b%22%7D&timeout=10.000"), "{}", seen[0]);

    // Without the grant the secret is never read, and the error says which grant is missing.
    let out = call(&config, &["--allow-host", "127.0.0.1"], &secret);
    assert_eq!(
        stderr(&out),
        "tend: prometheus-query: trap: denied capability: secrets (secrets: secret \"prom-token\" is not granted to \
         this step; the plugin then failed: field `bearer_secret`: secret \"prom-token\" is not available to this \
         step: it must be in the step's `secrets` grant (e.g. `secrets: [prom-token]`, or `--secret prom-token` with \
         `tend plugins call`) and set)\n"
    );
    assert_eq!(requests.lock().unwrap().len(), 1);
}

#[test]
fn a_runbook_step_reads_query_values_by_name() {
    let (prometheus, _target) = scraping_prometheus();
    let dir = tempfile::tempdir().unwrap();
    let runbook = format!(
        r#"
name: prom-values
steps:
  - id: prom
    plugin: prometheus-query
    with:
      url: "{url}"
      queries:
        - name: temperature
          query: demo_temperature_celsius
        - name: missing
          query: demo_nothing_total
      no_data_severity: null
    grants:
      hosts: ["127.0.0.1"]
  - id: warm
    plugin: echo
    when: steps.prom.output.values.temperature > 20.0 && steps.prom.output.values.missing == null
  - id: cold
    plugin: echo
    when: steps.prom.output.values.temperature <= 20.0
"#,
        url = prometheus.url()
    );
    std::fs::write(dir.path().join("prom-values.yaml"), runbook).unwrap();
    let out = tend(&["run", "prom-values", "--json"], &[], dir.path());
    let record = json_out(&out);
    assert_eq!(record["run"]["status"], "succeeded", "{record}");
    let steps = record["steps"].as_array().unwrap();
    assert_eq!(steps[0]["output"]["values"]["temperature"], 21.5);
    assert_eq!(steps[0]["findings"], json!([]));
    assert_eq!((&steps[1]["status"], &steps[2]["status"]), (&json!("succeeded"), &json!("skipped")));

    // Loading checks the grant the plugin's capability needs.
    let ungranted = std::fs::read_to_string(dir.path().join("prom-values.yaml"))
        .unwrap()
        .replace("    grants:\n      hosts: [\"127.0.0.1\"]\n", "");
    std::fs::write(dir.path().join("prom-values.yaml"), ungranted).unwrap();
    let out = tend(&["run", "prom-values", "--json"], &[], dir.path());
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains(
            "step \"prom\": plugin \"prometheus-query\" needs the \"http\" capability, but the step is not granted it; \
             add grants.hosts"
        ),
        "{}",
        stderr(&out)
    );
}
