//! Runs a checked runbook: parameters, conditions, data passing between
//! steps, retries with backoff, approvals, loops, per-step and per-run
//! timeouts, cancellation, the per-runbook concurrency cap, escalations and
//! their notifications. Every status is written to the [`Store`] before it
//! is reported (as an [`Event`] or a return value).
//!
//! Knows no SQL (the store does) and no wasmtime (plugins are called
//! through [`Executor`]); time passes through [`Clock`] so tests can run
//! retries, intervals and approvals on virtual time.
//!
//! Final statuses: `succeeded` (every step that ran succeeded or was
//! allowed to fail with `on_failure: continue`), `failed` (a step failed
//! after its retries and handlers, a condition could not be evaluated, or a
//! loop with `on_exhausted: fail` ran out), `cancelled`, `timed_out` (the
//! runbook's `timeout`), and `interrupted` (set by [`Store::reap_interrupted`]
//! when the process running it died). Escalations are raised beside the
//! status and never change it; at the end of a run that succeeded or
//! failed, those raised by `auto_resolve` rules that no longer hold are
//! resolved. Notifications go through the [`Notifier`].

use crate::clock::{Clock, SystemClock};
use crate::notifier::{AUTO_RESOLVER, Notifier};
use crate::notify::Notification;
use crate::redact::Redactor;
use crate::runbook::ReportKind;
use crate::runbook::expr::Scope;
use crate::runbook::view::{StepStatus, step_view};
use crate::runbook::{Item, OnFailure, Repeat, RetryOn, Runbook, Step};
use crate::runtime::caps::secrets::SecretSource;
use crate::runtime::record::{ErrorKind, Finding, LogLevel, LogLine, Metric, Outcome, Severity, StepRecord, TrapKind};
use crate::runtime::{Runtime, StepCall, StepContext};
use crate::store::{
    ApprovalStatus, AttemptEnd, AttemptStart, AttemptStatus, Heartbeat, NewEscalation, NewRun, RunStatus, Store,
    TriggerKind,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// How many earlier runs the `history` variable reaches back: by default
/// the 20 latest finished runs of the runbook.
pub const HISTORY_RUNS: u32 = 20;

/// Calls plugins. The real one is the wasmtime [`Runtime`]; tests script one.
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    /// Runs one step of `plugin`. `Err` when the call could not start (the
    /// plugin does not load); everything the plugin does is in the record.
    async fn call(&self, plugin: &str, call: StepCall) -> anyhow::Result<StepRecord>;
}

#[async_trait::async_trait]
impl Executor for Runtime {
    async fn call(&self, plugin: &str, call: StepCall) -> anyhow::Result<StepRecord> {
        let source = self.resolve(plugin)?;
        Runtime::call(self, &source, call).await
    }
}

/// Live progress of a run, sent after the matching write to the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run waits for a slot under the runbook's concurrency cap.
    Queued {
        run_id: String,
    },
    RunStarted {
        run_id: String,
        runbook: String,
    },
    StepStarted {
        run_id: String,
        step: String,
        iteration: u32,
        attempt: u32,
        plugin: String,
    },
    StepFinished {
        run_id: String,
        step: String,
        iteration: u32,
        attempt: u32,
        status: AttemptStatus,
        outcome: String,
        duration_ms: f64,
        error: Option<String>,
    },
    Retrying {
        run_id: String,
        step: String,
        iteration: u32,
        next_attempt: u32,
        delay_ms: u64,
    },
    WaitingApproval {
        run_id: String,
        step: String,
        iteration: u32,
        message: String,
    },
    ApprovalDecided {
        run_id: String,
        step: String,
        status: ApprovalStatus,
        by: Option<String>,
    },
    IterationFinished {
        run_id: String,
        repeat: String,
        iteration: u32,
        until_met: bool,
    },
    Escalated {
        run_id: String,
        escalation_id: i64,
        severity: Severity,
        message: String,
        grouped: bool,
    },
    RunFinished {
        run_id: String,
        status: RunStatus,
        error: Option<String>,
    },
}

/// Settings of an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How often a running run writes a sign of life and checks for
    /// cancellation. By default 1 second.
    pub heartbeat: Duration,
    /// How often a pending approval and a queued run are polled. By default 500 ms.
    pub poll: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { heartbeat: Duration::from_secs(1), poll: Duration::from_millis(500) }
    }
}

