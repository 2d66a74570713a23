//! Runs, the queue and leases: recording runs (once per idempotency key),
//! claiming them under a runbook's concurrency cap, heartbeats and
//! cancellation requests, final statuses, and taking over the runs of a
//! process that died. Backend-neutral: the types, and the [`Store`]
//! methods that dispatch to the backend or combine its answers.

use super::columns::Columns;
use super::{ApprovalRow, AttemptRow, EscalationRow, OptimizationResult, RunAlert, Store, StoreResult};
use crate::clock::now_ms;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

str_enum! {
    /// Where a run stands. Final statuses: succeeded, failed, cancelled,
    /// timed_out, interrupted, skipped.
    pub enum RunStatus("run status") {
        /// Recorded, waiting for a slot (the runbook's `concurrency` cap) or a worker.
        Queued = "queued",
        /// Steps are running.
        Running = "running",
        /// Paused at a step until a person approves or rejects it.
        WaitingApproval = "waiting_approval",
        /// Every step that ran succeeded or was allowed to fail (`on_failure: continue`).
        Succeeded = "succeeded",
        /// A step failed (after its retries and handlers), or an expression or a loop failed the run.
        Failed = "failed",
        /// Someone cancelled it.
        Cancelled = "cancelled",
        /// It ran past the runbook's `timeout`.
        TimedOut = "timed_out",
        /// The process running it died; found at the next start of tend.
        Interrupted = "interrupted",
        /// A scheduled fire not run because of the trigger's overlap policy.
        Skipped = "skipped",
    }
}

impl RunStatus {
    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running | RunStatus::WaitingApproval)
    }
}

str_enum! {
    /// What started a run.
    pub enum TriggerKind("trigger kind") {
        /// `tend run` (or `tend demo`).
        Cli = "cli",
        /// The HTTP API or the web view.
        Http = "http",
        /// An Alertmanager alert (`POST /v1/alerts`).
        Alert = "alert",
        /// A cron trigger, fired by the scheduler.
        Cron = "cron",
    }
}

/// A run as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunRow {
    pub id: String,
    pub runbook: String,
    pub runbook_hash: String,
    pub trigger_kind: TriggerKind,
    pub trigger_source: Option<String>,
    pub params: Value,
    pub status: RunStatus,
    pub error: Option<String>,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::units::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<i64>,
    #[serde(serialize_with = "crate::units::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<i64>,
}

/// A run with everything recorded about it: what `GET /v1/runs/{id}` and
/// `tend runs show --json` print.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub run: RunRow,
    pub steps: Vec<AttemptRow>,
    pub escalations: Vec<EscalationRow>,
    pub approvals: Vec<ApprovalRow>,
    /// Before/after of the steps with `compare`, in the order recorded.
    pub optimization_results: Vec<OptimizationResult>,
    /// The Alertmanager alerts that started the run, as they are now.
    pub alerts: Vec<RunAlert>,
}

/// Most escalations a [`RunRecord`] lists: 1,000.
pub const RUN_RECORD_MAX_ESCALATIONS: u32 = 1000;

/// A run about to be recorded.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub runbook: String,
    pub runbook_hash: String,
    pub trigger_kind: TriggerKind,
    pub trigger_source: Option<String>,
    pub params: Value,
}

/// The unfinished runs of a runbook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActiveRuns {
    /// Accepted and not started.
    pub queued: i64,
    /// Running, or waiting for an approval.
    pub running: i64,
}

/// Filters of [`Store::list_runs`] (a page of runs).
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub runbook: Option<String>,
    pub status: Option<RunStatus>,
    /// Only runs older than this run id (ids sort by creation time), for paging.
    pub before: Option<String>,
    /// Most rows; by default [`RunFilter::DEFAULT_LIMIT`].
    pub limit: Option<u32>,
}

impl RunFilter {
    /// Most runs a page holds unless `limit` says otherwise: 50.
    pub const DEFAULT_LIMIT: u32 = 50;

    /// The page size: `limit`, by default [`RunFilter::DEFAULT_LIMIT`].
    pub fn page_size(&self) -> i64 {
        i64::from(self.limit.unwrap_or(Self::DEFAULT_LIMIT))
    }

    /// The filters given, each as (column and operator, value) in a fixed
    /// order: what a backend's WHERE clause names, and only that, so its
    /// planner picks the index that matches (`?1 IS NULL OR ...` would
    /// keep SQLite from using one).
    pub(crate) fn conditions(&self) -> Vec<(&'static str, String)> {
        let mut conditions = Vec::new();
        if let Some(r) = &self.runbook {
            conditions.push(("runbook =", r.clone()));
        }
        if let Some(s) = self.status {
            conditions.push(("status =", s.as_str().to_string()));
        }
        if let Some(b) = &self.before {
            conditions.push(("id <", b.clone()));
        }
        conditions
    }
}

