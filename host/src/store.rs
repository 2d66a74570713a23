//! The record of everything tend does: runs, step attempts, metrics,
//! escalations and their notifications, approvals, and plugin state, in
//! SQLite (WAL). All SQL lives here, so another backend can follow by
//! reimplementing this module. Migrations (`host/migrations/`) run when the
//! store opens; an applied migration is never edited.
//!
//! Every write commits before it returns, so a status shown to a user is
//! already durable. Reads use a pool of async connections (sqlx); writes go
//! through one writer thread ([`writer`]) that commits the writes of
//! concurrent tasks in one transaction, so many runs share each fsync.

use crate::runtime::caps::state::StateStore;
use crate::runtime::record::{Finding, LogLine, Metric, Severity};
use anyhow::Context as _;
use rusqlite::{OptionalExtension as _, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;

mod escalations;
mod optimization;
mod pages;
mod reports;
mod run_alerts;
mod sessions;
mod writer;
pub use optimization::{MeasuredBy, OptimizationResult};
pub use pages::PendingApproval;
pub use reports::StoredReport;
pub use run_alerts::RunAlert;
pub use sessions::SessionRow;
use std::str::FromStr;
use std::time::Duration;

use crate::clock::now_ms;

/// Where a run stands. Final statuses: succeeded, failed, cancelled,
/// timed_out, interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Recorded, waiting for a slot (the runbook's `concurrency` cap) or a worker.
    Queued,
    /// Steps are running.
    Running,
    /// Paused at a step until a person approves or rejects it.
    WaitingApproval,
    /// Every step that ran succeeded or was allowed to fail (`on_failure: continue`).
    Succeeded,
    /// A step failed (after its retries and handlers), or an expression or a loop failed the run.
    Failed,
    /// Someone cancelled it.
    Cancelled,
    /// It ran past the runbook's `timeout`.
    TimedOut,
    /// The process running it died; found at the next start of tend.
    Interrupted,
    /// A scheduled fire not run because of the trigger's overlap policy.
    Skipped,
}

impl RunStatus {
    pub const ALL: [RunStatus; 9] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::WaitingApproval,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::TimedOut,
        RunStatus::Interrupted,
        RunStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::WaitingApproval => "waiting_approval",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Skipped => "skipped",
        }
    }

    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running | RunStatus::WaitingApproval)
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
            format!("run status {s:?} is not one of {}", names.join(", "))
        })
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunRow {
    pub id: String,
    pub runbook: String,
    pub runbook_hash: String,
    pub trigger_kind: String,
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
    pub trigger_kind: String,
    pub trigger_source: Option<String>,
    pub params: Value,
}

/// A schedule's first next fire time, about to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    pub key: String,
    pub runbook: String,
    /// ms since the epoch, jitter included.
    pub next_fire_at: i64,
}

/// A due schedule about to fire (see [`Store::fire_schedules`]).
#[derive(Debug, Clone)]
pub struct ScheduleFire {
    pub key: String,
    /// The stored next fire time it moves from.
    pub expected: i64,
    /// The next fire time it moves to.
    pub next: i64,
    /// Its runs: each queued, or skipped with the reason.
    pub runs: Vec<(NewRun, Option<String>)>,
}

/// The unfinished runs of a runbook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActiveRuns {
    /// Accepted and not started.
    pub queued: i64,
    /// Running, or waiting for an approval.
    pub running: i64,
}

/// One attempt of one step (or a skipped step, with attempt 0).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AttemptRow {
    pub id: i64,
    pub run_id: String,
    pub step_id: String,
    pub iteration: u32,
    pub attempt: u32,
    pub plugin: String,
    pub plugin_digest: Option<String>,
    pub config: Option<Value>,
    pub input: Option<Value>,
    pub status: String,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub output: Option<Value>,
    pub findings: Vec<Finding>,
    pub logs: Vec<LogLine>,
    pub metrics: Vec<Metric>,
    pub duration_ms: Option<f64>,
    pub peak_memory_bytes: Option<i64>,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: i64,
    #[serde(serialize_with = "crate::units::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<i64>,
}

/// The start of an attempt.
#[derive(Debug, Clone)]
pub struct AttemptStart<'a> {
    pub run_id: &'a str,
    pub step_id: &'a str,
    pub iteration: u32,
    pub attempt: u32,
    pub plugin: &'a str,
    pub config: &'a Value,
    pub input: &'a Value,
}

/// How an attempt ended.
#[derive(Debug, Clone, Default)]
pub struct AttemptEnd {
    /// succeeded | failed | cancelled
    pub status: String,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub plugin_digest: Option<String>,
    pub output: Option<Value>,
    pub findings: Vec<Finding>,
    pub logs: Vec<LogLine>,
    pub duration_ms: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
}

/// An escalation as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EscalationRow {
    pub id: i64,
    pub run_id: String,
    pub runbook: String,
    pub step_id: Option<String>,
    pub iteration: u32,
    pub severity: Severity,
    pub message: String,
    pub dedup_key: String,
    pub status: String,
    pub occurrences: i64,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: i64,
    pub acknowledged_by: Option<String>,
    #[serde(serialize_with = "crate::units::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<i64>,
    pub resolved_by: Option<String>,
    #[serde(serialize_with = "crate::units::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<i64>,
    /// Why it was resolved, e.g. `condition no longer holds at the end of run 01J...`.
    pub resolution: Option<String>,
    pub notifications: Vec<NotificationRow>,
}

/// A notification sent (or attempted) for an escalation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NotificationRow {
    /// What it announced: `triggered`, `acknowledged` or `resolved`.
    pub event: crate::notify::Status,
    /// `log`, `webhook:<host>` (JSON) or `<format>:<host>`, e.g. `pagerduty:events.pagerduty.com`.
    pub sink: String,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub sent_at: i64,
    pub ok: bool,
    pub error: Option<String>,
}

/// An escalation about to be raised.
#[derive(Debug, Clone)]
pub struct NewEscalation<'a> {
    pub run_id: &'a str,
    pub runbook: &'a str,
    pub step_id: Option<&'a str>,
    pub iteration: u32,
    pub severity: Severity,
    pub message: &'a str,
    pub dedup_key: &'a str,
}

/// What raising an escalation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    pub id: i64,
    /// True when an open escalation with the same dedup key inside the
    /// window took it in (no new notification is due).
    pub grouped: bool,
}

/// An approval request.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApprovalRow {
    pub id: i64,
    pub run_id: String,
    pub step_id: String,
    pub iteration: u32,
    pub message: String,
    /// pending | approved | rejected | timed_out
    pub status: String,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: i64,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    pub decided_by: Option<String>,
    #[serde(serialize_with = "crate::units::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<i64>,
    pub reason: Option<String>,
}

