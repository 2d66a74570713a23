//! End-to-end tests of the `tend` binary: `tend plugins list | inspect |
//! call` with the built-in plugins, exact error messages for bad input.

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

fn tend(args: &[&str]) -> Output {
    let cache = std::env::temp_dir().join("tend-test-cache");
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .env("TEND_CACHE_DIR", cache)
        .env("TEND_PLUGINS", std::env::temp_dir().join("tend-no-plugins-here"))
        .env_remove("TEND_LOG")
        .output()
        .expect("tend runs")
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), stderr(out))
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Serves `n` HTTP requests on loopback with the given status and body.
fn http_server(status: u16, body: &'static str, n: usize) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in l.incoming().take(n) {
            let Ok(mut s) = stream else { break };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ =
                write!(s, "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    });
    addr
}

#[test]
fn list_shows_the_built_in_plugins() {
    let out = tend(&["plugins", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout_json(&out);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "cost-audit",
            "echo",
            "health-score",
            "host-metrics",
            "http-probe",
            "http-security",
            "incident-triage",
            "prometheus-query",
            "remediate",
            "secrets-scan",
            "tls-check"
        ]
    );
    assert!(list.as_array().unwrap().iter().all(|p| p["origin"] == "builtin"));

    let out = tend(&["plugins", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(text.contains("http-probe") && text.contains("built-in"), "{text}");
}

#[test]
fn inspect_prints_the_describe_record() {
    let out = tend(&["plugins", "inspect", "http-probe"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info = stdout_json(&out);
    assert_eq!(info["name"], "http-probe");
    assert_eq!(info["version"], "0.1.0");
    assert_eq!(info["capabilities"], json!(["http"]));
    assert_eq!(info["config_schema"]["type"], "object");
    assert_eq!(info["digest"].as_str().unwrap().len(), 64);
}

#[test]
fn unknown_plugin_is_named_with_the_installed_ones() {
    let out = tend(&["plugins", "call", "slak"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "tend: plugin \"slak\" is not installed (installed: cost-audit, echo, health-score, host-metrics, http-probe, http-security, incident-triage, prometheus-query, remediate, secrets-scan, tls-check)\n"
    );
}

#[test]
fn echo_returns_its_input() {
    let out = tend(&["plugins", "call", "echo", "--input", r#"{"hello": [1, 2]}"#]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"data": {"hello": [1, 2]}, "metrics": [], "findings": []}));
}

#[test]
fn bad_flags_are_explained() {
    let out = tend(&["plugins", "call", "echo", "--config", "{not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "tend: --config is not valid JSON: key must be a string at line 1 column 2\n");

    let out = tend(&["plugins", "call", "echo", "--timeout", "5"]);
    assert_eq!(
        stderr(&out),
        "tend: --timeout: duration \"5\" has no unit; expected e.g. \"500ms\", \"5s\", \"10m\" or \"1h\"\n"
    );

    let out = tend(&["plugins", "call", "echo", "--memory", "8GiB"]);
    assert_eq!(stderr(&out), "tend: memory limit 8 GiB is out of range; expected 1 byte to 4 GiB\n");

    let out = tend(&["plugins", "call", "echo", "--dir", "/tmp:/t:wx"]);
    assert_eq!(stderr(&out), "tend: --dir: dir grant \"/tmp:/t:wx\": mode \"wx\" is not ro or rw\n");
}

#[test]
fn plugin_errors_exit_non_zero_with_one_line() {
    let out =
        tend(&["plugins", "call", "echo", "--config", r#"{"error": {"kind": "failed", "message": "disk on fire"}}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "tend: echo: failed: disk on fire\n");
}

#[test]
fn http_probe_checks_granted_targets() {
    let addr = http_server(200, "all good", 1);
    let config = json!({"targets": [{"url": format!("http://{addr}/health"), "body_contains": "good"}]}).to_string();
    let out = tend(&["plugins", "call", "http-probe", "--config", &config, "--allow-host", &addr]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = stdout_json(&out);
    assert_eq!(v["data"]["summary"]["up"], 1);
    assert_eq!(v["data"]["targets"][0]["status"], 200);
    assert_eq!(v["data"]["targets"][0]["body_match"], true);
    assert!(v["metrics"].as_array().unwrap().iter().any(|m| m["name"] == "http_latency_ms"));
    assert_eq!(v["findings"], json!([]));
}

#[test]
fn http_probe_reports_a_denied_target_as_a_finding() {
    let config = json!({"targets": ["http://127.0.0.1:9/"]}).to_string();
    let out = tend(&["plugins", "call", "http-probe", "--config", &config, "--record"]);
    let record = stdout_json(&out);
    assert_eq!(record["denials"], json!(["hosts: 127.0.0.1:9 is not granted to this step (granted: none)"]));
    let findings = record["output"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1);
    assert!(findings[0]["title"].as_str().unwrap().contains("127.0.0.1:9"), "{findings:?}");
    assert_eq!(record["output"]["data"]["summary"]["down"], 1);
}

#[test]
fn host_metrics_needs_its_grant() {
    let out = tend(&["plugins", "call", "host-metrics"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(
            "tend: host-metrics: trap: denied capability: system-metrics (system-metrics: reading machine metrics is not granted to this step"
        ),
        "{}",
        stderr(&out)
    );

    let out = tend(&["plugins", "call", "host-metrics", "--allow-system-metrics"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = stdout_json(&out);
    assert!(v["data"]["cpu"]["count"].as_u64().unwrap() >= 1);
    assert!(v["data"]["memory"]["total_bytes"].as_u64().unwrap() > 0);
    assert!(v["metrics"].as_array().unwrap().iter().any(|m| m["name"] == "memory_used_percent"));
}

#[test]
fn health_score_explains_every_point_lost() {
    let probes = json!({
        "targets": [
            {"url": "https://a/health", "ok": false, "status": 503, "latency_ms": 12.0, "error": "status 503, expected 2xx or 3xx", "body_match": null},
            {"url": "https://b/health", "ok": true, "status": 200, "latency_ms": 30.0, "error": null, "body_match": null}
        ],
        "summary": {"total": 2, "up": 1, "down": 1, "all_up": false, "avg_latency_ms": 21.0, "max_latency_ms": 30.0}
    });
    let config = json!({"probes": probes}).to_string();
    let out = tend(&["plugins", "call", "health-score", "--config", &config]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = stdout_json(&out);
    // One target down: 3 points for it, and the score held at 3.
    assert_eq!(v["data"]["score"], 3.0);
    assert_eq!(v["data"]["healthy"], false);
    let deductions = v["data"]["deductions"].as_array().unwrap();
    assert_eq!(deductions.len(), 2);
    assert_eq!(deductions[0]["points"], 4.0);
    assert_eq!(deductions[0]["reason"], "a probed target is down: the score is held at 3 or under");
    assert_eq!(deductions[1]["points"], 3.0);
    assert!(deductions[1]["reason"].as_str().unwrap().contains("https://a/health"), "{deductions:?}");
}

#[test]
fn a_plugin_from_a_file_can_be_called_by_path() {
    let hostile = env!("TEND_HOSTILE_WASM");
    let out = tend(&["plugins", "call", hostile, "--config", r#"{"mode": "exit"}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "tend: hostile: trap: exit(3)\n");

    let out = tend(&["plugins", "call", hostile, "--config", r#"{"mode": "loop"}"#, "--timeout", "300ms"]);
    assert_eq!(stderr(&out), "tend: hostile: trap: timeout after 300ms\n");
}

#[test]
fn plugins_directory_adds_plugins_beside_the_built_ins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(env!("TEND_HOSTILE_WASM"), dir.path().join("hostile.wasm")).unwrap();
    std::fs::copy(env!("TEND_HOSTILE_WASM"), dir.path().join("echo.wasm")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["plugins", "list", "--json", "--plugins"])
        .arg(dir.path())
        .env("TEND_CACHE_DIR", std::env::temp_dir().join("tend-test-cache"))
        .output()
        .unwrap();
    let names: Vec<String> =
        stdout_json(&out).as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        names,
        [
            "cost-audit",
            "echo",
            "health-score",
            "host-metrics",
            "hostile",
            "http-probe",
            "http-security",
            "incident-triage",
            "prometheus-query",
            "remediate",
            "secrets-scan",
            "tls-check"
        ]
    );
    assert!(
        stderr(&out).contains(&format!(
            "tend: warning: plugin file {}: the name \"echo\" is taken by a built-in plugin; rename the file",
            dir.path().join("echo.wasm").display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    // `tend plugins list | head -0`: the reader is gone before tend writes.
    let cache = std::env::temp_dir().join("tend-test-cache");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["plugins", "list"])
        .env("TEND_CACHE_DIR", cache)
        .env("TEND_PLUGINS", std::env::temp_dir().join("tend-no-plugins-here"))
        .env_remove("TEND_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tend runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    assert_eq!(stderr(&out), "");
}

#[test]
fn an_empty_flag_variable_counts_as_unset() {
    // As env files and compose often write them; TEND_DB= is not a database named "".
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["plugins", "list"])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("TEND_CACHE_DIR", "")
        .env("TEND_PLUGINS", "")
        .env("TEND_DB", "")
        .env_remove("TEND_LOG")
        .env_remove("XDG_CACHE_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("echo"));
}
