//! Cron triggers: next fire times (5-field crontab lines and `@hourly`-style
//! macros, in IANA time zones, parsed once per load by [`crate::cron`]),
//! persisted in the store so a restart neither loses nor repeats a fire,
//! with the overlap, missed-fire and jitter policies of each trigger. Keeps
//! the loaded triggers in a queue by next fire time, so a pass costs
//! nothing until one is due. Creates runs; the service executes them (and
//! decides when to pass: [`Scheduler::until_next_pass`]). No HTTP, no SQL
//! (the store). Time comes from a [`Clock`]: the system's, or in tests of
//! the binary the file named by `TEND_CLOCK_FILE`; a jump of the clock past
//! a fire by more than [`GRACE`] counts as downtime.
//!
//! Daylight saving: a job at a fixed time (minute and hour each a single
//! value, e.g. `30 2 * * *`) runs exactly once on both change days — on
//! the spring-forward day at the first instant after the skipped hour
//! (03:00 for 02:30), on the fall-back day at the first of the two 02:30s.
//! Jobs with ranges, lists or steps in the minute or hour field follow wall
//! time: they skip the times that do not exist, and run at both instants of
//! a time that happens twice (so `*/15 * * * *` keeps firing every 15 real
//! minutes).

use crate::clock::Clock;
use crate::runbook::{CronTrigger, Missed, Overlap, Runbook, Trigger};
use crate::store::{ActiveRuns, NewRun, NewSchedule, RunRow, ScheduleFire, Store, StoreError, TriggerKind};
use jiff::Timestamp;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// A fire is on time when it happens within this of its scheduled time;
/// later fires count as missed (tend was down or stalled).
pub const GRACE: Duration = Duration::from_secs(60);
/// Most missed fires `missed: all` replays at once.
pub const MAX_REPLAY: usize = 100;
/// The longest wait between two passes, whatever the next fire: the clock
/// may be set (or, with `TEND_CLOCK_FILE`, jump) at any moment. By default
/// 1 second.
pub const MAX_WAIT: Duration = Duration::from_secs(1);
/// How long until a trigger the store failed on is tried again. By default
/// 1 second.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The store key of a cron trigger: runbook, expression and zone.
pub fn key(runbook: &str, t: &CronTrigger) -> String {
    format!("{runbook}|{}|{}", t.expr, t.timezone)
}

