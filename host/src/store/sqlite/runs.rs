//! Runs, the queue and leases in SQLite: the `runs` and
//! `idempotency_keys` tables. A claim is one statement, so two processes
//! sharing the file never both take a runbook's last slot.

use super::SqliteStore;
use crate::clock::now_ms;
use crate::store::{
    ActiveRuns, AttemptStatus, Heartbeat, Lease, NewRun, RunRow, RunStatus, StoreError, StoreResult, new_run_id,
};
use rusqlite::{OptionalExtension as _, params};
use std::collections::HashMap;

impl SqliteStore {
    pub async fn create_run(&self, run: &NewRun) -> StoreResult<RunRow> {
        let run = run.clone();
        self.writer.write(move |db| insert_run(db, &new_run_id(), &run, None, now_ms())).await
    }

    pub async fn create_run_once(&self, run: &NewRun, key: &str) -> StoreResult<(String, Option<RunRow>)> {
        let (run, key) = (run.clone(), key.to_string());
        self.writer
            .write(move |db| {
                let existing: Option<(String, String)> = db
                    .prepare_cached("SELECT runbook, run_id FROM idempotency_keys WHERE key = ?")?
                    .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((runbook, id)) = existing {
                    if runbook != run.runbook {
                        return Err(StoreError::Conflict(format!(
                            "idempotency key {key:?} was already used for runbook {runbook:?}"
                        )));
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
            "SELECT runbook, COALESCE(SUM(status = 'queued'), 0),
                    COALESCE(SUM(status IN ('running', 'waiting_approval')), 0)
             FROM runs WHERE status IN ('queued', 'running', 'waiting_approval') GROUP BY runbook",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(rb, queued, running)| (rb, ActiveRuns { queued, running })).collect())
    }

    pub async fn fail_queued(&self, id: &str, why: &str) -> StoreResult<bool> {
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

    pub async fn claim_run(&self, id: &str, owner: &str, cap: Option<u32>) -> StoreResult<bool> {
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

    pub async fn set_run_status(&self, id: &str, status: RunStatus, holder: Option<&str>) -> StoreResult<()> {
        let (id, holder) = (id.to_string(), holder.map(str::to_string));
        self.writer
            .write(move |db| {
                db.prepare_cached(concat!(
                    "UPDATE runs SET status = ?1, heartbeat_at = ?2 WHERE id = ?3 AND ",
                    holds!("?4")
                ))?
                .execute(params![status.as_str(), now_ms(), id, holder])?;
                Ok(())
            })
            .await
    }

    pub async fn heartbeat(&self, id: &str, owner: &str) -> StoreResult<Heartbeat> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.writer
            .write(move |db| {
                let cancel: Option<i64> = db
                    .prepare_cached(
                        "UPDATE runs SET heartbeat_at = ?1 WHERE id = ?2 AND (owner IS NULL OR owner = ?3)
                         RETURNING cancel_requested",
                    )?
                    .query_row(params![now_ms(), id, owner], |r| r.get(0))
                    .optional()?;
                Ok(match cancel {
                    None => Heartbeat::Lost,
                    Some(0) => Heartbeat::Alive,
                    Some(_) => Heartbeat::CancelRequested,
                })
            })
            .await
    }

    pub async fn finish_run(
        &self,
        id: &str,
        status: RunStatus,
        error: Option<&str>,
        holder: Option<&str>,
    ) -> StoreResult<(RunStatus, Option<String>)> {
        debug_assert!(status.is_final());
        let (id, error, holder) = (id.to_string(), error.map(str::to_string), holder.map(str::to_string));
        self.writer
            .write(move |db| {
                db.prepare_cached(concat!(
                    "UPDATE runs SET status = ?1, error = ?2, finished_at = ?5
                     WHERE id = ?3 AND status IN ('queued', 'running', 'waiting_approval') AND ",
                    holds!("?4")
                ))?
                .execute(params![status.as_str(), error, id, holder, now_ms()])?;
                let (status, error): (String, Option<String>) = db
                    .prepare_cached("SELECT status, error FROM runs WHERE id = ?")?
                    .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                    .ok_or_else(|| StoreError::NotFound(format!("run {id:?}")))?;
                Ok((status.parse().map_err(anyhow::Error::msg)?, error))
            })
            .await
    }

    pub async fn close_open_attempts(&self, run_id: &str, status: RunStatus, holder: Option<&str>) -> StoreResult<()> {
        let (attempt_status, why) = match status {
            RunStatus::TimedOut => (AttemptStatus::TimedOut, "the run passed its timeout during this attempt"),
            RunStatus::Cancelled => (AttemptStatus::Cancelled, "the run was cancelled during this attempt"),
            _ => (AttemptStatus::Interrupted, "the run stopped during this attempt"),
        };
        let (run_id, holder) = (run_id.to_string(), holder.map(str::to_string));
        self.writer
            .write(move |db| {
                let held = db
                    .prepare_cached(concat!("SELECT 1 FROM runs WHERE id = ?3 AND ", holds!("?4")))?
                    .query_row(params![None::<String>, None::<String>, run_id, holder], |_| Ok(()))
                    .optional()?;
                if held.is_none() {
                    return Ok(());
                }
                let now = now_ms();
                db.prepare_cached(
                    "UPDATE step_attempts SET status = ?, outcome = ?, error = ?, finished_at = ?
                     WHERE run_id = ? AND status = 'running'",
                )?
                .execute(params![
                    attempt_status.as_str(),
                    attempt_status.as_str(),
                    why,
                    now,
                    run_id
                ])?;
                db.prepare_cached(
                    "UPDATE approvals SET status = 'rejected', reason = ?, decided_at = ?, decided_by = 'tend'
                     WHERE run_id = ? AND status = 'pending'",
                )?
                .execute(params![format!("the run ended ({})", status.as_str()), now, run_id])?;
                Ok(())
            })
            .await
    }

    pub async fn request_cancel(&self, id: &str) -> StoreResult<RunStatus> {
        let id = id.to_string();
        self.writer
            .write(move |db| {
                let status: String = db
                    .prepare_cached("SELECT status FROM runs WHERE id = ?")?
                    .query_row([&id], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| StoreError::NotFound(format!("run {id:?}")))?;
                let status: RunStatus = status.parse().map_err(anyhow::Error::msg)?;
                if status.is_final() {
                    return Err(StoreError::Conflict(format!("run {id} is already {status}")));
                }
                db.prepare_cached("UPDATE runs SET cancel_requested = 1 WHERE id = ?")?.execute([&id])?;
                Ok(status)
            })
            .await
    }

    pub async fn get_run(&self, id: &str) -> StoreResult<Option<RunRow>> {
        let row = sqlx::query(RUN_SELECT_BY_ID).bind(id).fetch_optional(&self.pool).await?;
        row.map(|r| RunRow::from_row(&r)).transpose()
    }

    pub async fn interrupt(&self, id: &str, owner: &str, why: &str) -> StoreResult<bool> {
        let (id, owner, why) = (id.to_string(), owner.to_string(), why.to_string());
        self.writer
            .write(move |db| {
                let now = now_ms();
                let done = db
                    .prepare_cached(
                        "UPDATE runs SET status = 'interrupted', error = ?, finished_at = ?
                         WHERE id = ? AND owner = ? AND status IN ('running', 'waiting_approval')",
                    )?
                    .execute(params![format!("interrupted: {why}"), now, id, owner])?;
                if done == 0 {
                    return Ok(false);
                }
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

    pub async fn requeue(&self, id: &str, owner: &str) -> StoreResult<bool> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.writer
            .write(move |db| {
                let done = db
                    .prepare_cached(
                        "UPDATE runs SET status = 'queued', owner = NULL, heartbeat_at = NULL
                         WHERE id = ? AND owner = ? AND status = 'running'",
                    )?
                    .execute([&id, &owner])?;
                if done == 0 {
                    return Ok(false);
                }
                close_running_attempts(db, &id, now_ms())?;
                Ok(done == 1)
            })
            .await
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
fn close_running_attempts(db: &rusqlite::Connection, run_id: &str, now: i64) -> StoreResult<()> {
    db.prepare_cached(
        "UPDATE step_attempts SET status = 'interrupted', outcome = 'interrupted', error = ?, finished_at = ?
         WHERE run_id = ? AND status = 'running'",
    )?
    .execute(params!["the run was interrupted during this attempt", now, run_id])?;
    Ok(())
}

/// Inserts a run: queued, or skipped (final at once) with the reason.
/// Returns it as recorded.
pub(super) fn insert_run(
    db: &rusqlite::Connection,
    id: &str,
    run: &NewRun,
    skipped: Option<&str>,
    now: i64,
) -> StoreResult<RunRow> {
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
        run.trigger_kind.as_str(),
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

static RUN_SELECT_BY_ID: &str = "SELECT id, runbook, runbook_hash, trigger_kind, trigger_source, params, status, error,
        created_at, started_at, finished_at FROM runs WHERE id = ?";
