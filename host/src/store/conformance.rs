//! The behaviour every backend must have, as checks that each take a
//! freshly opened, empty [`Store`]: runs claimed once, leases and
//! heartbeats, orphaned runs taken over, idempotency keys, schedules firing
//! once per fire time, approvals and escalations decided once (a second
//! decision is a typed conflict), alert instances kept as one row,
//! retention, plugin state and sessions. Nothing here knows a backend.
//!
//! The `concurrent_*` checks race several clones of the store: on a
//! backend with a pool of connections (PostgreSQL) they race as separate
//! database sessions would on several hosts.
//!
//! A backend's test module runs them all with [`conformance_tests!`],
//! given an expression that opens a fresh store of that backend: adding a
//! backend adds one such call.

use super::*;
use crate::clock::now_ms;
use crate::runtime::caps::state::StateStore;
use crate::runtime::record::{Metric, Severity};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// One `#[tokio::test]` per check, each on the store `$open` (an async
/// expression) opens: `conformance_tests!(Store::open(":memory:"))`.
macro_rules! conformance_tests {
    ($open:expr) => {
        $crate::store::conformance::conformance_tests!(@each $open;
            a_run_goes_from_queued_to_a_final_status_that_stays,
            a_run_is_claimed_by_one_owner_only,
            a_runbooks_concurrency_cap_holds_across_claims,
            a_lease_is_kept_by_heartbeats_and_carries_a_cancellation_request,
            the_runs_of_a_dead_owner_are_interrupted,
            a_silent_owners_run_is_taken_over_and_requeued_keeping_its_completed_attempts,
            a_process_whose_run_was_taken_over_records_nothing_more_of_it,
            an_idempotency_key_returns_the_first_run,
            runs_page_backwards_by_id,
            a_schedule_fires_once_per_fire_time,
            an_approval_is_decided_once,
            escalations_with_one_key_group_inside_the_window,
            an_alert_instance_is_one_row_from_firing_to_resolved,
            an_alert_is_linked_to_a_run_once_and_shows_as_it_is_now,
            a_run_ends_with_its_report_once,
            pruning_deletes_old_finished_runs_with_everything_they_own,
            metric_history_keeps_each_earlier_runs_last_unlabelled_value_oldest_first,
            metric_series_span_runs,
            a_comparison_keeps_its_first_after,
            plugin_state_is_scoped_per_runbook,
            a_session_is_found_by_its_hash_until_it_expires_or_is_closed,
            concurrent_claims_under_a_cap_take_only_the_free_slots,
            concurrent_uses_of_one_idempotency_key_record_one_run,
            concurrent_fires_of_one_fire_time_record_it_once,
            concurrent_decisions_of_one_approval_decide_it_once,
            concurrent_escalations_with_one_key_group_into_one
        );
    };
    (@each $open:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::store::conformance::$check($open.await).await;
            }
        )+
    };
}
pub(crate) use conformance_tests;

fn new_run(runbook: &str) -> NewRun {
    NewRun {
        runbook: runbook.into(),
        runbook_hash: "h".into(),
        trigger_kind: TriggerKind::Cli,
        trigger_source: None,
        params: serde_json::json!({"a": 1}),
    }
}

/// The first attempt of a step of `echo`, outside loops, with no config or input.
fn first_attempt<'a>(run_id: &'a str, step_id: &'a str) -> AttemptStart<'a> {
    static NONE: Value = Value::Null;
    AttemptStart {
        run_id,
        holder: None,
        step_id,
        iteration: 0,
        attempt: 1,
        plugin: "echo",
        config: &NONE,
        input: &NONE,
    }
}

