//! Engine tests of what a run measures: `measured`, the before/after of
//! steps with `compare`, and the report written when a run finishes.
//! Same scripted executor and virtual clock as the other engine tests.

use super::*;
use crate::store::{MeasuredBy, OptimizationResult};

/// A successful record whose output measured `metrics` (name, value).
fn measuring(data: Value, metrics: &[(&str, f64)]) -> StepRecord {
    let mut r = ok(data);
    let out = r.output.as_mut().unwrap();
    out.metrics = metrics.iter().map(|(n, v)| Metric { name: n.to_string(), value: *v, labels: Vec::new() }).collect();
    r
}

fn failed(msg: &str) -> StepRecord {
    record(Outcome::PluginError { kind: ErrorKind::Failed, message: msg.into() }, None)
}

#[tokio::test]
async fn measured_lists_what_a_step_measured_in_this_run_latest_last() {
    // The score of iteration i is SCORES[i - 1]: healthy from the second on.
    const SCORES: [f64; 6] = [5.0, 8.0, 9.0, 8.5, 3.0, 3.0];
    let script = Script::new(|_, c| match c.ctx.step_id.as_str() {
        "score" => Ok(measuring(json!({}), &[("health_score", SCORES[c.ctx.iteration as usize - 1])])),
        _ => Ok(ok(serde_json::from_str(&c.input).unwrap())),
    });
    let s = setup(script.clone()).await;
    let rb = runbook(
        r#"
name: cycle
steps:
  - id: before
    plugin: fake
    input: ${{ measured }}
  - repeat:
      until: >-
        size(measured.score.health_score) >= 3
        && measured.score.health_score[size(measured.score.health_score) - 1] >= 8.0
        && measured.score.health_score[size(measured.score.health_score) - 2] >= 8.0
        && measured.score.health_score[size(measured.score.health_score) - 3] >= 8.0
      max_iterations: 6
      steps:
        - id: score
          plugin: fake
  - id: after
    plugin: fake
    input: ${{ measured.score }}
"#,
    );
    let out = run(&s, &rb, json!({})).await;
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    let attempts = s.store.attempts(&out.run_id).await.unwrap();
    let output = |id: &str| attempts.iter().find(|a| a.step_id == id).unwrap().output.clone().unwrap();
    assert_eq!(output("before"), json!({"before": {}, "score": {}, "after": {}}), "every step is {{}} before it emits");
    assert_eq!(output("after"), json!({"health_score": [5.0, 8.0, 9.0, 8.5]}), "three healthy in a row end the loop");
}

#[tokio::test]
async fn an_action_records_the_latest_value_before_it_and_the_first_measured_after_it() {
    let script = Script::new(|_, c| match (c.ctx.step_id.as_str(), c.ctx.iteration) {
        ("monitor", _) => Ok(measuring(json!({}), &[("health_score", 3.0), ("error_rate", 5.0)])),
        ("restart", _) => Ok(measuring(json!({"summary": "restarted"}), &[("health_score", 100.0)])),
        ("probe", _) => Ok(measuring(json!({}), &[("error_rate", 1.0), ("latency_ms", 20.0)])),
        ("score", i) => Ok(measuring(json!({}), &[("health_score", [9.0, 10.0][i as usize - 1])])),
        _ => Ok(ok(json!(null))),
    });
    let s = setup(script).await;
    let rb = runbook(
        r#"
name: heal
steps:
  - id: monitor
    plugin: fake
  - id: restart
    plugin: other
    compare: [health_score, error_rate, p95_ms]
  - id: probe
    plugin: fake
  - repeat:
      until: "false"
      max_iterations: 2
      steps:
        - id: score
          plugin: fake
        - id: scale
          plugin: other
          compare: [health_score]
"#,
    );
    let out = run(&s, &rb, json!({})).await;
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    let results = s.store.optimization_results(&out.run_id).await.unwrap();
    let by = |step: &str, iteration| Some(MeasuredBy { step_id: step.into(), iteration });
    assert_eq!(
        results,
        vec![
            // The action's own measurement is not its "after"; the next one is.
            OptimizationResult::new("restart".into(), 0, "health_score".into(), 3.0, Some(9.0), by("score", 1)),
            OptimizationResult::new("restart".into(), 0, "error_rate".into(), 5.0, Some(1.0), by("probe", 0)),
            // Before: the score of its own iteration; after: the next iteration's.
            OptimizationResult::new("scale".into(), 1, "health_score".into(), 9.0, Some(10.0), by("score", 2)),
            // The run ended before anything measured again.
            OptimizationResult::new("scale".into(), 2, "health_score".into(), 10.0, None, None),
        ]
    );
    assert_eq!((results[0].change, results[0].change_percent), (Some(6.0), Some(200.0)));
    assert_eq!((results[1].change, results[1].change_percent), (Some(-4.0), Some(-80.0)));
    let attempts = s.store.attempts(&out.run_id).await.unwrap();
    let restart = attempts.iter().find(|a| a.step_id == "restart").unwrap();
    let notes: Vec<&str> = restart.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        notes,
        ["compare: \"p95_ms\" was not measured in this run before the step; left out of the before/after"]
    );
    // The record (API and `tend runs show --json`) carries them.
    let record = s.store.run_record(&out.run_id).await.unwrap().unwrap();
    assert_eq!(record.optimization_results, results);
}

