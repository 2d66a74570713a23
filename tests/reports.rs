//! End-to-end tests of what an incident run leaves behind, on the real
//! `tend serve` and `tend runs`: the before/after of action steps, the
//! post-mortem report (`GET /v1/runs/{id}/report`, `tend runs report`), and
//! an Alertmanager alert that resolves after the run, recorded on it and in
//! its report. The harness is in `serve_support`.

mod serve_support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use serve_support::{ADMIN, READER, Server, TRIGGER};
use std::process::{Command, Output};

/// An incident runbook started by an alert: measures, restarts (with a
/// before/after of the score), measures again; writes a post-mortem.
const INCIDENT: &str = r#"
name: incident
params:
  alert: {type: object, default: {}}
  service: {type: string, default: checkout}
triggers:
  - alert:
      match: {alertname: CheckoutDown}
  - http: true
report: postmortem
steps:
  - id: measure
    plugin: echo
    with:
      output: {summary: "checkout answers 503"}
      metrics: [{name: health_score, value: 3}]
      findings: [{severity: high, title: Checkout down, detail: "503 on /healthz", resource: "http://127.0.0.1:9/healthz"}]
  - id: restart
    plugin: echo
    compare: [health_score, error_rate]
    with:
      output: {summary: "POST /admin/restart -> 200"}
  - id: verify
    plugin: echo
    with:
      metrics: [{name: health_score, value: 9}]
"#;

/// A step that waits for approval, to hold a run unfinished.
const HELD: &str = r#"
name: held
triggers:
  - http: true
report: postmortem
steps:
  - id: act
    plugin: echo
    approval: {message: "go?"}
"#;

fn alert(status: &str) -> String {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"CheckoutDown\"}",
        "status": status,
        "receiver": "tend",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "CheckoutDown", "severity": "critical", "instance": "127.0.0.1:9000"},
            "annotations": {"summary": "checkout is down"},
            "startsAt": "2026-12-06T10:00:00Z",
            "endsAt": if status == "resolved" { "2026-12-06T10:07:00Z" } else { "0001-01-01T00:00:00Z" },
            "fingerprint": "5ca1ab1e"
        }]
    })
    .to_string()
}

/// GET of a text endpoint: status, content type, body.
async fn get_text(s: &Server, path: &str) -> (StatusCode, String, String) {
    let resp = s.http.get(format!("{}{path}", s.base)).bearer_auth(READER).send().await.unwrap();
    let status = resp.status();
    let kind = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, kind, resp.text().await.unwrap())
}

fn tend(s: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .arg("--db")
        .arg(s.path().join("tend.db"))
        .env("TEND_CACHE_DIR", std::env::temp_dir().join("tend-test-cache"))
        .env_remove("TEND_LOG")
        .output()
        .unwrap()
}