pub async fn a_run_goes_from_queued_to_a_final_status_that_stays(s: Store) {
    let id = s.create_run(&new_run("rb")).await.unwrap().id;
    assert_eq!(s.get_run(&id).await.unwrap().unwrap().status, RunStatus::Queued);
    assert!(s.claim_run(&id, "1@h", None).await.unwrap());
    let failed = (RunStatus::Failed, Some("step x failed".to_string()));
    assert_eq!(s.finish_run(&id, RunStatus::Failed, Some("step x failed"), None).await.unwrap(), failed);
    // A final status is never overwritten; finishing returns the one that stays.
    assert_eq!(s.finish_run(&id, RunStatus::Succeeded, None, None).await.unwrap(), failed);
    let run = s.get_run(&id).await.unwrap().unwrap();
    assert_eq!((run.status, run.error.as_deref()), (RunStatus::Failed, Some("step x failed")));
    assert_eq!(run.params, serde_json::json!({"a": 1}));
}

pub async fn pruning_deletes_old_finished_runs_with_everything_they_own(s: Store) {
    let old = s.create_run(&new_run("rb")).await.unwrap().id;
    let live = s.create_run(&new_run("rb")).await.unwrap().id;
    s.claim_run(&old, "1@h", None).await.unwrap();
    s.start_attempt(&first_attempt(&old, "x")).await.unwrap();
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
    s.finish_run(&old, RunStatus::Succeeded, None, None).await.unwrap();
    assert_eq!(s.prune(now_ms() + 1, 1).await.unwrap(), 1, "the queued run stays");
    assert!(s.get_run(&old).await.unwrap().is_none());
    assert!(s.attempts(&old).await.unwrap().is_empty());
    assert!(s.metric_series("rb", "m", 10).await.unwrap().is_empty());
    assert!(s.list_escalations(None, None, 10).await.unwrap().is_empty());
    assert!(s.get_run(&live).await.unwrap().is_some());
    assert_eq!(s.prune(now_ms() + 1, 100).await.unwrap(), 0);
}

