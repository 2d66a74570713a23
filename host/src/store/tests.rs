//! Behaviour of the store, on a throwaway database.

use super::*;
use crate::clock::now_ms;
use crate::runtime::caps::state::StateStore;
use crate::runtime::record::{Metric, Severity};
use serde_json::Value;
use std::time::Duration;

async fn store() -> Store {
    Store::open(":memory:").await.unwrap()
}

fn new_run(runbook: &str) -> NewRun {
    NewRun {
        runbook: runbook.into(),
        runbook_hash: "h".into(),
        trigger_kind: TriggerKind::Cli,
        trigger_source: None,
        params: serde_json::json!({"a": 1}),
    }
}

#[tokio::test]
async fn runs_go_from_queued_to_a_final_status() {
    let s = store().await;
    let id = s.create_run(&new_run("rb")).await.unwrap().id;
    assert_eq!(s.get_run(&id).await.unwrap().unwrap().status, RunStatus::Queued);
    assert!(s.claim_run(&id, "1@h", None).await.unwrap());
    let failed = (RunStatus::Failed, Some("step x failed".to_string()));
    assert_eq!(s.finish_run(&id, RunStatus::Failed, Some("step x failed")).await.unwrap(), failed);
    // A final status is never overwritten; finishing returns the one that stays.
    assert_eq!(s.finish_run(&id, RunStatus::Succeeded, None).await.unwrap(), failed);
    let run = s.get_run(&id).await.unwrap().unwrap();
    assert_eq!((run.status, run.error.as_deref()), (RunStatus::Failed, Some("step x failed")));
    assert_eq!(run.params, serde_json::json!({"a": 1}));
}

#[tokio::test]
async fn pruning_deletes_old_finished_runs_with_everything_they_own() {
    let s = store().await;
    let old = s.create_run(&new_run("rb")).await.unwrap().id;
    let live = s.create_run(&new_run("rb")).await.unwrap().id;
    s.claim_run(&old, "1@h", None).await.unwrap();
    let a = AttemptStart {
        run_id: &old,
        step_id: "x",
        iteration: 0,
        attempt: 1,
        plugin: "echo",
        config: &Value::Null,
        input: &Value::Null,
    };
    s.start_attempt(&a).await.unwrap();
    let m = Metric { name: "m".into(), value: 1.0, labels: Vec::new() };
    s.insert_metrics(&old, "rb", "x", 0, &[m]).await.unwrap();
    let e = NewEscalation {
        run_id: &old,
        runbook: "rb",
        step_id: None,
        iteration: 0,
        severity: Severity::Low,
        message: "m",
        dedup_key: "k",
    };
    let raised = s.raise_escalation(&e, Duration::from_secs(60), now_ms()).await.unwrap();
    s.record_notification(raised.id, crate::notify::Status::Triggered, "log", &Ok(())).await.unwrap();
    s.finish_run(&old, RunStatus::Succeeded, None).await.unwrap();
    assert_eq!(s.prune(now_ms() + 1, 1).await.unwrap(), 1, "the queued run stays");
    assert!(s.get_run(&old).await.unwrap().is_none());
    assert!(s.attempts(&old).await.unwrap().is_empty());
    assert!(s.metric_series("rb", "m", 10).await.unwrap().is_empty());
    assert!(s.list_escalations(None, None, 10).await.unwrap().is_empty());
    assert!(s.get_run(&live).await.unwrap().is_some());
    assert_eq!(s.prune(now_ms() + 1, 100).await.unwrap(), 0);
}

#[tokio::test]
async fn an_alert_instance_is_one_row_from_firing_to_resolved() {
    let s = store().await;
    let mut a = AlertRow {
        fingerprint: "c0ffee".into(),
        starts_at: "2026-11-24T10:00:00Z".into(),
        status: AlertStatus::Firing,
        labels: serde_json::json!({"alertname": "HostDown"}),
        annotations: serde_json::json!({}),
        ends_at: None,
        group_key: Some("g".into()),
    };
    s.record_alert(&a).await.unwrap();
    s.record_alert(&a).await.unwrap();
    a.status = AlertStatus::Resolved;
    a.ends_at = Some("2026-11-24T10:05:00Z".into());
    s.record_alert(&a).await.unwrap();
    assert_eq!(s.alerts(10).await.unwrap(), vec![a]);
}

#[tokio::test]
async fn idempotency_keys_return_the_first_run() {
    let s = store().await;
    let (a, new_a) = s.create_run_once(&new_run("rb"), "k1").await.unwrap();
    let (b, new_b) = s.create_run_once(&new_run("rb"), "k1").await.unwrap();
    assert_eq!(new_a.as_ref().map(|r| (r.id.as_str(), r.status)), Some((a.as_str(), RunStatus::Queued)));
    assert_eq!((a.clone(), new_b), (b, None));
    let err = s.create_run_once(&new_run("other"), "k1").await.unwrap_err();
    assert_eq!(err.to_string(), "idempotency key \"k1\" was already used for runbook \"rb\"");
    assert_eq!(s.queued_runs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn runs_page_backwards_by_id() {
    let s = store().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(s.create_run(&new_run("rb")).await.unwrap().id);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let page = s.list_runs(&RunFilter { limit: Some(2), ..RunFilter::default() }).await.unwrap();
    assert_eq!(page.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), vec![ids[2].clone(), ids[1].clone()]);
    let next =
        s.list_runs(&RunFilter { limit: Some(2), before: Some(ids[1].clone()), ..RunFilter::default() }).await.unwrap();
    assert_eq!(next.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), vec![ids[0].clone()]);
}