/// An Alertmanager alert instance.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertRow {
    pub fingerprint: String,
    pub starts_at: String,
    /// firing | resolved
    pub status: String,
    pub labels: Value,
    pub annotations: Value,
    pub ends_at: Option<String>,
    pub group_key: Option<String>,
}

/// Filters of [`Store::list_runs`].
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub runbook: Option<String>,
    pub status: Option<RunStatus>,
    /// Only runs older than this run id (ids sort by creation time), for paging.
    pub before: Option<String>,
    /// Most rows; by default 50.
    pub limit: Option<u32>,
}

/// A point of a metric series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPoint {
    pub run_id: String,
    pub step_id: String,
    pub iteration: u32,
    pub value: f64,
    pub labels: Value,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    pub recorded_at: i64,
}

/// Earlier values of each step's metrics: step id, then metric name, then
/// one value per earlier run, oldest first ([`Store::metric_history`]).
pub type MetricHistory = std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<f64>>>;

/// Why a decision on an approval or escalation was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecisionError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

/// The SQLite store. Cheap to clone.
///
/// Reads go through a pool of async connections; every write goes through
/// the single [`writer::Writer`], which commits the writes of concurrent
/// tasks together (group commit).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    writer: writer::Writer,
    /// Keeps the file of a `:memory:` store until the last clone is dropped.
    _scratch: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and applies
    /// pending migrations. `:memory:` opens a private throwaway database (a
    /// file in a temporary directory, deleted when the store is dropped).
    ///
    /// By default: WAL journal, `synchronous = FULL` (a committed status
    /// survives a crash of tend and of the machine), foreign keys on, a
    /// 5-second busy timeout so several tend processes can share the file.
    ///
    /// `path` is a file path or a URL: `sqlite:PATH`, `sqlite://PATH`
    /// (`sqlite:///var/lib/tend/tend.db` for an absolute path), and
    /// `sqlite::memory:` for `:memory:`. Other schemes are refused.
    pub async fn open(path: &str) -> anyhow::Result<Store> {
        let (file, scratch) = match database_file(path)? {
            Some(file) => (file, None),
            None => {
                let dir = tempfile::tempdir()?;
                (dir.path().join("tend.db"), Some(std::sync::Arc::new(dir)))
            }
        };
        // Two processes opening a new database at once would both set it up
        // (WAL mode, tables); an advisory lock on the file (flock, which is
        // independent of SQLite's own fcntl locks) makes one wait for the
        // other. An empty file is a valid empty database.
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating the directory of database {path}"))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .with_context(|| format!("opening database {path}"))?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await?
            .with_context(|| format!("locking database {path} to set it up"))?;
        let sync = if scratch.is_some() { writer::Sync::Off } else { writer::Sync::Full };
        let options = SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Lets retention hand freed pages back to the file system in steps
            // (applies to databases created from now on).
            .auto_vacuum(sqlx::sqlite::SqliteAutoVacuum::Incremental)
            .synchronous(match sync {
                writer::Sync::Full => SqliteSynchronous::Full,
                writer::Sync::Off => SqliteSynchronous::Off,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening database {path}"))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .with_context(|| format!("applying migrations to database {path}"))?;
        let writer = writer::Writer::start(&file, sync).with_context(|| format!("opening database {path} to write"))?;
        drop(lock);
        Ok(Store { pool, writer, _scratch: scratch })
    }

    // ---- runs -------------------------------------------------------------

    /// Records a new run as queued and returns it.
    pub async fn create_run(&self, run: &NewRun) -> anyhow::Result<RunRow> {
        let run = run.clone();
        self.writer.write(move |db| insert_run(db, &new_run_id(), &run, None, now_ms())).await
    }

    /// Records a new queued run under an idempotency key, in one
    /// transaction: returns the run's id and the new run, or, for a key seen
    /// before, the id of the run it created then and `None`. A key first
    /// used for another runbook is a conflict.
    pub async fn create_run_once(&self, run: &NewRun, key: &str) -> anyhow::Result<(String, Option<RunRow>)> {
        let (run, key) = (run.clone(), key.to_string());
        self.writer
            .write(move |db| {
                let existing: Option<(String, String)> = db
                    .prepare_cached("SELECT runbook, run_id FROM idempotency_keys WHERE key = ?")?
                    .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((runbook, id)) = existing {
                    if runbook != run.runbook {
                        return Err(DecisionError::Conflict(format!(
                            "idempotency key {key:?} was already used for runbook {runbook:?}"
                        ))
                        .into());
                    }
                    return Ok((id, None));
                }
                let now = now_ms();
                let row = insert_run(db, &new_run_id(), &run, None, now)?;
                db.prepare_cached(
                    "INSERT INTO idempotency_keys (key, runbook, run_id, created_at) VALUES (?, ?, ?, ?)",
                )?
                .execute(params![key, run.runbook, row.id, now])?;
                Ok((row.id.clone(), Some(row)))
            })
            .await
    }

    /// Runs still queued, oldest first: accepted triggers a worker must run.
    pub async fn queued_runs(&self) -> anyhow::Result<Vec<RunRow>> {
        let rows = sqlx::query(
            "SELECT id, runbook, runbook_hash, trigger_kind, trigger_source, params, status, error,
                    created_at, started_at, finished_at
             FROM runs WHERE status = 'queued' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_row).collect()
    }

    // ---- schedules --------------------------------------------------------

    /// The next fire time of a schedule, if it is known.
    pub async fn schedule_next(&self, key: &str) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT next_fire_at FROM schedules WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The next fire time of every stored schedule, by key, in one read.
    pub async fn schedules(&self) -> anyhow::Result<HashMap<String, i64>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT key, next_fire_at FROM schedules").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().collect())
    }

    /// Records the first next fire time of schedules not known yet, in one
    /// transaction, and returns the stored time of each by key: the one
    /// given, or the one another process sharing the database recorded
    /// first.
    pub async fn init_schedules(&self, new: Vec<NewSchedule>) -> anyhow::Result<HashMap<String, i64>> {
        self.writer
            .write(move |db| {
                let mut insert = db.prepare_cached(
                    "INSERT INTO schedules (key, runbook, next_fire_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
                )?;
                let mut read = db.prepare_cached("SELECT next_fire_at FROM schedules WHERE key = ?")?;
                let mut stored = HashMap::with_capacity(new.len());
                for s in new {
                    insert.execute(params![s.key, s.runbook, s.next_fire_at])?;
                    let at: i64 = read.query_row([&s.key], |r| r.get(0))?;
                    stored.insert(s.key, at);
                }
                Ok(stored)
            })
            .await
    }

    /// Deletes the schedules whose key is not in `keep`; returns their keys.
    pub async fn forget_schedules(&self, keep: &std::collections::BTreeSet<String>) -> anyhow::Result<Vec<String>> {
        let keep = keep.clone();
        self.writer
            .write(move |db| {
                let all: Vec<String> = db
                    .prepare_cached("SELECT key FROM schedules")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let mut delete = db.prepare_cached("DELETE FROM schedules WHERE key = ?")?;
                let mut forgotten = Vec::new();
                for key in all.into_iter().filter(|k| !keep.contains(k)) {
                    delete.execute([&key])?;
                    forgotten.push(key);
                }
                Ok(forgotten)
            })
            .await
    }

    /// The runs of each runbook that are queued, and those running or
    /// waiting for an approval, in one read; runbooks with none are left
    /// out.
    pub async fn active_runs(&self) -> anyhow::Result<HashMap<String, ActiveRuns>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT runbook, COALESCE(SUM(status = 'queued'), 0),
                    COALESCE(SUM(status IN ('running', 'waiting_approval')), 0)
             FROM runs WHERE status IN ('queued', 'running', 'waiting_approval') GROUP BY runbook",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(rb, queued, running)| (rb, ActiveRuns { queued, running })).collect())
    }

    /// Fires due schedules in one transaction. Each fire moves its
    /// schedule's next fire time from `expected` to `next` (compare and
    /// swap) and records its runs, in a savepoint of its own: one that fails
    /// is rolled back alone and answered with its error. Returns, in order,
    /// each fire's queued runs as recorded, None when its schedule had
    /// already moved on (another process fired it), or its error.
    pub async fn fire_schedules(
        &self,
        fires: Vec<ScheduleFire>,
    ) -> anyhow::Result<Vec<anyhow::Result<Option<Vec<RunRow>>>>> {
        self.writer
            .write(move |db| {
                let mut out = Vec::with_capacity(fires.len());
                for fire in &fires {
                    db.prepare_cached("SAVEPOINT fire")?.execute([])?;
                    let result = fire_schedule(db, fire);
                    // Some errors (a full disk) make SQLite roll back the
                    // whole transaction: every fire of it is lost.
                    if db.is_autocommit() {
                        return Err(result.err().unwrap_or_else(|| anyhow::anyhow!("the transaction was rolled back")));
                    }
                    if result.is_err() {
                        db.execute_batch("ROLLBACK TO fire; RELEASE fire")?;
                    } else {
                        db.prepare_cached("RELEASE fire")?.execute([])?;
                    }
                    out.push(result);
                }
                Ok(out)
            })
            .await
    }

    // ---- alerts -----------------------------------------------------------

    /// Records an Alertmanager alert instance (firing or resolved); a
    /// repeated notification updates the same row.
    pub async fn record_alert(&self, a: &AlertRow) -> anyhow::Result<()> {
        let a = a.clone();
        self.writer
            .write(move |db| {
                let now = now_ms();
                db.prepare_cached(
                    "INSERT INTO alerts (fingerprint, starts_at, status, labels, annotations, ends_at, group_key,
                                         first_seen_at, last_seen_at, resolved_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ?3 = 'resolved' THEN ?9 END)
                     ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
                         status = excluded.status, labels = excluded.labels, annotations = excluded.annotations,
                         ends_at = excluded.ends_at, group_key = excluded.group_key, last_seen_at = excluded.last_seen_at,
                         resolved_at = CASE WHEN excluded.status = 'resolved'
                                            THEN COALESCE(alerts.resolved_at, excluded.last_seen_at) END",
                )?
                .execute(params![
                    a.fingerprint,
                    a.starts_at,
                    a.status,
                    a.labels.to_string(),
                    a.annotations.to_string(),
                    a.ends_at,
                    a.group_key,
                    now,
                    now
                ])?;
                Ok(())
            })
            .await
    }

    /// Recorded alerts, most recently seen first.
    pub async fn alerts(&self, limit: u32) -> anyhow::Result<Vec<AlertRow>> {
        let rows = sqlx::query(
            "SELECT fingerprint, starts_at, status, labels, annotations, ends_at, group_key
             FROM alerts ORDER BY last_seen_at DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertRow {
                    fingerprint: r.get(0),
                    starts_at: r.get(1),
                    status: r.get(2),
                    labels: serde_json::from_str(&r.get::<String, _>(3))?,
                    annotations: serde_json::from_str(&r.get::<String, _>(4))?,
                    ends_at: r.get(5),
                    group_key: r.get(6),
                })
            })
            .collect()
    }

    // ---- retention --------------------------------------------------------

    /// Deletes finished runs created before `cutoff` (ms since the epoch)
    /// with everything they own (attempts, metrics, escalations and their
    /// notifications, approvals, idempotency keys), `batch` runs per
    /// transaction so writers are never blocked for long; then returns
    /// freed pages to the file system and truncates the WAL. Returns the
    /// number of runs deleted.
    pub async fn prune(&self, cutoff: i64, batch: u32) -> anyhow::Result<u64> {
        let batch = batch.max(1);
        let mut deleted = 0;
        loop {
            let done = self
                .writer
                .write(move |db| {
                    Ok(db
                        .prepare_cached(
                            "DELETE FROM runs WHERE id IN (
                                 SELECT id FROM runs
                                 WHERE created_at < ? AND status NOT IN ('queued', 'running', 'waiting_approval')
                                 LIMIT ?)",
                        )?
                        .execute(params![cutoff, i64::from(batch)])?)
                })
                .await?;
            deleted += done as u64;
            if done < batch as usize {
                break;
            }
        }
        if deleted > 0 {
            self.writer
                .alone(|db| {
                    // Frees one page per step: step it to the end.
                    let mut vacuum = db.prepare("PRAGMA incremental_vacuum")?;
                    let mut freed = vacuum.query([])?;
                    while freed.next()?.is_some() {}
                    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                    Ok(())
                })
                .await?;
        }
        Ok(deleted)
    }

    /// Whether the database answers, for reads and through the writer (which
    /// waits for the write lock like any write).
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        self.writer.write(|db| Ok(db.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    /// Fails a run that is still queued (it was never started), with why.
    /// Returns false when it was no longer queued.
    pub async fn fail_queued(&self, id: &str, why: &str) -> anyhow::Result<bool> {
        let (id, why) = (id.to_string(), why.to_string());
        self.writer
            .write(move |db| {
                let done = db
                    .prepare_cached(
                        "UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE id = ? AND status = 'queued'",
                    )?
                    .execute(params![why, now_ms(), id])?;
                Ok(done == 1)
            })
            .await
    }

    /// Moves a queued run to running for `owner` when fewer than `cap` runs
    /// of its runbook are running (no cap when `None`). Returns whether it
    /// did; one statement, so two processes never both take the last slot.
    pub async fn claim_run(&self, id: &str, owner: &str, cap: Option<u32>) -> anyhow::Result<bool> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.writer
            .write(move |db| {
                let now = now_ms();
                let cap = cap.map(i64::from);
                let done = db
                    .prepare_cached(
                        "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?), owner = ?,
                                         heartbeat_at = ?
                         WHERE id = ? AND status = 'queued' AND cancel_requested = 0
                           AND (? IS NULL OR (SELECT count(*) FROM runs r
                                              WHERE r.runbook = runs.runbook
                                                AND r.status IN ('running', 'waiting_approval')) < ?)",
                    )?
                    .execute(params![now, owner, now, id, cap, cap])?;
                Ok(done == 1)
            })
            .await
    }

    /// Sets a run's status (not a final one: see [`Store::finish_run`]).
    pub async fn set_run_status(&self, id: &str, status: RunStatus) -> anyhow::Result<()> {
        let id = id.to_string();
        self.writer
            .write(move |db| {
                db.prepare_cached("UPDATE runs SET status = ?, heartbeat_at = ? WHERE id = ?")?.execute(params![
                    status.as_str(),
                    now_ms(),
                    id
                ])?;
                Ok(())
            })
            .await
    }

    /// Records the owner's sign of life and returns whether cancellation
    /// was requested.
    pub async fn heartbeat(&self, id: &str) -> anyhow::Result<bool> {
        let id = id.to_string();
        self.writer
            .write(move |db| {
                let cancel: Option<i64> = db
                    .prepare_cached("UPDATE runs SET heartbeat_at = ? WHERE id = ? RETURNING cancel_requested")?
                    .query_row(params![now_ms(), id], |r| r.get(0))
                    .optional()?;
                Ok(cancel.is_some_and(|c| c != 0))
            })
            .await
    }

    /// Ends a run with a final status. A run already final keeps its status.
    pub async fn finish_run(
        &self,
        id: &str,
        status: RunStatus,
        error: Option<&str>,
    ) -> anyhow::Result<(RunStatus, Option<String>)> {
        debug_assert!(status.is_final());
        let (id, error) = (id.to_string(), error.map(str::to_string));
        self.writer
            .write(move |db| {
                db.prepare_cached(
                    "UPDATE runs SET status = ?, error = ?, finished_at = ?
                     WHERE id = ? AND status IN ('queued', 'running', 'waiting_approval')",
                )?
                .execute(params![status.as_str(), error, now_ms(), id])?;
                let (status, error): (String, Option<String>) = db
                    .prepare_cached("SELECT status, error FROM runs WHERE id = ?")?
                    .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                    .ok_or_else(|| DecisionError::NotFound(format!("run {id:?}")))?;
                Ok((status.parse().map_err(anyhow::Error::msg)?, error))
            })
            .await
    }

    /// Closes what a run left open when it stopped early: attempts still
    /// running become `cancelled` (or `timed_out`), pending approvals are
    /// withdrawn. Nothing happens for a run that ended normally.
    pub async fn close_open_attempts(&self, run_id: &str, status: RunStatus) -> anyhow::Result<()> {
        let (attempt_status, why) = match status {
            RunStatus::TimedOut => ("timed_out", "the run passed its timeout during this attempt"),
            RunStatus::Cancelled => ("cancelled", "the run was cancelled during this attempt"),
            _ => ("interrupted", "the run stopped during this attempt"),
        };
        let run_id = run_id.to_string();
        self.writer
            .write(move |db| {
                let now = now_ms();
                db.prepare_cached(
                    "UPDATE step_attempts SET status = ?, outcome = ?, error = ?, finished_at = ?
                     WHERE run_id = ? AND status = 'running'",
                )?
                .execute(params![attempt_status, attempt_status, why, now, run_id])?;
                db.prepare_cached(
                    "UPDATE approvals SET status = 'rejected', reason = ?, decided_at = ?, decided_by = 'tend'
                     WHERE run_id = ? AND status = 'pending'",
                )?
                .execute(params![format!("the run ended ({})", status.as_str()), now, run_id])?;
                Ok(())
            })
            .await
    }

    /// Asks the process running a run to cancel it. Returns the run's
    /// status, or an error when the run does not exist or is over.
    pub async fn request_cancel(&self, id: &str) -> Result<RunStatus, anyhow::Error> {
        let id = id.to_string();
        self.writer
            .write(move |db| {
                let status: String = db
                    .prepare_cached("SELECT status FROM runs WHERE id = ?")?
                    .query_row([&id], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| DecisionError::NotFound(format!("run {id:?}")))?;
                let status: RunStatus = status.parse().map_err(anyhow::Error::msg)?;
                if status.is_final() {
                    return Err(DecisionError::Conflict(format!("run {id} is already {status}")).into());
                }
                db.prepare_cached("UPDATE runs SET cancel_requested = 1 WHERE id = ?")?.execute([&id])?;
                Ok(status)
            })
            .await
    }

    /// One run with its attempts, escalations and approvals.
    pub async fn run_record(&self, id: &str) -> anyhow::Result<Option<RunRecord>> {
        let Some(run) = self.get_run(id).await? else { return Ok(None) };
        let steps = self.attempts(id).await?;
        let escalations = self.list_escalations(None, Some(id), RUN_RECORD_MAX_ESCALATIONS).await?;
        let approvals = self.approvals(id).await?;
        let optimization_results = self.optimization_results(id).await?;
        let alerts = self.run_alerts(id).await?;
        Ok(Some(RunRecord { run, steps, escalations, approvals, optimization_results, alerts }))
    }

    /// One run.
    pub async fn get_run(&self, id: &str) -> anyhow::Result<Option<RunRow>> {
        let row = sqlx::query(RUN_SELECT_BY_ID).bind(id).fetch_optional(&self.pool).await?;
        row.map(|r| run_row(&r)).transpose()
    }

    /// Runs, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> anyhow::Result<Vec<RunRow>> {
        let rows = sqlx::query(
            "SELECT id, runbook, runbook_hash, trigger_kind, trigger_source, params, status, error,
                    created_at, started_at, finished_at
             FROM runs
             WHERE (?1 IS NULL OR runbook = ?1) AND (?2 IS NULL OR status = ?2) AND (?4 IS NULL OR id < ?4)
             ORDER BY id DESC LIMIT ?3",
        )
        .bind(&filter.runbook)
        .bind(filter.status.map(|s| s.as_str()))
        .bind(i64::from(filter.limit.unwrap_or(50)))
        .bind(&filter.before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_row).collect()
    }

    /// Runs whose owner is gone: owners on this host whose process no
    /// longer exists, and any owner silent for longer than `stale_after`.
    /// Returns each with why it is orphaned.
    pub async fn orphaned_runs(&self, stale_after: Duration) -> anyhow::Result<Vec<(RunRow, String)>> {
        let rows = sqlx::query(
            "SELECT id, owner, heartbeat_at FROM runs WHERE status IN ('running', 'waiting_approval') AND owner IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let now = now_ms();
        let host = crate::process::hostname();
        let mut out = Vec::new();
        for row in rows {
            let id: String = row.get(0);
            let owner: String = row.get(1);
            let heartbeat: Option<i64> = row.get(2);
            let stale = heartbeat.is_none_or(|h| now - h > stale_after.as_millis() as i64);
            let dead = crate::process::owner_is_dead(&owner, &host);
            if !(stale || dead) {
                continue;
            }
            let why = if dead {
                format!("the tend process running it ({owner}) exited mid-run")
            } else {
                format!("no sign of life from its owner ({owner}) for over {}s", stale_after.as_secs())
            };
            if let Some(run) = self.get_run(&id).await? {
                out.push((run, why));
            }
        }
        Ok(out)
    }

    /// Marks an orphaned run interrupted, with the attempt that was running
    /// and any pending approval. Returns false when the run was not
    /// running any more (someone else dealt with it).
    pub async fn interrupt(&self, id: &str, why: &str) -> anyhow::Result<bool> {
        let (id, why) = (id.to_string(), why.to_string());
        self.writer
            .write(move |db| {
                let now = now_ms();
                let done = db
                    .prepare_cached(
                        "UPDATE runs SET status = 'interrupted', error = ?, finished_at = ?
                         WHERE id = ? AND status IN ('running', 'waiting_approval')",
                    )?
                    .execute(params![format!("interrupted: {why}"), now, id])?;
                close_running_attempts(db, &id, now)?;
                db.prepare_cached(
                    "UPDATE approvals SET status = 'rejected', reason = 'run interrupted', decided_at = ?
                     WHERE run_id = ? AND status = 'pending'",
                )?
                .execute(params![now, id])?;
                Ok(done == 1)
            })
            .await
    }

    /// Puts an orphaned run back in the queue to resume it: the attempt
    /// that was running is kept as interrupted; completed ones stay. Returns
    /// false when the run was not running any more.
    pub async fn requeue(&self, id: &str) -> anyhow::Result<bool> {
        let id = id.to_string();
        self.writer
            .write(move |db| {
                let done = db
                    .prepare_cached(
                        "UPDATE runs SET status = 'queued', owner = NULL, heartbeat_at = NULL
                         WHERE id = ? AND status = 'running'",
                    )?
                    .execute([&id])?;
                close_running_attempts(db, &id, now_ms())?;
                Ok(done == 1)
            })
            .await
    }

    /// Marks runs whose owner is gone as interrupted (see
    /// [`Store::orphaned_runs`]); returns their ids.
    pub async fn reap_interrupted(&self, stale_after: Duration) -> anyhow::Result<Vec<String>> {
        let mut reaped = Vec::new();
        for (run, why) in self.orphaned_runs(stale_after).await? {
            if self.interrupt(&run.id, &why).await? {
                reaped.push(run.id);
            }
        }
        Ok(reaped)
    }

    // ---- step attempts ----------------------------------------------------

    /// Records that an attempt started; returns its row id.
    pub async fn start_attempt(&self, a: &AttemptStart<'_>) -> anyhow::Result<i64> {
        let (run_id, step_id, plugin) = (a.run_id.to_string(), a.step_id.to_string(), a.plugin.to_string());
        let (iteration, attempt) = (i64::from(a.iteration), i64::from(a.attempt));
        let (config, input) = (a.config.to_string(), a.input.to_string());
        self.writer
            .write(move |db| {
                Ok(db
                    .prepare_cached(
                        "INSERT INTO step_attempts (run_id, step_id, iteration, attempt, plugin, config, input, status,
                                                    started_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?) RETURNING id",
                    )?
                    .query_row(params![run_id, step_id, iteration, attempt, plugin, config, input, now_ms()], |r| {
                        r.get(0)
                    })?)
            })
            .await
    }

    /// Records how an attempt ended.
    pub async fn finish_attempt(&self, id: i64, end: &AttemptEnd) -> anyhow::Result<()> {
        let output = end.output.as_ref().map(Value::to_string);
        let findings = serde_json::to_string(&end.findings)?;
        let logs = serde_json::to_string(&end.logs)?;
        let (status, outcome, error) = (end.status.clone(), end.outcome.clone(), end.error.clone());
        let (digest, duration_ms, peak) =
            (end.plugin_digest.clone(), end.duration_ms, end.peak_memory_bytes.map(|b| b as i64));
        self.writer
            .write(move |db| {
                db.prepare_cached(
                    "UPDATE step_attempts SET status = ?, outcome = ?, error = ?, plugin_digest = ?, output = ?,
                            findings = ?, logs = ?, duration_ms = ?, peak_memory_bytes = ?, finished_at = ?
                     WHERE id = ?",
                )?
                .execute(params![
                    status,
                    outcome,
                    error,
                    digest,
                    output,
                    findings,
                    logs,
                    duration_ms,
                    peak,
                    now_ms(),
                    id
                ])?;
                Ok(())
            })
            .await
    }

    /// Records a step that did not run, with why (`when` was false, ...).
    pub async fn record_skipped(
        &self,
        run_id: &str,
        step_id: &str,
        iteration: u32,
        plugin: &str,
        reason: &str,
    ) -> anyhow::Result<()> {
        let (run_id, step_id, plugin, reason) =
            (run_id.to_string(), step_id.to_string(), plugin.to_string(), reason.to_string());
        self.writer
            .write(move |db| {
                let now = now_ms();
                db.prepare_cached(
                    "INSERT INTO step_attempts (run_id, step_id, iteration, attempt, plugin, status, outcome, error,
                                                started_at, finished_at, duration_ms)
                     VALUES (?, ?, ?, 0, ?, 'skipped', 'skipped', ?, ?, ?, 0)",
                )?
                .execute(params![run_id, step_id, i64::from(iteration), plugin, reason, now, now])?;
                Ok(())
            })
            .await
    }

    /// Every attempt of a run in order, with the metrics each recorded.
    pub async fn attempts(&self, run_id: &str) -> anyhow::Result<Vec<AttemptRow>> {
        let rows = sqlx::query(
            "SELECT id, run_id, step_id, iteration, attempt, plugin, plugin_digest, config, input, status, outcome,
                    error, output, findings, logs, duration_ms, peak_memory_bytes, started_at, finished_at
             FROM step_attempts WHERE run_id = ? ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        let metric_rows =
            sqlx::query("SELECT step_id, iteration, name, value, labels FROM metrics WHERE run_id = ? ORDER BY id")
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
        let mut out: Vec<AttemptRow> = rows.iter().map(attempt_row).collect::<anyhow::Result<_>>()?;
        for m in metric_rows {
            let (step, iteration): (String, i64) = (m.get(0), m.get(1));
            // Metrics belong to the successful (last) attempt of the step in that iteration.
            if let Some(a) = out
                .iter_mut()
                .rev()
                .find(|a| a.step_id == step && i64::from(a.iteration) == iteration && a.status == "succeeded")
            {
                let labels: Vec<(String, String)> =
                    serde_json::from_str::<std::collections::BTreeMap<String, String>>(&m.get::<String, _>(4))?
                        .into_iter()
                        .collect();
                a.metrics.push(Metric { name: m.get(2), value: m.get(3), labels });
            }
        }
        Ok(out)
    }

    // ---- metrics ----------------------------------------------------------

    /// Records the metrics a step returned.
    pub async fn insert_metrics(
        &self,
        run_id: &str,
        runbook: &str,
        step_id: &str,
        iteration: u32,
        metrics: &[Metric],
    ) -> anyhow::Result<()> {
        if metrics.is_empty() {
            return Ok(());
        }
        let rows: Vec<(String, f64, String)> = metrics
            .iter()
            .map(|m| {
                let labels: std::collections::BTreeMap<&str, &str> =
                    m.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                Ok((m.name.clone(), m.value, serde_json::to_string(&labels)?))
            })
            .collect::<anyhow::Result<_>>()?;
        let (run_id, runbook, step_id) = (run_id.to_string(), runbook.to_string(), step_id.to_string());
        self.writer
            .write(move |db| {
                let now = now_ms();
                let mut insert = db.prepare_cached(
                    "INSERT INTO metrics (run_id, runbook, step_id, iteration, name, value, labels, recorded_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )?;
                for (name, value, labels) in rows {
                    insert.execute(params![
                        run_id,
                        runbook,
                        step_id,
                        i64::from(iteration),
                        name,
                        value,
                        labels,
                        now
                    ])?;
                }
                Ok(())
            })
            .await
    }

    /// A metric of a runbook over time, oldest first, across runs and
    /// iterations: before/after comparisons in one query.
    pub async fn metric_series(&self, runbook: &str, name: &str, limit: u32) -> anyhow::Result<Vec<MetricPoint>> {
        let rows = sqlx::query(
            "SELECT run_id, step_id, iteration, value, labels, recorded_at FROM (
                 SELECT * FROM metrics WHERE runbook = ? AND name = ? ORDER BY id DESC LIMIT ?
             ) ORDER BY id",
        )
        .bind(runbook)
        .bind(name)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MetricPoint {
                    run_id: r.get(0),
                    step_id: r.get(1),
                    iteration: r.get::<i64, _>(2) as u32,
                    value: r.get(3),
                    labels: serde_json::from_str(&r.get::<String, _>(4))?,
                    recorded_at: r.get(5),
                })
            })
            .collect()
    }

    /// What each step of `runbook` measured in its `runs` latest finished
    /// runs other than `except_run`: `{step id: {metric name: [value, ...]}}`,
    /// one value per run (the run's last measurement), oldest first. Only
    /// metrics without labels: a labelled series has no single value.
    /// Reads the runs through their index, then their metrics through
    /// `metrics_by_run`: it never scans the runbook's whole history.
    pub async fn metric_history(&self, runbook: &str, except_run: &str, runs: u32) -> anyhow::Result<MetricHistory> {
        let rows = sqlx::query(
            "WITH earlier AS (
                 SELECT id, created_at FROM runs
                 WHERE runbook = ? AND id <> ? AND finished_at IS NOT NULL
                 ORDER BY created_at DESC LIMIT ?
             ),
             last AS (
                 SELECT MAX(m.id) AS id FROM metrics m JOIN earlier e ON m.run_id = e.id
                 WHERE m.labels = '{}' GROUP BY m.run_id, m.step_id, m.name
             )
             SELECT m.step_id, m.name, m.value FROM metrics m
             JOIN last l ON m.id = l.id JOIN earlier e ON m.run_id = e.id
             ORDER BY e.created_at, m.id",
        )
        .bind(runbook)
        .bind(except_run)
        .bind(i64::from(runs))
        .fetch_all(&self.pool)
        .await?;
        let mut history = MetricHistory::new();
        for r in &rows {
            history.entry(r.get(0)).or_default().entry(r.get(1)).or_default().push(r.get(2));
        }
        Ok(history)
    }

    // ---- approvals --------------------------------------------------------

    /// Records a pending approval request and returns its id.
    pub async fn request_approval(
        &self,
        run_id: &str,
        step_id: &str,
        iteration: u32,
        message: &str,
        expires_at: i64,
    ) -> anyhow::Result<i64> {
        let (run_id, step_id, message) = (run_id.to_string(), step_id.to_string(), message.to_string());
        self.writer
            .write(move |db| {
                Ok(db
                    .prepare_cached(
                        "INSERT INTO approvals (run_id, step_id, iteration, message, status, requested_at, expires_at)
                         VALUES (?, ?, ?, ?, 'pending', ?, ?) RETURNING id",
                    )?
                    .query_row(params![run_id, step_id, i64::from(iteration), message, now_ms(), expires_at], |r| {
                        r.get(0)
                    })?)
            })
            .await
    }

    /// One approval request.
    pub async fn approval(&self, id: i64) -> anyhow::Result<Option<ApprovalRow>> {
        let row = sqlx::query(
            "SELECT id, run_id, step_id, iteration, message, status, requested_at, expires_at, decided_by, decided_at, reason
             FROM approvals WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(approval_row))
    }

    /// Approval requests of a run, oldest first.
    pub async fn approvals(&self, run_id: &str) -> anyhow::Result<Vec<ApprovalRow>> {
        let rows = sqlx::query(
            "SELECT id, run_id, step_id, iteration, message, status, requested_at, expires_at, decided_by, decided_at, reason
             FROM approvals WHERE run_id = ? ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(approval_row).collect())
    }

    /// Decides the pending approval of a run: `approved` or `rejected` (or
    /// `timed_out`, by the engine). Errors name the run and what is wrong.
    pub async fn decide_approval(
        &self,
        run_id: &str,
        status: &str,
        by: &str,
        reason: Option<&str>,
    ) -> Result<ApprovalRow, anyhow::Error> {
        let (run_id, status, by, reason) =
            (run_id.to_string(), status.to_string(), by.to_string(), reason.map(str::to_string));
        let id = self
            .writer
            .write(move |db| {
                let decided: Option<i64> = db
                    .prepare_cached(
                        "UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, reason = ?
                         WHERE id = (SELECT id FROM approvals WHERE run_id = ? AND status = 'pending'
                                     ORDER BY id DESC LIMIT 1)
                         RETURNING id",
                    )?
                    .query_row(params![status, by, now_ms(), reason, run_id], |r| r.get(0))
                    .optional()?;
                if let Some(id) = decided {
                    return Ok(id);
                }
                let run: Option<String> = db
                    .prepare_cached("SELECT status FROM runs WHERE id = ?")?
                    .query_row([&run_id], |r| r.get(0))
                    .optional()?;
                Err(match run {
                    None => DecisionError::NotFound(format!("run {run_id:?}")),
                    Some(status) => {
                        DecisionError::Conflict(format!("run {run_id} is not waiting for an approval (it is {status})"))
                    }
                }
                .into())
            })
            .await?;
        self.approval(id).await?.context("approval vanished")
    }

    // ---- plugin state -----------------------------------------------------

    async fn state_get(&self, runbook: &str, key: &str) -> anyhow::Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM plugin_state WHERE runbook = ? AND key = ?")
            .bind(runbook)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }
}

