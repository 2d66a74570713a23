//! Engine tests: runbooks from YAML, a scripted executor instead of
//! wasmtime, a virtual clock for backoff, intervals and approvals, and an
//! in-memory store.

use super::*;
use crate::notify::Status;
use crate::runbook::{Catalog, check::check};
use crate::runtime::record::{Metric, StepOutput};
use crate::store::{EscalationStatus, RunFilter, RunStatus, Store};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

type Behaviour = dyn Fn(&str, &StepCall) -> anyhow::Result<StepRecord> + Send + Sync;

/// Answers every call with `behaviour`, after an optional real delay.
struct Script {
    calls: Mutex<Vec<(String, StepCall)>>,
    behaviour: Box<Behaviour>,
    delay: Duration,
}

impl Script {
    fn new(f: impl Fn(&str, &StepCall) -> anyhow::Result<StepRecord> + Send + Sync + 'static) -> Arc<Script> {
        Arc::new(Script { calls: Mutex::default(), behaviour: Box::new(f), delay: Duration::ZERO })
    }

    fn slow(delay: Duration) -> Arc<Script> {
        Arc::new(Script { calls: Mutex::default(), behaviour: Box::new(|_, c| Ok(ok(json!(c.input)))), delay })
    }

    fn calls(&self) -> Vec<(String, StepCall)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Executor for Script {
    async fn call(&self, plugin: &str, call: StepCall) -> anyhow::Result<StepRecord> {
        self.calls.lock().unwrap().push((plugin.to_string(), call.clone()));
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        (self.behaviour)(plugin, &call)
    }
}

fn record(outcome: Outcome, output: Option<StepOutput>) -> StepRecord {
    StepRecord {
        plugin: "fake".into(),
        plugin_digest: "d".into(),
        outcome,
        output,
        duration_ms: 1.0,
        peak_memory_bytes: 1024,
        logs: Vec::new(),
        logs_dropped: 0,
        denials: Vec::new(),
    }
}

fn ok(data: Value) -> StepRecord {
    record(Outcome::Ok, Some(StepOutput { data, metrics: Vec::new(), findings: Vec::new() }))
}

fn retryable(msg: &str) -> StepRecord {
    record(Outcome::PluginError { kind: ErrorKind::Retryable, message: msg.into() }, None)
}

/// Virtual time: sleeping advances it at once (after a real millisecond,
/// so other tasks run) and is recorded.
#[derive(Default)]
struct VirtualClock {
    now: AtomicI64,
    sleeps: Mutex<Vec<Duration>>,
}

#[async_trait::async_trait]
impl Clock for VirtualClock {
    fn now_ms(&self) -> i64 {
        1_700_000_000_000 + self.now.load(Ordering::SeqCst)
    }
    async fn sleep(&self, d: Duration) {
        self.sleeps.lock().unwrap().push(d);
        self.now.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    fn random(&self) -> f64 {
        0.5
    }
}

struct Setup {
    engine: Arc<Engine>,
    clock: Arc<VirtualClock>,
    store: Store,
}

struct NoSecrets;
impl SecretSource for NoSecrets {
    fn get(&self, name: &str) -> Option<String> {
        (name == "token").then(|| "s3cr3t-value".to_string())
    }
}

async fn setup(script: Arc<Script>) -> Setup {
    let store = Store::open(":memory:").await.unwrap();
    let clock = Arc::new(VirtualClock::default());
    let engine = Engine::new(store.clone(), script, Arc::new(NoSecrets))
        .with_clock(clock.clone())
        .with_options(EngineOptions { heartbeat: Duration::from_millis(20), poll: Duration::from_millis(500) });
    Setup { engine: Arc::new(engine), clock, store }
}

fn runbook(yaml: &str) -> Arc<Runbook> {
    let catalog = Catalog { plugins: BTreeMap::from([("fake".to_string(), None), ("other".to_string(), None)]) };
    match check(Path::new("test.yaml"), yaml, &catalog) {
        Ok(rb) => Arc::new(rb),
        Err(diags) => panic!("{diags:#?}"),
    }
}

fn cli() -> TriggerInfo {
    TriggerInfo { kind: TriggerKind::Cli, source: None }
}

async fn run(s: &Setup, rb: &Arc<Runbook>, params: Value) -> RunOutcome {
    let Value::Object(params) = params else { panic!("params must be an object") };
    s.engine.run(rb.clone(), &params, &cli()).await.unwrap()
}

#[tokio::test]
async fn data_flows_between_steps_and_skips_are_recorded() {
    let script = Script::new(|_, c| {
        let config: Value = serde_json::from_str(&c.config).unwrap();
        Ok(ok(json!({"got": config, "step": c.ctx.step_id})))
    });
    let s = setup(script.clone()).await;
    let rb = runbook(
        r#"
name: flow
params:
  n: {type: number, default: 2}
steps:
  - id: a
    plugin: fake
    with: {x: "${{ params.n * 10 }}"}
  - id: b
    plugin: fake
    with:
      y: ${{ steps.a.output.got.x + 1 }}
      label: "from ${{ steps.a.output.step }}"
  - id: c
    plugin: fake
    when: steps.b.output.got.y > 100
"#,
    );
    let out = run(&s, &rb, json!({"n": 3})).await;
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    let calls = script.calls();
    assert_eq!(calls.len(), 2, "c is skipped");
    assert_eq!(serde_json::from_str::<Value>(&calls[1].1.config).unwrap(), json!({"y": 31, "label": "from a"}));
    let attempts = s.store.attempts(&out.run_id).await.unwrap();
    let c = attempts.iter().find(|a| a.step_id == "c").unwrap();
    assert_eq!((c.status.as_str(), c.attempt), ("skipped", 0));
    assert_eq!(c.error.as_deref(), Some("`steps.b.output.got.y > 100` was false"));
    let run = s.store.get_run(&out.run_id).await.unwrap().unwrap();
    assert_eq!(run.params, json!({"n": 3}));
}

#[tokio::test]
async fn retries_back_off_exponentially_up_to_the_cap() {
    let script =
        Script::new(|_, c| if c.ctx.attempt < 4 { Ok(retryable("busy")) } else { Ok(ok(json!(c.ctx.attempt))) });
    let s = setup(script.clone()).await;
    let rb = runbook(
        r#"
name: retries
steps:
  - id: flaky
    plugin: fake
    retry: {attempts: 5, backoff: exponential, delay: 1s, max_delay: 3s, jitter: false}
"#,
    );
    let out = run(&s, &rb, json!({})).await;
    assert_eq!(out.status, RunStatus::Succeeded);
    assert_eq!(
        *s.clock.sleeps.lock().unwrap(),
        vec![Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(3)]
    );
    let attempts = s.store.attempts(&out.run_id).await.unwrap();
    let statuses: Vec<(u32, &str)> = attempts.iter().map(|a| (a.attempt, a.status.as_str())).collect();
    assert_eq!(statuses, vec![(1, "failed"), (2, "failed"), (3, "failed"), (4, "succeeded")]);
    assert_eq!(attempts[0].outcome.as_deref(), Some("retryable"));
}

#[tokio::test]
async fn jitter_draws_between_half_and_all_of_the_delay() {
    let script = Script::new(|_, c| if c.ctx.attempt < 2 { Ok(retryable("busy")) } else { Ok(ok(json!(1))) });
    let s = setup(script).await;
    let rb = runbook("name: j\nsteps:\n  - id: a\n    plugin: fake\n    retry: {attempts: 2, delay: 4s}\n");
    run(&s, &rb, json!({})).await;
    // The virtual clock's random() is 0.5: 0.75 of the 4s base.
    assert_eq!(*s.clock.sleeps.lock().unwrap(), vec![Duration::from_secs(3)]);
}

#[tokio::test]
async fn timeouts_are_retried_but_permanent_failures_are_not_unless_told() {
    let timeout = || record(Outcome::Trap { trap: TrapKind::Timeout { limit_ms: 10 } }, None);
    let failed = || record(Outcome::PluginError { kind: ErrorKind::Failed, message: "disk on fire".into() }, None);
    let script = Script::new(move |_, c| match (c.ctx.step_id.as_str(), c.ctx.attempt) {
        ("t", 1) => Ok(timeout()),
        ("t", _) => Ok(ok(json!(null))),
        _ => Ok(failed()),
    });
    let s = setup(script.clone()).await;
    let rb = runbook(
        r#"
name: kinds
steps:
  - id: t
    plugin: fake
    retry: {attempts: 3, jitter: false}
  - id: f
    plugin: fake
    retry: {attempts: 3, jitter: false}
"#,
    );
    let out = run(&s, &rb, json!({})).await;
    assert_eq!(out.status, RunStatus::Failed);
    assert_eq!(out.error.as_deref(), Some("step \"f\" failed: failed: disk on fire"));
    let attempts: Vec<(String, u32)> =
        s.store.attempts(&out.run_id).await.unwrap().into_iter().map(|a| (a.step_id, a.attempt)).collect();
    assert_eq!(attempts, vec![("t".into(), 1), ("t".into(), 2), ("f".into(), 1)]);

    // With `on: [failed]` the permanent failure is retried too.
    let rb = runbook(
        "name: k2\nsteps:\n  - id: f\n    plugin: fake\n    retry: {attempts: 2, jitter: false, on: [failed]}\n",
    );
    let out = run(&s, &rb, json!({})).await;
    assert_eq!(s.store.attempts(&out.run_id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn loops_stop_when_until_holds_and_record_each_iteration() {
    let script = Script::new(|_, c| {
        let value = 3.0 * f64::from(c.ctx.iteration);
        let mut r = ok(json!({"score": value}));
        r.output.as_mut().unwrap().metrics.push(Metric { name: "score".into(), value, labels: Vec::new() });
        Ok(r)
    });
    let s = setup(script).await;
    let rb = runbook(
        r#"
name: heal
steps:
  - repeat:
      id: cycle
      until: steps.measure.output.score >= 6
      max_iterations: 5
      interval: 10m
      steps:
        - id: measure
          plugin: fake
"#,
    );
    let out = run(&s, &rb, json!({})).await;
    assert_eq!(out.status, RunStatus::Succeeded);
    let iterations: Vec<u32> = s.store.attempts(&out.run_id).await.unwrap().iter().map(|a| a.iteration).collect();
    assert_eq!(iterations, vec![1, 2]);
    // One pause between the two iterations, none after the last.
    assert_eq!(*s.clock.sleeps.lock().unwrap(), vec![Duration::from_secs(600)]);
    let series = s.store.metric_series("heal", "score", 10).await.unwrap();
    let points: Vec<(u32, f64)> = series.iter().map(|p| (p.iteration, p.value)).collect();
    assert_eq!(points, vec![(1, 3.0), (2, 6.0)]);
}

#[tokio::test]
async fn history_hands_a_step_what_it_measured_in_earlier_runs() {
    // Each call measures one more than the last, and echoes its config.
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let script = Script::new(move |_, c| {
        let value = f64::from(calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1);
        let config: Value = serde_json::from_str(&c.config).unwrap();
        let mut r = ok(json!({"seen": config["earlier"]}));
        r.output.as_mut().unwrap().metrics.push(Metric { name: "score".into(), value, labels: Vec::new() });
        Ok(r)
    });
    let s = setup(script).await;
    let rb = runbook(
        "name: h\nsteps:\n  - id: measure\n    plugin: fake\n    with:\n      earlier: ${{ history.measure }}\n",
    );
    assert!(rb.reads_history);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let out = run(&s, &rb, json!({})).await;
        let attempts = s.store.attempts(&out.run_id).await.unwrap();
        seen.push(attempts[0].output.as_ref().unwrap()["seen"].clone());
    }
    assert_eq!(seen, [json!({}), json!({"score": [1.0]}), json!({"score": [1.0, 2.0]})]);
    assert!(!runbook("name: plain\nsteps:\n  - id: m\n    plugin: fake\n").reads_history);
}

#[tokio::test]
async fn an_exhausted_loop_continues_or_fails_as_told() {
    let s = setup(Script::new(|_, _| Ok(ok(json!({"healthy": false}))))).await;
    let yaml = |on: &str| {
        format!(
            "name: l\nsteps:\n  - repeat:\n      until: steps.m.output.healthy\n      max_iterations: 3\n      on_exhausted: {on}\n      steps:\n        - id: m\n          plugin: fake\n"
        )
    };
    let out = run(&s, &runbook(&yaml("continue")), json!({})).await;
    assert_eq!(out.status, RunStatus::Succeeded);
    assert_eq!(s.store.attempts(&out.run_id).await.unwrap().len(), 3);
    let out = run(&s, &runbook(&yaml("fail")), json!({})).await;
    assert_eq!(out.status, RunStatus::Failed);
    assert_eq!(
        out.error.as_deref(),
        Some("repeat \"repeat\": `steps.m.output.healthy` still false after 3 iterations")
    );
}

#[tokio::test]
async fn failures_continue_or_run_handlers() {
    let script = Script::new(|_, c| match c.ctx.step_id.as_str() {
        "bad" => Ok(record(Outcome::PluginError { kind: ErrorKind::Failed, message: "nope".into() }, None)),
        _ => Ok(ok(json!(null))),
    });
    let s = setup(script.clone()).await;
    let rb = runbook(
        r#"
name: f
steps:
  - id: bad
    plugin: fake
    on_failure: continue
  - id: after
    plugin: fake
    when: steps.bad.status == "failed"
  - id: bad2
    plugin: fake
    with: {x: "${{ steps.bad.output.missing }}"}
    on_failure: [rollback]
  - id: never
    plugin: fake
handlers:
  - id: rollback
    plugin: other
"#,
    );
    let out = run(&s, &rb, json!({})).await;
    assert_eq!(out.status, RunStatus::Failed);
    let ran: Vec<String> = script.calls().into_iter().map(|(_, c)| c.ctx.step_id).collect();
    assert_eq!(ran, vec!["bad", "after", "rollback"]);
    let err = out.error.unwrap();
    assert!(err.starts_with("step \"bad2\" failed: with: `steps.bad.output.missing`: "), "{err}");
    assert!(err.ends_with("(ran handlers: rollback)"), "{err}");
}

#[tokio::test]
async fn escalation_rules_and_findings_are_raised_once_and_grouped_across_runs() {
    let script = Script::new(|_, _| {
        let mut r = ok(json!({"score": 3}));
        r.output.as_mut().unwrap().findings.push(Finding {
            severity: Severity::Critical,
            title: "disk full".into(),
            detail: "/ at 99%".into(),
            resource: Some("/".into()),
        });
        r.output.as_mut().unwrap().findings.push(Finding {
            severity: Severity::Medium,
            title: "slow".into(),
            detail: String::new(),
            resource: None,
        });
        Ok(r)
    });
    let s = setup(script).await;
    let rb = runbook(
        r#"
name: esc
steps:
  - id: score
    plugin: fake
  - id: again
    plugin: fake
escalations:
  - when: steps.score.output.score < 5
    severity: high
    message: "score {{ steps.score.output.score }}"
notify:
  log: false
"#,
    );
    let first = run(&s, &rb, json!({})).await;
    // An escalation never hides the outcome.
    assert_eq!(first.status, RunStatus::Succeeded);
    let list = s.store.list_escalations(None, Some(&first.run_id), 10).await.unwrap();
    let mut got: Vec<(Severity, String, String)> =
        list.iter().map(|e| (e.severity, e.message.clone(), e.dedup_key.clone())).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (Severity::High, "score 3".into(), "esc:rule0".into()),
            (Severity::Critical, "again: disk full".into(), "esc:again:/".into()),
            (Severity::Critical, "score: disk full".into(), "esc:score:/".into()),
        ]
    );
    // A second run groups into the open escalations instead of adding new ones.
    let second = run(&s, &rb, json!({})).await;
    assert!(s.store.list_escalations(None, Some(&second.run_id), 10).await.unwrap().is_empty());
    let all = s.store.list_escalations(Some(EscalationStatus::Open), None, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|e| e.occurrences == 2), "{all:#?}");
}

#[tokio::test]
async fn auto_resolve_resolves_at_the_end_what_no_longer_holds_and_nothing_else() {
    let script = Script::new(|_, c| {
        let score = if c.ctx.step_id == "measure" { 3 } else { 9 };
        Ok(ok(json!({"score": score})))
    });
    let s = setup(script).await;
    let rb = runbook(
        r#"
name: heal
steps:
  - id: measure
    plugin: fake
  - id: remeasure
    plugin: fake
escalations:
  - when: "(steps.remeasure.status == 'succeeded' ? steps.remeasure.output.score : steps.measure.output.score) < 5"
    severity: critical
    message: "still low"
    dedup_key: recovered
    auto_resolve: true
  - when: steps.measure.output.score < 5
    severity: high
    message: "was low"
    dedup_key: holds
    auto_resolve: true
  - when: "(steps.remeasure.status == 'succeeded' ? steps.remeasure.output.score : steps.measure.output.score) < 5"
    severity: medium
    message: "still low"
    dedup_key: manual
"#,
    );
    let out = run(&s, &rb, json!({})).await;
    assert_eq!(out.status, RunStatus::Succeeded);
    let list = s.store.list_escalations(None, Some(&out.run_id), 10).await.unwrap();
    let mut got: Vec<(String, EscalationStatus, Option<String>, Option<String>)> =
        list.iter().map(|e| (e.dedup_key.clone(), e.status, e.resolved_by.clone(), e.resolution.clone())).collect();
    got.sort();
    let reason = format!("condition no longer holds at the end of run {}", out.run_id);
    assert_eq!(
        got,
        vec![
            ("holds".into(), EscalationStatus::Open, None, None),
            ("manual".into(), EscalationStatus::Open, None, None),
            ("recovered".into(), EscalationStatus::Resolved, Some("tend".into()), Some(reason)),
        ]
    );
    let recovered = list.iter().find(|e| e.dedup_key == "recovered").unwrap();
    let events: Vec<(Status, &str)> = recovered.notifications.iter().map(|n| (n.event, n.sink.as_str())).collect();
    assert_eq!(events, [(Status::Triggered, "log"), (Status::Resolved, "log")]);
}

#[tokio::test]
async fn approvals_pause_the_run_until_decided() {
    let s = setup(Script::new(|_, _| Ok(ok(json!("restarted"))))).await;
    let rb = runbook(
        r#"
name: approve
params:
  service: {type: string, default: web}
steps:
  - id: restart
    plugin: fake
    approval:
      message: "Restart {{ params.service }}?"
      timeout: 1h
"#,
    );
    for (decision, expected) in
        [(ApprovalStatus::Approved, RunStatus::Succeeded), (ApprovalStatus::Rejected, RunStatus::Failed)]
    {
        let engine = s.engine.clone();
        let rb2 = rb.clone();
        let handle = tokio::spawn(async move { engine.run(rb2, &Map::new(), &cli()).await.unwrap() });
        let run_id = loop {
            let waiting = s
                .store
                .list_runs(&RunFilter { status: Some(RunStatus::WaitingApproval), ..RunFilter::default() })
                .await
                .unwrap();
            if let Some(r) = waiting.first() {
                break r.id.clone();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let approvals = s.store.approvals(&run_id).await.unwrap();
        assert_eq!(approvals[0].message, "Restart web?");
        s.store.decide_approval(&run_id, decision, "ann", Some("change 42")).await.unwrap();
        let out = handle.await.unwrap();
        assert_eq!(out.status, expected);
        if decision == ApprovalStatus::Rejected {
            assert_eq!(out.error.as_deref(), Some("step \"restart\" failed: approval rejected by ann: change 42"));
        }
    }
}

#[tokio::test]
async fn an_unanswered_approval_times_out_as_rejected() {
    let s = setup(Script::new(|_, _| Ok(ok(json!(null))))).await;
    let rb = runbook("name: a\nsteps:\n  - id: x\n    plugin: fake\n    approval: {timeout: 2s}\n");
    let out = run(&s, &rb, json!({})).await;
    assert_eq!(out.status, RunStatus::Failed);
    assert_eq!(out.error.as_deref(), Some("step \"x\" failed: approval timed out after 2s without a decision"));
    assert_eq!(s.store.approvals(&out.run_id).await.unwrap()[0].status, ApprovalStatus::TimedOut);
}

#[tokio::test]
async fn cancellation_stops_a_running_step() {
    let s = setup(Script::slow(Duration::from_secs(30))).await;
    let rb = runbook("name: c\nsteps:\n  - id: slow\n    plugin: fake\n");
    let id = s.engine.submit(&rb, &Map::new(), &cli()).await.unwrap();
    let engine = s.engine.clone();
    let (rb2, id2) = (rb.clone(), id.clone());
    let handle = tokio::spawn(async move { engine.execute(rb2, &id2).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.store.request_cancel(&id).await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(5), handle).await.expect("cancelled promptly").unwrap();
    assert_eq!(out.status, RunStatus::Cancelled);
    let attempts = s.store.attempts(&id).await.unwrap();
    assert_eq!(attempts[0].status, AttemptStatus::Cancelled);
}

#[tokio::test]
async fn a_run_past_its_timeout_is_timed_out() {
    let s = setup(Script::slow(Duration::from_secs(30))).await;
    let rb = runbook("name: t\ntimeout: 100ms\nsteps:\n  - id: slow\n    plugin: fake\n");
    let out = tokio::time::timeout(Duration::from_secs(5), run(&s, &rb, json!({}))).await.unwrap();
    assert_eq!(out.status, RunStatus::TimedOut);
    assert_eq!(out.error.as_deref(), Some("the run passed its timeout of 100ms"));
    assert_eq!(s.store.attempts(&out.run_id).await.unwrap()[0].status, AttemptStatus::TimedOut);
}

#[tokio::test]
async fn the_concurrency_cap_queues_the_second_run() {
    let s = setup(Script::slow(Duration::from_millis(300))).await;
    let rb = runbook("name: cap\nconcurrency: 1\nsteps:\n  - id: slow\n    plugin: fake\n");
    let mut events = s.engine.subscribe();
    let (e1, e2) = (s.engine.clone(), s.engine.clone());
    let (r1, r2) = (rb.clone(), rb.clone());
    let a = tokio::spawn(async move { e1.run(r1, &Map::new(), &cli()).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let b = tokio::spawn(async move { e2.run(r2, &Map::new(), &cli()).await.unwrap() });
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!((a.status, b.status), (RunStatus::Succeeded, RunStatus::Succeeded));
    let mut queued = false;
    while let Ok(e) = events.try_recv() {
        queued |= e == Event::Queued { run_id: b.run_id.clone() };
    }
    assert!(queued, "the second run waited for the first");
    let ra = s.store.get_run(&a.run_id).await.unwrap().unwrap();
    let rb_ = s.store.get_run(&b.run_id).await.unwrap().unwrap();
    assert!(rb_.started_at.unwrap() >= ra.finished_at.unwrap(), "no overlap");
}

#[tokio::test]
async fn params_are_checked_and_defaulted() {
    let s = setup(Script::new(|_, _| Ok(ok(json!(null))))).await;
    let rb = runbook(
        "name: p\nparams:\n  env: {type: string, required: true, enum: [staging, production]}\n  n: {type: number, default: 3}\nsteps:\n  - id: a\n    plugin: fake\n",
    );
    let Value::Object(bad) = json!({"env": "prod", "m": 1}) else { unreachable!() };
    let err = s.engine.submit(&rb, &bad, &cli()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "param \"m\" is not a param of runbook \"p\"; it takes env, n; param \"env\": \"prod\" is not one of \"staging\", \"production\""
    );
    let out = run(&s, &rb, json!({"env": "staging"})).await;
    assert_eq!(s.store.get_run(&out.run_id).await.unwrap().unwrap().params, json!({"env": "staging", "n": 3}));
}

#[tokio::test]
async fn secrets_are_redacted_from_the_record() {
    let script = Script::new(|_, c| Ok(ok(json!({"echo": serde_json::from_str::<Value>(&c.config).unwrap()}))));
    let s = setup(script.clone()).await;
    let rb = runbook(
        "name: s\nsteps:\n  - id: a\n    plugin: fake\n    with: {auth: \"Bearer s3cr3t-value\"}\n    grants: {secrets: [token]}\n",
    );
    let out = run(&s, &rb, json!({})).await;
    // The plugin got the real value; the record never holds it.
    assert!(script.calls()[0].1.config.contains("s3cr3t-value"));
    let a = &s.store.attempts(&out.run_id).await.unwrap()[0];
    assert_eq!(a.config, Some(json!({"auth": "Bearer ***"})));
    assert_eq!(a.output, Some(json!({"echo": {"auth": "Bearer ***"}})));
}

#[tokio::test]
async fn a_run_executed_twice_runs_once() {
    let script = Script::slow(Duration::from_millis(200));
    let s = setup(script.clone()).await;
    let rb = runbook("name: twice\nsteps:\n  - id: a\n    plugin: fake\n");
    let id = s.engine.submit(&rb, &Map::new(), &cli()).await.unwrap();
    let (e1, e2) = (s.engine.clone(), s.engine.clone());
    let (r1, r2, i1, i2) = (rb.clone(), rb.clone(), id.clone(), id.clone());
    let a = tokio::spawn(async move { e1.execute(r1, &i1).await });
    let b = tokio::spawn(async move { e2.execute(r2, &i2).await });
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let (ok, err) = if a.is_ok() { (a, b) } else { (b, a) };
    assert_eq!(ok.unwrap().status, RunStatus::Succeeded);
    assert!(matches!(err.unwrap_err(), ExecuteError::NotQueued(_)));
    assert_eq!(script.calls().len(), 1);
}

#[tokio::test]
async fn a_loop_interval_and_a_step_delay_may_come_from_params() {
    let script = Script::new(|_, c| Ok(ok(json!({"iteration": c.ctx.iteration}))));
    let s = setup(script).await;
    let rb = runbook(
        r#"
name: settle
params:
  interval: {type: string, default: "10m"}
  settle: {type: number, default: 5}
steps:
  - repeat:
      until: "false"
      max_iterations: 2
      interval: ${{ params.interval }}
      steps:
        - id: act
          plugin: fake
        - id: verify
          plugin: fake
          delay: "${{ params.settle }}"
"#,
    );
    let out = run(&s, &rb, json!({"interval": "2s"})).await;
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    // verify waits 5 s in each iteration; the loop pauses 2 s between them.
    let sleeps = s.clock.sleeps.lock().unwrap().clone();
    assert_eq!(sleeps, [5, 2, 5].map(Duration::from_secs));
}

#[tokio::test]
async fn a_pause_that_is_not_a_duration_fails_the_step_naming_what_it_gave() {
    let s = setup(Script::new(|_, _| Ok(ok(json!({}))))).await;
    let rb = runbook(
        "name: p\nparams:\n  settle: {type: string, default: \"soon\"}\nsteps:\n  - id: verify\n    plugin: fake\n    delay: ${{ params.settle }}\n",
    );
    let out = run(&s, &rb, json!({})).await;
    assert_eq!(out.status, RunStatus::Failed);
    let attempts = s.store.attempts(&out.run_id).await.unwrap();
    assert_eq!(
        attempts[0].error.as_deref(),
        Some(
            "delay: `${{ params.settle }}` gave string \"soon\": duration \"soon\" does not start with a number; expected e.g. \"5s\""
        )
    );
}

#[path = "engine_compare_tests.rs"]
mod compare;
