//! Cron triggers: next fire times (5-field crontab lines and `@hourly`-style
//! macros, in IANA time zones through croner and jiff), persisted in the
//! store so a restart neither loses nor repeats a fire, with the overlap,
//! missed-fire and jitter policies of each trigger. Creates runs; the
//! service executes them. Time comes from a [`Clock`]: the system's, or in
//! tests of the binary the file named by `TEND_CLOCK_FILE`; a jump of the
//! clock past a fire by more than [`GRACE`] counts as downtime.
//!
//! Daylight saving: a job at a fixed time (minute and hour each a single
//! value, e.g. `30 2 * * *`) runs exactly once on both change days — on
//! the spring-forward day at the first instant after the skipped hour
//! (03:00 for 02:30), on the fall-back day at the first of the two 02:30s.
//! Jobs with ranges, lists or steps in the minute or hour field follow wall
//! time: they skip the times that do not exist, and run at both instants of
//! a time that happens twice (so `*/15 * * * *` keeps firing every 15 real
//! minutes).

use crate::engine::Clock;
use crate::runbook::{CronTrigger, Missed, Overlap, Runbook, Trigger};
use crate::store::{NewRun, RunRow, Store};
use jiff::Timestamp;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// A fire is on time when it happens within this of its scheduled time;
/// later fires count as missed (tend was down or stalled).
pub const GRACE: Duration = Duration::from_secs(60);
/// Most missed fires `missed: all` replays at once.
pub const MAX_REPLAY: usize = 100;

/// The store key of a cron trigger: runbook, expression and zone.
pub fn key(runbook: &str, t: &CronTrigger) -> String {
    format!("{runbook}|{}|{}", t.expr, t.timezone)
}

/// The first fire strictly after `after`, before jitter.
fn next_after(t: &CronTrigger, after: Timestamp) -> Option<Timestamp> {
    t.schedule.next_after(after)
}

