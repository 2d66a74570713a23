//! The post-mortem of a full incident run, pinned as text.

use super::*;
use crate::runtime::record::Finding;
use crate::store::{
    AlertStatus, ApprovalRow, ApprovalStatus, EscalationRow, EscalationStatus, MeasuredBy, RunAlert, RunRow, RunStatus,
    TriggerKind,
};
use serde_json::json;

/// 2026-12-06 10:00:00.000 UTC plus `s` seconds.
fn t(s: f64) -> i64 {
    1_796_551_200_000 + (s * 1000.0) as i64
}

fn attempt(step: &str, iteration: u32, attempt: u32, status: &str, start: f64, secs: f64) -> AttemptRow {
    AttemptRow {
        id: 0,
        run_id: "01RUN".into(),
        step_id: step.into(),
        iteration,
        attempt,
        plugin: "http-probe".into(),
        plugin_digest: None,
        config: None,
        input: None,
        status: status.parse().unwrap(),
        outcome: Some(if status == "succeeded" { "ok" } else { status }.into()),
        error: None,
        output: None,
        findings: Vec::new(),
        logs: Vec::new(),
        metrics: Vec::new(),
        duration_ms: Some(secs * 1000.0),
        peak_memory_bytes: None,
        started_at: t(start),
        finished_at: Some(t(start + secs)),
    }
}

fn incident() -> RunRecord {
    let mut probe = attempt("probe", 0, 1, "succeeded", 1.0, 0.25);
    probe.findings = vec![
        Finding {
            severity: Severity::High,
            title: "Target down".into(),
            detail: "connection refused".into(),
            resource: Some("http://127.0.0.1:9000/healthz".into()),
        },
        Finding { severity: Severity::Low, title: "Slow | response".into(), detail: String::new(), resource: None },
    ];
    let mut first_restart = attempt("restart", 1, 1, "failed", 70.0, 1.0);
    first_restart.plugin = "remediate".into();
    first_restart.error = Some("retryable: 503 Service\nUnavailable".into());
    let mut restart = attempt("restart", 1, 2, "succeeded", 72.0, 2.0);
    restart.plugin = "remediate".into();
    restart.output = Some(json!({"summary": "POST /admin/restart -> 200", "done": true}));
    let mut scale = attempt("scale", 1, 0, "skipped", 74.0, 0.0);
    scale.error = Some("`steps.prom.output.values.cpu > 80` was false".into());
    let mut score = attempt("score", 2, 1, "succeeded", 80.0, 0.5);
    score.plugin = "health-score".into();
    score.output = Some(json!({"score": 9, "summary": {"healthy": true}}));
    RunRecord {
        run: RunRow {
            id: "01RUN".into(),
            runbook: "incident-response".into(),
            runbook_hash: "h".into(),
            trigger_kind: TriggerKind::Alert,
            trigger_source: Some("alertmanager:DemoDown:abc123 via token:am".into()),
            params: json!({"severity": "high", "url": "http://127.0.0.1:9000/", "service": "demo"}),
            status: RunStatus::Succeeded,
            error: None,
            created_at: t(0.0),
            started_at: Some(t(0.5)),
            finished_at: Some(t(330.5)),
        },
        steps: vec![probe, first_restart, restart, scale, score],
        escalations: vec![EscalationRow {
            id: 4,
            run_id: "01RUN".into(),
            runbook: "incident-response".into(),
            step_id: Some("score".into()),
            iteration: 0,
            severity: Severity::Critical,
            message: "demo is down (score 2)".into(),
            dedup_key: "k".into(),
            status: EscalationStatus::Resolved,
            occurrences: 1,
            created_at: t(2.0),
            last_seen_at: t(2.0),
            acknowledged_by: Some("ann".into()),
            acknowledged_at: Some(t(30.0)),
            resolved_by: Some("bob".into()),
            resolved_at: Some(t(300.0)),
            resolution: Some("healthy again".into()),
            notifications: Vec::new(),
        }],
        approvals: vec![ApprovalRow {
            id: 1,
            run_id: "01RUN".into(),
            step_id: "restart".into(),
            iteration: 1,
            message: "Restart demo?".into(),
            status: ApprovalStatus::Approved,
            requested_at: t(10.0),
            expires_at: t(3610.0),
            decided_by: Some("ann".into()),
            decided_at: Some(t(60.0)),
            reason: Some("customers affected".into()),
        }],
        optimization_results: vec![
            OptimizationResult::new(
                "restart".into(),
                1,
                "health_score".into(),
                3.0,
                Some(9.0),
                Some(MeasuredBy { step_id: "score".into(), iteration: 2 }),
            ),
            OptimizationResult::new("restart".into(), 1, "error_rate".into(), 0.0, Some(0.0125), None),
            OptimizationResult::new("restart".into(), 1, "p95_ms".into(), 800.0, None, None),
        ],
        alerts: vec![RunAlert {
            alertname: Some("DemoDown".into()),
            fingerprint: "abc123".into(),
            labels: json!({"alertname": "DemoDown", "instance": "127.0.0.1:9000", "severity": "critical"}),
            status: AlertStatus::Resolved,
            starts_at: "2026-12-06T09:59:30Z".into(),
            ends_at: Some("2026-12-06T10:06:00Z".into()),
            resolved_at: Some(t(360.0)),
            received_at: t(-0.5),
        }],
    }
}