pub async fn an_alert_instance_is_one_row_from_firing_to_resolved(s: Store) {
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

pub async fn an_idempotency_key_returns_the_first_run(s: Store) {
    let (a, new_a) = s.create_run_once(&new_run("rb"), "k1").await.unwrap();
    let (b, new_b) = s.create_run_once(&new_run("rb"), "k1").await.unwrap();
    assert_eq!(new_a.as_ref().map(|r| (r.id.as_str(), r.status)), Some((a.as_str(), RunStatus::Queued)));
    assert_eq!((a.clone(), new_b), (b, None));
    let err = s.create_run_once(&new_run("other"), "k1").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(err.to_string(), "idempotency key \"k1\" was already used for runbook \"rb\"");
    assert_eq!(s.queued_runs().await.unwrap().len(), 1);
}

pub async fn runs_page_backwards_by_id(s: Store) {
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

pub async fn a_runbooks_concurrency_cap_holds_across_claims(s: Store) {
    let a = s.create_run(&new_run("rb")).await.unwrap().id;
    let b = s.create_run(&new_run("rb")).await.unwrap().id;
    let other = s.create_run(&new_run("other")).await.unwrap().id;
    assert!(s.claim_run(&a, "1@h", Some(1)).await.unwrap());
    assert!(!s.claim_run(&b, "1@h", Some(1)).await.unwrap());
    assert!(s.claim_run(&other, "1@h", Some(1)).await.unwrap());
    s.finish_run(&a, RunStatus::Succeeded, None, None).await.unwrap();
    assert!(s.claim_run(&b, "1@h", Some(1)).await.unwrap());
}

pub async fn escalations_with_one_key_group_inside_the_window(s: Store) {
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
    assert_eq!((resolved.status, resolved.resolution.as_deref()), (EscalationStatus::Resolved, Some("fixed")));
    assert!(s.get_escalation(999).await.unwrap().is_none());
    let err = s.acknowledge_escalation(later.id, "bob").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(err.to_string(), format!("escalation {} is resolved and cannot be acknowledged", later.id));
    let err = s.resolve_escalation(later.id, "bob", None).await.unwrap_err();
    assert_eq!(err.to_string(), format!("escalation {} is resolved and cannot be resolved", later.id));
    let err = s.acknowledge_escalation(999, "bob").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(err.to_string(), "escalation 999 not found");
    // Acknowledged once; an acknowledged escalation still groups and can be resolved.
    s.acknowledge_escalation(first.id, "ann").await.unwrap();
    let err = s.acknowledge_escalation(first.id, "ann").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let acked = s.get_escalation(first.id).await.unwrap().unwrap();
    assert_eq!((acked.status, acked.acknowledged_by.as_deref()), (EscalationStatus::Acknowledged, Some("ann")));
    s.resolve_escalation(first.id, "ann", None).await.unwrap();
    let open = s.list_escalations(Some(EscalationStatus::Open), Some(&run), 10).await.unwrap();
    assert_eq!(open.iter().map(|e| e.id).collect::<Vec<_>>(), vec![after.id]);
}

pub async fn an_approval_is_decided_once(s: Store) {
    let run = s.create_run(&new_run("rb")).await.unwrap().id;
    let err = s.decide_approval("01NOSUCHRUN", ApprovalStatus::Approved, "ann", None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(err.to_string(), "run \"01NOSUCHRUN\" not found");
    let err = s.decide_approval(&run, ApprovalStatus::Approved, "ann", None).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(err.to_string(), format!("run {run} is not waiting for an approval (it is queued)"));
    let id = s.request_approval(&run, "restart", 0, "Restart?", now_ms() + 1000).await.unwrap();
    let row = s.decide_approval(&run, ApprovalStatus::Approved, "ann", Some("go")).await.unwrap();
    assert_eq!((row.id, row.status, row.decided_by.as_deref()), (id, ApprovalStatus::Approved, Some("ann")));
    let second = s.decide_approval(&run, ApprovalStatus::Rejected, "bob", None).await.unwrap_err();
    assert!(matches!(second, StoreError::Conflict(_)), "a second decision is a conflict: {second:?}");
    let kept = s.approval(id).await.unwrap().unwrap();
    assert_eq!((kept.status, kept.decided_by.as_deref()), (ApprovalStatus::Approved, Some("ann")));
}

pub async fn metric_history_keeps_each_earlier_runs_last_unlabelled_value_oldest_first(s: Store) {
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
        s.finish_run(&run, RunStatus::Succeeded, None, None).await.unwrap();
        ids.push(run);
    }
    // Still running: not history yet. Another runbook: never.
    let running = s.create_run(&new_run("rb")).await.unwrap().id;
    s.insert_metrics(&running, "rb", "score", 1, &[m("health_score", 0.0, &[])]).await.unwrap();
    let other = s.create_run(&new_run("other")).await.unwrap().id;
    s.insert_metrics(&other, "other", "score", 1, &[m("health_score", 1.0, &[])]).await.unwrap();
    s.finish_run(&other, RunStatus::Succeeded, None, None).await.unwrap();

    let h = s.metric_history("rb", &running, 10).await.unwrap();
    assert_eq!(serde_json::to_value(&h).unwrap(), serde_json::json!({"score": {"health_score": [3.0, 6.0, 9.0]}}));
    let h = s.metric_history("rb", &ids[2], 1).await.unwrap();
    assert_eq!(h["score"]["health_score"], vec![6.0]);
}

pub async fn metric_series_span_runs(s: Store) {
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

pub async fn plugin_state_is_scoped_per_runbook(s: Store) {
    s.set("a", "k", "1").await.unwrap();
    s.set("a", "k", "2").await.unwrap();
    assert_eq!(s.get("a", "k").await.unwrap().as_deref(), Some("2"));
    assert_eq!(s.get("b", "k").await.unwrap(), None);
    s.delete("a", "k").await.unwrap();
    assert_eq!(s.get("a", "k").await.unwrap(), None);
}

pub async fn the_runs_of_a_dead_owner_are_interrupted(s: Store) {
    let id = s.create_run(&new_run("rb")).await.unwrap().id;
    // pid 4194305 is above Linux's pid_max: never alive.
    let owner = format!("4194305@{}", crate::process::hostname());
    assert!(s.claim_run(&id, &owner, None).await.unwrap());
    s.start_attempt(&first_attempt(&id, "probe")).await.unwrap();
    let live = s.create_run(&new_run("rb")).await.unwrap().id;
    assert!(s.claim_run(&live, &crate::process::this_owner(), None).await.unwrap());
    assert_eq!(s.reap_interrupted(Duration::from_secs(60)).await.unwrap(), vec![id.clone()]);
    let run = s.get_run(&id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert!(run.error.unwrap().contains("exited mid-run"));
    assert_eq!(s.attempts(&id).await.unwrap()[0].status, AttemptStatus::Interrupted);
    assert_eq!(s.get_run(&live).await.unwrap().unwrap().status, RunStatus::Running);
}

pub async fn a_comparison_keeps_its_first_after(store: Store) {
    let run = store.create_run(&new_run("rb")).await.unwrap();
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

pub async fn a_session_is_found_by_its_hash_until_it_expires_or_is_closed(store: Store) {
    let now = now_ms();
    store.open_session("aa", "tt", "admin", now + 60_000).await.unwrap();
    let s = store.session("aa", now).await.unwrap().unwrap();
    assert_eq!((s.token_sha256.as_str(), s.token_name.as_str()), ("tt", "admin"));
    assert!(store.session("bb", now).await.unwrap().is_none());
    assert!(store.session("aa", now + 60_000).await.unwrap().is_none(), "expired");
    store.close_session("aa").await.unwrap();
    assert!(store.session("aa", now).await.unwrap().is_none(), "closed");
}

pub async fn a_run_is_claimed_by_one_owner_only(s: Store) {
    let id = s.create_run(&new_run("rb")).await.unwrap().id;
    let claims: Vec<_> = (0..8)
        .map(|i| {
            let (s, id) = (s.clone(), id.clone());
            tokio::spawn(async move { s.claim_run(&id, &format!("{i}@h"), None).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for c in claims {
        won += usize::from(c.await.unwrap());
    }
    assert_eq!(won, 1, "one of eight concurrent claims wins");
    assert!(!s.claim_run(&id, "9@h", None).await.unwrap(), "a running run is not claimed again");
    let run = s.get_run(&id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert!(run.started_at.is_some());
    assert!(s.queued_runs().await.unwrap().is_empty());
}

pub async fn a_lease_is_kept_by_heartbeats_and_carries_a_cancellation_request(s: Store) {
    let id = s.create_run(&new_run("rb")).await.unwrap().id;
    assert!(s.leases().await.unwrap().is_empty(), "a queued run has no owner");
    assert!(s.claim_run(&id, "7@h", None).await.unwrap());
    let before = now_ms();
    assert_eq!(s.heartbeat(&id, "7@h").await.unwrap(), Heartbeat::Alive, "no cancellation requested yet");
    let leases = s.leases().await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].run_id.as_str(), leases[0].owner.as_str()), (id.as_str(), "7@h"));
    assert!(leases[0].heartbeat_at.is_some_and(|h| h >= before), "{leases:?}");
    assert_eq!(s.request_cancel(&id).await.unwrap(), RunStatus::Running);
    assert_eq!(s.heartbeat(&id, "7@h").await.unwrap(), Heartbeat::CancelRequested, "the owner learns of it");
    s.finish_run(&id, RunStatus::Cancelled, None, None).await.unwrap();
    assert!(s.leases().await.unwrap().is_empty(), "a finished run holds no lease");
    let err = s.request_cancel(&id).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(err.to_string(), format!("run {id} is already cancelled"));
    let err = s.request_cancel("01NOSUCHRUN").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    // A queued run whose cancellation was requested is never claimed.
    let queued = s.create_run(&new_run("rb")).await.unwrap().id;
    assert_eq!(s.request_cancel(&queued).await.unwrap(), RunStatus::Queued);
    assert!(!s.claim_run(&queued, "7@h", None).await.unwrap());
    assert!(s.fail_queued(&queued, "cancelled before it started").await.unwrap());
    assert!(!s.fail_queued(&queued, "again").await.unwrap(), "it is no longer queued");
}

pub async fn a_silent_owners_run_is_taken_over_and_requeued_keeping_its_completed_attempts(s: Store) {
    let id = s.create_run(&new_run("rb")).await.unwrap().id;
    // An owner on another host: judged by its heartbeat alone.
    assert!(s.claim_run(&id, "1@elsewhere", None).await.unwrap());
    let done = s.start_attempt(&first_attempt(&id, "first")).await.unwrap();
    s.finish_attempt(done, &AttemptEnd::new(AttemptStatus::Succeeded)).await.unwrap();
    s.start_attempt(&first_attempt(&id, "second")).await.unwrap();
    assert!(s.orphaned_runs(Duration::from_secs(60)).await.unwrap().is_empty(), "its heartbeat is fresh");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let orphaned = s.orphaned_runs(Duration::ZERO).await.unwrap();
    assert_eq!(orphaned.len(), 1);
    assert_eq!(orphaned[0].run.id, id);
    assert_eq!(orphaned[0].owner, "1@elsewhere");
    assert_eq!(orphaned[0].why, "no sign of life from its owner (1@elsewhere) for over 0s");
    assert!(!s.requeue(&id, "2@h").await.unwrap(), "only from the owner that holds it");
    assert!(s.requeue(&id, "1@elsewhere").await.unwrap());
    assert!(!s.requeue(&id, "1@elsewhere").await.unwrap(), "taken over once");
    let run = s.get_run(&id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Queued);
    let statuses: Vec<_> = s.attempts(&id).await.unwrap().iter().map(|a| (a.step_id.clone(), a.status)).collect();
    assert_eq!(
        statuses,
        vec![("first".to_string(), AttemptStatus::Succeeded), ("second".to_string(), AttemptStatus::Interrupted)]
    );
    assert!(s.leases().await.unwrap().is_empty(), "a requeued run has no owner");
    assert!(s.claim_run(&id, "2@h", None).await.unwrap(), "another process resumes it");
    s.start_attempt(&AttemptStart { attempt: 2, ..first_attempt(&id, "second") }).await.unwrap();
    // A second process that judged the first owner dead at the same time
    // acts on what it saw: the run is someone else's now, and stays so.
    assert!(!s.requeue(&id, "1@elsewhere").await.unwrap());
    assert!(!s.interrupt(&id, "1@elsewhere", "stale view").await.unwrap());
    assert_eq!(s.get_run(&id).await.unwrap().unwrap().status, RunStatus::Running);
    let statuses: Vec<_> = s.attempts(&id).await.unwrap().iter().map(|a| a.status).collect();
    assert_eq!(statuses, [AttemptStatus::Succeeded, AttemptStatus::Interrupted, AttemptStatus::Running]);
}

pub async fn a_process_whose_run_was_taken_over_records_nothing_more_of_it(s: Store) {
    let id = s.create_run(&new_run("rb")).await.unwrap().id;
    assert!(s.claim_run(&id, "1@a", None).await.unwrap());
    let first = s.start_attempt(&AttemptStart { holder: Some("1@a"), ..first_attempt(&id, "probe") }).await.unwrap();
    // 1@a froze past the lease: 2@b took the run over and runs it.
    assert!(s.requeue(&id, "1@a").await.unwrap());
    assert!(s.claim_run(&id, "2@b", None).await.unwrap());
    let second = s
        .start_attempt(&AttemptStart { holder: Some("2@b"), attempt: 2, ..first_attempt(&id, "probe") })
        .await
        .unwrap();

    // 1@a wakes up: its heartbeat tells it, and none of its writes land.
    assert_eq!(s.heartbeat(&id, "1@a").await.unwrap(), Heartbeat::Lost);
    assert_eq!(s.heartbeat(&id, "2@b").await.unwrap(), Heartbeat::Alive);
    s.finish_attempt(first, &AttemptEnd::new(AttemptStatus::Succeeded)).await.unwrap();
    let refused = s.start_attempt(&AttemptStart { holder: Some("1@a"), ..first_attempt(&id, "next") }).await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(m)) if m == &format!("run {id:?} is no longer held by 1@a: another process took it over")),
        "{refused:?}"
    );
    s.set_run_status(&id, RunStatus::WaitingApproval, Some("1@a")).await.unwrap();
    s.close_open_attempts(&id, RunStatus::Cancelled, Some("1@a")).await.unwrap();
    assert_eq!(
        s.finish_run(&id, RunStatus::Failed, Some("late"), Some("1@a")).await.unwrap(),
        (RunStatus::Running, None)
    );
    let (status, _, stored) = s
        .finish_run_reported(&id, RunStatus::Failed, None, 9, Some(("postmortem", "# late")), Some("1@a"))
        .await
        .unwrap();
    assert_eq!((status, stored), (RunStatus::Running, false));
    let attempts: Vec<_> = s.attempts(&id).await.unwrap().iter().map(|a| (a.attempt, a.status)).collect();
    assert_eq!(
        attempts,
        [(1, AttemptStatus::Interrupted), (2, AttemptStatus::Running)],
        "the takeover's record stands"
    );

    // The process that holds it records as usual.
    s.finish_attempt(second, &AttemptEnd::new(AttemptStatus::Succeeded)).await.unwrap();
    let done = s.finish_run(&id, RunStatus::Succeeded, None, Some("2@b")).await.unwrap();
    assert_eq!(done, (RunStatus::Succeeded, None));
}

pub async fn a_schedule_fires_once_per_fire_time(s: Store) {
    let new = |key: &str, at| NewSchedule { key: key.into(), runbook: "rb".into(), next_fire_at: at };
    let stored = s.init_schedules(vec![new("a", 1_000), new("b", 2_000)]).await.unwrap();
    assert_eq!((stored["a"], stored["b"]), (1_000, 2_000));
    // Another process recording the same schedule later gets the first time.
    assert_eq!(s.init_schedules(vec![new("a", 5_000)]).await.unwrap()["a"], 1_000);
    assert_eq!(s.schedule_next("a").await.unwrap(), Some(1_000));
    let fire = || ScheduleFire {
        key: "a".into(),
        expected: 1_000,
        next: 61_000,
        runs: vec![(NewRun { trigger_kind: TriggerKind::Cron, ..new_run("rb") }, None)],
    };
    let first = s.fire_schedules(vec![fire()]).await.unwrap();
    let runs = first.into_iter().next().unwrap().unwrap().expect("the first fire wins");
    assert_eq!((runs.len(), runs[0].trigger_kind, runs[0].status), (1, TriggerKind::Cron, RunStatus::Queued));
    let again = s.fire_schedules(vec![fire()]).await.unwrap();
    assert!(again[0].as_ref().unwrap().is_none(), "a second fire of the same time does nothing");
    assert_eq!(s.queued_runs().await.unwrap().len(), 1);
    assert_eq!(s.schedules().await.unwrap(), HashMap::from([("a".to_string(), 61_000), ("b".to_string(), 2_000)]));
    // A fire skipped by the overlap policy is recorded as skipped, not queued.
    let skip = ScheduleFire {
        key: "b".into(),
        expected: 2_000,
        next: 62_000,
        runs: vec![(new_run("rb"), Some("the previous run is still running".into()))],
    };
    assert_eq!(s.fire_schedules(vec![skip]).await.unwrap()[0].as_ref().unwrap().as_deref(), Some(&[][..]));
    let skipped = s.list_runs(&RunFilter { status: Some(RunStatus::Skipped), ..RunFilter::default() }).await.unwrap();
    assert_eq!(skipped[0].error.as_deref(), Some("the previous run is still running"));
    let keep = std::collections::BTreeSet::from(["b".to_string()]);
    assert_eq!(s.forget_schedules(&keep).await.unwrap(), vec!["a".to_string()]);
    assert_eq!(s.schedule_next("a").await.unwrap(), None);
}

pub async fn a_run_ends_with_its_report_once(s: Store) {
    let id = s.create_run(&new_run("rb")).await.unwrap().id;
    let ended =
        s.finish_run_reported(&id, RunStatus::Succeeded, None, 5_000, Some(("postmortem", "# one")), None).await;
    assert_eq!(ended.unwrap(), (RunStatus::Succeeded, None, true));
    let again =
        s.finish_run_reported(&id, RunStatus::Failed, Some("late"), 6_000, Some(("postmortem", "# two")), None).await;
    assert_eq!(again.unwrap(), (RunStatus::Succeeded, None, false), "a final run keeps its status and report");
    let report = s.report(&id).await.unwrap().unwrap();
    assert_eq!((report.kind.as_str(), report.markdown.as_str()), ("postmortem", "# one"));
    s.save_report(&id, "postmortem", "# rendered again").await.unwrap();
    assert_eq!(s.report(&id).await.unwrap().unwrap().markdown, "# rendered again");
    assert_eq!(s.get_run(&id).await.unwrap().unwrap().finished_at, Some(5_000));
}

pub async fn an_alert_is_linked_to_a_run_once_and_shows_as_it_is_now(s: Store) {
    let run = s.create_run(&new_run("rb")).await.unwrap().id;
    let mut a = AlertRow {
        fingerprint: "f00d".into(),
        starts_at: "2026-11-24T10:00:00Z".into(),
        status: AlertStatus::Firing,
        labels: serde_json::json!({"alertname": "DiskFull"}),
        annotations: serde_json::json!({}),
        ends_at: None,
        group_key: None,
    };
    s.record_alert(&a).await.unwrap();
    s.link_alert(&run, &a.fingerprint, &a.starts_at).await.unwrap();
    s.link_alert(&run, &a.fingerprint, &a.starts_at).await.unwrap();
    assert_eq!(s.alert_runs(&a.fingerprint, &a.starts_at).await.unwrap(), vec![run.clone()]);
    a.status = AlertStatus::Resolved;
    s.record_alert(&a).await.unwrap();
    let linked = s.run_alerts(&run).await.unwrap();
    assert_eq!(linked.len(), 1);
    assert_eq!((linked[0].alertname.as_deref(), linked[0].status), (Some("DiskFull"), AlertStatus::Resolved));
    assert!(linked[0].resolved_at.is_some());
}

/// How many tasks each `concurrent_*` check races.
const RACERS: usize = 8;

/// Runs `f(i)` for `i` in `0..RACERS` at once, each on a clone of `s`, and
/// returns their results in order. Each racer first pings the store (so a
/// pool has a connection open for each) and then waits for all the others,
/// so the calls overlap instead of running one after the other.
async fn race<T, F>(s: &Store, f: impl Fn(Store, usize) -> F) -> Vec<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let (s, start, call) = (s.clone(), start.clone(), f(s.clone(), i));
            tokio::spawn(async move {
                s.ping().await.unwrap();
                start.wait().await;
                call.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(RACERS);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

pub async fn concurrent_claims_under_a_cap_take_only_the_free_slots(s: Store) {
    let mut ids = Vec::new();
    for _ in 0..RACERS {
        ids.push(s.create_run(&new_run("rb")).await.unwrap().id);
    }
    let ids = std::sync::Arc::new(ids);
    let won = race(&s, |s, i| {
        let ids = ids.clone();
        async move { s.claim_run(&ids[i], &format!("{i}@h"), Some(2)).await.unwrap() }
    })
    .await;
    assert_eq!(won.iter().filter(|w| **w).count(), 2, "a cap of 2 lets two of {RACERS} claims win: {won:?}");
    assert_eq!(s.active_runs().await.unwrap()["rb"], ActiveRuns { queued: RACERS as i64 - 2, running: 2 });
}

pub async fn concurrent_uses_of_one_idempotency_key_record_one_run(s: Store) {
    let answers = race(&s, |s, _| async move { s.create_run_once(&new_run("rb"), "k").await.unwrap() }).await;
    let created: Vec<_> = answers.iter().filter_map(|(_, new)| new.as_ref()).collect();
    assert_eq!(created.len(), 1, "one of {RACERS} creates the run: {answers:?}");
    assert!(answers.iter().all(|(id, _)| *id == created[0].id), "all get its id: {answers:?}");
    assert_eq!(s.queued_runs().await.unwrap().len(), 1);
}

pub async fn concurrent_fires_of_one_fire_time_record_it_once(s: Store) {
    let new = NewSchedule { key: "a".into(), runbook: "rb".into(), next_fire_at: 1_000 };
    s.init_schedules(vec![new]).await.unwrap();
    let fired = race(&s, |s, _| async move {
        let fire = ScheduleFire {
            key: "a".into(),
            expected: 1_000,
            next: 61_000,
            runs: vec![(NewRun { trigger_kind: TriggerKind::Cron, ..new_run("rb") }, None)],
        };
        s.fire_schedules(vec![fire]).await.unwrap().remove(0).unwrap()
    })
    .await;
    assert_eq!(fired.iter().filter(|f| f.is_some()).count(), 1, "one of {RACERS} fires wins: {fired:?}");
    assert_eq!(s.queued_runs().await.unwrap().len(), 1);
    assert_eq!(s.schedule_next("a").await.unwrap(), Some(61_000));
}

pub async fn concurrent_decisions_of_one_approval_decide_it_once(s: Store) {
    let run = s.create_run(&new_run("rb")).await.unwrap().id;
    let id = s.request_approval(&run, "restart", 0, "Restart?", now_ms() + 60_000).await.unwrap();
    let run = std::sync::Arc::new(run);
    let decisions = race(&s, |s, i| {
        let run = run.clone();
        async move {
            let status = if i % 2 == 0 { ApprovalStatus::Approved } else { ApprovalStatus::Rejected };
            s.decide_approval(&run, status, &format!("user{i}"), None).await
        }
    })
    .await;
    let won: Vec<_> = decisions.iter().filter_map(|d| d.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "one of {RACERS} decisions wins: {decisions:?}");
    assert!(
        decisions.iter().filter_map(|d| d.as_ref().err()).all(|e| matches!(e, StoreError::Conflict(_))),
        "the others are conflicts: {decisions:?}"
    );
    let kept = s.approval(id).await.unwrap().unwrap();
    assert_eq!((kept.status, kept.decided_by.as_deref()), (won[0].status, won[0].decided_by.as_deref()));
}

pub async fn concurrent_escalations_with_one_key_group_into_one(s: Store) {
    let run = std::sync::Arc::new(s.create_run(&new_run("rb")).await.unwrap().id);
    let raised = race(&s, |s, _| {
        let run = run.clone();
        async move {
            let e = NewEscalation {
                run_id: &run,
                runbook: "rb",
                step_id: None,
                iteration: 0,
                severity: Severity::High,
                message: "m",
                dedup_key: "k",
            };
            s.raise_escalation(&e, Duration::from_secs(3600), now_ms()).await.unwrap()
        }
    })
    .await;
    assert_eq!(raised.iter().filter(|r| !r.grouped).count(), 1, "one of {RACERS} opens it: {raised:?}");
    let list = s.list_escalations(None, Some(&run), 10).await.unwrap();
    assert_eq!((list.len(), list[0].occurrences), (1, RACERS as i64));
}
