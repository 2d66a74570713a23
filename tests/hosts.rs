//! Several `tend serve` processes on one database, as users run them for
//! capacity and fail-over: triggers spread over the processes are all run
//! once, each cron fire is recorded once whichever process's scheduler
//! sees it first, and the runs of a process killed with SIGKILL are taken
//! over by the others within 10 seconds (resumed when the step they were
//! in is idempotent, otherwise interrupted and escalated; queued ones are
//! picked up and run). Every check runs twice: on a SQLite file the
//! processes share (`sqlite::`) and on a database of a throw-away
//! PostgreSQL cluster (`postgres::`, Debian's server on a free loopback
//! port, see `tests/support/postgres.rs`).

mod serve_support;
#[path = "support/postgres.rs"]
mod support_postgres;

use serde_json::Value;
use serve_support::{READER, Server, TRIGGER};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// Where the processes keep their shared record.
#[derive(Debug, Clone, Copy)]
enum Db {
    /// `tend.db` in the test's shared directory.
    Sqlite,
    /// A new database of this test process's PostgreSQL cluster.
    Postgres,
}

/// One cluster per test process (nextest runs each test in its own),
/// stopped by the harness's watchdog when the process exits.
static CLUSTER: LazyLock<support_postgres::Postgres> = LazyLock::new(|| {
    support_postgres::Postgres::start().unwrap_or_else(|e| panic!("starting a PostgreSQL cluster for the test: {e}"))
});

impl Db {
    /// The `TEND_DB` of the processes sharing `dir`.
    fn url(self, dir: &Path) -> String {
        match self {
            Db::Sqlite => dir.join("tend.db").to_str().unwrap().to_string(),
            Db::Postgres => CLUSTER.unique_database("hosts").unwrap_or_else(|e| panic!("creating a database: {e}")).1,
        }
    }
}

/// Each check as a test on each backend: `sqlite::name` and `postgres::name`.
macro_rules! on_each_backend {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $check() { super::$check(super::Db::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $check() { super::$check(super::Db::Postgres).await } )*
        }
    };
}

on_each_backend!(
    triggers_spread_over_three_processes_each_run_once,
    no_accepted_trigger_is_lost_when_a_process_is_killed_mid_load,
    the_runs_of_a_killed_process_are_taken_over_by_the_others_within_10_seconds,
    the_runs_of_a_hung_process_are_taken_over_once_its_heartbeat_is_stale,
    a_process_that_wakes_after_its_run_was_taken_over_records_nothing_more_of_it,
    three_schedulers_on_one_database_record_each_cron_fire_once,
);

/// Most time from a process's death to its runs being taken over.
const TAKEOVER_BOUND: Duration = Duration::from_secs(10);

/// Grants the test-only `hostile` plugin asks for (its sleep mode uses none).
const HOSTILE_GRANTS: &str = r#"grants: {env: {A: b}, dirs: ["/tmp:/tmp:ro"], hosts: [localhost], secrets: [none]}"#;

fn runbooks() -> Vec<(&'static str, String)> {
    vec![
        ("hello", "name: hello\ntriggers: [{http: true}]\nsteps:\n  - id: greet\n    plugin: echo\n".to_string()),
        (
            "slow",
            format!(
                "name: slow\ntriggers: [{{http: true}}]\nsteps:\n  - id: wait\n    plugin: hostile\n    \
                 with: {{mode: sleep, ms: 60000}}\n    timeout: 2m\n    {HOSTILE_GRANTS}\n"
            ),
        ),
        (
            "serial",
            format!(
                "name: serial\ntriggers: [{{http: true}}]\nconcurrency: 1\nsteps:\n  - id: wait\n    plugin: hostile\n    \
                 with: {{mode: sleep, ms: 60000}}\n    timeout: 2m\n    {HOSTILE_GRANTS}\n"
            ),
        ),
        (
            "resumable",
            format!(
                "name: resumable\ntriggers: [{{http: true}}]\nsteps:\n  - id: first\n    plugin: echo\n    with: {{output: one}}\n  \
                 - id: wait\n    plugin: hostile\n    with: {{mode: sleep, ms: 3000}}\n    timeout: 1m\n    idempotent: true\n    \
                 {HOSTILE_GRANTS}\n  - id: last\n    plugin: echo\n    input: ${{{{ steps.first.output }}}}\n"
            ),
        ),
        (
            "every5",
            "name: every5\ntriggers:\n  - {cron: \"*/5 * * * *\", timezone: UTC}\nsteps:\n  - id: a\n    plugin: echo\n"
                .to_string(),
        ),
    ]
}