#[test]
fn the_postmortem_of_an_incident_holds_every_section_from_the_record() {
    let expected = "\
# Post-mortem: incident-response run 01RUN

**Severity:** critical

**Status:** succeeded · trigger: alert · started 2026-12-06 10:00:00.500 UTC · finished 2026-12-06 10:05:30.500 UTC · duration 5m30s

## Impact

- Affected: service `demo`, url `http://127.0.0.1:9000/`, instance `127.0.0.1:9000`
- **critical** escalation: demo is down (score 2) (resolved, step `score`)
- **high** finding of `probe` on `http://127.0.0.1:9000/healthz`: Target down: connection refused

## Timeline (UTC)

- 2026-12-06 09:59:59.500 — Alert `DemoDown` firing since 2026-12-06T09:59:30Z (instance=127.0.0.1:9000, severity=critical)
- 2026-12-06 10:00:00.000 — Run created by its alert trigger (alertmanager:DemoDown:abc123 via token:am)
- 2026-12-06 10:00:00.500 — Run started
- 2026-12-06 10:00:01.000 — Step `probe` attempt 1 started (http-probe)
- 2026-12-06 10:00:01.250 — Step `probe` attempt 1 succeeded in 250ms
- 2026-12-06 10:00:02.000 — Escalation 4 raised [critical] by step `score`: demo is down (score 2)
- 2026-12-06 10:00:10.000 — Approval requested for `restart`: Restart demo?
- 2026-12-06 10:00:30.000 — Escalation 4 acknowledged by ann
- 2026-12-06 10:01:00.000 — Approval for `restart` approved by ann: customers affected
- 2026-12-06 10:01:10.000 — Step `restart` (iteration 1) attempt 1 started (remediate)
- 2026-12-06 10:01:11.000 — Step `restart` (iteration 1) attempt 1 failed in 1s: retryable: 503 Service Unavailable
- 2026-12-06 10:01:12.000 — Step `restart` (iteration 1) attempt 2 started (remediate)
- 2026-12-06 10:01:14.000 — Step `restart` (iteration 1) attempt 2 succeeded in 2s
- 2026-12-06 10:01:14.000 — Step `scale` (iteration 1) skipped: `steps.prom.output.values.cpu > 80` was false
- 2026-12-06 10:01:20.000 — Step `score` (iteration 2) attempt 1 started (health-score)
- 2026-12-06 10:01:20.500 — Step `score` (iteration 2) attempt 1 succeeded in 500ms
- 2026-12-06 10:05:00.000 — Escalation 4 resolved by bob: healthy again
- 2026-12-06 10:05:30.500 — Run finished: succeeded
- 2026-12-06 10:06:00.000 — Alert `DemoDown` resolved (ended 2026-12-06T10:06:00Z)

## Actions

- `restart` (iteration 1): POST /admin/restart -> 200
- `score` (iteration 2): {\"healthy\":true}

| step | iteration | metric | before | after | change | re-measured by |
|---|---|---|---|---|---|---|
| restart | 1 | health_score | 3.0 | 9.0 | +6.0 (+200.0%) | score (iteration 2) |
| restart | 1 | error_rate | 0.0 | 0.0125 | +0.0125 | not re-measured before the run ended |
| restart | 1 | p95_ms | 800.0 | — | — | not re-measured before the run ended |

## Root cause

_To be written by the responders._

## Prevention

- [ ] Slow \\| response
- [ ] Target down
- [ ] _Add what would have prevented this or caught it sooner._
";
    let got = postmortem(&incident());
    if got != expected {
        panic!("the report differs; got:\n{got}");
    }
}

#[test]
fn severity_falls_back_to_the_params_then_to_none_and_a_quiet_run_says_so() {
    let mut r = incident();
    r.escalations.clear();
    r.alerts.clear();
    r.optimization_results.clear();
    r.steps.retain(|a| a.step_id == "scale");
    let md = postmortem(&r);
    assert!(md.contains("**Severity:** high\n"), "{md}");
    assert!(md.contains("- No escalations or findings of medium severity or higher.\n"), "{md}");
    assert!(md.contains("## Actions\n\nNo step recorded a summary or a before/after.\n"), "{md}");
    r.run.params = json!({});
    r.run.status = RunStatus::Failed;
    r.run.error = Some("step \"probe\" failed".into());
    let md = postmortem(&r);
    assert!(md.contains("**Severity:** none\n"), "{md}");
    assert!(md.contains("**Error:** step \"probe\" failed\n"), "{md}");
}
