//! `tend serve`: one process holding the loaded runbooks, the plugin
//! runtime, the engine, a dispatcher that executes accepted runs, and the
//! HTTP API ([`crate::api`]). Owns startup (crash recovery), runbook
//! reloads and shutdown (draining in-flight runs). No SQL (the store), no
//! HTTP details (the api module).

pub mod config;

use crate::clock::{Clock, FileClock, SystemClock};
use crate::engine::{Engine, TriggerInfo};
use crate::notifier::Notifier;
use crate::runbook::{self, Catalog, Runbook};
use crate::runtime::caps::secrets::{EnvSecrets, SecretSource};
use crate::runtime::record::Severity;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::{AttemptStatus, NewEscalation, NewRun, RunRow, RunStatus, Store, StoreError, TriggerKind};
pub use config::ServeConfig;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// Installs the Prometheus recorder behind `/metrics` (once per process).
fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let seconds = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0];
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
        .ok()?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).ok()?;
    metrics::describe_counter!("tend_runs_total", "Runs finished, by runbook and final status.");
    metrics::describe_histogram!("tend_step_duration_seconds", "Duration of step attempts, by runbook and plugin.");
    metrics::describe_counter!("tend_plugin_traps_total", "Step attempts stopped by the host, by plugin and kind.");
    metrics::describe_counter!("tend_escalations_total", "Escalations raised (not grouped), by severity.");
    metrics::describe_histogram!("tend_scheduler_lateness_seconds", "How late cron fires happened after their time.");
    metrics::describe_counter!("tend_store_commits_total", "Transactions the database writer committed.");
    metrics::describe_counter!(
        "tend_store_writes_total",
        "Writes committed by the database writer; divided by commits, the writes each fsync carried."
    );
    metrics::describe_counter!("tend_store_failed_commits_total", "Transactions of the database writer that failed.");
    metrics::describe_gauge!(
        "tend_scheduler_pass_timestamp_seconds",
        "The scheduler's time (Unix seconds) at its last pass over the cron triggers."
    );
    Some(handle)
}

/// Longest pause between two retention passes while serving: 1 minute.
pub const PRUNE_EVERY_MAX: Duration = Duration::from_secs(60);
/// Shortest pause between two retention passes: 1 second.
pub const PRUNE_EVERY_MIN: Duration = Duration::from_secs(1);
/// Runs deleted per transaction by a retention pass: 500.
pub const PRUNE_BATCH: u32 = 500;

/// How often a serving process looks for runs whose owner is gone (and
/// takes them over) and for queued runs nobody is executing: by default
/// every second.
pub const TAKEOVER_EVERY: Duration = Duration::from_secs(1);
/// An owner silent this long is taken for gone and its runs are taken
/// over (a run's owner writes a heartbeat every second; an owner on this
/// host whose process has exited is gone at once): by default 8 seconds.
/// Longer than SQLite's 5-second busy timeout, so a live process kept
/// waiting for a shared file's write lock is not taken for gone. With
/// [`TAKEOVER_EVERY`], the runs of a host that died are taken over within
/// about 9 seconds.
pub const LEASE_TIMEOUT: Duration = Duration::from_secs(8);
/// A queued run no process of this database is executing (its host died
/// between recording and starting it) is picked up by another once it is
/// this old; until then the process that recorded it has it: by default 5
/// seconds.
pub const QUEUED_PICKUP_AFTER: Duration = Duration::from_secs(5);

/// How often retention runs for a retention age: a quarter of the age,
/// between [`PRUNE_EVERY_MIN`] and [`PRUNE_EVERY_MAX`] (so every minute
/// for any age of 4 minutes or more). A run is then deleted at most a
/// quarter of the age (or a minute) after it passed the age.
pub fn prune_every(retention: Duration) -> Duration {
    (retention / 4).clamp(PRUNE_EVERY_MIN, PRUNE_EVERY_MAX)
}

