//! Runs, the queue and leases in PostgreSQL: the `runs` and
//! `idempotency_keys` tables. Shared by several hosts, so: a claim under a
//! concurrency cap counts and claims while holding the runbook's advisory
//! transaction lock; an idempotency key is claimed by its unique key
//! (`ON CONFLICT DO NOTHING`), never by a read first.

use super::{LockSpace, PgStore, lock_xact};
use crate::clock::now_ms;
use crate::store::{
    ActiveRuns, AttemptStatus, Heartbeat, Lease, NewRun, RunRow, RunStatus, StoreError, StoreResult, new_run_id,
};
use sqlx::PgConnection;
use std::collections::HashMap;

/// How many times `create_run_once` starts over when the run a key names
/// vanished between its insert and its read (pruned meanwhile).
const IDEMPOTENCY_TRIES: usize = 3;

impl PgStore {
    pub async fn create_run(&self, run: &NewRun) -> StoreResult<RunRow> {
        let mut db = self.pool.acquire().await?;
        insert_run(&mut db, &new_run_id(), run, None, now_ms()).await
    }

    pub async fn create_run_once(&self, run: &NewRun, key: &str) -> StoreResult<(String, Option<RunRow>)> {
        for _ in 0..IDEMPOTENCY_TRIES {
            let mut tx = self.pool.begin().await?;
            let now = now_ms();
            let row = insert_run(&mut tx, &new_run_id(), run, None, now).await?;
            // A concurrent insert of the same key waits here for the other
            // transaction, then inserts nothing if that one committed.
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (key, runbook, run_id, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(&run.runbook)
            .bind(&row.id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 1 {
                tx.commit().await?;
                return Ok((row.id.clone(), Some(row)));
            }
            tx.rollback().await?;
            let existing: Option<(String, String)> =
                sqlx::query_as("SELECT runbook, run_id FROM idempotency_keys WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some((runbook, id)) = existing {
                if runbook != run.runbook {
                    return Err(StoreError::Conflict(format!(
                        "idempotency key {key:?} was already used for runbook {runbook:?}"
                    )));
                }
                return Ok((id, None));
            }
        }
        Err(StoreError::Backend(anyhow::anyhow!(
            "idempotency key {key:?}: its run kept vanishing (pruned) while being read; tried {IDEMPOTENCY_TRIES} times"
        )))
    }

    pub async fn queued_runs(&self) -> StoreResult<Vec<RunRow>> {
        let rows = sqlx::query(
            "SELECT id, runbook, runbook_hash, trigger_kind, trigger_source, params, status, error,
                    created_at, started_at, finished_at
             FROM runs WHERE status = 'queued' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RunRow::from_row).collect()
    }

    pub async fn active_runs(&self) -> StoreResult<HashMap<String, ActiveRuns>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT runbook, count(*) FILTER (WHERE status = 'queued'),
                    count(*) FILTER (WHERE status IN ('running', 'waiting_approval'))
             FROM runs WHERE status IN ('queued', 'running', 'waiting_approval') GROUP BY runbook",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(rb, queued, running)| (rb, ActiveRuns { queued, running })).collect())
    }

    pub async fn fail_queued(&self, id: &str, why: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE runs SET status = 'failed', error = $1, finished_at = $2 WHERE id = $3 AND status = 'queued'",
        )
        .bind(why)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    pub async fn claim_run(&self, id: &str, owner: &str, cap: Option<u32>) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        if cap.is_some() {
            // Every capped claim of this runbook waits here for the others'
            // commits, so its count below sees their claims (each statement
            // of a READ COMMITTED transaction reads what was committed
            // before it began).
            let runbook: Option<String> =
                sqlx::query_scalar("SELECT runbook FROM runs WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
            let Some(runbook) = runbook else { return Ok(false) };
            lock_xact(&mut tx, LockSpace::RunbookClaims, &runbook).await?;
        }
        // Another process claiming this run right now holds its row: skip
        // it rather than wait (it will have it), as a queue consumer does.
        let claimable: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM runs WHERE id = $1 AND status = 'queued' AND NOT cancel_requested FOR UPDATE SKIP LOCKED",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if claimable.is_none() {
            return Ok(false);
        }
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, $1), owner = $2, heartbeat_at = $1
             WHERE id = $3 AND status = 'queued' AND NOT cancel_requested
               AND ($4::bigint IS NULL OR (SELECT count(*) FROM runs r
                                           WHERE r.runbook = runs.runbook
                                             AND r.status IN ('running', 'waiting_approval')) < $4::bigint)",
        )
        .bind(now)
        .bind(owner)
        .bind(id)
        .bind(cap.map(i64::from))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(done == 1)
    }

    pub async fn set_run_status(&self, id: &str, status: RunStatus, holder: Option<&str>) -> StoreResult<()> {
        sqlx::query(concat!(
            "UPDATE runs SET status = $1, heartbeat_at = $2
             WHERE id = $3 AND ",
            holds!("$4::text")
        ))
        .bind(status.as_str())
        .bind(now_ms())
        .bind(id)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn heartbeat(&self, id: &str, owner: &str) -> StoreResult<Heartbeat> {
        let cancel: Option<bool> = sqlx::query_scalar(
            "UPDATE runs SET heartbeat_at = $1 WHERE id = $2 AND (owner IS NULL OR owner = $3)
             RETURNING cancel_requested",
        )
        .bind(now_ms())
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match cancel {
            None => Heartbeat::Lost,
            Some(false) => Heartbeat::Alive,
            Some(true) => Heartbeat::CancelRequested,
        })
    }

    pub async fn finish_run(
        &self,
        id: &str,
        status: RunStatus,
        error: Option<&str>,
        holder: Option<&str>,
    ) -> StoreResult<(RunStatus, Option<String>)> {
        debug_assert!(status.is_final());
        let mut tx = self.pool.begin().await?;
        end_run(&mut tx, id, status, error, now_ms(), holder).await?;
        let ended = status_of(&mut tx, id).await?;
        tx.commit().await?;
        Ok(ended)
    }

    pub async fn close_open_attempts(&self, run_id: &str, status: RunStatus, holder: Option<&str>) -> StoreResult<()> {
        let (attempt_status, why) = match status {
            RunStatus::TimedOut => (AttemptStatus::TimedOut, "the run passed its timeout during this attempt"),
            RunStatus::Cancelled => (AttemptStatus::Cancelled, "the run was cancelled during this attempt"),
            _ => (AttemptStatus::Interrupted, "the run stopped during this attempt"),
        };
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        if !holds(&mut tx, run_id, holder).await? {
            return Ok(());
        }
        sqlx::query(
            "UPDATE step_attempts SET status = $1, outcome = $1, error = $2, finished_at = $3
             WHERE run_id = $4 AND status = 'running'",
        )
        .bind(attempt_status.as_str())
        .bind(why)
        .bind(now)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE approvals SET status = 'rejected', reason = $1, decided_at = $2, decided_by = 'tend'
             WHERE run_id = $3 AND status = 'pending'",
        )
        .bind(format!("the run ended ({})", status.as_str()))
        .bind(now)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn request_cancel(&self, id: &str) -> StoreResult<RunStatus> {
        let mut tx = self.pool.begin().await?;
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM runs WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let status: RunStatus =
            status.ok_or_else(|| StoreError::NotFound(format!("run {id:?}")))?.parse().map_err(anyhow::Error::msg)?;
        if status.is_final() {
            return Err(StoreError::Conflict(format!("run {id} is already {status}")));
        }
        sqlx::query("UPDATE runs SET cancel_requested = TRUE WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(status)
    }

    pub async fn get_run(&self, id: &str) -> StoreResult<Option<RunRow>> {
        let row = sqlx::query(
            "SELECT id, runbook, runbook_hash, trigger_kind, trigger_source, params, status, error,
                    created_at, started_at, finished_at FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| RunRow::from_row(&r)).transpose()
    }

    pub async fn interrupt(&self, id: &str, owner: &str, why: &str) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE runs SET status = 'interrupted', error = $1, finished_at = $2
             WHERE id = $3 AND owner = $4 AND status IN ('running', 'waiting_approval')",
        )
        .bind(format!("interrupted: {why}"))
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            return Ok(false);
        }
        close_running_attempts(&mut tx, id, now).await?;
        sqlx::query(
            "UPDATE approvals SET status = 'rejected', reason = 'run interrupted', decided_at = $1
             WHERE run_id = $2 AND status = 'pending'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done == 1)
    }

    pub async fn requeue(&self, id: &str, owner: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE runs SET status = 'queued', owner = NULL, heartbeat_at = NULL
             WHERE id = $1 AND owner = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            return Ok(false);
        }
        close_running_attempts(&mut tx, id, now_ms()).await?;
        tx.commit().await?;
        Ok(done == 1)
    }

    pub async fn leases(&self) -> StoreResult<Vec<Lease>> {
        let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT id, owner, heartbeat_at FROM runs WHERE status IN ('running', 'waiting_approval') AND owner IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(run_id, owner, heartbeat_at)| Lease { run_id, owner, heartbeat_at }).collect())
    }
}