/// `n` processes sharing the database `db` (and the scheduler's clock file
/// in `shared`), each with the same runbooks and tokens.
fn hosts(n: usize, db: Db, shared: &Path, clock: Option<&str>) -> Vec<Server> {
    let db = db.url(shared);
    let clock_file = shared.join("clock");
    if let Some(at) = clock {
        std::fs::write(&clock_file, at).unwrap();
    }
    (0..n)
        .map(|_| {
            let mut s = Server::new();
            for (name, yaml) in runbooks() {
                s.runbook(name, &yaml);
            }
            s.env("TEND_DB", &db);
            if clock.is_some() {
                s.env("TEND_CLOCK_FILE", clock_file.to_str().unwrap());
            }
            s.start();
            s
        })
        .collect()
}

async fn trigger(s: &Server, runbook: &str) -> String {
    let (status, body) = s.call("POST", &format!("/v1/runbooks/{runbook}/runs"), Some(TRIGGER), None).await;
    assert!(status.is_success(), "{status}: {body}");
    body["run_id"].as_str().unwrap().to_string()
}

async fn run(s: &Server, id: &str) -> Value {
    let (status, body) = s.call("GET", &format!("/v1/runs/{id}"), Some(READER), None).await;
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// Polls `id` through `s` until `done` holds of it; returns it and how long
/// that took from `since`, failing past `bound`.
async fn until(
    s: &Server,
    id: &str,
    since: Instant,
    bound: Duration,
    done: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    loop {
        let body = run(s, id).await;
        if done(&body) {
            return (body, since.elapsed());
        }
        assert!(since.elapsed() < bound, "run {id} not there after {bound:?}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn step_running(body: &Value, step: &str) -> bool {
    body["steps"].as_array().unwrap().iter().any(|a| a["step_id"] == step && a["status"] == "running")
}

/// The attempts of a `resumable` run taken over in its `wait` step and
/// resumed there: `first` is not run again.
fn resumed_steps() -> Vec<(String, String)> {
    [("first", "succeeded"), ("wait", "interrupted"), ("wait", "succeeded"), ("last", "succeeded")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn steps(body: &Value) -> Vec<(String, String)> {
    body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["step_id"].as_str().unwrap().to_string(), a["status"].as_str().unwrap().to_string()))
        .collect()
}

async fn triggers_spread_over_three_processes_each_run_once(db: Db) {
    let shared = tempfile::tempdir().unwrap();
    let hosts = hosts(3, db, shared.path(), None);
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(trigger(&hosts[i % 3], "hello").await);
    }
    for (i, id) in ids.iter().enumerate() {
        // Read through another process than the one that took the trigger.
        let body = hosts[(i + 1) % 3].wait_final(id).await;
        assert_eq!(body["run"]["status"], "succeeded", "{body}");
        assert_eq!(steps(&body), [("greet".to_string(), "succeeded".to_string())], "run once: {body}");
    }
    let (_, list) = hosts[2].call("GET", "/v1/runs?runbook=hello&limit=500", Some(READER), None).await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 30, "{list}");
}

async fn no_accepted_trigger_is_lost_when_a_process_is_killed_mid_load(db: Db) {
    let shared = tempfile::tempdir().unwrap();
    let mut hosts = hosts(3, db, shared.path(), None);
    let load_for = Duration::from_secs(3);
    let first_accepted: Vec<_> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    // One client per process, a trigger every 5 ms; a refused connection
    // (the killed process) is simply not an accepted trigger.
    let clients: Vec<_> = hosts
        .iter()
        .zip(&first_accepted)
        .map(|(h, count)| {
            let (http, url, count) = (h.http.clone(), format!("{}/v1/runbooks/hello/runs", h.base), count.clone());
            tokio::spawn(async move {
                let (start, mut accepted) = (Instant::now(), Vec::new());
                while start.elapsed() < load_for {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let Ok(resp) = http.post(&url).bearer_auth(TRIGGER).send().await else { continue };
                    if resp.status().is_success() {
                        let body: Value = resp.json().await.unwrap();
                        accepted.push(body["run_id"].as_str().unwrap().to_string());
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
                accepted
            })
        })
        .collect();
    // Killed while busy: once it has taken some triggers, and with time left.
    let start = Instant::now();
    while first_accepted[0].load(Ordering::Relaxed) < 20 {
        assert!(start.elapsed() < load_for / 2, "process 0 took no triggers");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    hosts[0].kill9();
    let mut accepted = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let ids = c.await.unwrap();
        assert!(!ids.is_empty(), "process {i} accepted triggers");
        accepted.extend(ids);
    }
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for id in &accepted {
        let body = hosts[1].wait_final(id).await;
        let status = body["run"]["status"].as_str().unwrap().to_string();
        assert!(["succeeded", "interrupted"].contains(&status.as_str()), "{body}");
        *statuses.entry(status).or_default() += 1;
    }
    eprintln!("{} accepted triggers: {statuses:?}", accepted.len());
    let mut recorded = std::collections::BTreeSet::new();
    let mut page = "/v1/runs?runbook=hello&limit=500".to_string();
    loop {
        let (status, list) = hosts[2].call("GET", &page, Some(READER), None).await;
        assert!(status.is_success(), "{status}: {list}");
        let runs = list["runs"].as_array().unwrap();
        recorded.extend(runs.iter().map(|r| r["id"].as_str().unwrap().to_string()));
        match runs.last() {
            Some(last) if runs.len() == 500 => {
                page = format!("/v1/runs?runbook=hello&limit=500&before={}", last["id"].as_str().unwrap())
            }
            _ => break,
        }
    }
    let accepted: std::collections::BTreeSet<String> = accepted.into_iter().collect();
    assert_eq!(recorded, accepted, "every accepted trigger is one run, and no other run exists");
}

async fn the_runs_of_a_killed_process_are_taken_over_by_the_others_within_10_seconds(db: Db) {
    let shared = tempfile::tempdir().unwrap();
    let mut hosts = hosts(3, db, shared.path(), None);
    let (slow, resumable) = (trigger(&hosts[0], "slow").await, trigger(&hosts[0], "resumable").await);
    let serial = [trigger(&hosts[0], "serial").await, trigger(&hosts[0], "serial").await];
    let start = Instant::now();
    for id in [&slow, &resumable] {
        until(&hosts[1], id, start, Duration::from_secs(20), |r| step_running(r, "wait")).await;
    }
    // Under the cap of 1, one of the two runs and then the other (which
    // one first is not specified).
    let (serial, behind) = loop {
        let (a, b) = (run(&hosts[1], &serial[0]).await, run(&hosts[1], &serial[1]).await);
        match (step_running(&a, "wait"), step_running(&b, "wait")) {
            (true, false) => break (serial[0].clone(), serial[1].clone()),
            (false, true) => break (serial[1].clone(), serial[0].clone()),
            (both, _) => assert!(!both && start.elapsed() < Duration::from_secs(20), "{a}\n{b}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run(&hosts[1], &behind).await["run"]["status"], "queued", "behind the cap of 1");

    hosts[0].kill9();
    let killed = Instant::now();

    // Not idempotent: interrupted, with a high escalation saying so.
    let (body, took) = until(&hosts[1], &slow, killed, TAKEOVER_BOUND, |r| r["run"]["status"] == "interrupted").await;
    eprintln!("slow interrupted {took:?} after the kill");
    assert_eq!(steps(&body), [("wait".to_string(), "interrupted".to_string())]);
    assert_eq!(body["escalations"][0]["severity"], "high", "{body}");
    assert!(body["escalations"][0]["message"].as_str().unwrap().contains("exited mid-run"), "{body}");

    // Idempotent: resumed by another process from the step it was in.
    let (_, took) = until(&hosts[2], &resumable, killed, TAKEOVER_BOUND, |r| {
        steps(r).contains(&("wait".to_string(), "interrupted".to_string()))
    })
    .await;
    eprintln!("resumable taken over {took:?} after the kill");

    // Queued behind the killed process's run: picked up and started.
    let (_, took) = until(&hosts[1], &behind, killed, TAKEOVER_BOUND, |r| step_running(r, "wait")).await;
    eprintln!("the queued serial run started {took:?} after the kill");
    assert_eq!(run(&hosts[1], &serial).await["run"]["status"], "interrupted");

    let body = hosts[2].wait_final(&resumable).await;
    assert_eq!(body["run"]["status"], "succeeded", "{body}");
    let expected = resumed_steps();
    assert_eq!(steps(&body), expected, "completed steps are not run again");
    assert_eq!(body["steps"][3]["output"], "one");
}

async fn the_runs_of_a_hung_process_are_taken_over_once_its_heartbeat_is_stale(db: Db) {
    let shared = tempfile::tempdir().unwrap();
    let hosts = hosts(2, db, shared.path(), None);
    let slow = trigger(&hosts[0], "slow").await;
    until(&hosts[1], &slow, Instant::now(), Duration::from_secs(20), |r| step_running(r, "wait")).await;

    // Frozen, not dead: its pid lives on, only its heartbeat stops (as when
    // a host hangs or is cut off from the database).
    let pid = hosts[0].child.as_ref().unwrap().id().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let stopped = Instant::now();
    let (body, took) = until(&hosts[1], &slow, stopped, TAKEOVER_BOUND, |r| r["run"]["status"] == "interrupted").await;
    eprintln!("slow interrupted {took:?} after its owner froze");
    assert!(took >= Duration::from_secs(7), "not before the lease times out: {took:?}");
    let why = body["run"]["error"].as_str().unwrap();
    assert!(why.contains("no sign of life from its owner") && why.contains("for over 8s"), "{why}");
    // The harness kills the frozen process (SIGKILL ends a stopped one).
}

async fn a_process_that_wakes_after_its_run_was_taken_over_records_nothing_more_of_it(db: Db) {
    let shared = tempfile::tempdir().unwrap();
    let hosts = hosts(2, db, shared.path(), None);
    let id = trigger(&hosts[0], "resumable").await;
    until(&hosts[1], &id, Instant::now(), Duration::from_secs(20), |r| step_running(r, "wait")).await;
    let pid = hosts[0].child.as_ref().unwrap().id().to_string();
    let signal = |sig: &str| assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
    signal("-STOP");
    let stopped = Instant::now();
    // Taken over and resumed by the other process...
    until(&hosts[1], &id, stopped, Duration::from_secs(20), |r| {
        steps(r).contains(&("wait".to_string(), "interrupted".to_string()))
    })
    .await;
    // ...and then the frozen one wakes, its step's sleep long over.
    signal("-CONT");
    let body = hosts[1].wait_final(&id).await;
    assert_eq!(body["run"]["status"], "succeeded", "{body}");
    let expected = resumed_steps();
    assert_eq!(steps(&body), expected, "nothing of the woken process is recorded");
    // Give the woken process time to try, then look again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = run(&hosts[1], &id).await;
    assert_eq!(steps(&again), expected, "{again}");
    assert_eq!(again["run"]["status"], "succeeded");
    let log = std::fs::read_to_string(hosts[0].path().join("serve.log")).unwrap();
    assert!(log.contains("taken over by another process") || log.contains("another process took"), "{log}");
}

async fn three_schedulers_on_one_database_record_each_cron_fire_once(db: Db) {
    let shared = tempfile::tempdir().unwrap();
    let hosts = hosts(3, db, shared.path(), Some("2026-10-24T12:00:00Z"));
    let clock = shared.path().join("clock");
    let mut expected = Vec::new();
    for i in 1..=12 {
        let minute = 5 * i;
        let at = format!("2026-10-24T{:02}:{:02}:01Z", 12 + minute / 60, minute % 60);
        let tmp = shared.path().join("clock.tmp");
        std::fs::write(&tmp, &at).unwrap();
        std::fs::rename(&tmp, &clock).unwrap();
        for h in &hosts {
            h.scheduler_reached(&at).await;
        }
        expected.push(format!("2026-10-24T{:02}:{:02}:00Z", 12 + minute / 60, minute % 60));
    }
    let fires = hosts[1].fires("every5").await;
    assert_eq!(fires, expected, "each fire once, none lost");
}