/// What started a run.
#[derive(Debug, Clone)]
pub struct TriggerInfo {
    pub kind: TriggerKind,
    /// Who or what, e.g. `ann@web-1`.
    pub source: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunOutcome {
    pub run_id: String,
    pub status: RunStatus,
    pub error: Option<String>,
}

/// A run handed to [`Engine::execute`] that is no longer queued: another
/// worker took it, or it was cancelled. Nothing was done.
#[derive(Debug, thiserror::Error)]
#[error("run {run_id} is no longer queued (it is {status})")]
pub struct NotQueued {
    pub run_id: String,
    pub status: RunStatus,
}

/// Why [`Engine::submit`] recorded no run.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The params do not fit the runbook's `params:`; every problem.
    #[error("{}", .0.join("; "))]
    Params(Vec<String>),
    /// The store could not record the run.
    #[error("recording the run: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Why [`Engine::execute`] did not take a run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// Someone else has the run (or it ended): nothing was done.
    #[error(transparent)]
    NotQueued(#[from] NotQueued),
    /// Another process took the run over while this one was silent past
    /// the lease: this one stopped it and recorded nothing more.
    #[error("run {run_id} was taken over by another process; this one stopped it")]
    Lost { run_id: String },
    /// The run could not be executed or recorded.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for ExecuteError {
    fn from(e: crate::store::StoreError) -> Self {
        ExecuteError::Failed(e.into())
    }
}

/// Runs runbooks. Cheap to share behind an `Arc`.
pub struct Engine {
    store: Store,
    executor: Arc<dyn Executor>,
    clock: Arc<dyn Clock>,
    secrets: Arc<dyn SecretSource>,
    events: broadcast::Sender<Event>,
    owner: String,
    options: EngineOptions,
    /// Sends and records the notifications of escalations.
    notifier: Notifier,
}

/// Why a run stopped early.
struct Stop(String);

impl Stop {
    /// The store failed, so the run cannot go on unrecorded.
    fn unrecorded(e: impl std::fmt::Display) -> Stop {
        Stop(format!("the run could not be recorded: {e:#}"))
    }
}

/// The state of one run as it goes.
struct RunState {
    runbook: Arc<Runbook>,
    run_id: String,
    scope: Scope,
    /// Dedup keys escalated during this run: a rule that stays true is raised once per run.
    escalated: HashSet<String>,
    /// The escalations raised (or grouped into) by rules with
    /// `auto_resolve`, with the rule's index: checked again at the end.
    auto_resolve: Vec<(usize, i64)>,
    /// For a resumed run: the last recorded attempt of each top-level step.
    restore: std::collections::HashMap<String, crate::store::AttemptRow>,
    /// Hides every secret a step of the runbook is granted and every
    /// webhook URL kept in a secret, from all the run records and sends.
    redactor: Redactor,
    /// What the run measured so far (`measured`, and `compare`'s before/after).
    measured: Measured,
}

impl Engine {
    pub fn new(store: Store, executor: Arc<dyn Executor>, secrets: Arc<dyn SecretSource>) -> Engine {
        let (events, _) = broadcast::channel(1024);
        Engine {
            notifier: Notifier::new(store.clone(), secrets.clone()),
            store,
            executor,
            clock: Arc::new(SystemClock),
            secrets,
            events,
            owner: crate::process::this_owner(),
            options: EngineOptions::default(),
        }
    }

    /// Replaces the clock (tests use virtual time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the notifier (to add service-wide sinks and the public
    /// URL). By default one with neither, reading the engine's secrets.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Sends and records the notifications of escalations.
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: EngineOptions) -> Self {
        self.options = options;
        self
    }

    /// Live events of every run this engine executes.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    /// Checks params and records a queued run; returns its id. The run is
    /// durable when this returns.
    pub async fn submit(
        &self,
        rb: &Runbook,
        params: &Map<String, Value>,
        trigger: &TriggerInfo,
    ) -> Result<String, SubmitError> {
        let params = rb.resolve_params(params).map_err(SubmitError::Params)?;
        let run = self
            .store
            .create_run(&NewRun {
                runbook: rb.name.clone(),
                runbook_hash: rb.hash.clone(),
                trigger_kind: trigger.kind,
                trigger_source: trigger.source.clone(),
                params: Value::Object(params),
            })
            .await?;
        Ok(run.id)
    }

    /// Submits and executes a run.
    pub async fn run(
        &self,
        rb: Arc<Runbook>,
        params: &Map<String, Value>,
        trigger: &TriggerInfo,
    ) -> anyhow::Result<RunOutcome> {
        let id = self.submit(&rb, params, trigger).await?;
        Ok(self.execute(rb, &id).await?)
    }

    /// Executes a queued run to its end: waits for a slot under the
    /// concurrency cap, runs the steps, records the final status.
    pub async fn execute(&self, rb: Arc<Runbook>, run_id: &str) -> Result<RunOutcome, ExecuteError> {
        let run = self.store.get_run(run_id).await?.ok_or_else(|| anyhow::anyhow!("run {run_id} not found"))?;
        let cap = rb.concurrency;
        self.execute_capped(rb, run, cap).await
    }

    /// [`Engine::execute`] of a run the caller has already read, with
    /// another cap on concurrent runs of the runbook (scheduled runs that
    /// must not overlap use 1).
    pub async fn execute_capped(
        &self,
        rb: Arc<Runbook>,
        run: crate::store::RunRow,
        cap: Option<u32>,
    ) -> Result<RunOutcome, ExecuteError> {
        let runbook_name = run.runbook.clone();
        let run_id = run.id.clone();
        let (cancel_tx, mut cancel_rx) = watch::channel(false);
        let (lost_tx, mut lost_rx) = watch::channel(false);
        let heartbeat = self.spawn_heartbeat(&run.id, cancel_tx, lost_tx);
        // A run another process took over (this one was silent past the
        // lease) is dropped where it stands: its step stops, and nothing
        // more is recorded (the store refuses this owner's writes anyway).
        let lost = async {
            if lost_rx.wait_for(|lost| *lost).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            result = self.execute_inner(rb, run, cap, &mut cancel_rx) => result,
            () = lost => Err(ExecuteError::Lost { run_id }),
        };
        heartbeat.abort();
        let outcome = result?;
        metrics::counter!("tend_runs_total", "runbook" => runbook_name, "status" => outcome.status.as_str())
            .increment(1);
        self.emit(Event::RunFinished {
            run_id: outcome.run_id.clone(),
            status: outcome.status,
            error: outcome.error.clone(),
        });
        Ok(outcome)
    }