/// What a run's owner learns from its heartbeat ([`Store::heartbeat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The run is the owner's (or still queued): go on.
    Alive,
    /// Someone asked to cancel the run.
    CancelRequested,
    /// Another process holds the run now (it took the run over while this
    /// owner was silent past the lease), or the run is gone: stop, and
    /// record nothing more.
    Lost,
}

/// A run whose owner is gone (see [`Store::orphaned_runs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    pub run: RunRow,
    /// The owner that held it, e.g. `4242@host-a`.
    pub owner: String,
    /// Why it is taken for gone, e.g. "the tend process running it (4242@host-a) exited mid-run".
    pub why: String,
}

/// A run's owner and its last sign of life (see [`Store::orphaned_runs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub run_id: String,
    /// `pid@hostname` of the process running it.
    pub owner: String,
    /// ms since the epoch; None before the first.
    pub heartbeat_at: Option<i64>,
}

impl RunRow {
    /// A run from a row with the columns id, runbook, runbook_hash,
    /// trigger_kind, trigger_source, params, status, error, created_at,
    /// started_at, finished_at, in that order.
    pub(super) fn from_row(r: &impl Columns) -> StoreResult<RunRow> {
        Ok(RunRow {
            id: r.text(0)?,
            runbook: r.text(1)?,
            runbook_hash: r.text(2)?,
            trigger_kind: r.parsed(3)?,
            trigger_source: r.opt_text(4)?,
            params: r.json(5)?,
            status: r.parsed(6)?,
            error: r.opt_text(7)?,
            created_at: r.int(8)?,
            started_at: r.opt_int(9)?,
            finished_at: r.opt_int(10)?,
        })
    }
}

impl Store {
    /// Records a new run as queued and returns it.
    pub async fn create_run(&self, run: &NewRun) -> StoreResult<RunRow> {
        dispatch!(self, create_run(run))
    }

    /// Records a new queued run under an idempotency key, in one
    /// transaction: returns the run's id and the new run, or, for a key seen
    /// before, the id of the run it created then and `None`. A key first
    /// used for another runbook is a conflict.
    pub async fn create_run_once(&self, run: &NewRun, key: &str) -> StoreResult<(String, Option<RunRow>)> {
        dispatch!(self, create_run_once(run, key))
    }

    /// Runs still queued, oldest first: accepted triggers a worker must run.
    pub async fn queued_runs(&self) -> StoreResult<Vec<RunRow>> {
        dispatch!(self, queued_runs())
    }

    /// The runs of each runbook that are queued, and those running or
    /// waiting for an approval, in one read; runbooks with none are left
    /// out.
    pub async fn active_runs(&self) -> StoreResult<HashMap<String, ActiveRuns>> {
        dispatch!(self, active_runs())
    }

    /// Fails a run that is still queued (it was never started), with why.
    /// Returns false when it was no longer queued.
    pub async fn fail_queued(&self, id: &str, why: &str) -> StoreResult<bool> {
        dispatch!(self, fail_queued(id, why))
    }

    /// Moves a queued run to running for `owner` when fewer than `cap` runs
    /// of its runbook are running (no cap when `None`). Returns whether it
    /// did; atomic, so two processes (or hosts) sharing the database never
    /// both take the last slot nor both claim one run.
    pub async fn claim_run(&self, id: &str, owner: &str, cap: Option<u32>) -> StoreResult<bool> {
        dispatch!(self, claim_run(id, owner, cap))
    }

    /// Sets a run's status (not a final one: see [`Store::finish_run`]),
    /// if `holder` still holds it (see [`Store::finish_run`]).
    pub async fn set_run_status(&self, id: &str, status: RunStatus, holder: Option<&str>) -> StoreResult<()> {
        dispatch!(self, set_run_status(id, status, holder))
    }

    /// Records `owner`'s sign of life on a run it holds (or waits to claim)
    /// and says whether to go on.
    pub async fn heartbeat(&self, id: &str, owner: &str) -> StoreResult<Heartbeat> {
        dispatch!(self, heartbeat(id, owner))
    }

    /// Ends a run with a final status. A run already final keeps its status.
    /// With a `holder` (the engine's owner), only while that process still
    /// holds the run, or the run never started: a process that another
    /// took the run over from (it was silent past the lease) changes
    /// nothing. Returns the run's status and error as they stand.
    pub async fn finish_run(
        &self,
        id: &str,
        status: RunStatus,
        error: Option<&str>,
        holder: Option<&str>,
    ) -> StoreResult<(RunStatus, Option<String>)> {
        dispatch!(self, finish_run(id, status, error, holder))
    }