fn ms(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Fires due cron triggers.
pub struct Scheduler {
    store: Store,
    clock: Arc<dyn Clock>,
    /// The trigger keys of the last pass whose stale schedules were
    /// forgotten; None before the first pass.
    known: tokio::sync::Mutex<Option<BTreeSet<String>>>,
}

impl Scheduler {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Scheduler {
        Scheduler { store, clock, known: Default::default() }
    }

    /// Forgets the schedules of cron triggers not in `runbooks` (when the
    /// set changed since the last call): a trigger that comes back later
    /// (the line changed back, the runbook restored) then starts from its
    /// next fire instead of replaying the fires of its absence as missed.
    /// Call it only with a complete set of runbooks: one that failed to load
    /// would lose its schedule. So tend processes sharing one database must
    /// load the same runbooks.
    pub async fn forget_unloaded(&self, runbooks: &[Arc<Runbook>]) {
        let keys: BTreeSet<String> = runbooks
            .iter()
            .flat_map(|rb| {
                rb.triggers.iter().filter_map(|t| match t {
                    Trigger::Cron(c) => Some(key(&rb.name, c)),
                    _ => None,
                })
            })
            .collect();
        let mut known = self.known.lock().await;
        if known.as_ref() == Some(&keys) {
            return;
        }
        match self.store.forget_schedules(&keys).await {
            Ok(forgotten) => {
                for k in forgotten {
                    tracing::info!("scheduler: forgot the schedule of {k:?}: no loaded runbook has that trigger");
                }
                *known = Some(keys);
            }
            Err(e) => tracing::error!("scheduler: cannot forget the schedules of unloaded triggers: {e:#}"),
        }
    }

    /// A random jitter up to `max`, in ms.
    fn jitter(&self, max: Duration) -> i64 {
        (max.as_millis() as f64 * self.clock.random()) as i64
    }

    /// One pass over every cron trigger of `runbooks`, at one reading of
    /// the clock: a trigger seen for the first time gets its next fire
    /// time; a due one fires. Returns the runs queued, as recorded. A trigger
    /// the store fails on is logged and tried again on the next pass; the
    /// others still go, and the runs they queued are still returned.
    pub async fn tick(&self, runbooks: &[Arc<Runbook>]) -> Vec<RunRow> {
        let now = self.clock.now_ms();
        let mut queued = Vec::new();
        for rb in runbooks {
            for t in &rb.triggers {
                if let Trigger::Cron(c) = t {
                    match self.tick_one(rb, c, now).await {
                        Ok(runs) => queued.extend(runs),
                        Err(e) => tracing::error!(runbook = %rb.name, "scheduler: cron {:?}: {e:#}", c.expr),
                    }
                }
            }
        }
        metrics::gauge!("tend_scheduler_pass_timestamp_seconds").set(now as f64 / 1000.0);
        queued
    }

    async fn tick_one(&self, rb: &Runbook, c: &CronTrigger, now: i64) -> anyhow::Result<Vec<RunRow>> {
        let key = key(&rb.name, c);
        let Some(next) = self.store.schedule_next(&key).await? else {
            if let Some(first) = next_after(c, ts(now)) {
                self.store.init_schedule(&key, &rb.name, ms(first) + self.jitter(c.jitter)).await?;
            }
            return Ok(Vec::new());
        };
        if next > now {
            return Ok(Vec::new());
        }
        let scheduled: Vec<Timestamp> = if now - next <= GRACE.as_millis() as i64 {
            vec![ts(next)]
        } else {
            // Missed while down: the fires from the stored one (jitter taken
            // off) up to now.
            let from = ts(next - c.jitter.as_millis() as i64);
            match c.missed {
                Missed::None => Vec::new(),
                Missed::Last => c.schedule.fires_between(from, ts(now), 1),
                Missed::All => {
                    let window_start = ts(now - c.missed_window.as_millis() as i64);
                    c.schedule.fires_between(from.max(window_start), ts(now), MAX_REPLAY)
                }
            }
        };
        // On time, the next fire follows the one just due (a jittered or
        // slightly late pass must not skip a slot); after missed fires, it
        // follows now.
        let after = if now - next <= GRACE.as_millis() as i64 { ts(next) } else { ts(now) };
        let Some(new_next) = next_after(c, after).map(|n| ms(n) + self.jitter(c.jitter)) else {
            return Ok(Vec::new());
        };
        let params = match rb.resolve_params(c.params.as_object().unwrap_or(&Default::default())) {
            Ok(p) => serde_json::Value::Object(p),
            Err(errors) => {
                // Checked when the runbook loads; a failure here is a bug.
                tracing::error!(runbook = %rb.name, "scheduled params are invalid: {}", errors.join("; "));
                return Ok(Vec::new());
            }
        };
        let (mut waiting, running) = self.store.active_runs(&rb.name).await?;
        let mut runs = Vec::new();
        for at in scheduled {
            let run = NewRun {
                runbook: rb.name.clone(),
                runbook_hash: rb.hash.clone(),
                trigger_kind: "cron".into(),
                trigger_source: Some(format!("{} ({}) at {at}", c.expr, c.timezone)),
                params: params.clone(),
            };
            let skipped = match c.overlap {
                Overlap::Allow => None,
                Overlap::Skip if waiting + running > 0 => {
                    Some(format!("skipped: a run of {} was still queued or running (overlap: skip)", rb.name))
                }
                Overlap::Queue if waiting > 0 => {
                    Some(format!("skipped: a run of {} was already waiting its turn (overlap: queue)", rb.name))
                }
                Overlap::Skip | Overlap::Queue => None,
            };
            if skipped.is_none() {
                waiting += 1;
            }
            runs.push((run, skipped));
        }
        match self.store.fire_schedule(&key, next, new_next, &runs).await? {
            Some(queued) => {
                metrics::histogram!("tend_scheduler_lateness_seconds").record((now - next).max(0) as f64 / 1000.0);
                for (run, why) in &runs {
                    match why {
                        Some(w) => tracing::info!(runbook = %rb.name, "schedule {}: {w}", c.expr),
                        None => {
                            tracing::info!(runbook = %rb.name, "schedule {} fired ({})", c.expr, run.trigger_source.as_deref().unwrap_or(""))
                        }
                    }
                }
                Ok(queued)
            }
            // Another tend sharing the database fired it first.
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::{Catalog, check::check};
    use crate::store::{RunFilter, RunStatus};
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::atomic::{AtomicI64, Ordering};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A clock the test sets; `random()` is the second field.
    struct TestClock(AtomicI64, f64);

    #[async_trait::async_trait]
    impl Clock for TestClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
        async fn sleep(&self, d: Duration) {
            self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
        }
        fn random(&self) -> f64 {
            self.1
        }
    }

    fn runbook(trigger: &str) -> Arc<Runbook> {
        named("sched", trigger)
    }

    fn named(name: &str, trigger: &str) -> Arc<Runbook> {
        let yaml = format!("name: {name}\ntriggers:\n  - {trigger}\nsteps:\n  - id: a\n    plugin: echo\n");
        let catalog = Catalog { plugins: BTreeMap::from([("echo".to_string(), None)]) };
        Arc::new(check(Path::new("t.yaml"), &yaml, &catalog).unwrap())
    }

    async fn setup(trigger: &str, now: &str) -> (Scheduler, Arc<TestClock>, Store, Arc<Runbook>) {
        let store = Store::open(":memory:").await.unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(ms(at(now))), 0.5));
        (Scheduler::new(store.clone(), clock.clone()), clock, store, runbook(trigger))
    }

    fn set(clock: &TestClock, now: &str) {
        clock.0.store(ms(at(now)), Ordering::SeqCst);
    }

    async fn statuses(store: &Store) -> Vec<String> {
        let mut runs = store.list_runs(&RunFilter::default()).await.unwrap();
        runs.reverse();
        runs.iter().map(|r| format!("{} {}", r.status, r.trigger_source.as_deref().unwrap_or(""))).collect()
    }

    #[tokio::test]
    async fn fires_on_time_once_and_persists_the_next_time() {
        let (s, clock, store, rb) = setup("cron: \"0 * * * *\"", "2026-01-01T10:15:00Z").await;
        assert!(s.tick(std::slice::from_ref(&rb)).await.is_empty(), "first sight only schedules");
        set(&clock, "2026-01-01T11:00:05Z");
        assert_eq!(s.tick(std::slice::from_ref(&rb)).await.len(), 1);
        // A second scheduler on the same database (a restart, or another
        // process) does not fire it again.
        let again = Scheduler::new(store.clone(), clock.clone());
        assert!(again.tick(std::slice::from_ref(&rb)).await.is_empty());
        assert_eq!(statuses(&store).await, vec!["queued 0 * * * * (UTC) at 2026-01-01T11:00:00Z"]);
        let key = key(
            "sched",
            match &rb.triggers[0] {
                Trigger::Cron(c) => c,
                _ => unreachable!(),
            },
        );
        assert_eq!(store.schedule_next(&key).await.unwrap(), Some(ms(at("2026-01-01T12:00:00Z"))));
    }

    #[tokio::test]
    async fn missed_fires_run_once_by_default() {
        let (s, clock, store, rb) = setup("cron: \"0 * * * *\"", "2026-01-01T10:15:00Z").await;
        s.tick(std::slice::from_ref(&rb)).await;
        // Down from 10:15 to 14:20: fires at 11, 12, 13 and 14 were missed.
        set(&clock, "2026-01-01T14:20:00Z");
        assert_eq!(s.tick(std::slice::from_ref(&rb)).await.len(), 1);
        assert_eq!(statuses(&store).await, vec!["queued 0 * * * * (UTC) at 2026-01-01T14:00:00Z"]);
    }

    #[tokio::test]
    async fn missed_all_replays_within_the_window_and_none_drops_them() {
        let (s, clock, store, rb) =
            setup("{cron: \"0 * * * *\", missed: all, missed_window: 90m, overlap: allow}", "2026-01-01T10:15:00Z")
                .await;
        s.tick(std::slice::from_ref(&rb)).await;
        set(&clock, "2026-01-01T14:20:00Z");
        assert_eq!(s.tick(std::slice::from_ref(&rb)).await.len(), 2, "12:00 is outside 90m; 13:00 and 14:00 run");

        let (s, clock, store2, rb) = setup("{cron: \"0 * * * *\", missed: none}", "2026-01-01T10:15:00Z").await;
        s.tick(std::slice::from_ref(&rb)).await;
        set(&clock, "2026-01-01T14:20:00Z");
        assert!(s.tick(std::slice::from_ref(&rb)).await.is_empty());
        assert!(statuses(&store2).await.is_empty());
        drop(store);
    }

    #[tokio::test]
    async fn a_trigger_that_comes_back_does_not_replay_its_absence() {
        let (s, clock, store, rb) = setup("{cron: \"0 * * * *\", overlap: allow}", "2026-01-01T10:15:00Z").await;
        s.tick(std::slice::from_ref(&rb)).await;
        // The line changes for three days, then changes back.
        let other = runbook("cron: \"30 * * * *\"");
        set(&clock, "2026-01-01T10:20:00Z");
        s.forget_unloaded(std::slice::from_ref(&other)).await;
        s.tick(std::slice::from_ref(&other)).await;
        set(&clock, "2026-01-04T10:20:00Z");
        s.forget_unloaded(std::slice::from_ref(&rb)).await;
        s.tick(std::slice::from_ref(&rb)).await;
        assert!(statuses(&store).await.is_empty(), "no missed fire replayed");
        set(&clock, "2026-01-04T11:00:01Z");
        assert_eq!(s.tick(std::slice::from_ref(&rb)).await.len(), 1);
        // A restart with the same runbooks forgets nothing.
        let again = Scheduler::new(store.clone(), clock.clone());
        again.forget_unloaded(std::slice::from_ref(&rb)).await;
        set(&clock, "2026-01-04T12:00:01Z");
        assert_eq!(again.tick(std::slice::from_ref(&rb)).await.len(), 1);
        assert_eq!(statuses(&store).await.len(), 2);
    }

    #[tokio::test]
    async fn overlapping_fires_are_skipped_and_recorded() {
        let (s, clock, store, rb) = setup("cron: \"*/5 * * * *\"", "2026-01-01T10:01:00Z").await;
        s.tick(std::slice::from_ref(&rb)).await;
        set(&clock, "2026-01-01T10:05:01Z");
        let first = s.tick(std::slice::from_ref(&rb)).await;
        assert!(store.claim_run(&first[0].id, "1@h", None).await.unwrap());
        set(&clock, "2026-01-01T10:10:01Z");
        assert!(s.tick(std::slice::from_ref(&rb)).await.is_empty());
        let runs = store.list_runs(&RunFilter::default()).await.unwrap();
        assert_eq!(runs[0].status, RunStatus::Skipped);
        assert_eq!(
            runs[0].error.as_deref(),
            Some("skipped: a run of sched was still queued or running (overlap: skip)")
        );
    }

    #[tokio::test]
    async fn overlap_queue_lets_one_wait() {
        let (s, clock, store, rb) = setup("{cron: \"*/5 * * * *\", overlap: queue}", "2026-01-01T10:01:00Z").await;
        s.tick(std::slice::from_ref(&rb)).await;
        set(&clock, "2026-01-01T10:05:01Z");
        let first = s.tick(std::slice::from_ref(&rb)).await;
        store.claim_run(&first[0].id, "1@h", None).await.unwrap();
        set(&clock, "2026-01-01T10:10:01Z");
        assert_eq!(s.tick(std::slice::from_ref(&rb)).await.len(), 1, "one may wait");
        set(&clock, "2026-01-01T10:15:01Z");
        assert!(s.tick(std::slice::from_ref(&rb)).await.is_empty(), "a second may not");
    }

    #[tokio::test]
    async fn a_late_pass_after_a_long_jitter_does_not_skip_the_next_fire() {
        let store = Store::open(":memory:").await.unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(ms(at("2026-01-01T10:01:00Z"))), 0.99));
        let s = Scheduler::new(store.clone(), clock.clone());
        let rb = runbook("{cron: \"*/10 * * * *\", jitter: 590s, overlap: allow}");
        s.tick(std::slice::from_ref(&rb)).await;
        // Stored for 10:10 + 0.99 × 590 s = 10:19:44.1; the pass comes 20 s late.
        set(&clock, "2026-01-01T10:20:04Z");
        assert_eq!(s.tick(std::slice::from_ref(&rb)).await.len(), 1);
        let key = key(
            "sched",
            match &rb.triggers[0] {
                Trigger::Cron(c) => c,
                _ => unreachable!(),
            },
        );
        // The 10:20 slot is next (10:29:44 with jitter), not skipped for 10:30.
        assert_eq!(store.schedule_next(&key).await.unwrap(), Some(ms(at("2026-01-01T10:29:44.100Z"))));
    }

    #[tokio::test]
    async fn jitter_delays_the_stored_fire_time() {
        let (s, _clock, store, rb) = setup("{cron: \"0 * * * *\", jitter: 10m}", "2026-01-01T10:15:00Z").await;
        s.tick(std::slice::from_ref(&rb)).await;
        let key = key(
            "sched",
            match &rb.triggers[0] {
                Trigger::Cron(c) => c,
                _ => unreachable!(),
            },
        );
        // The test clock's random() is 0.5: five of the ten minutes.
        assert_eq!(store.schedule_next(&key).await.unwrap(), Some(ms(at("2026-01-01T11:05:00Z"))));
    }

    /// Ticks every `step` from `from` to `until` (inclusive) and returns
    /// the fire instants of the runs created.
    async fn walk(
        s: &Scheduler,
        clock: &TestClock,
        rb: &Arc<Runbook>,
        from: &str,
        until: &str,
        step: i64,
    ) -> Vec<String> {
        let mut fired = Vec::new();
        let mut t = ms(at(from));
        while t <= ms(at(until)) {
            clock.0.store(t, Ordering::SeqCst);
            for run in s.tick(std::slice::from_ref(rb)).await {
                fired.push(run.trigger_source.unwrap().rsplit(" at ").next().unwrap().to_string());
            }
            t += step;
        }
        fired
    }

    #[tokio::test]
    async fn a_fixed_time_job_fires_once_per_day_across_both_change_days_tick_by_tick() {
        // Berlin skips 02:00-03:00 on 2026-03-29 and repeats it on 2026-10-25.
        let trigger = "{cron: \"30 2 * * *\", timezone: Europe/Berlin, overlap: allow}";
        let (s, clock, _store, rb) = setup(trigger, "2026-03-28T12:00:00Z").await;
        s.tick(std::slice::from_ref(&rb)).await;
        let fired = walk(&s, &clock, &rb, "2026-03-28T22:00:00Z", "2026-03-30T03:00:00Z", 30_000).await;
        // 03:00 CEST, the first instant after the gap; then 02:30 CEST.
        assert_eq!(fired, vec!["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]);

        let (s, clock, _store, rb) = setup(trigger, "2026-10-24T12:00:00Z").await;
        s.tick(std::slice::from_ref(&rb)).await;
        let fired = walk(&s, &clock, &rb, "2026-10-24T22:00:00Z", "2026-10-26T03:00:00Z", 30_000).await;
        // The first 02:30 (CEST) only; then 02:30 CET.
        assert_eq!(fired, vec!["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]);
    }

    #[tokio::test]
    async fn an_interval_job_fires_on_both_instants_of_the_repeated_hour() {
        let (s, clock, _store, rb) =
            setup("{cron: \"30 * * * *\", timezone: Europe/Berlin, overlap: allow}", "2026-10-24T23:45:00Z").await;
        s.tick(std::slice::from_ref(&rb)).await;
        let fired = walk(&s, &clock, &rb, "2026-10-24T23:45:00Z", "2026-10-25T02:00:00Z", 30_000).await;
        // 02:30 CEST, then 02:30 CET an hour later.
        assert_eq!(fired, vec!["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"]);
    }

    #[tokio::test]
    async fn a_restart_inside_the_repeated_hour_does_not_fire_the_second_0230() {
        // Fired at the first 02:30 (CEST), then down until 02:45 CET: the
        // second 02:30 is not a missed fire.
        let trigger = "{cron: \"30 2 * * *\", timezone: Europe/Berlin, missed: all, overlap: allow}";
        let (s, clock, store, rb) = setup(trigger, "2026-10-24T12:00:00Z").await;
        s.tick(std::slice::from_ref(&rb)).await;
        set(&clock, "2026-10-25T00:30:02Z");
        assert_eq!(s.tick(std::slice::from_ref(&rb)).await.len(), 1);
        set(&clock, "2026-10-25T01:45:00Z");
        let again = Scheduler::new(store.clone(), clock.clone());
        assert!(again.tick(std::slice::from_ref(&rb)).await.is_empty());
        // Down across the first 02:30 instead: it runs once, late.
        let (s, clock, _store, rb) = setup(trigger, "2026-10-24T12:00:00Z").await;
        s.tick(std::slice::from_ref(&rb)).await;
        set(&clock, "2026-10-25T01:45:00Z");
        let ids = s.tick(std::slice::from_ref(&rb)).await;
        assert_eq!(ids.len(), 1);
        let run = s.store.get_run(&ids[0].id).await.unwrap().unwrap();
        assert!(run.trigger_source.unwrap().ends_with(" at 2026-10-25T00:30:00Z"));
    }

    #[tokio::test]
    async fn a_trigger_the_store_fails_on_does_not_lose_the_runs_of_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(path.to_str().unwrap()).await.unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(ms(at("2026-01-01T10:15:00Z"))), 0.5));
        let s = Scheduler::new(store.clone(), clock.clone());
        let rbs = [named("a", "cron: \"0 * * * *\""), named("b", "cron: \"0 * * * *\"")];
        s.tick(&rbs).await;
        // The store refuses to move b's schedule (a full disk, a lock).
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse_b BEFORE UPDATE ON schedules WHEN NEW.runbook = 'b' \
             BEGIN SELECT RAISE(ABORT, 'disk on fire'); END",
        )
        .execute(&pool)
        .await
        .unwrap();
        set(&clock, "2026-01-01T11:00:05Z");
        let queued = s.tick(&rbs).await;
        assert_eq!(queued.len(), 1, "a's run is returned for dispatch");
        assert_eq!(store.get_run(&queued[0].id).await.unwrap().unwrap().runbook, "a");
        // b fires once the store takes it again.
        sqlx::query("DROP TRIGGER refuse_b").execute(&pool).await.unwrap();
        let queued = s.tick(&rbs).await;
        assert_eq!(queued.len(), 1);
        assert_eq!(store.get_run(&queued[0].id).await.unwrap().unwrap().runbook, "b");
    }
}
