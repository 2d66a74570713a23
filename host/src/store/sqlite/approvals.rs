//! Approvals in SQLite: the `approvals` table. A decision is one
//! conditional UPDATE of the run's pending request, so it happens once.

use super::SqliteStore;
use crate::clock::now_ms;
use crate::store::{ApprovalRow, ApprovalStatus, StoreError, StoreResult};
use rusqlite::{OptionalExtension as _, params};

impl SqliteStore {
    pub async fn request_approval(
        &self,
        run_id: &str,
        step_id: &str,
        iteration: u32,
        message: &str,
        expires_at: i64,
    ) -> StoreResult<i64> {
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

    pub async fn approval(&self, id: i64) -> StoreResult<Option<ApprovalRow>> {
        let row = sqlx::query(
            "SELECT id, run_id, step_id, iteration, message, status, requested_at, expires_at, decided_by, decided_at, reason
             FROM approvals WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ApprovalRow::from_row).transpose()
    }

    pub async fn approvals(&self, run_id: &str) -> StoreResult<Vec<ApprovalRow>> {
        let rows = sqlx::query(
            "SELECT id, run_id, step_id, iteration, message, status, requested_at, expires_at, decided_by, decided_at, reason
             FROM approvals WHERE run_id = ? ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ApprovalRow::from_row).collect()
    }

    pub async fn decide_approval(
        &self,
        run_id: &str,
        status: ApprovalStatus,
        by: &str,
        reason: Option<&str>,
    ) -> StoreResult<ApprovalRow> {
        let (run_id, status, by, reason) =
            (run_id.to_string(), status.as_str(), by.to_string(), reason.map(str::to_string));
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
                    None => StoreError::NotFound(format!("run {run_id:?}")),
                    Some(status) => {
                        StoreError::Conflict(format!("run {run_id} is not waiting for an approval (it is {status})"))
                    }
                })
            })
            .await?;
        self.approval(id).await?.ok_or_else(|| StoreError::Backend(anyhow::anyhow!("approval vanished")))
    }
}