#[async_trait::async_trait]
impl StateStore for Store {
    async fn get(&self, runbook: &str, key: &str) -> anyhow::Result<Option<String>> {
        self.state_get(runbook, key).await
    }

    async fn set(&self, runbook: &str, key: &str, value: &str) -> anyhow::Result<()> {
        let (runbook, key, value) = (runbook.to_string(), key.to_string(), value.to_string());
        self.writer
            .write(move |db| {
                db.prepare_cached(
                    "INSERT INTO plugin_state (runbook, key, value, updated_at) VALUES (?, ?, ?, ?)
                     ON CONFLICT (runbook, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )?
                .execute(params![runbook, key, value, now_ms()])?;
                Ok(())
            })
            .await
    }

    async fn delete(&self, runbook: &str, key: &str) -> anyhow::Result<()> {
        let (runbook, key) = (runbook.to_string(), key.to_string());
        self.writer
            .write(move |db| {
                db.prepare_cached("DELETE FROM plugin_state WHERE runbook = ? AND key = ?")?
                    .execute(params![runbook, key])?;
                Ok(())
            })
            .await
    }
}

/// The file a database setting names (a path or a `sqlite:` URL), or None
/// for a private in-memory database. Errors say what was expected.
fn database_file(setting: &str) -> anyhow::Result<Option<std::path::PathBuf>> {
    let path = match setting.split_once(':') {
        _ if [":memory:", "sqlite::memory:", "sqlite://:memory:"].contains(&setting) => return Ok(None),
        Some(("file", _)) => anyhow::bail!(
            "database {setting:?}: SQLite URI file names are not supported; expected a path or a sqlite: URL, e.g. \"sqlite:///var/lib/tend/tend.db\""
        ),
        Some(("sqlite", rest)) => rest.strip_prefix("//").unwrap_or(rest),
        Some((scheme, rest))
            if rest.starts_with("//") && !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            anyhow::bail!(
                "database {setting:?}: only SQLite is supported (a file path or a sqlite: URL, e.g. \"sqlite:///var/lib/tend/tend.db\")"
            )
        }
        _ => setting,
    };
    if path.is_empty() {
        anyhow::bail!(
            "database {setting:?} names no file; expected e.g. \"tend.db\" or \"sqlite:///var/lib/tend/tend.db\""
        );
    }
    if path.contains('?') && setting.starts_with("sqlite:") {
        anyhow::bail!("database {setting:?}: URL options (after `?`) are not supported; tend sets its own");
    }
    Ok(Some(std::path::PathBuf::from(path)))
}