#[tokio::test]
async fn an_alert_started_incident_has_its_before_after_and_a_postmortem_that_records_the_resolution() {
    let mut s = Server::new();
    s.runbook("incident", INCIDENT);
    s.start();
    let (status, body) = s.call("POST", "/v1/alerts/alertmanager", Some(TRIGGER), Some(&alert("firing"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["started"][0]["run_id"].as_str().unwrap().to_string();
    let record = s.wait_final(&id).await;
    assert_eq!(record["run"]["status"], "succeeded", "{record}");

    // The record: the before/after and the alert, still firing.
    assert_eq!(
        record["optimization_results"],
        json!([{"step_id": "restart", "iteration": 0, "metric": "health_score", "before": 3.0, "after": 9.0,
                "change": 6.0, "change_percent": 200.0, "measured_by": {"step_id": "verify", "iteration": 0}}])
    );
    let logs = record["steps"][1]["logs"].to_string();
    assert!(logs.contains("compare: \\\"error_rate\\\" was not measured in this run before the step"), "{logs}");
    let alerts = &record["alerts"];
    assert_eq!(alerts.as_array().unwrap().len(), 1, "{record}");
    assert_eq!(
        (&alerts[0]["alertname"], &alerts[0]["status"], &alerts[0]["starts_at"], &alerts[0]["resolved_at"]),
        (&json!("CheckoutDown"), &json!("firing"), &json!("2026-12-06T10:00:00Z"), &Value::Null)
    );
    assert_eq!(alerts[0]["labels"]["instance"], "127.0.0.1:9000");

    // The report, in Markdown.
    let (status, kind, md) = get_text(&s, &format!("/v1/runs/{id}/report")).await;
    assert_eq!((status, kind.as_str()), (StatusCode::OK, "text/markdown; charset=utf-8"), "{md}");
    assert!(md.starts_with(&format!("# Post-mortem: incident run {id}\n\n**Severity:** high\n")), "{md}");
    assert!(md.contains("- **high** escalation: measure: Checkout down (open, step `measure`)\n"), "{md}");
    assert!(md.contains("**Status:** succeeded · trigger: alert · started "), "{md}");
    assert!(md.contains("- Affected: service `checkout`, instance `127.0.0.1:9000`\n"), "{md}");
    assert!(
        md.contains(
            "- **high** finding of `measure` on `http://127.0.0.1:9/healthz`: Checkout down: 503 on /healthz\n"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "Alert `CheckoutDown` firing since 2026-12-06T10:00:00Z (instance=127.0.0.1:9000, severity=critical)\n"
        ),
        "{md}"
    );
    assert!(
        md.contains("Run created by its alert trigger (alertmanager:CheckoutDown:5ca1ab1e via token:ci)\n"),
        "{md}"
    );
    assert!(md.contains(" — Step `restart` attempt 1 succeeded in "), "{md}");
    assert!(md.contains("- `measure`: checkout answers 503\n- `restart`: POST /admin/restart -> 200\n"), "{md}");
    assert!(
        md.contains("| restart | 0 | health_score | 3.0 | 9.0 | +6.0 (+200.0%) | verify (iteration 0) |\n"),
        "{md}"
    );
    assert!(md.contains("## Root cause\n\n_To be written by the responders._\n"), "{md}");
    assert!(md.contains("## Prevention\n\n- [ ] Checkout down\n- [ ] _Add"), "{md}");
    assert!(!md.contains("resolved"), "{md}");

    // Alertmanager resolves the alert after the run ended.
    let (status, body) = s.call("POST", "/v1/alerts/alertmanager", Some(TRIGGER), Some(&alert("resolved"))).await;
    assert_eq!((status, &body["resolved"]), (StatusCode::OK, &json!(1)), "{body}");
    let (_, record) = s.call("GET", &format!("/v1/runs/{id}"), Some(READER), None).await;
    let a = &record["alerts"][0];
    assert_eq!((&a["status"], &a["ends_at"]), (&json!("resolved"), &json!("2026-12-06T10:07:00Z")), "{record}");
    assert!(a["resolved_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{record}");
    let (_, _, md) = get_text(&s, &format!("/v1/runs/{id}/report")).await;
    assert!(md.contains("Alert `CheckoutDown` resolved (ended 2026-12-06T10:07:00Z)\n"), "{md}");

    // The same from the command line.
    let out = tend(&s, &["runs", "report", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), md);
    let out = tend(&s, &["runs", "show", &id]);
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(shown.contains("\nBefore/after\nrestart  health_score  3.0 -> 9.0  (+6.0, +200.0%)\n"), "{shown}");
    assert!(
        shown.contains("alert CheckoutDown: resolved (started 2026-12-06T10:00:00Z, ended 2026-12-06T10:07:00Z)\n"),
        "{shown}"
    );
    let out = tend(&s, &["runs", "show", &id, "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["optimization_results"], record["optimization_results"]);
    assert_eq!(json["alerts"][0]["status"], "resolved");
}

#[tokio::test]
async fn a_run_without_a_report_says_why_over_http_and_on_the_command_line() {
    let mut s = Server::new();
    s.runbook("incident", INCIDENT);
    s.runbook("held", HELD);
    s.runbook("plain", "name: plain\ntriggers:\n  - http: true\nsteps:\n  - id: a\n    plugin: echo\n");
    s.start();
    let (_, body) = s.call("POST", "/v1/runbooks/plain/runs", Some(TRIGGER), Some("{}")).await;
    let plain = body["run_id"].as_str().unwrap().to_string();
    s.wait_final(&plain).await;
    let (status, body) = s.call("GET", &format!("/v1/runs/{plain}/report"), Some(READER), None).await;
    let why = format!(
        "run {plain} has no report: its runbook \"plain\" did not ask for one when it ran (a runbook asks with `report: postmortem`)"
    );
    assert_eq!((status, &body), (StatusCode::NOT_FOUND, &json!({"error": {"code": "not_found", "message": why}})));
    let out = tend(&s, &["runs", "report", &plain]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8(out.stderr).unwrap(), format!("tend: {why}\n"));

    let (status, body) = s.call("GET", "/v1/runs/01NOSUCHRUN/report", Some(READER), None).await;
    assert_eq!((status, &body["error"]["message"]), (StatusCode::NOT_FOUND, &json!("run \"01NOSUCHRUN\" not found")));

    // Still going: 409, and the report comes when it finishes.
    let (_, body) = s.call("POST", "/v1/runbooks/held/runs", Some(TRIGGER), Some("{}")).await;
    let held = body["run_id"].as_str().unwrap().to_string();
    s.wait_status(&held, "waiting_approval").await;
    let (status, body) = s.call("GET", &format!("/v1/runs/{held}/report"), Some(READER), None).await;
    assert_eq!(
        (status, &body["error"]["message"]),
        (
            StatusCode::CONFLICT,
            &json!(format!("run {held} is still waiting_approval; its report is written when it finishes"))
        )
    );
    let (status, _) =
        s.call("POST", &format!("/v1/runs/{held}/reject"), Some(ADMIN), Some("{\"reason\": \"not now\"}")).await;
    assert_eq!(status, StatusCode::OK);
    let record = s.wait_final(&held).await;
    assert_eq!(record["run"]["status"], "failed");
    let (status, _, md) = get_text(&s, &format!("/v1/runs/{held}/report")).await;
    assert_eq!(status, StatusCode::OK, "{md}");
    assert!(md.contains("— Approval for `act` rejected by token:admin: not now\n"), "{md}");
}

#[tokio::test]
async fn a_run_interrupted_by_a_crash_gets_its_report_at_the_next_start() {
    let mut s = Server::new();
    let slow = "name: slow\ntriggers: [{http: true}]\nreport: postmortem\nsteps:\n  - id: wait\n    plugin: hostile\n    with: {mode: sleep, ms: 60000}\n    timeout: 2m\n    grants: {env: {A: b}, dirs: [\"/tmp:/tmp:ro\"], hosts: [localhost], secrets: [none]}\n";
    s.runbook("slow", slow);
    s.start();
    let (_, body) = s.call("POST", "/v1/runbooks/slow/runs", Some(TRIGGER), None).await;
    let id = body["run_id"].as_str().unwrap().to_string();
    s.wait_status(&id, "running").await;
    // Killed inside the step (not between the claim and the step's start,
    // where the run has nothing to lose and is resumed instead).
    let started = std::time::Instant::now();
    loop {
        let (_, run) = s.call("GET", &format!("/v1/runs/{id}"), Some(READER), None).await;
        if run["steps"][0]["status"] == "running" {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the step never started: {run}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.kill9();
    s.start();
    let record = s.wait_final(&id).await;
    assert_eq!(record["run"]["status"], "interrupted", "{record}");
    let (status, _, md) = get_text(&s, &format!("/v1/runs/{id}/report")).await;
    assert_eq!(status, StatusCode::OK, "{md}");
    assert!(md.contains("**Severity:** high\n"), "{md}");
    assert!(md.contains("**Status:** interrupted · trigger: http"), "{md}");
    assert!(md.contains("— Step `wait` attempt 1 interrupted"), "{md}");
    assert!(md.contains("was interrupted ("), "the escalation is in the report: {md}");

    // The API documents the report endpoint and the record's new parts.
    let (_, doc) = s.call("GET", "/v1/openapi.json", Some(READER), None).await;
    let report = &doc["paths"]["/v1/runs/{id}/report"]["get"]["responses"];
    assert!(report["200"]["content"]["text/markdown; charset=utf-8"].is_object(), "{report}");
    for schema in ["OptimizationResult", "MeasuredBy", "RunAlert"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema} missing");
    }
}
