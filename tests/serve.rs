//! End-to-end tests of `tend serve` over a loopback port: triggers polled
//! to completion, idempotency keys, tokens and scopes, JSON errors for bad
//! input, approvals and cancellation over HTTP, a `kill -9` in the middle
//! of runs followed by a restart, and cron schedules on a clock the test
//! moves (`TEND_CLOCK_FILE`) across daylight saving changes and restarts. The harness is in
//! `serve_support`.

mod serve_support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use serve_support::{ADMIN, READER, Server, TRIGGER};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const ECHO: &str = r#"
name: hello
params:
  who: {type: string, default: world}
triggers:
  - http: true
steps:
  - id: greet
    plugin: echo
    with: {output: "hello ${{ params.who }}"}
"#;

#[tokio::test]
async fn a_trigger_is_accepted_and_runs_to_completion() {
    let mut s = Server::new();
    s.runbook("hello", ECHO);
    s.start();
    let (status, body) =
        s.call("POST", "/v1/runbooks/hello/runs", Some(TRIGGER), Some(r#"{"params": {"who": "ann"}}"#)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["run_id"].as_str().unwrap();
    assert_eq!(body["status_url"], format!("/v1/runs/{id}"));
    let run = s.wait_final(id).await;
    assert_eq!(run["run"]["status"], "succeeded");
    assert_eq!(run["run"]["trigger_kind"], "http");
    assert_eq!(run["run"]["trigger_source"], "token:ci");
    assert_eq!(run["steps"][0]["output"], "hello ann");
    // An empty body means no params.
    let (status, body) = s.call("POST", "/v1/runbooks/hello/runs", Some(TRIGGER), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let run = s.wait_final(body["run_id"].as_str().unwrap()).await;
    assert_eq!(run["steps"][0]["output"], "hello world");
    let (status, list) = s.call("GET", "/v1/runs?runbook=hello&limit=1", Some(READER), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["runs"].as_array().unwrap().len(), 1);
    assert!(list["next"].as_str().unwrap().starts_with("/v1/runs?limit=1&before="), "{list}");
    let (_, rest) = s.call("GET", list["next"].as_str().unwrap(), Some(READER), None).await;
    assert_eq!(rest["runs"][0]["id"], id);
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_run() {
    let mut s = Server::new();
    s.runbook("hello", ECHO);
    s.runbook("other", &ECHO.replace("name: hello", "name: other"));
    s.start();
    let post = |runbook: &'static str, key: &'static str| {
        let req = s
            .http
            .post(format!("{}/v1/runbooks/{runbook}/runs", s.base))
            .bearer_auth(TRIGGER)
            .header("Idempotency-Key", key)
            .body("{}");
        async move {
            let r = req.send().await.unwrap();
            let replayed = r.headers().get("idempotent-replayed").is_some();
            (r.status(), replayed, r.json::<Value>().await.unwrap())
        }
    };
    let (s1, replay1, a) = post("hello", "deploy-42").await;
    let (s2, replay2, b) = post("hello", "deploy-42").await;
    assert_eq!((s1, s2, replay1, replay2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED, false, true));
    assert_eq!(a["run_id"], b["run_id"]);
    let (s3, _, c) = post("other", "deploy-42").await;
    assert_eq!(s3, StatusCode::CONFLICT);
    assert_eq!(c["error"]["message"], "idempotency key \"deploy-42\" was already used for runbook \"hello\"");
    s.wait_final(a["run_id"].as_str().unwrap()).await;
    let (_, list) = s.call("GET", "/v1/runs", Some(READER), None).await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 1, "one run for one key");
}

#[tokio::test]
async fn tokens_and_scopes_are_enforced() {
    let mut s = Server::new();
    s.runbook("hello", ECHO);
    s.start();
    let (status, _) = s.call("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s.call("GET", "/readyz", None, None).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ready")));
    let (status, body) = s.call("GET", "/v1/runs", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = s.call("GET", "/v1/runs", Some("wrong-token"), None).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("the bearer token is not valid"))
    );
    let (status, body) = s.call("POST", "/v1/runbooks/hello/runs", Some(READER), Some("{}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["message"], "token \"reader\" has scopes [read]; this needs \"trigger\"");
    let (status, _) = s.call("POST", "/v1/escalations/1/ack", Some(TRIGGER), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s.call("GET", "/v1/plugins", Some(READER), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_input_gets_a_json_4xx_never_a_500() {
    let mut s = Server::new();
    s.runbook("hello", ECHO);
    s.runbook("private", "name: private\nsteps:\n  - id: a\n    plugin: echo\n");
    s.start();
    let cases: Vec<(&str, &str, Option<String>, StatusCode, &str)> = vec![
        ("POST", "/v1/runbooks/hello/runs", Some("{not json".into()), StatusCode::BAD_REQUEST, "bad_request"),
        (
            "POST",
            "/v1/runbooks/hello/runs",
            Some(r#"{"params": []}"#.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            "POST",
            "/v1/runbooks/hello/runs",
            Some(r#"{"parms": {}}"#.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            "POST",
            "/v1/runbooks/hello/runs",
            Some(r#"{"params": {"who": 7}}"#.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            "POST",
            "/v1/runbooks/hello/runs",
            Some(format!("{{\"params\": {{\"who\": \"{}\"}}}}", "x".repeat(5000))),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        ("POST", "/v1/runbooks/nope/runs", Some("{}".into()), StatusCode::NOT_FOUND, "not_found"),
        ("POST", "/v1/runbooks/private/runs", Some("{}".into()), StatusCode::FORBIDDEN, "forbidden"),
        ("GET", "/v1/runs?limit=lots", None, StatusCode::BAD_REQUEST, "bad_request"),
        ("GET", "/v1/runs?status=done", None, StatusCode::BAD_REQUEST, "bad_request"),
        ("GET", "/v1/runs/01NOPE", None, StatusCode::NOT_FOUND, "not_found"),
        ("GET", "/v1/escalations/x/ack", None, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ("POST", "/v1/escalations/x/ack", None, StatusCode::BAD_REQUEST, "bad_request"),
        ("POST", "/v1/escalations/999/ack", None, StatusCode::NOT_FOUND, "not_found"),
        ("POST", "/v1/runs/01NOPE/approve", None, StatusCode::NOT_FOUND, "not_found"),
        ("GET", "/v2/anything", None, StatusCode::NOT_FOUND, "not_found"),
    ];
    for (method, path, body, want, code) in cases {
        let (status, got) = s.call(method, path, Some(ADMIN), body.as_deref()).await;
        assert_eq!(status, want, "{method} {path}: {got}");
        assert_eq!(got["error"]["code"], code, "{method} {path}: {got}");
        assert!(got["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Nothing was recorded by any of them.
    let (_, list) = s.call("GET", "/v1/runs", Some(READER), None).await;
    assert_eq!(list["runs"], json!([]));
}

#[tokio::test]
async fn approvals_and_cancellation_over_http() {
    let mut s = Server::new();
    s.runbook(
        "gate",
        "name: gate\ntriggers: [{http: true}]\nsteps:\n  - id: go\n    plugin: echo\n    approval: {message: ship it?}\n",
    );
    s.runbook(
        "slow",
        "name: slow\ntriggers: [{http: true}]\nsteps:\n  - id: wait\n    plugin: hostile\n    with: {mode: sleep, ms: 60000}\n    timeout: 2m\n    grants: {env: {A: b}, dirs: [\"/tmp:/tmp:ro\"], hosts: [localhost], secrets: [none]}\n",
    );
    s.start();
    let (_, body) = s.call("POST", "/v1/runbooks/gate/runs", Some(TRIGGER), None).await;
    let id = body["run_id"].as_str().unwrap().to_string();
    s.wait_status(&id, "waiting_approval").await;
    let (status, _) = s.call("POST", &format!("/v1/runs/{id}/approve"), Some(TRIGGER), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "approving needs admin");
    let (status, body) =
        s.call("POST", &format!("/v1/runs/{id}/approve"), Some(ADMIN), Some(r#"{"reason": "lgtm"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["decided_by"], "token:admin");
    assert_eq!(s.wait_final(&id).await["run"]["status"], "succeeded");
    let (status, body) = s.call("POST", &format!("/v1/runs/{id}/reject"), Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (_, body) = s.call("POST", "/v1/runbooks/slow/runs", Some(TRIGGER), None).await;
    let id = body["run_id"].as_str().unwrap().to_string();
    s.wait_status(&id, "running").await;
    let (status, _) = s.call("POST", &format!("/v1/runs/{id}/cancel"), Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let run = s.wait_final(&id).await;
    assert_eq!(run["run"]["status"], "cancelled");
    let (status, _) = s.call("POST", &format!("/v1/runs/{id}/cancel"), Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn kill_9_then_restart_loses_no_trigger_and_escalates_the_interrupted_run() {
    let mut s = Server::new();
    s.runbook(
        "slow",
        "name: slow\ntriggers: [{http: true}]\nconcurrency: 1\nsteps:\n  - id: wait\n    plugin: hostile\n    with: {mode: sleep, ms: 60000}\n    timeout: 2m\n    grants: {env: {A: b}, dirs: [\"/tmp:/tmp:ro\"], hosts: [localhost], secrets: [none]}\n",
    );
    s.runbook("hello", ECHO);
    s.start();
    let (_, a) = s.call("POST", "/v1/runbooks/slow/runs", Some(TRIGGER), None).await;
    let running = a["run_id"].as_str().unwrap().to_string();
    s.wait_status(&running, "running").await;
    // Queued behind the concurrency cap of 1: accepted, not started.
    let (_, b) = s.call("POST", "/v1/runbooks/slow/runs", Some(TRIGGER), None).await;
    let queued = b["run_id"].as_str().unwrap().to_string();
    s.kill9();

    // The queued run must run after the restart; make it quick.
    s.runbook("slow", "name: slow\ntriggers: [{http: true}]\nsteps:\n  - id: wait\n    plugin: echo\n");
    s.start();
    let first = s.wait_final(&running).await;
    assert_eq!(first["run"]["status"], "interrupted");
    assert_eq!(first["steps"][0]["status"], "interrupted");
    assert_eq!(first["escalations"][0]["severity"], "high");
    assert!(first["escalations"][0]["message"].as_str().unwrap().contains("was interrupted"), "{first}");
    let second = s.wait_final(&queued).await;
    assert_eq!(second["run"]["status"], "succeeded", "{second}");
}

fn alert_payload(status: &str, alertname: &str, severity: &str) -> String {
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"),
        "status": status,
        "receiver": "tend",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": status,
            "labels": {"alertname": alertname, "severity": severity, "instance": "web-1"},
            "annotations": {"summary": "web-1 is down"},
            "startsAt": "2026-11-24T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": "c0ffee"
        }]
    })
    .to_string()
}

#[tokio::test]
async fn alertmanager_alerts_start_matching_runbooks_once() {
    let mut s = Server::new();
    s.runbook(
        "on-call",
        r#"
name: on-call
params:
  alert: {type: object, default: {}}
triggers:
  - alert:
      match: {alertname: HostDown}
      match_re: {severity: "critical|high"}
steps:
  - id: look
    plugin: echo
    with: {output: "${{ params.alert.labels.instance }}"}
"#,
    );
    s.start();
    let (status, body) = s
        .call("POST", "/v1/alerts/alertmanager", Some(TRIGGER), Some(&alert_payload("firing", "HostDown", "critical")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let started = body["started"].as_array().unwrap();
    assert_eq!(started.len(), 1);
    let id = started[0]["run_id"].as_str().unwrap().to_string();
    let run = s.wait_final(&id).await;
    assert_eq!(run["run"]["trigger_kind"], "alert");
    assert_eq!(run["steps"][0]["output"], "web-1");
    // Alertmanager repeats the group notification: no second run.
    let (_, again) = s
        .call("POST", "/v1/alerts/alertmanager", Some(TRIGGER), Some(&alert_payload("firing", "HostDown", "critical")))
        .await;
    assert_eq!((again["started"].as_array().unwrap().len(), again["repeated"].as_i64()), (0, Some(1)));
    // Labels that do not match start nothing; resolved alerts are recorded.
    let (_, other) = s
        .call("POST", "/v1/alerts/alertmanager", Some(TRIGGER), Some(&alert_payload("firing", "HostDown", "warning")))
        .await;
    assert_eq!(other["started"], json!([]));
    let (_, resolved) = s
        .call(
            "POST",
            "/v1/alerts/alertmanager",
            Some(TRIGGER),
            Some(&alert_payload("resolved", "HostDown", "critical")),
        )
        .await;
    assert_eq!(resolved["resolved"], 1);
    let (_, runs) = s.call("GET", "/v1/runs", Some(READER), None).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    // Bad payloads are 4xx.
    let (status, _) =
        s.call("POST", "/v1/alerts/alertmanager", Some(TRIGGER), Some("{\"version\": \"3\", \"alerts\": []}")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = s.call("POST", "/v1/alerts/alertmanager", Some(TRIGGER), Some("[]")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = s.call("POST", "/v1/alerts/alertmanager", Some(READER), Some("{}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_alert_triggers_params_are_rendered_from_the_alerts_labels() {
    let mut s = Server::new();
    s.runbook(
        "by-instance",
        r#"
name: by-instance
params:
  target: {type: string, required: true}
  tries: {type: number, default: 1}
triggers:
  - alert: {match: {alertname: HostDown}}
    params:
      target: "http://{{ alert.labels.instance }}:9100/{{ alert.annotations.summary | replace(' ', '-') }}"
      tries: 3
  - alert: {match: {alertname: NoSuchLabel}}
    params:
      target: "{{ alert.labels.missing }}"
steps:
  - id: look
    plugin: echo
    with: {output: "${{ params.target + ' x' + string(params.tries) }}"}
"#,
    );
    s.start();
    let (status, body) = s
        .call("POST", "/v1/alerts/alertmanager", Some(TRIGGER), Some(&alert_payload("firing", "HostDown", "critical")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["started"][0]["run_id"].as_str().unwrap().to_string();
    let run = s.wait_final(&id).await;
    assert_eq!(run["steps"][0]["output"], "http://web-1:9100/web-1-is-down x3");
    // A label the alert lacks: the alert is recorded, no run starts.
    let (status, body) = s
        .call("POST", "/v1/alerts/alertmanager", Some(TRIGGER), Some(&alert_payload("firing", "NoSuchLabel", "low")))
        .await;
    assert_eq!((status, &body["started"]), (StatusCode::OK, &json!([])), "{body}");
    let (_, rb) = s.call("GET", "/v1/runbooks/by-instance", Some(READER), None).await;
    assert_eq!(rb["triggers"][0]["params"]["tries"], 3, "{rb}");
}

#[tokio::test]
async fn run_events_stream_live_progress_until_the_end() {
    let mut s = Server::new();
    s.runbook(
        "gate",
        "name: gate\ntriggers: [{http: true}]\nsteps:\n  - id: go\n    plugin: echo\n    approval: {message: ship it?}\n",
    );
    s.start();
    let (_, body) = s.call("POST", "/v1/runbooks/gate/runs", Some(TRIGGER), None).await;
    let id = body["run_id"].as_str().unwrap().to_string();
    s.wait_status(&id, "waiting_approval").await;
    let mut resp = s.http.get(format!("{}/v1/runs/{id}/events", s.base)).bearer_auth(READER).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    // The snapshot arrives first; then approve and read to the end.
    while !text.contains("event: snapshot") {
        text.push_str(&String::from_utf8_lossy(&resp.chunk().await.unwrap().unwrap()));
    }
    assert!(text.contains("\"status\":\"waiting_approval\""), "{text}");
    s.call("POST", &format!("/v1/runs/{id}/approve"), Some(ADMIN), None).await;
    let read = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    };
    let text = tokio::time::timeout(Duration::from_secs(20), read).await.expect("the stream ends after the run");
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(events, vec!["snapshot", "approval_decided", "step_started", "step_finished", "run_finished"], "{text}");
    // A finished run: the snapshot, then the end.
    let resp = s.http.get(format!("{}/v1/runs/{id}/events", s.base)).bearer_auth(READER).send().await.unwrap();
    let text = resp.text().await.unwrap();
    assert!(text.starts_with("event: snapshot"), "{text}");
    assert!(text.contains("\"status\":\"succeeded\""), "{text}");
}

#[tokio::test]
async fn metrics_count_runs_steps_and_escalations() {
    let mut s = Server::new();
    s.runbook(
        "hello",
        r#"
name: hello
triggers: [{http: true}]
steps:
  - id: greet
    plugin: echo
    with: {findings: [{severity: critical, title: on fire}]}
"#,
    );
    s.start();
    let (_, body) = s.call("POST", "/v1/runbooks/hello/runs", Some(TRIGGER), None).await;
    s.wait_final(body["run_id"].as_str().unwrap()).await;
    let resp = s.http.get(format!("{}/metrics", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let text =
        s.http.get(format!("{}/metrics", s.base)).bearer_auth(READER).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("tend_runs_total{runbook=\"hello\",status=\"succeeded\"} 1"), "{text}");
    assert!(
        text.contains("tend_step_duration_seconds_bucket{runbook=\"hello\",plugin=\"echo\",le=\"0.001\"}"),
        "{text}"
    );
    assert!(text.contains("tend_escalations_total{severity=\"critical\"} 1"), "{text}");
    // The database writer's commits, and the writes they carried (at least
    // the run's create, claim, attempt start and end, and finish).
    let counter = |name: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or_else(|| panic!("{name}: {text}"))
    };
    let (commits, writes) = (counter("tend_store_commits_total "), counter("tend_store_writes_total "));
    assert!(commits >= 1.0 && writes >= commits && writes >= 5.0, "commits {commits}, writes {writes}");
}

#[tokio::test]
async fn a_run_in_an_idempotent_step_resumes_after_kill_9() {
    let mut s = Server::new();
    s.runbook(
        "resumable",
        r#"
name: resumable
triggers: [{http: true}]
steps:
  - id: first
    plugin: echo
    with: {output: one}
  - id: wait
    plugin: hostile
    with: {mode: sleep, ms: 3000}
    timeout: 1m
    idempotent: true
    grants: {env: {A: b}, dirs: ["/tmp:/tmp:ro"], hosts: [localhost], secrets: [none]}
  - id: last
    plugin: echo
    input: ${{ steps.first.output }}
"#,
    );
    s.start();
    let (_, body) = s.call("POST", "/v1/runbooks/resumable/runs", Some(TRIGGER), None).await;
    let id = body["run_id"].as_str().unwrap().to_string();
    let start = Instant::now();
    loop {
        let (_, run) = s.call("GET", &format!("/v1/runs/{id}"), Some(READER), None).await;
        if run["steps"].as_array().unwrap().iter().any(|a| a["step_id"] == "wait" && a["status"] == "running") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the wait step never started: {run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.kill9();
    s.start();
    let run = s.wait_final(&id).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run}");
    let steps: Vec<(String, String)> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["step_id"].as_str().unwrap().to_string(), a["status"].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(String, String)> =
        [("first", "succeeded"), ("wait", "interrupted"), ("wait", "succeeded"), ("last", "succeeded")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    assert_eq!(steps, expected, "first is not run again");
    assert_eq!(run["steps"][3]["output"], "one", "restored output flows on");
    assert_eq!(run["escalations"], json!([]));
}

#[tokio::test]
async fn the_openapi_document_lists_every_endpoint() {
    let mut s = Server::new();
    s.start();
    let (status, _) = s.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, doc) = s.call("GET", "/v1/openapi.json", Some(READER), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/runbooks/{name}/runs", "post"),
        ("/v1/runs", "get"),
        ("/v1/runs/{id}", "get"),
        ("/v1/runs/{id}/events", "get"),
        ("/v1/runs/{id}/report", "get"),
        ("/v1/runs/{id}/cancel", "post"),
        ("/v1/runs/{id}/approve", "post"),
        ("/v1/runs/{id}/reject", "post"),
        ("/v1/runbooks", "get"),
        ("/v1/runbooks/{name}", "get"),
        ("/v1/plugins", "get"),
        ("/v1/escalations", "get"),
        ("/v1/escalations/{id}/ack", "post"),
        ("/v1/escalations/{id}/resolve", "post"),
        ("/v1/alerts/alertmanager", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(doc["components"]["schemas"]["RunRecord"].is_object());
}

/// Whether `v` is an RFC 3339 UTC instant with milliseconds, as the API
/// writes every timestamp (`2026-12-02T07:56:18.943Z`).
fn is_rfc3339_ms(v: &Value) -> bool {
    v.as_str().is_some_and(|t| t.len() == 24 && t.ends_with('Z') && t.parse::<jiff::Timestamp>().is_ok())
}

#[tokio::test]
async fn api_timestamps_are_rfc3339_utc_and_the_openapi_document_says_so() {
    let mut s = Server::new();
    s.runbook("hello", ECHO);
    s.start();
    let (_, body) = s.call("POST", "/v1/runbooks/hello/runs", Some(TRIGGER), None).await;
    let record = s.wait_final(body["run_id"].as_str().unwrap()).await;
    for field in ["created_at", "started_at", "finished_at"] {
        assert!(is_rfc3339_ms(&record["run"][field]), "run.{field}: {}", record["run"]);
    }
    for field in ["started_at", "finished_at"] {
        assert!(is_rfc3339_ms(&record["steps"][0][field]), "steps[0].{field}: {}", record["steps"][0]);
    }
    let (_, list) = s.call("GET", "/v1/runs", Some(READER), None).await;
    assert_eq!(list["runs"][0]["created_at"], record["run"]["created_at"]);
    let (_, doc) = s.call("GET", "/v1/openapi.json", Some(READER), None).await;
    let run = &doc["components"]["schemas"]["RunRow"]["properties"];
    assert_eq!(run["created_at"], json!({"type": "string", "format": "date-time"}), "{run}");
    assert_eq!(run["finished_at"]["format"], "date-time", "{run}");
    let escalation = &doc["components"]["schemas"]["EscalationRow"]["properties"];
    assert_eq!(escalation["last_seen_at"], json!({"type": "string", "format": "date-time"}), "{escalation}");
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn runbooks_reload_on_change_and_keep_the_last_good_version() {
    let mut s = Server::new();
    s.runbook("hello", ECHO);
    s.start();
    let (status, _) = s.call("GET", "/v1/runbooks/later", Some(READER), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.runbook("later", &ECHO.replace("name: hello", "name: later"));
    let start = Instant::now();
    while s.call("GET", "/v1/runbooks/later", Some(READER), None).await.0 != StatusCode::OK {
        assert!(start.elapsed() < Duration::from_secs(15), "the new runbook was never loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Broken, it keeps serving its last good version and says why.
    s.runbook("later", "name: later\nsteps:\n  - id: a\n    plugin: nope\n");
    let start = Instant::now();
    loop {
        let (_, list) = s.call("GET", "/v1/runbooks", Some(READER), None).await;
        if let Some(p) = list["problems"].as_array().and_then(|p| p.first()) {
            assert!(p.as_str().unwrap().contains("plugin \"nope\" is not installed"), "{list}");
            assert!(list["runbooks"].as_array().unwrap().iter().any(|r| r["name"] == "later"), "{list}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the broken file was never noticed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SIGHUP reloads too, and the process keeps serving.
    signal(s.child.as_ref().unwrap(), "-HUP");
    let (status, _) = s.call("GET", "/v1/runbooks/hello", Some(READER), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn sigterm_lets_the_runs_in_flight_finish() {
    let mut s = Server::new();
    s.runbook(
        "slowish",
        "name: slowish\ntriggers: [{http: true}]\nsteps:\n  - id: wait\n    plugin: hostile\n    with: {mode: sleep, ms: 1500}\n    grants: {env: {A: b}, dirs: [\"/tmp:/tmp:ro\"], hosts: [localhost], secrets: [none]}\n",
    );
    s.start();
    let (_, body) = s.call("POST", "/v1/runbooks/slowish/runs", Some(TRIGGER), None).await;
    let id = body["run_id"].as_str().unwrap().to_string();
    s.wait_status(&id, "running").await;
    let mut child = s.child.take().unwrap();
    signal(&child, "-TERM");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "{status:?}");
    let store = tend::store::Store::open(s.path().join("tend.db").to_str().unwrap()).await.unwrap();
    let run = store.get_run(&id).await.unwrap().unwrap();
    assert_eq!(run.status, tend::store::RunStatus::Succeeded, "the run finished before exit");
}

#[tokio::test]
async fn service_wide_webhooks_get_every_escalation() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            let mut buf = vec![0u8; 16384];
            let mut got = String::new();
            while !got.ends_with('}') {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(got);
        }
    });
    let mut s = Server::new();
    s.configure(&format!("[notify]\nwebhooks = [\"{url}\"]"));
    s.runbook(
        "hot",
        "name: hot\ntriggers: [{http: true}]\nsteps:\n  - id: a\n    plugin: echo\n    with: {findings: [{severity: high, title: overheating}]}\nnotify: {log: false}\n",
    );
    s.start();
    let (_, body) = s.call("POST", "/v1/runbooks/hot/runs", Some(TRIGGER), None).await;
    s.wait_final(body["run_id"].as_str().unwrap()).await;
    let request = rx.recv_timeout(Duration::from_secs(10)).expect("the webhook was called");
    assert!(request.contains("\"text\":\"[HIGH] hot: a: overheating"), "{request}");
}

/// A daily job at a fixed time in a zone with daylight saving: Berlin
/// skips 02:00-03:00 on 2026-03-29 and repeats it on 2026-10-25.
const NIGHTLY: &str = r#"
name: nightly
triggers:
  - {cron: "30 2 * * *", timezone: Europe/Berlin}
steps:
  - id: a
    plugin: echo
"#;

#[tokio::test]
async fn a_daily_cron_job_runs_once_on_the_spring_forward_day() {
    let mut s = Server::new();
    s.runbook("nightly", NIGHTLY);
    s.set_clock("2026-03-28T12:00:00Z");
    s.start();
    s.clock_to("2026-03-28T12:00:00Z").await;
    let t = s.cron_trigger("nightly").await;
    // 02:30 does not exist on the 29th: 03:00 CEST, the first instant after the gap.
    assert_eq!(t["next_fire_at"], "2026-03-29T01:00:00.000Z", "{t}");
    assert_eq!(
        t["next_fires"],
        json!([
            "2026-03-29T01:00:00.000Z",
            "2026-03-30T00:30:00.000Z",
            "2026-03-31T00:30:00.000Z",
            "2026-04-01T00:30:00.000Z",
            "2026-04-02T00:30:00.000Z"
        ])
    );
    s.clock_to("2026-03-29T00:59:30Z").await; // 01:59:30 CET
    assert_eq!(s.fires("nightly").await, Vec::<String>::new());
    s.clock_to("2026-03-29T01:00:05Z").await; // 03:00:05 CEST
    assert_eq!(s.fires("nightly").await, ["2026-03-29T01:00:00Z"]);
    s.clock_to("2026-03-29T01:30:05Z").await; // 03:30:05 CEST
    s.clock_to("2026-03-30T00:29:30Z").await;
    assert_eq!(s.fires("nightly").await, ["2026-03-29T01:00:00Z"]);
    s.clock_to("2026-03-30T00:30:05Z").await; // 02:30:05 CEST, the next day
    assert_eq!(s.fires("nightly").await, ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]);
    let t = s.cron_trigger("nightly").await;
    assert_eq!(
        (&t["next_fire_at"], &t["next_fires"][0]),
        (&json!("2026-03-31T00:30:00.000Z"), &json!("2026-03-31T00:30:00.000Z"))
    );
    let (_, runs) = s.call("GET", "/v1/runs?runbook=nightly", Some(READER), None).await;
    for r in runs["runs"].as_array().unwrap() {
        assert_eq!(s.wait_final(r["id"].as_str().unwrap()).await["run"]["status"], "succeeded");
    }
    // A clock file that holds no time is logged, naming the file; the
    // scheduler keeps the last good time.
    std::fs::write(s.clock_file(), "half past two").unwrap();
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(s.path().join("serve.log")).unwrap();
        if log.contains("\"half past two\" is not an RFC 3339 instant; expected e.g. 2026-03-29T00:59:30Z") {
            assert!(log.contains(&format!("clock file {}", s.clock_file().display())), "{log}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no error logged: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.cron_trigger("nightly").await["next_fires"][0], "2026-03-31T00:30:00.000Z");
}

#[tokio::test]
async fn a_daily_cron_job_runs_once_on_the_fall_back_day_and_an_hourly_one_twice() {
    let mut s = Server::new();
    s.runbook("nightly", NIGHTLY);
    s.runbook(
        "hourly",
        "name: hourly\ntriggers:\n  - {cron: \"30 * * * *\", timezone: Europe/Berlin}\nsteps:\n  - id: a\n    plugin: echo\n",
    );
    s.set_clock("2026-10-24T23:45:00Z");
    s.start();
    s.clock_to("2026-10-24T23:45:00Z").await;
    assert_eq!(s.cron_trigger("nightly").await["next_fire_at"], "2026-10-25T00:30:00.000Z");
    s.clock_to("2026-10-25T00:29:30Z").await; // 02:29:30 CEST
    assert_eq!(s.fires("nightly").await, Vec::<String>::new());
    s.clock_to("2026-10-25T00:30:05Z").await; // the first 02:30 (CEST)
    assert_eq!(s.fires("nightly").await, ["2026-10-25T00:30:00Z"]);
    assert_eq!(s.fires("hourly").await, ["2026-10-25T00:30:00Z"]);
    let t = s.cron_trigger("nightly").await;
    assert_eq!(t["next_fire_at"], "2026-10-26T01:30:00.000Z", "not the second 02:30: {t}");
    assert_eq!(t["next_fires"][0], "2026-10-26T01:30:00.000Z");
    s.clock_to("2026-10-25T01:29:30Z").await; // 02:29:30 CET
    s.clock_to("2026-10-25T01:30:05Z").await; // the second 02:30 (CET)
    s.clock_to("2026-10-25T01:31:30Z").await;
    assert_eq!(s.fires("nightly").await, ["2026-10-25T00:30:00Z"], "once on the fall-back day");
    assert_eq!(s.fires("hourly").await, ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"], "wall time: both 02:30s");
    s.clock_to("2026-10-26T01:30:05Z").await; // 02:30:05 CET, the next day
    assert_eq!(s.fires("nightly").await, ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]);
    assert_eq!(
        s.fires("hourly").await,
        ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"],
        "a day-long jump is downtime: missed fires run once (missed: last)"
    );
}

#[tokio::test]
async fn kill_9_then_restart_neither_loses_nor_repeats_a_cron_fire() {
    let mut s = Server::new();
    let slow = NIGHTLY.replace(
        "    plugin: echo\n",
        "    plugin: hostile\n    with: {mode: sleep, ms: 60000}\n    timeout: 2m\n    grants: {env: {A: b}, dirs: [\"/tmp:/tmp:ro\"], hosts: [localhost], secrets: [none]}\n",
    );
    s.runbook("nightly", &slow); // missed: last, the default
    s.runbook(
        "replay",
        &NIGHTLY.replace("name: nightly", "name: replay").replace(
            "timezone: Europe/Berlin}",
            "timezone: Europe/Berlin, missed: all, missed_window: 7d, overlap: allow}",
        ),
    );
    s.runbook(
        "drop",
        &NIGHTLY
            .replace("name: nightly", "name: drop")
            .replace("timezone: Europe/Berlin}", "timezone: Europe/Berlin, missed: none}"),
    );
    s.set_clock("2026-10-24T12:00:00Z");
    s.start();
    s.clock_to("2026-10-24T12:00:00Z").await;
    s.clock_to("2026-10-25T00:30:05Z").await;
    let (_, runs) = s.call("GET", "/v1/runs?runbook=nightly", Some(READER), None).await;
    let first = runs["runs"][0]["id"].as_str().unwrap().to_string();
    s.wait_status(&first, "running").await;
    s.kill9();

    // Back at once, still within a minute of the fire: it is not repeated.
    s.runbook("nightly", NIGHTLY);
    s.set_clock("2026-10-25T00:30:40Z");
    s.start();
    s.clock_to("2026-10-25T00:30:40Z").await;
    for rb in ["nightly", "replay", "drop"] {
        assert_eq!(s.fires(rb).await, ["2026-10-25T00:30:00Z"], "{rb}");
    }
    assert_eq!(s.wait_final(&first).await["run"]["status"], "interrupted");

    // Down for three days: the fires of the 26th, 27th and 28th were missed.
    s.kill9();
    s.set_clock("2026-10-28T12:00:00Z");
    s.start();
    s.clock_to("2026-10-28T12:00:00Z").await;
    let expected = [
        ("nightly", vec!["2026-10-25T00:30:00Z", "2026-10-28T01:30:00Z"]),
        (
            "replay",
            vec!["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z", "2026-10-28T01:30:00Z"],
        ),
        ("drop", vec!["2026-10-25T00:30:00Z"]),
    ];
    for (rb, fires) in &expected {
        assert_eq!(&s.fires(rb).await, fires, "{rb}");
        assert_eq!(s.cron_trigger(rb).await["next_fire_at"], "2026-10-29T01:30:00.000Z", "{rb}");
    }

    // Another crash and restart at the same time replays nothing again.
    s.kill9();
    s.start();
    s.clock_to("2026-10-28T12:00:00Z").await;
    for (rb, fires) in &expected {
        assert_eq!(&s.fires(rb).await, fires, "{rb}");
    }
    let (_, runs) = s.call("GET", "/v1/runs?limit=500", Some(READER), None).await;
    for r in runs["runs"].as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        let status = &s.wait_final(id).await["run"]["status"];
        assert_eq!(status, if id == first { "interrupted" } else { "succeeded" }, "{r}");
    }
}