/// Marks the attempts of a run still `running` as interrupted.
fn close_running_attempts(db: &rusqlite::Connection, run_id: &str, now: i64) -> anyhow::Result<()> {
    db.prepare_cached(
        "UPDATE step_attempts SET status = 'interrupted', outcome = 'interrupted', error = ?, finished_at = ?
         WHERE run_id = ? AND status = 'running'",
    )?
    .execute(params!["the run was interrupted during this attempt", now, run_id])?;
    Ok(())
}

/// Fires one schedule (see [`Store::fire_schedules`]).
fn fire_schedule(db: &rusqlite::Connection, fire: &ScheduleFire) -> anyhow::Result<Option<Vec<RunRow>>> {
    let now = now_ms();
    let moved = db
        .prepare_cached("UPDATE schedules SET next_fire_at = ?, last_fire_at = ? WHERE key = ? AND next_fire_at = ?")?
        .execute(params![fire.next, now, fire.key, fire.expected])?;
    if moved != 1 {
        return Ok(None);
    }
    let mut queued = Vec::new();
    for (run, skipped) in &fire.runs {
        let row = insert_run(db, &new_run_id(), run, skipped.as_deref(), now)?;
        if skipped.is_none() {
            queued.push(row);
        }
    }
    Ok(Some(queued))
}