#[tokio::test]
async fn the_concurrency_cap_is_one_statement() {
    let s = store().await;
    let a = s.create_run(&new_run("rb")).await.unwrap().id;
    let b = s.create_run(&new_run("rb")).await.unwrap().id;
    let other = s.create_run(&new_run("other")).await.unwrap().id;
    assert!(s.claim_run(&a, "1@h", Some(1)).await.unwrap());
    assert!(!s.claim_run(&b, "1@h", Some(1)).await.unwrap());
    assert!(s.claim_run(&other, "1@h", Some(1)).await.unwrap());
    s.finish_run(&a, RunStatus::Succeeded, None).await.unwrap();
    assert!(s.claim_run(&b, "1@h", Some(1)).await.unwrap());
}

#[tokio::test]
async fn escalations_with_one_key_group_inside_the_window() {
    let s = store().await;
    let run = s.create_run(&new_run("rb")).await.unwrap().id;
    let e = NewEscalation {
        run_id: &run,
        runbook: "rb",
        step_id: Some("score"),
        iteration: 1,
        severity: Severity::High,
        message: "score 3",
        dedup_key: "rb-score",
    };
    let hour = Duration::from_secs(3600);
    let first = s.raise_escalation(&e, hour, 1_000_000).await.unwrap();
    assert!(!first.grouped);
    let again = s.raise_escalation(&e, hour, 1_000_000 + 60_000).await.unwrap();
    assert_eq!(again, Raised { id: first.id, grouped: true });
    // Past the window (counted from the last occurrence) it is new.
    let later = s.raise_escalation(&e, hour, 1_000_000 + 60_000 + 3_600_001).await.unwrap();
    assert!(!later.grouped);
    // Resolved escalations never absorb new ones.
    s.resolve_escalation(later.id, "ann", Some("fixed")).await.unwrap();
    let after = s.raise_escalation(&e, hour, 1_000_000 + 60_000 + 3_600_002).await.unwrap();
    assert!(!after.grouped);
    let list = s.list_escalations(None, Some(&run), 10).await.unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[2].occurrences, 2);
    let resolved = s.get_escalation(later.id).await.unwrap().unwrap();
    assert_eq!((resolved.status.as_str(), resolved.resolution.as_deref()), ("resolved", Some("fixed")));
    assert!(s.get_escalation(999).await.unwrap().is_none());
    let err = s.acknowledge_escalation(later.id, "bob").await.unwrap_err();
    assert_eq!(err.to_string(), format!("escalation {} is resolved and cannot be acknowledged", later.id));
    assert_eq!(s.acknowledge_escalation(999, "bob").await.unwrap_err().to_string(), "escalation 999 not found");
}

#[tokio::test]
async fn approvals_are_decided_once() {
    let s = store().await;
    let run = s.create_run(&new_run("rb")).await.unwrap().id;
    let err = s.decide_approval(&run, ApprovalStatus::Approved, "ann", None).await.unwrap_err();
    assert_eq!(err.to_string(), format!("run {run} is not waiting for an approval (it is queued)"));
    let id = s.request_approval(&run, "restart", 0, "Restart?", now_ms() + 1000).await.unwrap();
    let row = s.decide_approval(&run, ApprovalStatus::Approved, "ann", Some("go")).await.unwrap();
    assert_eq!((row.id, row.status.as_str(), row.decided_by.as_deref()), (id, "approved", Some("ann")));
    assert!(s.decide_approval(&run, ApprovalStatus::Rejected, "bob", None).await.is_err());
}

