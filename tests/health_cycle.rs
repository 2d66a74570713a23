//! End-to-end tests of the shipped `runbooks/health-cycle.yaml` on the real
//! `tend` binary against the real demo service (`tend demo service`), and,
//! for the service's own signals, the real Prometheus scraping it: a
//! service that is down is restarted and its score recovers within the
//! loop; a fault nothing cures (a bad release failing 30 % of requests)
//! escalates critical after 3 iterations and fails the run.
//!
//! Intervals are the runbook's params, so a cycle takes seconds. Only
//! 127.0.0.1 is ever contacted.

mod demo_support;
mod monitoring;

use demo_support::DemoService;
use monitoring::Prometheus;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

/// `tend run health-cycle` from the shipped runbooks, recording in a
/// scratch database, with the demo service's admin token as the
/// `service-token` secret; `params` are `-p` pairs.
fn run_health_cycle(demo: &DemoService, dir: &Path, params: &[String]) -> Output {
    let runbooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tend"));
    cmd.args(["run", "health-cycle", "--json", "-p", &format!("service_url={}", demo.url())])
        .current_dir(dir)
        .env("TEND_CACHE_DIR", std::env::temp_dir().join("tend-test-cache"))
        .env("TEND_DB", dir.join("tend.db"))
        .env("TEND_RUNBOOKS", &runbooks)
        .env("TEND_PLUGINS", dir.join("plugins"))
        .env("TEND_SECRET_SERVICE_TOKEN", demo.token())
        .env_remove("TEND_LOG");
    for p in params {
        cmd.args(["-p", p]);
    }
    cmd.output().expect("tend runs")
}

/// The run record `tend run --json` printed.
fn record(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a run record ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The attempts of `step`, in order.
fn attempts<'a>(record: &'a Value, step: &str) -> Vec<&'a Value> {
    record["steps"].as_array().expect("steps").iter().filter(|a| a["step_id"] == step).collect()
}

/// The scores step `step` gave, in order.
fn scores(record: &Value, step: &str) -> Vec<f64> {
    attempts(record, step)
        .iter()
        .filter(|a| a["status"] == "succeeded")
        .map(|a| a["output"]["score"].as_f64().expect("a score"))
        .collect()
}

#[test]
fn a_service_that_is_down_is_restarted_and_its_score_recovers_within_the_loop() {
    let demo = DemoService::start();
    demo.set_faults(&json!({"down": true}));
    assert_eq!(demo.get("/healthz").status, 503);
    let dir = tempfile::tempdir().unwrap();

    let out = run_health_cycle(&demo, dir.path(), &["interval=1s".into(), "settle=1s".into()]);
    let record = record(&out);
    assert_eq!(record["run"]["status"], "succeeded", "{record:#}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());

    // Detected: the first score is under 4 and says why.
    let first = attempts(&record, "score")[0];
    assert!(first["output"]["score"].as_f64().unwrap() < 4.0, "{first:#}");
    let reasons = first["output"]["deductions"].to_string();
    assert!(reasons.contains("/healthz is down"), "{reasons}");
    // Remediated: one restart, answered 202, then only healthy scores.
    let restarts = attempts(&record, "restart");
    let done: Vec<&&Value> = restarts.iter().filter(|a| a["status"] == "succeeded").collect();
    assert_eq!(done.len(), 1, "{restarts:#?}");
    assert_eq!(done[0]["iteration"], 1);
    assert_eq!(done[0]["output"]["actions"][0]["status"], 202, "{:#}", done[0]);
    // Verified: re-measured after the settle time, at least 1 point better.
    let verified = scores(&record, "verify");
    assert!(verified[0] >= 8.0, "{verified:?}");
    // Healthy 3 measurements in a row ended the loop, within 6 iterations.
    let all = scores(&record, "score");
    let last = attempts(&record, "score").last().unwrap()["output"].clone();
    assert!(last["consecutive_healthy"].as_u64().unwrap() >= 3, "{last:#}");
    assert!(all.len() <= 6 && all[1..].iter().all(|s| *s >= 8.0), "{all:?}");
    // Before and after, recorded for the action.
    let results = record["optimization_results"].as_array().expect("optimization_results");
    let score = results
        .iter()
        .find(|r| r["step_id"] == "restart" && r["metric"] == "health_score")
        .unwrap_or_else(|| panic!("no health_score before/after: {results:#?}"));
    assert!(score["before"].as_f64().unwrap() < 4.0 && score["after"].as_f64().unwrap() >= 8.0, "{score:#}");
    // Nothing left to escalate.
    assert!(!record["escalations"].to_string().contains("critical"), "{:#}", record["escalations"]);
    assert_eq!(demo.get("/healthz").status, 200);
    assert_eq!(demo.faults()["down"], false);
    assert!(demo.metric("demo_restarts_total").unwrap() >= 1.0);
}

#[test]
fn a_fault_nothing_cures_escalates_critical_after_3_iterations() {
    let demo = DemoService::start();
    let mut prometheus = Prometheus::start(Some(demo.addr()));
    demo.set_faults(&json!({"bad_release": true}));
    let error_rate = "100 * sum(rate(demo_requests_total{job=\"demo\",status!=\"200\"}[5s])) \
                      / sum(rate(demo_requests_total{job=\"demo\"}[5s]))";
    prometheus.wait_for("an error rate over 20 % in Prometheus", |p| p.value(error_rate).is_some_and(|v| v > 20.0));
    let dir = tempfile::tempdir().unwrap();

    let params = [
        format!("prometheus_url={}", prometheus.url()),
        "rate_window=5s".into(),
        "interval=1s".into(),
        "settle=1s".into(),
    ];
    let out = run_health_cycle(&demo, dir.path(), &params);
    let record = record(&out);
    assert_eq!(record["run"]["status"], "failed", "{record:#}");
    assert_eq!(
        record["run"]["error"],
        "repeat \"cycle\": `steps.score.status == \"succeeded\" && steps.score.output.consecutive_healthy >= params.healthy_streak` still false after 6 iterations"
    );
    // Every iteration scored the failing service under 4, saying why.
    let all = scores(&record, "score");
    assert_eq!(all.len(), 6, "{all:?}");
    assert!(all.iter().all(|s| *s < 4.0), "{all:?}");
    let reasons = attempts(&record, "score")[0]["output"]["deductions"].to_string();
    assert!(reasons.contains("the service is failing"), "{reasons}");
    // Restarts were tried, and did not help.
    assert!(attempts(&record, "restart").iter().filter(|a| a["status"] == "succeeded").count() >= 3);
    let escalations = record["escalations"].as_array().unwrap();
    let critical: Vec<&Value> = escalations.iter().filter(|e| e["severity"] == "critical").collect();
    assert_eq!(critical.len(), 1, "{escalations:#?}");
    assert_eq!(critical[0]["iteration"], 3, "{:#}", critical[0]);
    let message = critical[0]["message"].as_str().unwrap();
    assert!(message.contains("after 3 iterations of remediation"), "{message}");
    assert!(message.contains("the service is failing"), "{message}");
    // A remediation that does not help is said too.
    assert!(escalations.iter().any(|e| e["severity"] == "medium"), "{escalations:#?}");
    assert_eq!(demo.faults()["bad_release"], true);
}