/// Inserts a run: queued, or skipped (final at once) with the reason.
/// Returns it as recorded.
fn insert_run(
    db: &rusqlite::Connection,
    id: &str,
    run: &NewRun,
    skipped: Option<&str>,
    now: i64,
) -> anyhow::Result<RunRow> {
    let (status, finished) =
        if skipped.is_some() { (RunStatus::Skipped, Some(now)) } else { (RunStatus::Queued, None) };
    db.prepare_cached(
        "INSERT INTO runs (id, runbook, runbook_hash, trigger_kind, trigger_source, params, status, error,
                           created_at, finished_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        id,
        run.runbook,
        run.runbook_hash,
        run.trigger_kind,
        run.trigger_source,
        run.params.to_string(),
        status.as_str(),
        skipped,
        now,
        finished
    ])?;
    Ok(RunRow {
        id: id.to_string(),
        runbook: run.runbook.clone(),
        runbook_hash: run.runbook_hash.clone(),
        trigger_kind: run.trigger_kind.clone(),
        trigger_source: run.trigger_source.clone(),
        params: run.params.clone(),
        status,
        error: skipped.map(str::to_string),
        created_at: now,
        started_at: None,
        finished_at: finished,
    })
}

static RUN_SELECT_BY_ID: &str = "SELECT id, runbook, runbook_hash, trigger_kind, trigger_source, params, status, error,
        created_at, started_at, finished_at FROM runs WHERE id = ?";