    fn spawn_heartbeat(
        &self,
        run_id: &str,
        cancel: watch::Sender<bool>,
        lost: watch::Sender<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let (store, run_id, every) = (self.store.clone(), run_id.to_string(), self.options.heartbeat);
        let owner = self.owner.clone();
        tokio::spawn(async move {
            loop {
                // The claim wrote the first sign of life; short runs never
                // pay for a heartbeat.
                tokio::time::sleep(every).await;
                match store.heartbeat(&run_id, &owner).await {
                    Ok(Heartbeat::Alive) => {}
                    Ok(Heartbeat::CancelRequested) => {
                        let _ = cancel.send(true);
                    }
                    Ok(Heartbeat::Lost) => {
                        tracing::warn!(run_id, "another process took this run over; stopping it here");
                        let _ = lost.send(true);
                        return;
                    }
                    Err(e) => tracing::warn!(run_id, "heartbeat failed: {e:#}"),
                }
            }
        })
    }

    async fn execute_inner(
        &self,
        rb: Arc<Runbook>,
        run: crate::store::RunRow,
        cap: Option<u32>,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<RunOutcome, ExecuteError> {
        let run_id = run.id.clone();
        let finish = |status: RunStatus, error: Option<String>| {
            let (run_id, report) = (run_id.clone(), rb.report);
            async move {
                // Only a run stopped from outside can leave an attempt open.
                if matches!(status, RunStatus::Cancelled | RunStatus::TimedOut) {
                    self.store.close_open_attempts(&run_id, status, Some(&self.owner)).await?;
                }
                let Some(kind) = report else {
                    // A run finished meanwhile from outside (cancelled, ...) keeps that status.
                    let (status, error) =
                        self.store.finish_run(&run_id, status, error.as_deref(), Some(&self.owner)).await?;
                    return anyhow::Ok(RunOutcome { run_id, status, error });
                };
                self.finish_with_report(&run_id, status, error, kind).await
            }
        };
        // Wait for a slot.
        let mut announced = false;
        loop {
            if *cancel.borrow() {
                return Ok(finish(RunStatus::Cancelled, Some("cancelled while queued".into())).await?);
            }
            if self.store.claim_run(&run_id, &self.owner, cap).await? {
                break;
            }
            // Dispatched twice (or finished meanwhile): someone else has it.
            let current = self.store.get_run(&run_id).await?.ok_or_else(|| anyhow::anyhow!("run {run_id} vanished"))?;
            if current.status != RunStatus::Queued {
                return Err(NotQueued { run_id: run_id.clone(), status: current.status }.into());
            }
            if !announced {
                self.emit(Event::Queued { run_id: run_id.clone() });
                announced = true;
            }
            tokio::select! {
                _ = self.clock.sleep(self.options.poll) => {}
                _ = cancel.changed() => {}
            }
        }
        self.emit(Event::RunStarted { run_id: run_id.clone(), runbook: rb.name.clone() });

        let measured = Measured::new(&rb);
        let mut state = RunState {
            runbook: rb.clone(),
            run_id: run_id.clone(),
            scope: Scope {
                params: run.params.clone(),
                steps: initial_steps(&rb),
                iteration: 0,
                run: json!({"id": run_id, "runbook": rb.name, "trigger": run.trigger_kind}),
                history: history_of(
                    &rb,
                    match rb.reads_history {
                        true => self.store.metric_history(&rb.name, &run_id, HISTORY_RUNS).await?,
                        false => Default::default(),
                    },
                ),
                measured: measured.to_json(),
            },
            measured,
            escalated: HashSet::new(),
            auto_resolve: Vec::new(),
            redactor: self.run_redactor(&rb),
            // Only a resumed run (started before) has attempts to restore.
            restore: if run.started_at.is_none() { Vec::new() } else { self.store.attempts(&run_id).await? }
                .into_iter()
                .filter(|a| a.iteration == 0)
                .map(|a| (a.step_id.clone(), a))
                .collect(),
        };
        if !state.restore.is_empty() {
            tracing::info!(run_id = %run_id, "resuming: steps already completed are not run again");
        }
        let body = self.body(&mut state);
        // The run's timeout is wall-clock time, never virtual.
        let timeout = async {
            match rb.timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let cancelled = async {
            loop {
                if *cancel.borrow() {
                    return;
                }
                if cancel.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let (status, error) = tokio::select! {
            r = body => match r {
                Ok(()) => (RunStatus::Succeeded, None),
                Err(Stop(why)) => (RunStatus::Failed, Some(why)),
            },
            _ = timeout => (RunStatus::TimedOut, Some(format!(
                "the run passed its timeout of {}",
                crate::units::format_duration(rb.timeout.unwrap_or_default())
            ))),
            _ = cancelled => (RunStatus::Cancelled, Some("cancelled on request".to_string())),
        };
        // Only a run that ended by itself has a final state to judge by.
        if matches!(status, RunStatus::Succeeded | RunStatus::Failed) {
            self.auto_resolve(&state).await;
        }
        Ok(finish(status, error).await?)
    }

    /// Ends a run whose runbook asks for a report: the report, rendered for
    /// the final status, is stored in the same write as the status, so
    /// whoever sees the run finished finds its report. A run finished
    /// meanwhile from outside keeps that status, and its report is
    /// rendered again for it.
    async fn finish_with_report(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<String>,
        kind: ReportKind,
    ) -> anyhow::Result<RunOutcome> {
        let finished_at = crate::clock::now_ms();
        let rendered = async {
            let mut record = self.store.run_record(run_id).await?.ok_or_else(|| anyhow::anyhow!("run not found"))?;
            (record.run.status, record.run.error, record.run.finished_at) = (status, error.clone(), Some(finished_at));
            anyhow::Ok(render_report(kind, &record))
        };
        let markdown = rendered.await.unwrap_or_else(|e| {
            tracing::error!(run_id, "the {kind} report could not be rendered: {e:#}");
            String::new()
        });
        let report = (!markdown.is_empty()).then_some((kind.as_str(), markdown.as_str()));
        let (status, error, stored) = self
            .store
            .finish_run_reported(run_id, status, error.as_deref(), finished_at, report, Some(&self.owner))
            .await?;
        if !stored {
            self.write_report(run_id, kind).await;
        }
        Ok(RunOutcome { run_id: run_id.to_string(), status, error })
    }

    /// Renders the report of a finished run from its record and stores it
    /// (again, when it changed: an alert resolved after the run ended). A
    /// failure is logged; it never changes the run.
    pub async fn write_report(&self, run_id: &str, kind: ReportKind) {
        let written = async {
            let record = self.store.run_record(run_id).await?.ok_or_else(|| anyhow::anyhow!("run not found"))?;
            let markdown = render_report(kind, &record);
            self.store.save_report(run_id, kind.as_str(), &markdown).await
        };
        if let Err(e) = written.await {
            tracing::error!(run_id, "the {kind} report could not be written: {e:#}");
        }
    }

    async fn body(&self, st: &mut RunState) -> Result<(), Stop> {
        let rb = st.runbook.clone();
        let mut restoring = !st.restore.is_empty();
        for item in &rb.items {
            match item {
                Item::Step(step) => {
                    if restoring && self.restored(st, step) {
                        continue;
                    }
                    restoring = false;
                    self.step(st, step).await?
                }
                Item::Repeat(r) => {
                    restoring = false;
                    self.repeat(st, r).await?
                }
            }
        }
        Ok(())
    }

    /// For a resumed run: puts a step completed before the crash back in
    /// the scope instead of running it again. False when it must run.
    fn restored(&self, st: &mut RunState, step: &Step) -> bool {
        let Some(a) = st.restore.get(&step.id) else { return false };
        let status = match a.status {
            AttemptStatus::Succeeded => StepStatus::Succeeded,
            AttemptStatus::Skipped => StepStatus::Skipped,
            AttemptStatus::Failed if step.on_failure == OnFailure::Continue => StepStatus::Failed,
            _ => return false,
        };
        let value = step_view(status, a.output.as_ref(), &a.metrics, &a.findings, a.error.as_deref());
        set_step(&mut st.scope, &step.id, value);
        // Comparisons waiting for an "after" are not carried over a crash.
        let metrics = a.metrics.clone();
        self.note_measured(st, &step.id, &metrics);
        true
    }

    /// Adds what one attempt of a step measured to `measured`; returns the
    /// before/after comparisons it completes, `(id, after)`.
    fn note_measured(&self, st: &mut RunState, step_id: &str, metrics: &[Metric]) -> Vec<(i64, f64)> {
        let completed = st.measured.record(step_id, metrics);
        if let Value::Object(steps) = &mut st.scope.measured {
            steps.insert(step_id.to_string(), st.measured.step_json(step_id));
        }
        completed
    }

    async fn repeat(&self, st: &mut RunState, r: &Repeat) -> Result<(), Stop> {
        for i in 1..=r.max_iterations {
            st.scope.iteration = i;
            for step in &r.steps {
                self.step(st, step).await?;
            }
            let until = r.until.eval_bool(&st.scope).map_err(|e| Stop(format!("repeat {:?}: until: {e}", r.id)));
            let met = match until {
                Ok(m) => m,
                Err(stop) => {
                    st.scope.iteration = 0;
                    return Err(stop);
                }
            };
            self.emit(Event::IterationFinished {
                run_id: st.run_id.clone(),
                repeat: r.id.clone(),
                iteration: i,
                until_met: met,
            });
            self.escalate_rules(st, None).await;
            if met {
                st.scope.iteration = 0;
                return Ok(());
            }
            if i < r.max_iterations
                && let Some(pause) = &r.interval
            {
                match pause.resolve(&st.scope) {
                    Ok(d) => self.clock.sleep(d).await,
                    Err(e) => {
                        st.scope.iteration = 0;
                        return Err(Stop(format!("repeat {:?}: interval: {e}", r.id)));
                    }
                }
            }
        }
        st.scope.iteration = 0;
        if r.fail_when_exhausted {
            return Err(Stop(format!(
                "repeat {:?}: `{}` still false after {} iterations",
                r.id, r.until.source, r.max_iterations
            )));
        }
        tracing::info!(run_id = %st.run_id, "repeat {:?} ended after {} iterations without `{}`", r.id, r.max_iterations, r.until.source);
        Ok(())
    }

    /// Runs one step and applies its `on_failure`.
    async fn step(&self, st: &mut RunState, step: &Step) -> Result<(), Stop> {
        let failure = self.step_once(st, step).await?;
        let result = match (failure, &step.on_failure) {
            (None, _) => Ok(()),
            (Some(_), OnFailure::Continue) => Ok(()),
            (Some(why), OnFailure::Fail) => Err(Stop(format!("step {:?} failed: {why}", step.id))),
            (Some(why), OnFailure::Run(handlers)) => {
                let rb = st.runbook.clone();
                for h in handlers {
                    if let Some(handler) = rb.handlers.iter().find(|s| &s.id == h) {
                        // A failing handler is recorded; the run fails either way.
                        let _ = Box::pin(self.step_once(st, handler)).await?;
                    }
                }
                Err(Stop(format!("step {:?} failed: {why} (ran handlers: {})", step.id, handlers.join(", "))))
            }
        };
        self.escalate_rules(st, Some(&step.id)).await;
        result
    }

    /// Runs one step with its retries. Returns why it failed, if it did.
    /// `Err` only for store failures, which stop the run.
    async fn step_once(&self, st: &mut RunState, step: &Step) -> Result<Option<String>, Stop> {
        let iteration = st.scope.iteration;

        if let Some(when) = &step.when {
            match when.eval_bool(&st.scope) {
                Ok(true) => {}
                Ok(false) => {
                    let reason = format!("`{}` was false", when.source);
                    self.store
                        .record_skipped(&st.run_id, &step.id, iteration, &step.plugin, &reason)
                        .await
                        .map_err(Stop::unrecorded)?;
                    set_step(&mut st.scope, &step.id, step_view(StepStatus::Skipped, None, &[], &[], None));
                    let end = AttemptEnd {
                        outcome: Some("skipped".into()),
                        error: Some(reason),
                        duration_ms: Some(0.0),
                        ..AttemptEnd::new(AttemptStatus::Skipped)
                    };
                    self.emit_finished(st, step, 0, &end);
                    return Ok(None);
                }
                Err(e) => return self.fail_before_running(st, step, "when-error", format!("when: {e}")).await,
            }
        }

        if let Some(delay) = &step.delay {
            match delay.resolve(&st.scope) {
                Ok(d) => self.clock.sleep(d).await,
                Err(e) => return self.fail_before_running(st, step, "template-error", format!("delay: {e}")).await,
            }
        }

        if let Some(approval) = &step.approval {
            let message = match &approval.message {
                Some(t) => t.render(&st.scope).unwrap_or_else(|e| format!("approve step {:?}? ({e})", step.id)),
                None => format!("Approve step {:?} of runbook {:?}?", step.id, st.runbook.name),
            };
            match self.wait_for_approval(st, step, &message, approval).await.map_err(Stop::unrecorded)? {
                Ok(()) => {}
                Err(why) => return self.fail_before_running(st, step, "rejected", why).await,
            }
        }

        // The step runs: its `compare` metrics as measured so far.
        let (before, unmeasured) = st.measured.before(&step.compare);
        if !unmeasured.is_empty() {
            tracing::info!(run_id = %st.run_id, step = %step.id, "compare: not measured before the step, left out: {}", unmeasured.join(", "));
        }

        let config = match step.config.render(&st.scope) {
            Ok(c) => c,
            Err(e) => return self.fail_before_running(st, step, "template-error", format!("with: {e}")).await,
        };
        let input = match step.input.render(&st.scope) {
            Ok(i) => i,
            Err(e) => return self.fail_before_running(st, step, "template-error", format!("input: {e}")).await,
        };
        let (shown_config, shown_input) = (st.redactor.json(&config), st.redactor.json(&input));

        let policy = &step.retry;
        let mut attempt = 1;
        loop {
            let start = AttemptStart {
                run_id: &st.run_id,
                holder: Some(&self.owner),
                step_id: &step.id,
                iteration,
                attempt,
                plugin: &step.plugin,
                config: &shown_config,
                input: &shown_input,
            };
            let row = self.store.start_attempt(&start).await.map_err(Stop::unrecorded)?;
            self.emit(Event::StepStarted {
                run_id: st.run_id.clone(),
                step: step.id.clone(),
                iteration,
                attempt,
                plugin: step.plugin.clone(),
            });
            let call = StepCall {
                ctx: StepContext {
                    run_id: st.run_id.clone(),
                    step_id: step.id.clone(),
                    runbook: st.runbook.name.clone(),
                    attempt,
                    iteration,
                },
                config: config.to_string(),
                input: input.to_string(),
                grants: step.grants.clone(),
                limits: step.limits,
            };
            // Whatever the executor returns is untrusted: redacted before
            // anything else sees it.
            let result = self.executor.call(&step.plugin, call).await.map(|mut record| {
                record.redact(&st.redactor);
                record
            });
            let (mut end, retry_kind) = match &result {
                Ok(record) => attempt_end(record),
                Err(e) => (
                    AttemptEnd {
                        outcome: Some("error".into()),
                        error: Some(st.redactor.string(&format!("{e:#}"))),
                        ..AttemptEnd::new(AttemptStatus::Failed)
                    },
                    None,
                ),
            };
            if end.status == AttemptStatus::Succeeded {
                end.logs.extend(unmeasured.iter().map(|m| LogLine {
                    level: LogLevel::Info,
                    message: format!(
                        "compare: {m:?} was not measured in this run before the step; left out of the before/after"
                    ),
                }));
            }
            self.store.finish_attempt(row, &end).await.map_err(Stop::unrecorded)?;
            if let Some(ms) = end.duration_ms {
                metrics::histogram!("tend_step_duration_seconds", "runbook" => st.runbook.name.clone(), "plugin" => step.plugin.clone())
                    .record(ms / 1000.0);
            }
            if let Ok(StepRecord { outcome: Outcome::Trap { .. }, .. }) = &result {
                let kind = end.outcome.clone().unwrap_or_default();
                metrics::counter!("tend_plugin_traps_total", "plugin" => step.plugin.clone(), "kind" => kind)
                    .increment(1);
            }
            self.emit_finished(st, step, attempt, &end);

            if let Ok(record) = &result
                && let Some(output) = &record.output
            {
                self.store
                    .insert_metrics(&st.run_id, &st.runbook.name, &step.id, iteration, &output.metrics)
                    .await
                    .map_err(Stop::unrecorded)?;
                for (id, after) in self.note_measured(st, &step.id, &output.metrics) {
                    self.store.record_after(id, after, &step.id, iteration).await.map_err(Stop::unrecorded)?;
                }
                if !before.is_empty() {
                    let ids = self
                        .store
                        .record_before(&st.run_id, &step.id, iteration, &before)
                        .await
                        .map_err(Stop::unrecorded)?;
                    for (id, (metric, _)) in ids.into_iter().zip(&before) {
                        st.measured.await_after(id, metric);
                    }
                }
                let view = step_view(StepStatus::Succeeded, Some(&output.data), &output.metrics, &end.findings, None);
                set_step(&mut st.scope, &step.id, view);
                self.escalate_findings(st, &step.id, &end.findings).await;
                return Ok(None);
            }

            let why = end.error.clone().unwrap_or_else(|| end.outcome.clone().unwrap_or_default());
            let retry = retry_kind.is_some_and(|k| policy.retry_on.contains(&k)) && attempt < policy.attempts;
            if !retry {
                set_step(&mut st.scope, &step.id, step_view(StepStatus::Failed, None, &[], &end.findings, Some(&why)));
                return Ok(Some(why));
            }
            let delay = policy.delay_for(attempt, self.clock.random());
            self.emit(Event::Retrying {
                run_id: st.run_id.clone(),
                step: step.id.clone(),
                iteration,
                next_attempt: attempt + 1,
                delay_ms: delay.as_millis() as u64,
            });
            self.clock.sleep(delay).await;
            attempt += 1;
        }
    }

    /// Records a step that failed before its plugin ran (a condition or a
    /// template that could not be evaluated, a rejected approval).
    async fn fail_before_running(
        &self,
        st: &mut RunState,
        step: &Step,
        outcome: &str,
        why: String,
    ) -> Result<Option<String>, Stop> {
        let start = AttemptStart {
            run_id: &st.run_id,
            holder: Some(&self.owner),
            step_id: &step.id,
            iteration: st.scope.iteration,
            attempt: 1,
            plugin: &step.plugin,
            config: &Value::Null,
            input: &Value::Null,
        };
        let row = self.store.start_attempt(&start).await.map_err(Stop::unrecorded)?;
        let end = AttemptEnd {
            outcome: Some(outcome.into()),
            error: Some(why.clone()),
            duration_ms: Some(0.0),
            ..AttemptEnd::new(AttemptStatus::Failed)
        };
        self.store.finish_attempt(row, &end).await.map_err(Stop::unrecorded)?;
        set_step(&mut st.scope, &step.id, step_view(StepStatus::Failed, None, &[], &[], Some(&why)));
        self.emit_finished(st, step, 1, &end);
        Ok(Some(why))
    }

    /// Reports a recorded attempt (or skip) as a `StepFinished` event.
    fn emit_finished(&self, st: &RunState, step: &Step, attempt: u32, end: &AttemptEnd) {
        self.emit(Event::StepFinished {
            run_id: st.run_id.clone(),
            step: step.id.clone(),
            iteration: st.scope.iteration,
            attempt,
            status: end.status,
            outcome: end.outcome.clone().unwrap_or_default(),
            duration_ms: end.duration_ms.unwrap_or(0.0),
            error: end.error.clone(),
        });
    }

    /// Pauses the run until the step's approval is decided. `Ok(Err(why))`
    /// when it was rejected (or timed out without `on_timeout: approve`).
    async fn wait_for_approval(
        &self,
        st: &mut RunState,
        step: &Step,
        message: &str,
        approval: &crate::runbook::Approval,
    ) -> anyhow::Result<Result<(), String>> {
        let expires = self.clock.now_ms() + approval.timeout.as_millis() as i64;
        let id = self.store.request_approval(&st.run_id, &step.id, st.scope.iteration, message, expires).await?;
        self.store.set_run_status(&st.run_id, RunStatus::WaitingApproval, Some(&self.owner)).await?;
        self.emit(Event::WaitingApproval {
            run_id: st.run_id.clone(),
            step: step.id.clone(),
            iteration: st.scope.iteration,
            message: message.to_string(),
        });
        let decided = loop {
            let row = self.store.approval(id).await?.ok_or_else(|| anyhow::anyhow!("approval {id} vanished"))?;
            if row.status != ApprovalStatus::Pending {
                break row;
            }
            if self.clock.now_ms() >= expires {
                let status =
                    if approval.approve_on_timeout { ApprovalStatus::Approved } else { ApprovalStatus::TimedOut };
                match self
                    .store
                    .decide_approval(&st.run_id, status, "tend", Some("no decision before the timeout"))
                    .await
                {
                    Ok(row) => break row,
                    // Decided in the meantime: read it again.
                    Err(_) => continue,
                }
            }
            self.clock.sleep(self.options.poll).await;
        };
        self.store.set_run_status(&st.run_id, RunStatus::Running, Some(&self.owner)).await?;
        self.emit(Event::ApprovalDecided {
            run_id: st.run_id.clone(),
            step: step.id.clone(),
            status: decided.status,
            by: decided.decided_by.clone(),
        });
        Ok(match decided.status {
            ApprovalStatus::Approved => Ok(()),
            ApprovalStatus::TimedOut => Err(format!(
                "approval timed out after {} without a decision",
                crate::units::format_duration(approval.timeout)
            )),
            _ => Err(format!(
                "approval rejected by {}{}",
                decided.decided_by.as_deref().unwrap_or("someone"),
                decided.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            )),
        })
    }

    /// The redactor of a run of `rb`: the values of the secrets its steps
    /// are granted, of the webhook URLs its notifications (and the
    /// service-wide ones) read from secrets, with each such URL's path and
    /// query alone (where webhook tokens live), and of PagerDuty routing keys.
    fn run_redactor(&self, rb: &Runbook) -> Redactor {
        let mut values: Vec<String> = Vec::new();
        for step in rb.all_steps() {
            values.extend(step.grants.secrets.iter().filter_map(|n| self.secrets.get(n)));
        }
        values.extend(self.notifier.secret_values(Some(&rb.notify)));
        Redactor::new(values)
    }

    /// Escalates findings at or above the runbook's threshold.
    async fn escalate_findings(&self, st: &mut RunState, step_id: &str, findings: &[Finding]) {
        let Some(threshold) = st.runbook.escalate_findings else { return };
        for f in findings.iter().filter(|f| f.severity >= threshold) {
            let severity = if f.severity == Severity::Info { Severity::Low } else { f.severity };
            let key = format!("{}:{}:{}", st.runbook.name, step_id, f.resource.as_deref().unwrap_or(&f.title));
            let message = format!("{step_id}: {}", f.title);
            self.raise(st, Some(step_id), severity, &message, &key).await;
        }
    }

    /// Evaluates every escalation rule and raises those that hold.
    async fn escalate_rules(&self, st: &mut RunState, step_id: Option<&str>) {
        let rb = st.runbook.clone();
        for rule in &rb.escalations {
            match rule.when.eval_bool(&st.scope) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    // Before the steps a rule reads have run, it may not evaluate.
                    tracing::debug!(run_id = %st.run_id, "escalation rule {} not evaluated: {e}", rule.index);
                    continue;
                }
            }
            let message = rule
                .message
                .render(&st.scope)
                .unwrap_or_else(|e| format!("escalation rule {} fired ({e})", rule.index));
            let key = match &rule.dedup_key {
                Some(t) => t.render(&st.scope).unwrap_or_else(|_| format!("{}:rule{}", rb.name, rule.index)),
                None => format!("{}:rule{}", rb.name, rule.index),
            };
            if let Some(id) = self.raise(st, step_id, rule.severity, &message, &key).await
                && rule.auto_resolve
                && !st.auto_resolve.contains(&(rule.index, id))
            {
                st.auto_resolve.push((rule.index, id));
            }
        }
    }

    /// Raises one escalation (once per run per dedup key) and notifies the
    /// sinks unless it was grouped into an open one. Returns the id of the
    /// escalation raised or grouped into; None when this run had already
    /// raised the key or it could not be recorded.
    async fn raise(
        &self,
        st: &mut RunState,
        step_id: Option<&str>,
        severity: Severity,
        message: &str,
        key: &str,
    ) -> Option<i64> {
        // Built from plugin output and templates: hide the run's secrets.
        let (message, key) = (st.redactor.text(message), st.redactor.text(key));
        let (message, key) = (message.as_ref(), key.as_ref());
        if !st.escalated.insert(key.to_string()) {
            return None;
        }
        let e = NewEscalation {
            run_id: &st.run_id,
            runbook: &st.runbook.name,
            step_id,
            iteration: st.scope.iteration,
            severity,
            message,
            dedup_key: key,
        };
        let raised = match self.store.raise_escalation(&e, st.runbook.notify.dedup_window, self.clock.now_ms()).await {
            Ok(r) => r,
            Err(err) => {
                tracing::error!(run_id = %st.run_id, "escalation {key:?} could not be recorded: {err:#}");
                return None;
            }
        };
        self.emit(Event::Escalated {
            run_id: st.run_id.clone(),
            escalation_id: raised.id,
            severity,
            message: message.to_string(),
            grouped: raised.grouped,
        });
        if raised.grouped {
            return Some(raised.id);
        }
        metrics::counter!("tend_escalations_total", "severity" => severity.as_str()).increment(1);
        let n = Notification::new(severity, &st.runbook.name, &st.run_id, step_id, raised.id, key, message)
            .with_run_url(self.notifier.run_url(&st.run_id));
        self.notifier.send(&n, Some(&st.runbook.notify)).await;
        Some(raised.id)
    }

    /// At the end of a run: resolves each escalation a rule with
    /// `auto_resolve` raised whose `when` no longer holds on the final
    /// state, and sends the resolved notifications. A rule that still holds
    /// or cannot be evaluated leaves its escalation open; so does an
    /// escalation someone resolved meanwhile.
    async fn auto_resolve(&self, st: &RunState) {
        for &(index, id) in &st.auto_resolve {
            let Some(rule) = st.runbook.escalations.iter().find(|r| r.index == index) else { continue };
            match rule.when.eval_bool(&st.scope) {
                Ok(false) => {}
                Ok(true) => continue,
                Err(e) => {
                    tracing::debug!(run_id = %st.run_id, "escalation rule {index} not evaluated at the end: {e}");
                    continue;
                }
            }
            let reason = format!("condition no longer holds at the end of run {}", st.run_id);
            let rb = st.runbook.clone();
            match self.notifier.resolve(id, AUTO_RESOLVER, Some(&reason), |_| Some(rb.notify.clone())).await {
                Ok(_) => tracing::info!(run_id = %st.run_id, "escalation {id} resolved: {reason}"),
                Err(e) => tracing::debug!(run_id = %st.run_id, "escalation {id} not auto-resolved: {e:#}"),
            }
        }
    }
}

/// A report of a run's record.
fn render_report(kind: ReportKind, record: &crate::store::RunRecord) -> String {
    match kind {
        ReportKind::Postmortem => crate::report::postmortem(record),
    }
}

/// `steps` as expressions see it before anything ran: every step pending.
fn initial_steps(rb: &Runbook) -> Value {
    let mut steps = Map::new();
    for s in rb.all_steps() {
        steps.insert(s.id.clone(), crate::runbook::view::pending());
    }
    Value::Object(steps)
}

/// The `history` variable: every step of `rb` (`{}` when it has no
/// history yet, so `history.<id>` always resolves), with what it measured
/// in earlier runs.
fn history_of(rb: &Runbook, mut earlier: crate::store::MetricHistory) -> Value {
    let steps = rb.all_steps().map(|s| {
        let metrics = earlier.remove(&s.id).unwrap_or_default();
        (s.id.clone(), serde_json::to_value(metrics).unwrap_or_default())
    });
    Value::Object(steps.collect())
}

fn set_step(scope: &mut Scope, id: &str, value: Value) {
    if let Value::Object(steps) = &mut scope.steps {
        steps.insert(id.to_string(), value);
    }
}

/// The attempt's record for the store, and what kind of retryable failure
/// it was (None for success and for failures never retried).
fn attempt_end(record: &StepRecord) -> (AttemptEnd, Option<RetryOn>) {
    let (status, kind) = match &record.outcome {
        Outcome::Ok => (AttemptStatus::Succeeded, None),
        Outcome::PluginError { kind: ErrorKind::Retryable, .. } => (AttemptStatus::Failed, Some(RetryOn::Retryable)),
        Outcome::PluginError { kind: ErrorKind::Failed, .. } => (AttemptStatus::Failed, Some(RetryOn::Failed)),
        Outcome::PluginError { kind: ErrorKind::InvalidConfig, .. } => (AttemptStatus::Failed, None),
        Outcome::Trap { trap: TrapKind::Timeout { .. } } => (AttemptStatus::Failed, Some(RetryOn::Timeout)),
        Outcome::Trap { trap: TrapKind::DeniedCapability { .. } } => (AttemptStatus::Failed, None),
        Outcome::Trap { .. } => (AttemptStatus::Failed, Some(RetryOn::Trap)),
    };
    let error = (!record.outcome.is_ok()).then(|| record.outcome.to_string());
    let output = record.output.as_ref();
    let end = AttemptEnd {
        status,
        outcome: Some(record.outcome.name().into()),
        error,
        plugin_digest: Some(record.plugin_digest.clone()),
        output: output.map(|o| o.data.clone()),
        findings: output.map(|o| o.findings.clone()).unwrap_or_default(),
        logs: record.logs.clone(),
        duration_ms: Some(record.duration_ms),
        peak_memory_bytes: Some(record.peak_memory_bytes),
    };
    (end, kind)
}

#[path = "engine_measured.rs"]
mod measured;
use measured::Measured;

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