/// Why a trigger was refused.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("runbook {0:?} is not loaded")]
    UnknownRunbook(String),
    #[error("{}", .0.join("; "))]
    BadParams(Vec<String>),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Hands runs to the dispatcher, each once while this process holds it:
/// the runs it is executing or waiting to execute.
#[derive(Clone)]
struct Dispatch {
    tx: mpsc::UnboundedSender<RunRow>,
    held: Arc<std::sync::Mutex<HashSet<String>>>,
}

impl Dispatch {
    /// Hands `run` over unless this process holds it already.
    fn send(&self, run: RunRow) {
        if self.held.lock().unwrap_or_else(|e| e.into_inner()).insert(run.id.clone()) {
            let _ = self.tx.send(run);
        }
    }

    fn holds(&self, id: &str) -> bool {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).contains(id)
    }

    /// The dispatcher is done with a run.
    fn release(&self, id: &str) {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// A loaded set of runbooks.
#[derive(Default)]
struct Loaded {
    runbooks: BTreeMap<String, Arc<Runbook>>,
    /// Problems found by the load, as `file:line:col: message`.
    problems: Vec<String>,
}

/// The running service. Shared behind an `Arc` by the API and the dispatcher.
pub struct Service {
    pub config: ServeConfig,
    pub store: Store,
    pub runtime: Arc<Runtime>,
    pub engine: Arc<Engine>,
    catalog: Catalog,
    /// The runbooks of the last (re)load and its problems, swapped together.
    loaded: RwLock<Loaded>,
    /// Counts the (re)loads: the scheduler wakes on each.
    reloads: tokio::sync::watch::Sender<u64>,
    /// Held by the reload under way.
    reloading: tokio::sync::Mutex<()>,
    /// Accepted runs for the dispatcher, as recorded.
    dispatch: Dispatch,
    /// Bounds the runs executing at once.
    slots: Arc<Semaphore>,
    /// Renders `/metrics`; None when another recorder was installed first.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The time of cron triggers (fires and next fire times shown by the
    /// API): the system clock, or `TEND_CLOCK_FILE`'s in tests.
    pub clock: Arc<dyn Clock>,
}

impl Service {
    /// Opens the store, recovers from a crash, loads plugins and runbooks,
    /// and starts the dispatcher.
    pub async fn start(config: ServeConfig) -> anyhow::Result<Arc<Service>> {
        let clock: Arc<dyn Clock> = match &config.clock_file {
            Some(path) => {
                let clock = FileClock::open(path).map_err(|e| e.context("TEND_CLOCK_FILE"))?;
                tracing::warn!("TEND_CLOCK_FILE is set: cron triggers follow the time in {}", path.display());
                Arc::new(clock)
            }
            None => Arc::new(SystemClock),
        };
        let store = Store::open(&config.database).await?;
        let runtime = Arc::new(Runtime::new(RuntimeConfig {
            plugin_dir: Some(config.plugins.clone()),
            state: Arc::new(store.clone()),
            ..RuntimeConfig::default()
        })?);
        for w in &runtime.load_warnings {
            tracing::warn!("{w}");
        }
        let (plugins, problems) = runtime.describe_all().await;
        for p in problems {
            tracing::warn!("{p}");
        }
        let catalog = Catalog { plugins };
        let secrets: Arc<dyn SecretSource> = Arc::new(EnvSecrets);
        let notifier = Notifier::new(store.clone(), secrets.clone())
            .with_webhooks(config.webhooks.clone())
            .with_public_url(config.public_url.clone());
        let engine = Arc::new(Engine::new(store.clone(), runtime.clone(), secrets).with_notifier(notifier));
        let (dispatch, rx) = mpsc::unbounded_channel();
        let service = Arc::new(Service {
            metrics: install_metrics(),
            slots: Arc::new(Semaphore::new(config.max_concurrent_runs)),
            config,
            store,
            runtime,
            engine,
            catalog,
            loaded: RwLock::default(),
            reloads: tokio::sync::watch::Sender::new(0),
            reloading: tokio::sync::Mutex::new(()),
            dispatch: Dispatch { tx: dispatch, held: Arc::default() },
            clock,
        });
        service.reload().await;
        service.recover().await?;
        tokio::spawn(service.clone().dispatcher(rx));
        tokio::spawn(service.clone().take_over());
        tokio::spawn(service.clone().schedule());
        tokio::spawn(service.clone().retain());
        Ok(service)
    }

    /// Loads the runbooks directory again and swaps the set at once.
    /// Runbooks that fail their checks keep their previous version, if any.
    /// The load runs off the async workers (0.6 s for 1,000 runbooks of 10
    /// cron triggers in the `scheduler_scale` bench), one reload at a time.
    pub async fn reload(&self) {
        let _one_at_a_time = self.reloading.lock().await;
        let (dir, catalog) = (self.config.runbooks.clone(), self.catalog.clone());
        let (read, problems) = match tokio::task::spawn_blocking(move || runbook::load_dir(&dir, &catalog)).await {
            Ok(load) => load,
            Err(e) => {
                tracing::error!("reloading runbooks from {} failed: {e}", self.config.runbooks.display());
                return;
            }
        };
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        let mut next: BTreeMap<String, Arc<Runbook>> = BTreeMap::new();
        for rb in read {
            next.insert(rb.name.clone(), Arc::new(rb));
        }
        // A broken file keeps serving the last good version of its runbook.
        for (name, old) in loaded.runbooks.iter() {
            let broken = problems.iter().any(|p| p.file == old.file);
            if broken && !next.contains_key(name) {
                next.insert(name.clone(), old.clone());
            }
        }
        let problems: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        for p in &problems {
            tracing::warn!("runbook problem: {p}");
        }
        tracing::info!("loaded {} runbooks from {}", next.len(), self.config.runbooks.display());
        *loaded = Loaded { runbooks: next, problems };
        drop(loaded);
        self.reloads.send_modify(|n| *n += 1);
    }

    /// The loaded runbooks, by name.
    pub fn runbooks(&self) -> Vec<Arc<Runbook>> {
        self.loaded.read().unwrap_or_else(|e| e.into_inner()).runbooks.values().cloned().collect()
    }

    pub fn runbook(&self, name: &str) -> Option<Arc<Runbook>> {
        self.loaded.read().unwrap_or_else(|e| e.into_inner()).runbooks.get(name).cloned()
    }

    /// The `notify` section of a loaded runbook: where its escalations'
    /// acknowledgements and resolutions go.
    pub fn notify_of(&self, name: &str) -> Option<runbook::Notify> {
        self.runbook(name).map(|rb| rb.notify.clone())
    }

    /// Problems of the last load.
    pub fn problems(&self) -> Vec<String> {
        self.loaded.read().unwrap_or_else(|e| e.into_inner()).problems.clone()
    }

    /// The loaded runbooks, and whether they loaded without a problem (so
    /// they are the complete set), read together.
    fn loaded(&self) -> (Vec<Arc<Runbook>>, bool) {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        (loaded.runbooks.values().cloned().collect(), loaded.problems.is_empty())
    }

    /// Records a run (durably) and hands it to the dispatcher. With an
    /// idempotency key, a repeated key returns the first run. Returns the
    /// run id and whether it is new.
    pub async fn trigger(
        &self,
        name: &str,
        params: &Map<String, Value>,
        trigger: &TriggerInfo,
        idempotency_key: Option<&str>,
    ) -> Result<(String, bool), TriggerError> {
        let rb = self.runbook(name).ok_or_else(|| TriggerError::UnknownRunbook(name.to_string()))?;
        let params = rb.resolve_params(params).map_err(TriggerError::BadParams)?;
        let run = NewRun {
            runbook: rb.name.clone(),
            runbook_hash: rb.hash.clone(),
            trigger_kind: trigger.kind,
            trigger_source: trigger.source.clone(),
            params: Value::Object(params),
        };
        // Recording and dispatching run in a task of their own: a client
        // that hangs up drops this future, and a run committed by then must
        // still reach the dispatcher.
        let (store, dispatch, key) = (self.store.clone(), self.dispatch.clone(), idempotency_key.map(str::to_string));
        let recorded = tokio::spawn(async move {
            let recorded = match key {
                Some(key) => store.create_run_once(&run, &key).await,
                None => store.create_run(&run).await.map(|row| (row.id.clone(), Some(row))),
            };
            if let Ok((_, Some(row))) = &recorded {
                dispatch.send(row.clone());
            }
            recorded
        });
        let (id, new_run) = recorded
            .await
            .map_err(|e| TriggerError::Internal(anyhow::anyhow!("recording the run stopped: {e}")))?
            .map_err(|e| match e {
                StoreError::Conflict(m) => TriggerError::Conflict(m),
                other => TriggerError::Internal(other.into()),
            })?;
        Ok((id, new_run.is_some()))
    }

    /// At start: runs a dead process left running resume from their last
    /// completed step when that is safe (see [`Service::resumable`]), and
    /// are otherwise marked interrupted and escalated; runs accepted but
    /// never started are dispatched.
    async fn recover(&self) -> anyhow::Result<()> {
        self.take_over_orphans().await?;
        for run in self.store.queued_runs().await? {
            self.dispatch.send(run);
        }
        Ok(())
    }

    /// While serving, every [`TAKEOVER_EVERY`]: takes over the runs of
    /// owners gone (another process sharing the database that died) and
    /// picks up queued runs nobody executes (see [`QUEUED_PICKUP_AFTER`]).
    /// Several processes may do this at once: a run is taken over from
    /// the owner that held it only once, and claimed by one process only.
    async fn take_over(self: Arc<Self>) {
        loop {
            tokio::time::sleep(TAKEOVER_EVERY).await;
            if let Err(e) = self.take_over_orphans().await {
                tracing::error!("taking over runs whose owner is gone: {e:#}");
            }
            match self.store.queued_runs().await {
                Ok(queued) => {
                    let old_enough = crate::clock::now_ms() - QUEUED_PICKUP_AFTER.as_millis() as i64;
                    for run in queued.into_iter().filter(|r| r.created_at <= old_enough && !self.dispatch.holds(&r.id))
                    {
                        tracing::info!(run_id = %run.id, runbook = %run.runbook, "picking up a queued run nobody executes");
                        self.dispatch.send(run);
                    }
                }
                Err(e) => tracing::error!("reading the queue: {e:#}"),
            }
        }
    }

    /// Runs whose owner is gone (its process exited, or silent for
    /// [`LEASE_TIMEOUT`]) resume when that is safe and are otherwise
    /// marked interrupted and escalated. This process's own runs are
    /// never taken for orphans.
    async fn take_over_orphans(&self) -> anyhow::Result<()> {
        let me = crate::process::this_owner();
        for orphan in self.store.orphaned_runs(LEASE_TIMEOUT).await? {
            if orphan.owner == me {
                continue;
            }
            let crate::store::Orphan { run, owner, why } = orphan;
            match self.resumable(&run).await? {
                Ok(()) => {
                    if self.store.requeue(&run.id, &owner).await? {
                        tracing::warn!(run_id = %run.id, runbook = %run.runbook, "resuming a run after a crash: {why}");
                        self.dispatch.send(run);
                    }
                }
                Err(not) => {
                    if !self.store.interrupt(&run.id, &owner, &why).await? {
                        continue;
                    }
                    tracing::warn!(run_id = %run.id, runbook = %run.runbook, "run interrupted by a crash ({why}); not resumed: {not}");
                    let message =
                        format!("run {} of {} was interrupted ({why}) and not resumed: {not}", run.id, run.runbook);
                    let e = NewEscalation {
                        run_id: &run.id,
                        runbook: &run.runbook,
                        step_id: None,
                        iteration: 0,
                        severity: Severity::High,
                        message: &message,
                        dedup_key: &format!("{}:interrupted:{}", run.runbook, run.id),
                    };
                    let raised =
                        self.store.raise_escalation(&e, Duration::from_secs(3600), crate::clock::now_ms()).await?;
                    if !raised.grouped {
                        let notifier = self.engine.notifier();
                        let n = crate::notify::Notification::new(
                            Severity::High,
                            &run.runbook,
                            &run.id,
                            None,
                            raised.id,
                            e.dedup_key,
                            &message,
                        )
                        .with_run_url(notifier.run_url(&run.id));
                        notifier.send(&n, self.notify_of(&run.runbook).as_ref()).await;
                    }
                    if let Some(kind) = self.runbook(&run.runbook).and_then(|rb| rb.report) {
                        self.engine.write_report(&run.id, kind).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether an orphaned run can resume: it was running (not waiting for
    /// an approval), outside any loop, under the same version of its
    /// runbook, and the step it was in (if any) is declared `idempotent`.
    /// Completed steps are then not run again. `Err` says why not.
    async fn resumable(&self, run: &crate::store::RunRow) -> anyhow::Result<Result<(), String>> {
        if run.status != RunStatus::Running {
            return Ok(Err("it was waiting for an approval".into()));
        }
        let Some(rb) = self.runbook(&run.runbook) else {
            return Ok(Err(format!("runbook {:?} is not loaded", run.runbook)));
        };
        if rb.hash != run.runbook_hash {
            return Ok(Err("its runbook changed since it started".into()));
        }
        let attempts = self.store.attempts(&run.id).await?;
        if attempts.iter().any(|a| a.iteration > 0) {
            return Ok(Err("it was inside a repeat loop".into()));
        }
        for a in attempts.iter().filter(|a| a.status == AttemptStatus::Running) {
            match rb.step(&a.step_id) {
                Some(step) if step.idempotent => {}
                _ => return Ok(Err(format!("step {:?} was running and is not declared idempotent", a.step_id))),
            }
        }
        Ok(Ok(()))
    }

    /// Fires cron triggers: takes each (re)loaded set of runbooks, then
    /// sleeps until the earliest fire (to the millisecond), a reload, or a
    /// second at most (see [`crate::scheduler::MAX_WAIT`]), whichever comes
    /// first.
    async fn schedule(self: Arc<Self>) {
        let mut scheduler = crate::scheduler::Scheduler::new(self.store.clone(), self.clock.clone());
        let mut reloads = self.reloads.subscribe();
        reloads.mark_changed();
        // A complete set whose stale schedules are still to be forgotten.
        let mut to_forget: Option<Vec<Arc<Runbook>>> = None;
        loop {
            if reloads.has_changed().unwrap_or(false) {
                reloads.borrow_and_update();
                let (runbooks, complete) = self.loaded();
                // A runbook that failed to load must keep its schedule.
                to_forget = complete.then(|| runbooks.clone());
                scheduler.sync(&runbooks).await;
            }
            if let Some(runbooks) = &to_forget
                && scheduler.forget_unloaded(runbooks).await
            {
                to_forget = None;
            }
            for run in scheduler.tick().await {
                self.dispatch.send(run);
            }
            tokio::select! {
                _ = tokio::time::sleep(scheduler.until_next_pass()) => {}
                _ = reloads.changed() => {}
            }
        }
    }

    /// Prunes runs past the retention age, at start and then every
    /// [`prune_every`] while serving, so the database stays bounded under
    /// sustained load.
    async fn retain(self: Arc<Self>) {
        let Some(age) = self.config.retention else { return };
        let every = prune_every(age);
        loop {
            let cutoff = crate::clock::now_ms() - age.as_millis() as i64;
            match self.store.prune(cutoff, PRUNE_BATCH).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!("retention: deleted {n} runs older than {}", crate::units::format_duration(age))
                }
                Err(e) => tracing::error!("retention: {e:#}"),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Executes dispatched runs, at most `max_concurrent_runs` at once.
    async fn dispatcher(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<RunRow>) {
        while let Some(run) = rx.recv().await {
            let Ok(permit) = self.slots.clone().acquire_owned().await else { break };
            let service = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let id = run.id.clone();
                service.execute(run).await;
                service.dispatch.release(&id);
            });
        }
    }

    /// Executes a run as it was dispatched; the engine's claim finds out
    /// whether it is still queued.
    async fn execute(&self, run: RunRow) {
        let id = run.id.clone();
        let id = id.as_str();
        let Some(rb) = self.runbook(&run.runbook) else {
            let why = format!("runbook {:?} is no longer loaded", run.runbook);
            // Only a run nobody started: another tend sharing the database
            // may have this runbook and be running it.
            if let Err(e) = self.store.fail_queued(id, &why).await {
                tracing::error!(run_id = id, "cannot record run: {e:#}");
            }
            return;
        };
        // A scheduled run whose trigger does not allow overlap waits for the
        // runs before it, whatever the runbook's own concurrency cap.
        let serial = run.trigger_kind == TriggerKind::Cron
            && rb
                .triggers
                .iter()
                .any(|t| matches!(t, crate::runbook::Trigger::Cron(c) if c.overlap != crate::runbook::Overlap::Allow));
        let cap = if serial { Some(1) } else { rb.concurrency };
        let runbook = run.runbook.clone();
        match self.engine.execute_capped(rb, run, cap).await {
            Ok(o) => tracing::info!(run_id = id, runbook = %runbook, status = %o.status, "run finished"),
            Err(crate::engine::ExecuteError::NotQueued(e)) => tracing::debug!(run_id = id, "{e}"),
            Err(e @ crate::engine::ExecuteError::Lost { .. }) => tracing::warn!(run_id = id, "{e}"),
            Err(crate::engine::ExecuteError::Failed(e)) => tracing::error!(run_id = id, "run failed to execute: {e:#}"),
        }
    }

    /// Waits until no run executes, for at most `deadline`. Returns whether
    /// every run finished.
    pub async fn drain(&self, deadline: Duration) -> bool {
        let all = self.config.max_concurrent_runs as u32;
        tokio::time::timeout(deadline, self.slots.acquire_many(all)).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::config::Overrides;
    use std::future::Future;
    use std::task::{Context, Poll};

    #[tokio::test]
    async fn a_trigger_dropped_after_its_first_poll_is_still_recorded_and_run() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("runbooks")).unwrap();
        std::fs::write(
            dir.path().join("runbooks/hello.yaml"),
            "name: hello\ntriggers:\n  - http: true\nsteps:\n  - id: a\n    plugin: echo\n",
        )
        .unwrap();
        let overrides = Overrides {
            database: Some(dir.path().join("tend.db").display().to_string()),
            runbooks: Some(dir.path().join("runbooks")),
            plugins: Some(dir.path().join("plugins")),
            ..Overrides::default()
        };
        let service = Service::start(ServeConfig::resolve(None, &overrides).unwrap()).await.unwrap();
        let trigger = TriggerInfo { kind: TriggerKind::Http, source: None };
        // What a client that hangs up does to its handler: the future is
        // polled until it waits on the database, then dropped.
        let params = Map::new();
        let mut fut = Box::pin(service.trigger("hello", &params, &trigger, None));
        let polled = fut.as_mut().poll(&mut Context::from_waker(std::task::Waker::noop()));
        assert!(matches!(polled, Poll::Pending), "the trigger waits on the database");
        drop(fut);
        let start = std::time::Instant::now();
        loop {
            let runs = service.store.list_runs(&crate::store::RunFilter::default()).await.unwrap();
            if runs.len() == 1 && runs[0].status == RunStatus::Succeeded {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "the run was left behind: {runs:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn retention_runs_every_quarter_of_the_age_between_a_second_and_a_minute() {
        assert_eq!(prune_every(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(prune_every(Duration::from_secs(60)), Duration::from_secs(15));
        assert_eq!(prune_every(Duration::from_secs(30 * 86_400)), Duration::from_secs(60));
    }
}