fn run_row(r: &sqlx::sqlite::SqliteRow) -> anyhow::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0),
        runbook: r.get(1),
        runbook_hash: r.get(2),
        trigger_kind: r.get(3),
        trigger_source: r.get(4),
        params: serde_json::from_str(&r.get::<String, _>(5))?,
        status: r.get::<String, _>(6).parse().map_err(anyhow::Error::msg)?,
        error: r.get(7),
        created_at: r.get(8),
        started_at: r.get(9),
        finished_at: r.get(10),
    })
}

fn json_col(r: &sqlx::sqlite::SqliteRow, i: usize) -> anyhow::Result<Option<Value>> {
    r.get::<Option<String>, _>(i).map(|s| serde_json::from_str(&s)).transpose().map_err(Into::into)
}

fn attempt_row(r: &sqlx::sqlite::SqliteRow) -> anyhow::Result<AttemptRow> {
    let list = |i: usize| -> anyhow::Result<Value> { Ok(json_col(r, i)?.unwrap_or(Value::Array(Vec::new()))) };
    Ok(AttemptRow {
        id: r.get(0),
        run_id: r.get(1),
        step_id: r.get(2),
        iteration: r.get::<i64, _>(3) as u32,
        attempt: r.get::<i64, _>(4) as u32,
        plugin: r.get(5),
        plugin_digest: r.get(6),
        config: json_col(r, 7)?,
        input: json_col(r, 8)?,
        status: r.get(9),
        outcome: r.get(10),
        error: r.get(11),
        output: json_col(r, 12)?,
        findings: serde_json::from_value(list(13)?)?,
        logs: serde_json::from_value(list(14)?)?,
        metrics: Vec::new(),
        duration_ms: r.get(15),
        peak_memory_bytes: r.get(16),
        started_at: r.get(17),
        finished_at: r.get(18),
    })
}