    /// Closes what a run left open when it stopped early: attempts still
    /// running become `cancelled` (or `timed_out`), pending approvals are
    /// withdrawn. Nothing happens for a run that ended normally, nor (with a
    /// `holder`) for a run another process holds now.
    pub async fn close_open_attempts(&self, run_id: &str, status: RunStatus, holder: Option<&str>) -> StoreResult<()> {
        dispatch!(self, close_open_attempts(run_id, status, holder))
    }

    /// Asks the process running a run to cancel it. Returns the run's
    /// status, or an error when the run does not exist or is over.
    pub async fn request_cancel(&self, id: &str) -> StoreResult<RunStatus> {
        dispatch!(self, request_cancel(id))
    }

    /// One run.
    pub async fn get_run(&self, id: &str) -> StoreResult<Option<RunRow>> {
        dispatch!(self, get_run(id))
    }

    /// Marks an orphaned run interrupted, with the attempt that was running
    /// and any pending approval, if `owner` still holds it. Returns false
    /// when it does not (another process dealt with the run, or took it
    /// over and is running it again) or the run is over.
    pub async fn interrupt(&self, id: &str, owner: &str, why: &str) -> StoreResult<bool> {
        dispatch!(self, interrupt(id, owner, why))
    }

    /// Puts an orphaned run back in the queue to resume it, if `owner`
    /// still holds it: the attempt that was running is kept as
    /// interrupted; completed ones stay. Returns false when `owner` no
    /// longer holds the run or it is not running.
    pub async fn requeue(&self, id: &str, owner: &str) -> StoreResult<bool> {
        dispatch!(self, requeue(id, owner))
    }

    /// The runs running or waiting for an approval that have an owner, with
    /// the owner's last sign of life: what [`Store::orphaned_runs`] judges.
    pub async fn leases(&self) -> StoreResult<Vec<Lease>> {
        dispatch!(self, leases())
    }

    /// One run with its attempts, escalations and approvals.
    pub async fn run_record(&self, id: &str) -> StoreResult<Option<RunRecord>> {
        let Some(run) = self.get_run(id).await? else { return Ok(None) };
        let steps = self.attempts(id).await?;
        let escalations = self.list_escalations(None, Some(id), RUN_RECORD_MAX_ESCALATIONS).await?;
        let approvals = self.approvals(id).await?;
        let optimization_results = self.optimization_results(id).await?;
        let alerts = self.run_alerts(id).await?;
        Ok(Some(RunRecord { run, steps, escalations, approvals, optimization_results, alerts }))
    }

    /// Runs whose owner is gone: owners on this host whose process no
    /// longer exists, and any owner silent for longer than `stale_after`.
    /// Each comes with its owner (to take it over from exactly that owner)
    /// and why it is orphaned.
    pub async fn orphaned_runs(&self, stale_after: Duration) -> StoreResult<Vec<Orphan>> {
        let leases = self.leases().await?;
        let now = now_ms();
        let host = crate::process::hostname();
        let mut out = Vec::new();
        for Lease { run_id, owner, heartbeat_at } in leases {
            let stale = heartbeat_at.is_none_or(|h| now - h > stale_after.as_millis() as i64);
            let dead = crate::process::owner_is_dead(&owner, &host);
            if !(stale || dead) {
                continue;
            }
            let why = if dead {
                format!("the tend process running it ({owner}) exited mid-run")
            } else {
                format!("no sign of life from its owner ({owner}) for over {}s", stale_after.as_secs())
            };
            if let Some(run) = self.get_run(&run_id).await? {
                out.push(Orphan { run, owner, why });
            }
        }
        Ok(out)
    }

    /// Marks runs whose owner is gone as interrupted (see
    /// [`Store::orphaned_runs`]); returns their ids.
    pub async fn reap_interrupted(&self, stale_after: Duration) -> StoreResult<Vec<String>> {
        let mut reaped = Vec::new();
        for Orphan { run, owner, why } in self.orphaned_runs(stale_after).await? {
            if self.interrupt(&run.id, &owner, &why).await? {
                reaped.push(run.id);
            }
        }
        Ok(reaped)
    }
}

/// A new run id: a ULID, monotonic within this process so ids sort in
/// creation order even within one millisecond.
pub(super) fn new_run_id() -> String {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut g = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let generator = g.get_or_insert_with(ulid::Generator::new);
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new()).to_string()
}
