//! End-to-end tests of the shipped `runbooks/incident-response.yaml` on a
//! real `tend serve` against the real demo service (`tend demo service`):
//! an incident declared critical over HTTP notifies, waits for approval,
//! mitigates once approved, notifies the resolution and writes a
//! post-mortem; and the real stack — Debian's Prometheus scraping the demo
//! service with an alert rule on its error rate, Debian's Alertmanager
//! routing to tend's webhook — starts the incident from the alert, the
//! notification is received, and the alert's resolution is recorded on
//! the incident's run.
//!
//! Only 127.0.0.1 is ever contacted.

mod demo_support;
mod loopback;
mod monitoring;
mod serve_support;

use demo_support::DemoService;
use monitoring::{Alertmanager, Prometheus, PrometheusSetup, free_port};
use reqwest::StatusCode;
use serde_json::{Value, json};
use serve_support::{ADMIN, READER, Server, TRIGGER};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shipped incident-response runbook, with its wait between
/// assessments shortened from 30 s to `settle` for the test.
fn incident_runbook(settle: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/incident-response.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let default = "  settle:\n    type: string\n    default: 30s\n";
    assert!(text.contains(default), "the runbook's settle param changed; update this test");
    text.replace(default, &format!("  settle:\n    type: string\n    default: {settle}\n"))
}

/// A `tend serve` with the incident-response runbook, the demo service's
/// token as the `service-token` secret, and every escalation sent as JSON
/// to a loopback receiver (whose requests are returned).
fn incident_server(demo: &DemoService, settle: &str) -> (Server, Arc<Mutex<Vec<String>>>) {
    let mut s = Server::new();
    s.runbook("incident-response", &incident_runbook(settle));
    s.env("TEND_SECRET_SERVICE_TOKEN", demo.token());
    let (hook, received) = loopback::recorder(200, "ok");
    s.configure(&format!("[notify]\nwebhooks = [\"http://{hook}/hook\"]"));
    s.setting("public_url", "\"http://tend.example\"");
    (s, received)
}

/// The JSON bodies the receiver got so far.
fn notifications(received: &Arc<Mutex<Vec<String>>>) -> Vec<Value> {
    let requests = received.lock().unwrap().clone();
    requests.iter().map(|r| serde_json::from_str(loopback::body_of(r)).expect("a JSON notification")).collect()
}