fn ms(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The `wake` of a trigger that is not in the queue.
const NOT_QUEUED: i64 = i64::MAX;

/// A loaded cron trigger.
struct Entry {
    runbook: Arc<Runbook>,
    trigger: CronTrigger,
    /// The params of its runs, resolved when the set was loaded.
    params: serde_json::Value,
    /// Its stored next fire time (jitter included); None until read or
    /// recorded.
    next: Option<i64>,
    /// When the scheduler looks at it next: `next`, or a retry after the
    /// store failed on it; [`NOT_QUEUED`] when not in the queue.
    wake: i64,
}

/// Fires due cron triggers.
///
/// [`Scheduler::sync`] takes a set of runbooks (when it changed): it keeps
/// their cron triggers, parsed, and their next fire times, read from the
/// store in one go (and recorded in one write for triggers seen for the
/// first time), in a queue ordered by time. [`Scheduler::tick`] then fires
/// what is due, and nothing else: a pass with nothing due touches no
/// database. [`Scheduler::until_next_pass`] says how long to wait.
///
/// Several tend processes may share one database: each fire moves the
/// stored next time by compare and swap in the transaction that records
/// its runs, so one process wins; the others, finding it moved, read where
/// to and follow.
pub struct Scheduler {
    store: Store,
    clock: Arc<dyn Clock>,
    /// The cron triggers of the loaded set, by [`key`]. The first trigger
    /// of a runbook with a given line and zone is the one that fires (they
    /// share one stored schedule).
    triggers: HashMap<Arc<str>, Entry>,
    /// (wake, key), earliest first. An item whose time is no longer its
    /// trigger's `wake` (or whose trigger left the set) is stale: skipped.
    queue: BinaryHeap<Reverse<(i64, Arc<str>)>>,
    /// When to read (or record) again the next fire times the store failed
    /// to give; None when every loaded trigger has one.
    retry_unknown: Option<i64>,
    /// The trigger keys of the last set whose stale schedules were
    /// forgotten; None before the first.
    known: Option<BTreeSet<String>>,
}

impl Scheduler {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Scheduler {
        Scheduler { store, clock, triggers: HashMap::new(), queue: BinaryHeap::new(), retry_unknown: None, known: None }
    }

    /// Forgets the schedules of cron triggers not in `runbooks` (when the
    /// set changed since the last call): a trigger that comes back later
    /// (the line changed back, the runbook restored) then starts from its
    /// next fire instead of replaying the fires of its absence as missed.
    /// Call it only with a complete set of runbooks: one that failed to load
    /// would lose its schedule. So tend processes sharing one database must
    /// load the same runbooks. Returns false when the store failed (logged):
    /// call it again.
    pub async fn forget_unloaded(&mut self, runbooks: &[Arc<Runbook>]) -> bool {
        let keys: BTreeSet<String> = runbooks
            .iter()
            .flat_map(|rb| {
                rb.triggers.iter().filter_map(|t| match t {
                    Trigger::Cron(c) => Some(key(&rb.name, c)),
                    _ => None,
                })
            })
            .collect();
        if self.known.as_ref() == Some(&keys) {
            return true;
        }
        match self.store.forget_schedules(&keys).await {
            Ok(forgotten) => {
                for k in forgotten {
                    tracing::info!("scheduler: forgot the schedule of {k:?}: no loaded runbook has that trigger");
                }
                self.known = Some(keys);
                true
            }
            Err(e) => {
                tracing::error!("scheduler: cannot forget the schedules of unloaded triggers: {e:#}");
                false
            }
        }
    }

    /// Takes `runbooks` as the set to schedule: their cron triggers replace
    /// the previous ones, with their next fire times read from the store
    /// (one read). A trigger seen for the first time gets its next fire
    /// time after now, recorded (one write for all). When the store fails,
    /// triggers already loaded keep the time they had and the others are
    /// tried again after [`RETRY_AFTER`].
    pub async fn sync(&mut self, runbooks: &[Arc<Runbook>]) {
        let mut old = std::mem::take(&mut self.triggers);
        for rb in runbooks {
            for t in &rb.triggers {
                let Trigger::Cron(c) = t else { continue };
                let key: Arc<str> = key(&rb.name, c).into();
                if self.triggers.contains_key(&key) {
                    continue;
                }
                let params = match rb.resolve_params(c.params.as_object().unwrap_or(&Default::default())) {
                    Ok(p) => serde_json::Value::Object(p),
                    Err(errors) => {
                        // Checked when the runbook loads; a failure here is a bug.
                        tracing::error!(runbook = %rb.name, "scheduled params of cron {:?} are invalid: {}", c.expr, errors.join("; "));
                        continue;
                    }
                };
                let next = old.remove(&key).and_then(|e| e.next);
                let entry = Entry { runbook: rb.clone(), trigger: c.clone(), params, next, wake: NOT_QUEUED };
                self.triggers.insert(key, entry);
            }
        }
        self.learn(self.clock.now_ms()).await;
    }

    /// Reads the stored next fire time of every loaded trigger, records one
    /// for those that have none, and queues them all again.
    async fn learn(&mut self, now: i64) {
        self.retry_unknown = None;
        match self.store.schedules().await {
            Ok(stored) => {
                for (k, e) in self.triggers.iter_mut() {
                    e.next = stored.get(&**k).copied();
                }
                let mut new = Vec::new();
                for (k, e) in &self.triggers {
                    if e.next.is_some() {
                        continue;
                    }
                    match e.trigger.schedule.next_after(ts(now)) {
                        Some(first) => new.push(NewSchedule {
                            key: k.to_string(),
                            runbook: e.runbook.name.clone(),
                            next_fire_at: ms(first) + self.jitter(e.trigger.jitter),
                        }),
                        None => {
                            tracing::warn!(runbook = %e.runbook.name, "scheduler: cron {:?} never fires again", e.trigger.expr)
                        }
                    }
                }
                if !new.is_empty() {
                    match self.store.init_schedules(new).await {
                        Ok(recorded) => {
                            for (k, at) in recorded {
                                if let Some(e) = self.triggers.get_mut(k.as_str()) {
                                    e.next = Some(at);
                                }
                            }
                        }
                        Err(e) => {
                            tracing::error!(
                                "scheduler: cannot record the first fire times of new cron triggers: {e:#}"
                            );
                            self.retry_unknown = Some(now + RETRY_AFTER.as_millis() as i64);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!("scheduler: cannot read the next fire times of cron triggers: {e:#}");
                if self.triggers.values().any(|e| e.next.is_none()) {
                    self.retry_unknown = Some(now + RETRY_AFTER.as_millis() as i64);
                }
            }
        }
        let mut queue = Vec::with_capacity(self.triggers.len());
        for (k, e) in self.triggers.iter_mut() {
            e.wake = e.next.unwrap_or(NOT_QUEUED);
            if let Some(at) = e.next {
                queue.push(Reverse((at, k.clone())));
            }
        }
        self.queue = BinaryHeap::from(queue);
    }

    /// How long to wait before the next pass: until the earliest fire (or
    /// retry), at most [`MAX_WAIT`].
    pub fn until_next_pass(&self) -> Duration {
        let wake = self.queue.peek().map(|Reverse((at, _))| *at).into_iter().chain(self.retry_unknown).min();
        match wake {
            Some(at) => Duration::from_millis((at - self.clock.now_ms()).clamp(0, MAX_WAIT.as_millis() as i64) as u64),
            None => MAX_WAIT,
        }
    }

    /// A random jitter up to `max`, in ms.
    fn jitter(&self, max: Duration) -> i64 {
        (max.as_millis() as f64 * self.clock.random()) as i64
    }

    /// Puts a trigger back in the queue at `wake`.
    fn queue_at(&mut self, key: &Arc<str>, wake: i64) {
        if let Some(e) = self.triggers.get_mut(key) {
            e.wake = wake;
            self.queue.push(Reverse((wake, key.clone())));
        }
    }

    /// One pass, at one reading of the clock: fires the triggers that are
    /// due, in the order of their times. Returns the runs queued, as
    /// recorded. A trigger the store fails on is logged and tried again
    /// after [`RETRY_AFTER`]; the others still go, and the runs they queued
    /// are still returned.
    pub async fn tick(&mut self) -> Vec<RunRow> {
        let now = self.clock.now_ms();
        if self.retry_unknown.is_some_and(|at| at <= now) {
            self.learn(now).await;
        }
        let mut due = Vec::new();
        while self.queue.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            let Some(Reverse((at, key))) = self.queue.pop() else { break };
            if let Some(e) = self.triggers.get_mut(&key)
                && e.wake == at
                && e.next.is_some()
            {
                e.wake = NOT_QUEUED;
                due.push(key);
            }
        }
        let queued = if due.is_empty() { Vec::new() } else { self.fire(due, now).await };
        metrics::gauge!("tend_scheduler_pass_timestamp_seconds").set(now as f64 / 1000.0);
        queued
    }

    /// Fires `due` (in that order) at `now`: the runs each records, then
    /// all of them in one write.
    async fn fire(&mut self, due: Vec<Arc<str>>, now: i64) -> Vec<RunRow> {
        let retry = now + RETRY_AFTER.as_millis() as i64;
        let counts_needed =
            due.iter().any(|k| self.triggers.get(k).is_some_and(|e| e.trigger.overlap != Overlap::Allow));
        let mut active: HashMap<String, ActiveRuns> = HashMap::new();
        if counts_needed {
            match self.store.active_runs().await {
                Ok(a) => active = a,
                Err(e) => {
                    tracing::error!("scheduler: cannot count the active runs of due cron triggers: {e:#}");
                    for key in &due {
                        self.queue_at(key, retry);
                    }
                    return Vec::new();
                }
            }
        }
        let mut fires = Vec::with_capacity(due.len());
        for key in due {
            let Some(e) = self.triggers.get(&key) else { continue };
            let counts = active.entry(e.runbook.name.clone()).or_default();
            if let Some(fire) = self.plan(&key, e, now, counts) {
                fires.push(fire);
            }
        }
        if fires.is_empty() {
            return Vec::new();
        }
        // One write for all: the runs of the last fire are recorded a few
        // milliseconds after those of the first, not a commit later.
        let results = match self.store.fire_schedules(fires.clone()).await {
            Ok(results) => results,
            Err(e) => {
                let why = format!("{e:#}");
                fires.iter().map(|_| Err(StoreError::Backend(anyhow::anyhow!("{why}")))).collect()
            }
        };
        let done = self.clock.now_ms();
        let mut queued = Vec::new();
        let mut lost = Vec::new();
        for (fire, result) in fires.into_iter().zip(results) {
            let Some((key, e)) = self.triggers.get_key_value(fire.key.as_str()) else { continue };
            let (key, rb, c) = (key.clone(), &e.runbook.name, &e.trigger.expr);
            match result {
                Ok(Some(runs)) => {
                    metrics::histogram!("tend_scheduler_lateness_seconds")
                        .record((done - fire.expected).max(0) as f64 / 1000.0);
                    for (run, why) in &fire.runs {
                        match why {
                            Some(w) => tracing::info!(runbook = %rb, "schedule {c}: {w}"),
                            None => {
                                tracing::info!(runbook = %rb, "schedule {c} fired ({})", run.trigger_source.as_deref().unwrap_or(""))
                            }
                        }
                    }
                    if let Some(e) = self.triggers.get_mut(&key) {
                        e.next = Some(fire.next);
                    }
                    self.queue_at(&key, fire.next);
                    queued.extend(runs);
                }
                // Another tend sharing the database fired it first.
                Ok(None) => lost.push(key),
                Err(err) => {
                    tracing::error!(runbook = %rb, "scheduler: cron {c:?}: {err:#}");
                    self.queue_at(&key, retry);
                }
            }
        }
        for key in lost {
            // Follow where that process moved the schedule.
            match self.store.schedule_next(&key).await {
                Ok(Some(at)) => {
                    if let Some(e) = self.triggers.get_mut(&key) {
                        e.next = Some(at);
                    }
                    self.queue_at(&key, at);
                }
                Ok(None) => {
                    // It forgot the schedule: start again from the next fire.
                    if let Some(e) = self.triggers.get_mut(&key) {
                        e.next = None;
                    }
                    self.retry_unknown = Some(now);
                }
                Err(err) => {
                    tracing::error!("scheduler: cannot read the next fire time of {key:?}: {err:#}");
                    self.queue_at(&key, retry);
                }
            }
        }
        queued
    }

    /// What the due trigger `e` records at `now`, its schedule's stored
    /// next time having passed: its runs (queued, or skipped by its overlap
    /// policy given `counts`, which it updates) and its next fire time.
    /// None when it never fires again (logged).
    fn plan(&self, key: &str, e: &Entry, now: i64, counts: &mut ActiveRuns) -> Option<ScheduleFire> {
        let (rb, c) = (&e.runbook, &e.trigger);
        let next = e.next?;
        let on_time = now - next <= GRACE.as_millis() as i64;
        let scheduled: Vec<Timestamp> = if on_time {
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
        let after = if on_time { ts(next) } else { ts(now) };
        let Some(new_next) = c.schedule.next_after(after).map(|n| ms(n) + self.jitter(c.jitter)) else {
            tracing::warn!(runbook = %rb.name, "scheduler: cron {:?} never fires again", c.expr);
            return None;
        };
        let mut runs = Vec::new();
        for at in scheduled {
            let run = NewRun {
                runbook: rb.name.clone(),
                runbook_hash: rb.hash.clone(),
                trigger_kind: TriggerKind::Cron,
                trigger_source: Some(format!("{} ({}) at {at}", c.expr, c.timezone)),
                params: e.params.clone(),
            };
            let skipped = match c.overlap {
                Overlap::Allow => None,
                Overlap::Skip if counts.queued + counts.running > 0 => {
                    Some(format!("skipped: a run of {} was still queued or running (overlap: skip)", rb.name))
                }
                Overlap::Queue if counts.queued > 0 => {
                    Some(format!("skipped: a run of {} was already waiting its turn (overlap: queue)", rb.name))
                }
                Overlap::Skip | Overlap::Queue => None,
            };
            if skipped.is_none() {
                counts.queued += 1;
            }
            runs.push((run, skipped));
        }
        Some(ScheduleFire { key: key.to_string(), expected: next, next: new_next, runs })
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

    /// A scheduler at `now` on a fresh store, with one runbook of one
    /// trigger loaded (so already scheduled).
    async fn setup(trigger: &str, now: &str) -> (Scheduler, Arc<TestClock>, Store, Arc<Runbook>) {
        let store = Store::open(":memory:").await.unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(ms(at(now))), 0.5));
        let rb = runbook(trigger);
        let mut s = Scheduler::new(store.clone(), clock.clone());
        s.sync(std::slice::from_ref(&rb)).await;
        (s, clock, store, rb)
    }

    /// A new scheduler (a restart, or another process) on `store` with
    /// `runbooks` loaded.
    async fn loaded(store: &Store, clock: &Arc<TestClock>, runbooks: &[Arc<Runbook>]) -> Scheduler {
        let mut s = Scheduler::new(store.clone(), clock.clone());
        s.sync(runbooks).await;
        s
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
        let (mut s, clock, store, rb) = setup("cron: \"0 * * * *\"", "2026-01-01T10:15:00Z").await;
        assert!(s.tick().await.is_empty(), "first sight only schedules");
        set(&clock, "2026-01-01T11:00:05Z");
        assert_eq!(s.tick().await.len(), 1);
        // A second scheduler on the same database (a restart, or another
        // process) does not fire it again.
        let mut again = loaded(&store, &clock, std::slice::from_ref(&rb)).await;
        assert!(again.tick().await.is_empty());
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
        let (mut s, clock, store, _rb) = setup("cron: \"0 * * * *\"", "2026-01-01T10:15:00Z").await;
        s.tick().await;
        // Down from 10:15 to 14:20: fires at 11, 12, 13 and 14 were missed.
        set(&clock, "2026-01-01T14:20:00Z");
        assert_eq!(s.tick().await.len(), 1);
        assert_eq!(statuses(&store).await, vec!["queued 0 * * * * (UTC) at 2026-01-01T14:00:00Z"]);
    }

    #[tokio::test]
    async fn missed_all_replays_within_the_window_and_none_drops_them() {
        let (mut s, clock, store, _rb) =
            setup("{cron: \"0 * * * *\", missed: all, missed_window: 90m, overlap: allow}", "2026-01-01T10:15:00Z")
                .await;
        s.tick().await;
        set(&clock, "2026-01-01T14:20:00Z");
        assert_eq!(s.tick().await.len(), 2, "12:00 is outside 90m; 13:00 and 14:00 run");

        let (mut s, clock, store2, _rb) = setup("{cron: \"0 * * * *\", missed: none}", "2026-01-01T10:15:00Z").await;
        s.tick().await;
        set(&clock, "2026-01-01T14:20:00Z");
        assert!(s.tick().await.is_empty());
        assert!(statuses(&store2).await.is_empty());
        drop(store);
    }

    #[tokio::test]
    async fn a_trigger_that_comes_back_does_not_replay_its_absence() {
        let (mut s, clock, store, rb) = setup("{cron: \"0 * * * *\", overlap: allow}", "2026-01-01T10:15:00Z").await;
        s.tick().await;
        // The line changes for three days, then changes back.
        let other = runbook("cron: \"30 * * * *\"");
        set(&clock, "2026-01-01T10:20:00Z");
        assert!(s.forget_unloaded(std::slice::from_ref(&other)).await);
        s.sync(std::slice::from_ref(&other)).await;
        s.tick().await;
        set(&clock, "2026-01-04T10:20:00Z");
        assert!(s.forget_unloaded(std::slice::from_ref(&rb)).await);
        s.sync(std::slice::from_ref(&rb)).await;
        s.tick().await;
        assert!(statuses(&store).await.is_empty(), "no missed fire replayed");
        set(&clock, "2026-01-04T11:00:01Z");
        assert_eq!(s.tick().await.len(), 1);
        // A restart with the same runbooks forgets nothing.
        let mut again = Scheduler::new(store.clone(), clock.clone());
        assert!(again.forget_unloaded(std::slice::from_ref(&rb)).await);
        again.sync(std::slice::from_ref(&rb)).await;
        set(&clock, "2026-01-04T12:00:01Z");
        assert_eq!(again.tick().await.len(), 1);
        assert_eq!(statuses(&store).await.len(), 2);
    }

    #[tokio::test]
    async fn overlapping_fires_are_skipped_and_recorded() {
        let (mut s, clock, store, _rb) = setup("cron: \"*/5 * * * *\"", "2026-01-01T10:01:00Z").await;
        s.tick().await;
        set(&clock, "2026-01-01T10:05:01Z");
        let first = s.tick().await;
        assert!(store.claim_run(&first[0].id, "1@h", None).await.unwrap());
        set(&clock, "2026-01-01T10:10:01Z");
        assert!(s.tick().await.is_empty());
        let runs = store.list_runs(&RunFilter::default()).await.unwrap();
        assert_eq!(runs[0].status, RunStatus::Skipped);
        assert_eq!(
            runs[0].error.as_deref(),
            Some("skipped: a run of sched was still queued or running (overlap: skip)")
        );
    }

    #[tokio::test]
    async fn overlap_queue_lets_one_wait() {
        let (mut s, clock, store, _rb) = setup("{cron: \"*/5 * * * *\", overlap: queue}", "2026-01-01T10:01:00Z").await;
        s.tick().await;
        set(&clock, "2026-01-01T10:05:01Z");
        let first = s.tick().await;
        store.claim_run(&first[0].id, "1@h", None).await.unwrap();
        set(&clock, "2026-01-01T10:10:01Z");
        assert_eq!(s.tick().await.len(), 1, "one may wait");
        set(&clock, "2026-01-01T10:15:01Z");
        assert!(s.tick().await.is_empty(), "a second may not");
    }

    #[tokio::test]
    async fn a_late_pass_after_a_long_jitter_does_not_skip_the_next_fire() {
        let store = Store::open(":memory:").await.unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(ms(at("2026-01-01T10:01:00Z"))), 0.99));
        let rb = runbook("{cron: \"*/10 * * * *\", jitter: 590s, overlap: allow}");
        let mut s = loaded(&store, &clock, std::slice::from_ref(&rb)).await;
        // Stored for 10:10 + 0.99 × 590 s = 10:19:44.1; the pass comes 20 s late.
        set(&clock, "2026-01-01T10:20:04Z");
        assert_eq!(s.tick().await.len(), 1);
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
        let (mut s, _clock, store, rb) = setup("{cron: \"0 * * * *\", jitter: 10m}", "2026-01-01T10:15:00Z").await;
        s.tick().await;
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
    async fn walk(s: &mut Scheduler, clock: &TestClock, from: &str, until: &str, step: i64) -> Vec<String> {
        let mut fired = Vec::new();
        let mut t = ms(at(from));
        while t <= ms(at(until)) {
            clock.0.store(t, Ordering::SeqCst);
            for run in s.tick().await {
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
        let (mut s, clock, _store, _rb) = setup(trigger, "2026-03-28T12:00:00Z").await;
        s.tick().await;
        let fired = walk(&mut s, &clock, "2026-03-28T22:00:00Z", "2026-03-30T03:00:00Z", 30_000).await;
        // 03:00 CEST, the first instant after the gap; then 02:30 CEST.
        assert_eq!(fired, vec!["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]);

        let (mut s, clock, _store, _rb) = setup(trigger, "2026-10-24T12:00:00Z").await;
        s.tick().await;
        let fired = walk(&mut s, &clock, "2026-10-24T22:00:00Z", "2026-10-26T03:00:00Z", 30_000).await;
        // The first 02:30 (CEST) only; then 02:30 CET.
        assert_eq!(fired, vec!["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]);
    }

    #[tokio::test]
    async fn an_interval_job_fires_on_both_instants_of_the_repeated_hour() {
        let (mut s, clock, _store, _rb) =
            setup("{cron: \"30 * * * *\", timezone: Europe/Berlin, overlap: allow}", "2026-10-24T23:45:00Z").await;
        s.tick().await;
        let fired = walk(&mut s, &clock, "2026-10-24T23:45:00Z", "2026-10-25T02:00:00Z", 30_000).await;
        // 02:30 CEST, then 02:30 CET an hour later.
        assert_eq!(fired, vec!["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"]);
    }

    #[tokio::test]
    async fn a_restart_inside_the_repeated_hour_does_not_fire_the_second_0230() {
        // Fired at the first 02:30 (CEST), then down until 02:45 CET: the
        // second 02:30 is not a missed fire.
        let trigger = "{cron: \"30 2 * * *\", timezone: Europe/Berlin, missed: all, overlap: allow}";
        let (mut s, clock, store, rb) = setup(trigger, "2026-10-24T12:00:00Z").await;
        s.tick().await;
        set(&clock, "2026-10-25T00:30:02Z");
        assert_eq!(s.tick().await.len(), 1);
        set(&clock, "2026-10-25T01:45:00Z");
        let mut again = loaded(&store, &clock, std::slice::from_ref(&rb)).await;
        assert!(again.tick().await.is_empty());
        // Down across the first 02:30 instead: it runs once, late.
        let (mut s, clock, _store, _rb) = setup(trigger, "2026-10-24T12:00:00Z").await;
        s.tick().await;
        set(&clock, "2026-10-25T01:45:00Z");
        let ids = s.tick().await;
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
        let rbs = [named("a", "cron: \"0 * * * *\""), named("b", "cron: \"0 * * * *\"")];
        let mut s = loaded(&store, &clock, &rbs).await;
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
        let queued = s.tick().await;
        assert_eq!(queued.len(), 1, "a's run is returned for dispatch");
        assert_eq!(store.get_run(&queued[0].id).await.unwrap().unwrap().runbook, "a");
        // b is tried again a second later, and fires once the store takes it.
        assert_eq!(s.until_next_pass(), RETRY_AFTER);
        sqlx::query("DROP TRIGGER refuse_b").execute(&pool).await.unwrap();
        assert!(s.tick().await.is_empty(), "not before its retry");
        set(&clock, "2026-01-01T11:00:06Z");
        let queued = s.tick().await;
        assert_eq!(queued.len(), 1);
        assert_eq!(store.get_run(&queued[0].id).await.unwrap().unwrap().runbook, "b");
    }

    fn key_of(rb: &Runbook, i: usize) -> String {
        match &rb.triggers[i] {
            Trigger::Cron(c) => key(&rb.name, c),
            _ => unreachable!(),
        }
    }

    /// The scheduled instants of the runs, as `runbook@instant`.
    fn fired(runs: &[RunRow]) -> Vec<String> {
        runs.iter()
            .map(|r| format!("{}@{}", r.runbook, r.trigger_source.as_deref().unwrap().rsplit(" at ").next().unwrap()))
            .collect()
    }

    #[tokio::test]
    async fn a_trigger_seen_for_the_first_time_gets_its_next_fire_time_when_loaded() {
        let (mut s, clock, store, rb) = setup("cron: \"0 * * * *\"", "2026-01-01T10:15:00Z").await;
        // Recorded by the load itself, before any pass.
        assert_eq!(store.schedule_next(&key_of(&rb, 0)).await.unwrap(), Some(ms(at("2026-01-01T11:00:00Z"))));
        // A second one whose schedule another process recorded first takes
        // that process's time.
        let other = named("other", "{cron: \"0 * * * *\", overlap: allow}");
        let recorded = NewSchedule {
            key: key_of(&other, 0),
            runbook: "other".into(),
            next_fire_at: ms(at("2026-01-01T10:30:00Z")),
        };
        store.init_schedules(vec![recorded]).await.unwrap();
        set(&clock, "2026-01-01T10:20:00Z");
        s.sync(&[rb.clone(), other.clone()]).await;
        assert_eq!(store.schedule_next(&key_of(&other, 0)).await.unwrap(), Some(ms(at("2026-01-01T10:30:00Z"))));
        set(&clock, "2026-01-01T10:30:01Z");
        assert_eq!(fired(&s.tick().await), ["other@2026-01-01T10:30:00Z"]);
        set(&clock, "2026-01-01T11:00:01Z");
        assert_eq!(fired(&s.tick().await), ["other@2026-01-01T11:00:00Z", "sched@2026-01-01T11:00:00Z"]);
    }

    #[tokio::test]
    async fn a_reload_that_changes_removes_and_adds_triggers_fires_the_new_set_only() {
        let store = Store::open(":memory:").await.unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(ms(at("2026-01-01T10:01:00Z"))), 0.5));
        let (a, b, c) = (
            named("a", "{cron: \"10 * * * *\", overlap: allow}"),
            named("b", "{cron: \"20 * * * *\", overlap: allow}"),
            named("c", "{cron: \"30 * * * *\", overlap: allow}"),
        );
        let mut s = loaded(&store, &clock, &[a.clone(), b.clone(), c.clone()]).await;
        set(&clock, "2026-01-01T10:10:01Z");
        assert_eq!(fired(&s.tick().await), ["a@2026-01-01T10:10:00Z"]);
        // a's line changes, b goes, d comes; c stays as it was.
        let a2 = named("a", "{cron: \"40 * * * *\", overlap: allow}");
        let d = named("d", "{cron: \"15 * * * *\", overlap: allow}");
        let set2 = [a2.clone(), c.clone(), d.clone()];
        assert!(s.forget_unloaded(&set2).await);
        s.sync(&set2).await;
        let stored = store.schedules().await.unwrap();
        let mut keys: Vec<&str> = stored.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["a|40 * * * *|UTC", "c|30 * * * *|UTC", "d|15 * * * *|UTC"]);
        assert_eq!(stored["c|30 * * * *|UTC"], ms(at("2026-01-01T10:30:00Z")), "c keeps its time");
        assert_eq!(s.until_next_pass(), MAX_WAIT);
        let mut all = Vec::new();
        for t in ["10:15", "10:20", "10:30", "10:40", "11:10"] {
            set(&clock, &format!("2026-01-01T{t}:00Z"));
            all.extend(fired(&s.tick().await));
        }
        assert_eq!(
            all,
            ["d@2026-01-01T10:15:00Z", "c@2026-01-01T10:30:00Z", "a@2026-01-01T10:40:00Z"],
            "b's 10:20 and a's old 11:10 do not fire"
        );
    }

    #[tokio::test]
    async fn a_fire_lost_to_another_process_is_not_repeated_and_the_loser_follows_the_new_time() {
        let (mut a, clock, store, rb) = setup("{cron: \"0 * * * *\", overlap: allow}", "2026-01-01T10:15:00Z").await;
        let mut b = loaded(&store, &clock, std::slice::from_ref(&rb)).await;
        set(&clock, "2026-01-01T11:00:01Z");
        assert_eq!(fired(&b.tick().await), ["sched@2026-01-01T11:00:00Z"]);
        assert!(a.tick().await.is_empty(), "b fired it first");
        assert_eq!(a.until_next_pass(), MAX_WAIT, "a waits for 12:00, where b moved the schedule");
        set(&clock, "2026-01-01T12:00:01Z");
        assert_eq!(fired(&a.tick().await), ["sched@2026-01-01T12:00:00Z"]);
        assert!(b.tick().await.is_empty(), "a fired it first");
        set(&clock, "2026-01-01T13:00:01Z");
        assert_eq!(fired(&b.tick().await), ["sched@2026-01-01T13:00:00Z"]);
        assert_eq!(statuses(&store).await.len(), 3, "each fire recorded once");
    }

    #[tokio::test]
    async fn the_next_pass_comes_at_the_earliest_fire_and_at_most_a_second_away() {
        let (mut s, clock, _store, _rb) = setup("cron: \"0 * * * *\"", "2026-01-01T10:15:00Z").await;
        assert_eq!(s.until_next_pass(), MAX_WAIT);
        set(&clock, "2026-01-01T10:59:59.250Z");
        assert_eq!(s.until_next_pass(), Duration::from_millis(750));
        set(&clock, "2026-01-01T11:00:00.010Z");
        assert_eq!(s.until_next_pass(), Duration::ZERO);
        assert_eq!(s.tick().await.len(), 1);
        assert_eq!(s.until_next_pass(), MAX_WAIT);
    }

    #[tokio::test]
    async fn hundreds_of_triggers_fire_in_due_order_each_once() {
        // 300 runbooks: five at each minute of the hour.
        let rbs: Vec<Arc<Runbook>> = (0..300)
            .map(|i| named(&format!("r{i:03}"), &format!("{{cron: \"{} * * * *\", overlap: allow}}", i % 60)))
            .collect();
        let store = Store::open(":memory:").await.unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(ms(at("2026-01-01T10:00:30Z"))), 0.5));
        let mut s = loaded(&store, &clock, &rbs).await;
        // A pass every 20 s for an hour: each fire comes in the first pass
        // after its time.
        let mut all = Vec::new();
        let mut t = ms(at("2026-01-01T10:00:30Z"));
        while t <= ms(at("2026-01-01T11:00:30Z")) {
            clock.0.store(t, Ordering::SeqCst);
            for f in fired(&s.tick().await) {
                let instant = ms(at(f.rsplit('@').next().unwrap()));
                assert!((0..20_000).contains(&(t - instant)), "{f} came in the pass at {}", ts(t));
                all.push(f);
            }
            t += 20_000;
        }
        let mut expected: Vec<String> = (0..300)
            .map(|i| {
                let hour = if i % 60 == 0 { 11 } else { 10 };
                format!("r{i:03}@2026-01-01T{hour}:{:02}:00Z", i % 60)
            })
            .collect();
        expected.sort_by(|x, y| (x.rsplit('@').next(), x).cmp(&(y.rsplit('@').next(), y)));
        assert_eq!(all, expected);
        // Recorded in that order too.
        let mut recorded = store.list_runs(&RunFilter { limit: Some(1000), ..RunFilter::default() }).await.unwrap();
        recorded.reverse();
        assert_eq!(fired(&recorded), expected);

        // Late by most of an hour, one pass fires them all at once, in the
        // order of their stored times.
        let store = Store::open(":memory:").await.unwrap();
        clock.0.store(ms(at("2026-01-01T10:00:30Z")), Ordering::SeqCst);
        let mut s = loaded(&store, &clock, &rbs).await;
        set(&clock, "2026-01-01T10:59:59Z");
        let once = fired(&s.tick().await);
        let due: Vec<String> = expected.iter().filter(|f| !f.ends_with("T11:00:00Z")).cloned().collect();
        assert_eq!(once, due, "missed: last fires each once, at its last time");
    }
}