#[tokio::test]
async fn metric_history_keeps_each_earlier_runs_last_unlabelled_value_oldest_first() {
    let s = store().await;
    let m = |name: &str, value: f64, labels: &[(&str, &str)]| Metric {
        name: name.into(),
        value,
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let mut ids = Vec::new();
    for (first, last) in [(2.0, 3.0), (5.0, 6.0), (8.0, 9.0)] {
        let run = s.create_run(&new_run("rb")).await.unwrap().id;
        s.insert_metrics(&run, "rb", "score", 1, &[m("health_score", first, &[])]).await.unwrap();
        s.insert_metrics(&run, "rb", "score", 2, &[m("health_score", last, &[]), m("up", 1.0, &[("url", "a")])])
            .await
            .unwrap();
        s.finish_run(&run, RunStatus::Succeeded, None).await.unwrap();
        ids.push(run);
    }
    // Still running: not history yet. Another runbook: never.
    let running = s.create_run(&new_run("rb")).await.unwrap().id;
    s.insert_metrics(&running, "rb", "score", 1, &[m("health_score", 0.0, &[])]).await.unwrap();
    let other = s.create_run(&new_run("other")).await.unwrap().id;
    s.insert_metrics(&other, "other", "score", 1, &[m("health_score", 1.0, &[])]).await.unwrap();
    s.finish_run(&other, RunStatus::Succeeded, None).await.unwrap();

    let h = s.metric_history("rb", &running, 10).await.unwrap();
    assert_eq!(serde_json::to_value(&h).unwrap(), serde_json::json!({"score": {"health_score": [3.0, 6.0, 9.0]}}));
    let h = s.metric_history("rb", &ids[2], 1).await.unwrap();
    assert_eq!(h["score"]["health_score"], vec![6.0]);
}

#[tokio::test]
async fn metric_series_span_runs() {
    let s = store().await;
    for v in [3.0, 9.0] {
        let run = s.create_run(&new_run("rb")).await.unwrap().id;
        let m = Metric { name: "health_score".into(), value: v, labels: vec![("host".into(), "a".into())] };
        s.insert_metrics(&run, "rb", "score", 1, &[m]).await.unwrap();
    }
    let series = s.metric_series("rb", "health_score", 10).await.unwrap();
    let values: Vec<f64> = series.iter().map(|p| p.value).collect();
    assert_eq!(values, vec![3.0, 9.0]);
    assert_eq!(series[0].labels, serde_json::json!({"host": "a"}));
}

#[tokio::test]
async fn state_is_scoped_per_runbook() {
    let s = store().await;
    s.set("a", "k", "1").await.unwrap();
    s.set("a", "k", "2").await.unwrap();
    assert_eq!(s.get("a", "k").await.unwrap().as_deref(), Some("2"));
    assert_eq!(s.get("b", "k").await.unwrap(), None);
    s.delete("a", "k").await.unwrap();
    assert_eq!(s.get("a", "k").await.unwrap(), None);
}

#[tokio::test]
async fn runs_of_a_dead_owner_are_interrupted() {
    let s = store().await;
    let id = s.create_run(&new_run("rb")).await.unwrap().id;
    // pid 4194305 is above Linux's pid_max: never alive.
    let owner = format!("4194305@{}", crate::process::hostname());
    assert!(s.claim_run(&id, &owner, None).await.unwrap());
    let a = AttemptStart {
        run_id: &id,
        step_id: "probe",
        iteration: 0,
        attempt: 1,
        plugin: "echo",
        config: &Value::Null,
        input: &Value::Null,
    };
    s.start_attempt(&a).await.unwrap();
    let live = s.create_run(&new_run("rb")).await.unwrap().id;
    assert!(s.claim_run(&live, &crate::process::this_owner(), None).await.unwrap());
    assert_eq!(s.reap_interrupted(Duration::from_secs(60)).await.unwrap(), vec![id.clone()]);
    let run = s.get_run(&id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert!(run.error.unwrap().contains("exited mid-run"));
    assert_eq!(s.attempts(&id).await.unwrap()[0].status, AttemptStatus::Interrupted);
    assert_eq!(s.get_run(&live).await.unwrap().unwrap().status, RunStatus::Running);
}

#[tokio::test]
async fn a_comparison_keeps_its_first_after() {
    let store = Store::open(":memory:").await.unwrap();
    let run = store
        .create_run(&NewRun {
            runbook: "rb".into(),
            runbook_hash: "h".into(),
            trigger_kind: TriggerKind::Cli,
            trigger_source: None,
            params: serde_json::json!({}),
        })
        .await
        .unwrap();
    let ids = store.record_before(&run.id, "restart", 1, &[("health_score".into(), 3.0)]).await.unwrap();
    store.record_after(ids[0], 9.0, "score", 2).await.unwrap();
    store.record_after(ids[0], 1.0, "score", 3).await.unwrap();
    let results = store.optimization_results(&run.id).await.unwrap();
    assert_eq!(
        results,
        vec![OptimizationResult::new(
            "restart".into(),
            1,
            "health_score".into(),
            3.0,
            Some(9.0),
            Some(MeasuredBy { step_id: "score".into(), iteration: 2 })
        )]
    );
}

#[tokio::test]
async fn a_session_is_found_by_its_hash_until_it_expires_or_is_closed() {
    let store = Store::open(":memory:").await.unwrap();
    let now = now_ms();
    store.open_session("aa", "tt", "admin", now + 60_000).await.unwrap();
    let s = store.session("aa", now).await.unwrap().unwrap();
    assert_eq!((s.token_sha256.as_str(), s.token_name.as_str()), ("tt", "admin"));
    assert!(store.session("bb", now).await.unwrap().is_none());
    assert!(store.session("aa", now + 60_000).await.unwrap().is_none(), "expired");
    store.close_session("aa").await.unwrap();
    assert!(store.session("aa", now).await.unwrap().is_none(), "closed");
}