fn approval_row(r: &sqlx::sqlite::SqliteRow) -> ApprovalRow {
    ApprovalRow {
        id: r.get(0),
        run_id: r.get(1),
        step_id: r.get(2),
        iteration: r.get::<i64, _>(3) as u32,
        message: r.get(4),
        status: r.get(5),
        requested_at: r.get(6),
        expires_at: r.get(7),
        decided_by: r.get(8),
        decided_at: r.get(9),
        reason: r.get(10),
    }
}

/// A new run id: a ULID, monotonic within this process so ids sort in
/// creation order even within one millisecond.
fn new_run_id() -> String {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut g = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let generator = g.get_or_insert_with(ulid::Generator::new);
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> Store {
        Store::open(":memory:").await.unwrap()
    }

    #[test]
    fn database_settings_are_paths_or_sqlite_urls() {
        let file = |s: &str| database_file(s).map(|f| f.map(|p| p.display().to_string())).map_err(|e| e.to_string());
        assert_eq!(file("tend.db"), Ok(Some("tend.db".into())));
        assert_eq!(file("/var/lib/tend/tend.db"), Ok(Some("/var/lib/tend/tend.db".into())));
        assert_eq!(file("sqlite:tend.db"), Ok(Some("tend.db".into())));
        assert_eq!(file("sqlite://data/tend.db"), Ok(Some("data/tend.db".into())));
        assert_eq!(file("sqlite:///var/lib/tend/tend.db"), Ok(Some("/var/lib/tend/tend.db".into())));
        assert_eq!(file(":memory:"), Ok(None));
        assert_eq!(file("sqlite::memory:"), Ok(None));
        assert_eq!(
            file("postgres://tend@db/tend"),
            Err("database \"postgres://tend@db/tend\": only SQLite is supported (a file path or a sqlite: URL, e.g. \"sqlite:///var/lib/tend/tend.db\")".into())
        );
        assert_eq!(
            file("sqlite://"),
            Err(
                "database \"sqlite://\" names no file; expected e.g. \"tend.db\" or \"sqlite:///var/lib/tend/tend.db\""
                    .into()
            )
        );
        assert_eq!(
            file("sqlite://tend.db?mode=ro"),
            Err("database \"sqlite://tend.db?mode=ro\": URL options (after `?`) are not supported; tend sets its own"
                .into())
        );
        assert_eq!(file("sqlite://:memory:"), Ok(None));
        assert_eq!(
            file("file:tend.db"),
            Err("database \"file:tend.db\": SQLite URI file names are not supported; expected a path or a sqlite: URL, e.g. \"sqlite:///var/lib/tend/tend.db\"".into())
        );
        // A path with a colon that is not a URL stays a path.
        assert_eq!(file("backups/10:00.db"), Ok(Some("backups/10:00.db".into())));
    }

    fn new_run(runbook: &str) -> NewRun {
        NewRun {
            runbook: runbook.into(),
            runbook_hash: "h".into(),
            trigger_kind: "cli".into(),
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
    async fn pruning_gives_the_freed_pages_back_to_the_file_system() {
        let s = store().await;
        let big = NewRun { params: serde_json::json!({"pad": "x".repeat(8192)}), ..new_run("rb") };
        for _ in 0..200 {
            let id = s.create_run(&big).await.unwrap().id;
            s.finish_run(&id, RunStatus::Succeeded, None).await.unwrap();
        }
        let pages = || async { sqlx::query_scalar::<_, i64>("PRAGMA page_count").fetch_one(&s.pool).await.unwrap() };
        let before = pages().await;
        assert_eq!(s.prune(now_ms() + 1, 50).await.unwrap(), 200);
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count").fetch_one(&s.pool).await.unwrap();
        assert_eq!(free, 0, "every freed page went back to the file system");
        assert!(pages().await < before / 4, "{} pages before, {} after", before, pages().await);
    }

    #[tokio::test]
    async fn an_alert_instance_is_one_row_from_firing_to_resolved() {
        let s = store().await;
        let mut a = AlertRow {
            fingerprint: "c0ffee".into(),
            starts_at: "2026-11-24T10:00:00Z".into(),
            status: "firing".into(),
            labels: serde_json::json!({"alertname": "HostDown"}),
            annotations: serde_json::json!({}),
            ends_at: None,
            group_key: Some("g".into()),
        };
        s.record_alert(&a).await.unwrap();
        s.record_alert(&a).await.unwrap();
        a.status = "resolved".into();
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
        let next = s
            .list_runs(&RunFilter { limit: Some(2), before: Some(ids[1].clone()), ..RunFilter::default() })
            .await
            .unwrap();
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
        let err = s.decide_approval(&run, "approved", "ann", None).await.unwrap_err();
        assert_eq!(err.to_string(), format!("run {run} is not waiting for an approval (it is queued)"));
        let id = s.request_approval(&run, "restart", 0, "Restart?", now_ms() + 1000).await.unwrap();
        let row = s.decide_approval(&run, "approved", "ann", Some("go")).await.unwrap();
        assert_eq!((row.id, row.status.as_str(), row.decided_by.as_deref()), (id, "approved", Some("ann")));
        assert!(s.decide_approval(&run, "rejected", "bob", None).await.is_err());
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
        assert_eq!(s.attempts(&id).await.unwrap()[0].status, "interrupted");
        assert_eq!(s.get_run(&live).await.unwrap().unwrap().status, RunStatus::Running);
    }
}