/// Polls until `check` holds, panicking with `what` after `patience`.
async fn eventually(what: &str, patience: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < patience, "{what}: not within {patience:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_critical_incident_waits_for_approval_and_its_report_tells_what_happened() {
    let demo = DemoService::start();
    demo.set_faults(&json!({"down": true}));
    let (mut s, received) = incident_server(&demo, "1s");
    s.start();

    let params = json!({"params": {"service_url": demo.url(), "severity": "critical", "summary": "checkout is down"}});
    let (status, body) =
        s.call("POST", "/v1/runbooks/incident-response/runs", Some(TRIGGER), Some(&params.to_string())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["run_id"].as_str().unwrap().to_string();

    // Assessed critical, communicated, and waiting for a person.
    s.wait_status(&id, "waiting_approval").await;
    let sent = notifications(&received);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!((&sent[0]["severity"], &sent[0]["status"]), (&json!("critical"), &json!("triggered")), "{:#}", sent[0]);
    let text = sent[0]["text"].as_str().unwrap();
    assert!(text.contains("/healthz is down") && text.contains("checkout is down"), "{text}");
    assert_eq!(sent[0]["run_url"], format!("http://tend.example/v1/runs/{id}"));
    assert_eq!(demo.get("/healthz").status, 503, "nothing was done before the approval");

    let (status, body) = s.call("POST", &format!("/v1/runs/{id}/approve"), Some(ADMIN), Some("{}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = s.wait_final(&id).await;
    assert_eq!(run["run"]["status"], "succeeded", "{run:#}");
    assert_eq!(demo.get("/healthz").status, 200);

    // Mitigated once, and the second assessment found no incident.
    let steps = run["steps"].as_array().unwrap();
    let restarted: Vec<&Value> =
        steps.iter().filter(|a| a["step_id"] == "restart_approved" && a["status"] == "succeeded").collect();
    assert_eq!(restarted.len(), 1, "{steps:#?}");
    let triage: Vec<&Value> = steps.iter().filter(|a| a["step_id"] == "triage").collect();
    assert_eq!(triage.last().unwrap()["output"]["severity"], "none", "{triage:#?}");
    // The escalation was resolved at the end, and the sink told.
    assert_eq!(run["escalations"][0]["status"], "resolved", "{:#}", run["escalations"]);
    eventually("the resolved notification", Duration::from_secs(10), async || {
        notifications(&received).iter().any(|n| n["status"] == "resolved")
    })
    .await;

    // The post-mortem names the severity, the steps and the timeline.
    let resp = s.http.get(format!("{}/v1/runs/{id}/report", s.base)).bearer_auth(READER).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/markdown"));
    let report = resp.text().await.unwrap();
    for expected in [&id, "critical", "succeeded", "Timeline", "restart_approved", "triage", "approved", "Root cause"] {
        assert!(report.contains(expected), "the report lacks {expected:?}:\n{report}");
    }
    assert!(report.contains("health_score"), "the before/after is in the report:\n{report}");
}

#[tokio::test]
async fn an_alert_from_the_real_stack_starts_the_incident_and_the_notification_is_received() {
    let demo = DemoService::start();
    let (mut s, received) = incident_server(&demo, "6s");
    s.start();
    let alertmanager = Alertmanager::start(&format!("{}/v1/alerts/alertmanager", s.base), TRIGGER);
    let prometheus_addr = format!("127.0.0.1:{}", free_port());
    let rules = format!(
        r#"groups:
  - name: demo
    rules:
      - alert: DemoErrorRate
        expr: >-
          100 * sum by (instance) (rate(demo_requests_total{{job="demo",status!="200"}}[5s]))
          / sum by (instance) (rate(demo_requests_total{{job="demo"}}[5s])) > 5
        labels: {{runbook: incident-response, severity: high}}
        annotations:
          summary: "{{{{ $labels.instance }}}} fails {{{{ $value | printf \"%.0f\" }}}}% of requests"
          prometheus_url: "http://{prometheus_addr}"
"#
    );
    let prometheus = Prometheus::start_with(&PrometheusSetup {
        targets: &[demo.addr()],
        rules: Some(&rules),
        alertmanager: Some(alertmanager.addr()),
        listen: Some(&prometheus_addr),
    });

    // Break it: half the requests fail, which a restart cures.
    demo.set_faults(&json!({"error_rate": 0.5}));
    let mut run_id = String::new();
    eventually("a run started by the alert", Duration::from_secs(60), async || {
        let (_, runs) = s.call("GET", "/v1/runs?runbook=incident-response", Some(READER), None).await;
        match runs["runs"].as_array().and_then(|r| r.first()) {
            Some(r) => {
                run_id = r["id"].as_str().unwrap().to_string();
                true
            }
            None => false,
        }
    })
    .await;
    let run = s.wait_final(&run_id).await;
    assert_eq!(run["run"]["trigger_kind"], "alert", "{:#}", run["run"]);
    assert_eq!(run["run"]["status"], "succeeded", "{run:#}");
    // It targeted the instance that alerted, through the Prometheus the rule named.
    assert_eq!(run["run"]["params"]["service_url"], demo.url());
    assert_eq!(run["run"]["params"]["prometheus_url"], prometheus.url());
    let steps = run["steps"].as_array().unwrap();
    let first_triage = steps.iter().find(|a| a["step_id"] == "triage").unwrap();
    assert_eq!(first_triage["output"]["severity"], "high", "{first_triage:#}");
    assert!(steps.iter().any(|a| a["step_id"] == "restart" && a["status"] == "succeeded"), "{steps:#?}");
    assert_eq!(demo.faults()["error_rate"], 0.0);

    // The notification was received, with the alert's severity and summary.
    let sent = notifications(&received);
    let high = sent.iter().find(|n| n["severity"] == "high").unwrap_or_else(|| panic!("{sent:#?}"));
    assert!(high["text"].as_str().unwrap().contains("error rate"), "{high:#}");

    // Prometheus sees the cure, Alertmanager sends the resolution, and
    // the incident's run records it.
    eventually("the resolved alert on the run", Duration::from_secs(90), async || {
        let (_, run) = s.call("GET", &format!("/v1/runs/{run_id}"), Some(READER), None).await;
        run["alerts"].as_array().is_some_and(|a| a.iter().any(|a| a["status"] == "resolved"))
    })
    .await;
    let (_, run) = s.call("GET", &format!("/v1/runs/{run_id}"), Some(READER), None).await;
    assert_eq!(run["alerts"][0]["labels"]["alertname"], "DemoErrorRate", "{:#}", run["alerts"]);
}