/// Marks the attempts of a run still `running` as interrupted.
async fn close_running_attempts(db: &mut PgConnection, run_id: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE step_attempts SET status = 'interrupted', outcome = 'interrupted', error = $1, finished_at = $2
         WHERE run_id = $3 AND status = 'running'",
    )
    .bind("the run was interrupted during this attempt")
    .bind(now)
    .bind(run_id)
    .execute(db)
    .await?;
    Ok(())
}

/// Gives an unfinished run its final status; returns whether it was unfinished.
pub(super) async fn end_run(
    db: &mut PgConnection,
    id: &str,
    status: RunStatus,
    error: Option<&str>,
    finished_at: i64,
    holder: Option<&str>,
) -> StoreResult<bool> {
    let done = sqlx::query(concat!(
        "UPDATE runs SET status = $1, error = $2, finished_at = $3
         WHERE id = $4 AND status IN ('queued', 'running', 'waiting_approval')
           AND ",
        holds!("$5::text")
    ))
    .bind(status.as_str())
    .bind(error)
    .bind(finished_at)
    .bind(id)
    .bind(holder)
    .execute(db)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Whether `holder` (None: anyone) still holds run `id`, locking its row
/// for the rest of the transaction: it is the owner, or the run never
/// started. A run taken over from a silent owner has another owner, or
/// none but a start time.
pub(super) async fn holds(db: &mut PgConnection, id: &str, holder: Option<&str>) -> StoreResult<bool> {
    let held: Option<i32> = sqlx::query_scalar(concat!(
        "SELECT 1 FROM runs
         WHERE id = $1 AND ",
        holds!("$2::text"),
        "
         FOR UPDATE"
    ))
    .bind(id)
    .bind(holder)
    .fetch_optional(db)
    .await?;
    Ok(held.is_some())
}

/// A run's status and error; an error naming it when there is no such run.
pub(super) async fn status_of(db: &mut PgConnection, id: &str) -> StoreResult<(RunStatus, Option<String>)> {
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT status, error FROM runs WHERE id = $1").bind(id).fetch_optional(db).await?;
    let (status, error) = row.ok_or_else(|| StoreError::NotFound(format!("run {id:?}")))?;
    Ok((status.parse().map_err(anyhow::Error::msg)?, error))
}

/// Inserts a run: queued, or skipped (final at once) with the reason.
/// Returns it as recorded.
pub(super) async fn insert_run(
    db: &mut PgConnection,
    id: &str,
    run: &NewRun,
    skipped: Option<&str>,
    now: i64,
) -> StoreResult<RunRow> {
    let (status, finished) =
        if skipped.is_some() { (RunStatus::Skipped, Some(now)) } else { (RunStatus::Queued, None) };
    sqlx::query(
        "INSERT INTO runs (id, runbook, runbook_hash, trigger_kind, trigger_source, params, status, error,
                           created_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(&run.runbook)
    .bind(&run.runbook_hash)
    .bind(run.trigger_kind.as_str())
    .bind(&run.trigger_source)
    .bind(run.params.to_string())
    .bind(status.as_str())
    .bind(skipped)
    .bind(now)
    .bind(finished)
    .execute(db)
    .await?;
    Ok(RunRow {
        id: id.to_string(),
        runbook: run.runbook.clone(),
        runbook_hash: run.runbook_hash.clone(),
        trigger_kind: run.trigger_kind,
        trigger_source: run.trigger_source.clone(),
        params: run.params.clone(),
        status,
        error: skipped.map(str::to_string),
        created_at: now,
        started_at: None,
        finished_at: finished,
    })
}
