//! Step attempts in PostgreSQL: the `step_attempts` table, read with the
//! `metrics` each successful attempt recorded.

use super::PgStore;
use super::runs::holds;
use crate::clock::now_ms;
use crate::store::attempts::attach_metrics;
use crate::store::{AttemptEnd, AttemptRow, AttemptStart, StoreError, StoreResult};
use serde_json::Value;

impl PgStore {
    pub async fn start_attempt(&self, a: &AttemptStart<'_>) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await?;
        if !holds(&mut tx, a.run_id, a.holder).await? {
            return Err(StoreError::lost(a.run_id, a.holder));
        }
        let id = sqlx::query_scalar(
            "INSERT INTO step_attempts (run_id, step_id, iteration, attempt, plugin, config, input, status, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8) RETURNING id",
        )
        .bind(a.run_id)
        .bind(a.step_id)
        .bind(i64::from(a.iteration))
        .bind(i64::from(a.attempt))
        .bind(a.plugin)
        .bind(a.config.to_string())
        .bind(a.input.to_string())
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn finish_attempt(&self, id: i64, end: &AttemptEnd) -> StoreResult<()> {
        sqlx::query(
            "UPDATE step_attempts SET status = $1, outcome = $2, error = $3, plugin_digest = $4, output = $5,
                    findings = $6, logs = $7, duration_ms = $8, peak_memory_bytes = $9, finished_at = $10
             WHERE id = $11 AND status = 'running'",
        )
        .bind(end.status.as_str())
        .bind(&end.outcome)
        .bind(&end.error)
        .bind(&end.plugin_digest)
        .bind(end.output.as_ref().map(Value::to_string))
        .bind(serde_json::to_string(&end.findings)?)
        .bind(serde_json::to_string(&end.logs)?)
        .bind(end.duration_ms)
        .bind(end.peak_memory_bytes.map(|b| b as i64))
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_skipped(
        &self,
        run_id: &str,
        step_id: &str,
        iteration: u32,
        plugin: &str,
        reason: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO step_attempts (run_id, step_id, iteration, attempt, plugin, status, outcome, error,
                                        started_at, finished_at, duration_ms)
             VALUES ($1, $2, $3, 0, $4, 'skipped', 'skipped', $5, $6, $6, 0)",
        )
        .bind(run_id)
        .bind(step_id)
        .bind(i64::from(iteration))
        .bind(plugin)
        .bind(reason)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn attempts(&self, run_id: &str) -> StoreResult<Vec<AttemptRow>> {
        let rows = sqlx::query(
            "SELECT id, run_id, step_id, iteration, attempt, plugin, plugin_digest, config, input, status, outcome,
                    error, output, findings, logs, duration_ms, peak_memory_bytes, started_at, finished_at
             FROM step_attempts WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        let metric_rows =
            sqlx::query("SELECT step_id, iteration, name, value, labels FROM metrics WHERE run_id = $1 ORDER BY id")
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
        let mut out: Vec<AttemptRow> = rows.iter().map(AttemptRow::from_row).collect::<StoreResult<_>>()?;
        attach_metrics(&mut out, &metric_rows)?;
        Ok(out)
    }
}