#[tokio::test]
async fn a_failed_or_skipped_action_records_nothing() {
    let script = Script::new(|_, c| match c.ctx.step_id.as_str() {
        "monitor" => Ok(measuring(json!({}), &[("health_score", 4.0)])),
        "broken" => Ok(failed("admin endpoint refused")),
        _ => Ok(ok(json!(null))),
    });
    let s = setup(script).await;
    let rb = runbook(
        r#"
name: noop
steps:
  - id: monitor
    plugin: fake
  - id: skipped
    plugin: other
    when: "false"
    compare: [health_score]
  - id: broken
    plugin: other
    on_failure: continue
    compare: [health_score]
  - id: again
    plugin: fake
"#,
    );
    let out = run(&s, &rb, json!({})).await;
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    assert_eq!(s.store.optimization_results(&out.run_id).await.unwrap(), vec![]);
}

#[tokio::test]
async fn a_runbook_with_a_report_stores_a_postmortem_whatever_the_final_status() {
    let script = Script::new(|_, c| match c.ctx.step_id.as_str() {
        "monitor" => Ok(measuring(json!({}), &[("health_score", 2.0)])),
        "restart" => Ok(measuring(json!({"summary": "POST /admin/restart -> 200"}), &[])),
        "verify" if c.input.contains("fail") => Ok(failed("still down")),
        _ => Ok(measuring(json!({}), &[("health_score", 9.0)])),
    });
    let s = setup(script).await;
    let rb = runbook(
        r#"
name: incident
params:
  mode: {type: string, default: ok}
  service: {type: string, default: demo}
report: postmortem
steps:
  - id: monitor
    plugin: fake
  - id: restart
    plugin: other
    compare: [health_score]
  - id: verify
    plugin: fake
    input: ${{ params.mode }}
escalations:
  - when: measured.monitor.health_score[0] < 4.0
    severity: critical
    message: "demo scored {{ measured.monitor.health_score[0] }}"
"#,
    );
    let out = run(&s, &rb, json!({})).await;
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    let report = s.store.report(&out.run_id).await.unwrap().expect("a report");
    assert_eq!(report.kind, "postmortem");
    let md = report.markdown;
    assert!(md.starts_with(&format!("# Post-mortem: incident run {}\n\n**Severity:** critical\n", out.run_id)), "{md}");
    assert!(md.contains("- Affected: service `demo`\n"), "{md}");
    assert!(md.contains("- `restart`: POST /admin/restart -> 200\n"), "{md}");
    assert!(
        md.contains("| restart | 0 | health_score | 2.0 | 9.0 | +7.0 (+350.0%) | verify (iteration 0) |\n"),
        "{md}"
    );
    assert!(md.contains("Escalation 1 raised [critical] by step `monitor`: demo scored 2.0\n"), "{md}");

    let out = run(&s, &rb, json!({"mode": "fail"})).await;
    assert_eq!(out.status, RunStatus::Failed);
    let md = s.store.report(&out.run_id).await.unwrap().expect("a failed run has its report too").markdown;
    assert!(md.contains("**Status:** failed · trigger: cli"), "{md}");
    assert!(md.contains("attempt 1 failed in 1ms: failed: still down\n"), "{md}");

    let plain = runbook("name: plain\nsteps:\n  - id: m\n    plugin: fake\n");
    let out = run(&s, &plain, json!({})).await;
    assert_eq!(s.store.report(&out.run_id).await.unwrap(), None, "only when the runbook asks");
}
