//! Approvals in PostgreSQL: the `approvals` table. A decision is one
//! conditional UPDATE of the run's pending request that re-checks
//! `status = 'pending'` on the row it locked, so of two hosts deciding at
//! once, one decides and the other finds it decided.

use super::PgStore;
use crate::clock::now_ms;
use crate::store::{ApprovalRow, ApprovalStatus, StoreError, StoreResult};

impl PgStore {
    pub async fn request_approval(
        &self,
        run_id: &str,
        step_id: &str,
        iteration: u32,
        message: &str,
        expires_at: i64,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO approvals (run_id, step_id, iteration, message, status, requested_at, expires_at)
             VALUES ($1, $2, $3, $4, 'pending', $5, $6) RETURNING id",
        )
        .bind(run_id)
        .bind(step_id)
        .bind(i64::from(iteration))
        .bind(message)
        .bind(now_ms())
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn approval(&self, id: i64) -> StoreResult<Option<ApprovalRow>> {
        let row = sqlx::query(
            "SELECT id, run_id, step_id, iteration, message, status, requested_at, expires_at, decided_by, decided_at, reason
             FROM approvals WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ApprovalRow::from_row).transpose()
    }

    pub async fn approvals(&self, run_id: &str) -> StoreResult<Vec<ApprovalRow>> {
        let rows = sqlx::query(
            "SELECT id, run_id, step_id, iteration, message, status, requested_at, expires_at, decided_by, decided_at, reason
             FROM approvals WHERE run_id = $1 ORDER BY id",
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
        // The outer `status = 'pending'` is re-checked on the latest version
        // of the row once its lock is granted: a concurrent decision that
        // committed first makes this one update nothing.
        let decided = sqlx::query(
            "UPDATE approvals SET status = $1, decided_by = $2, decided_at = $3, reason = $4
             WHERE id = (SELECT id FROM approvals WHERE run_id = $5 AND status = 'pending' ORDER BY id DESC LIMIT 1)
               AND status = 'pending'
             RETURNING id, run_id, step_id, iteration, message, status, requested_at, expires_at, decided_by,
                       decided_at, reason",
        )
        .bind(status.as_str())
        .bind(by)
        .bind(now_ms())
        .bind(reason)
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = decided {
            return ApprovalRow::from_row(&row);
        }
        let run: Option<String> =
            sqlx::query_scalar("SELECT status FROM runs WHERE id = $1").bind(run_id).fetch_optional(&self.pool).await?;
        Err(match run {
            None => StoreError::NotFound(format!("run {run_id:?}")),
            Some(status) => {
                StoreError::Conflict(format!("run {run_id} is not waiting for an approval (it is {status})"))
            }
        })
    }
}
