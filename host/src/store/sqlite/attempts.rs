//! Step attempts in SQLite: the `step_attempts` table, read with the
//! `metrics` each successful attempt recorded.

use super::SqliteStore;
use crate::clock::now_ms;
use crate::store::attempts::attach_metrics;
use crate::store::{AttemptEnd, AttemptRow, AttemptStart, StoreError, StoreResult};
use rusqlite::OptionalExtension as _;
use rusqlite::params;
use serde_json::Value;

impl SqliteStore {
    pub async fn start_attempt(&self, a: &AttemptStart<'_>) -> StoreResult<i64> {
        let (run_id, step_id, plugin) = (a.run_id.to_string(), a.step_id.to_string(), a.plugin.to_string());
        let (iteration, attempt) = (i64::from(a.iteration), i64::from(a.attempt));
        let (config, input, holder) = (a.config.to_string(), a.input.to_string(), a.holder.map(str::to_string));
        self.writer
            .write(move |db| {
                let held = db
                    .prepare_cached(concat!("SELECT 1 FROM runs WHERE id = ?3 AND ", holds!("?4")))?
                    .query_row(params![None::<String>, None::<String>, run_id, holder], |_| Ok(()))
                    .optional()?;
                if held.is_none() {
                    return Err(StoreError::lost(&run_id, holder.as_deref()));
                }
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

    pub async fn finish_attempt(&self, id: i64, end: &AttemptEnd) -> StoreResult<()> {
        let output = end.output.as_ref().map(Value::to_string);
        let findings = serde_json::to_string(&end.findings)?;
        let logs = serde_json::to_string(&end.logs)?;
        let (status, outcome, error) = (end.status.as_str(), end.outcome.clone(), end.error.clone());
        let (digest, duration_ms, peak) =
            (end.plugin_digest.clone(), end.duration_ms, end.peak_memory_bytes.map(|b| b as i64));
        self.writer
            .write(move |db| {
                db.prepare_cached(
                    "UPDATE step_attempts SET status = ?, outcome = ?, error = ?, plugin_digest = ?, output = ?,
                            findings = ?, logs = ?, duration_ms = ?, peak_memory_bytes = ?, finished_at = ?
                     WHERE id = ? AND status = 'running'",
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

    pub async fn record_skipped(
        &self,
        run_id: &str,
        step_id: &str,
        iteration: u32,
        plugin: &str,
        reason: &str,
    ) -> StoreResult<()> {
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

    pub async fn attempts(&self, run_id: &str) -> StoreResult<Vec<AttemptRow>> {
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
        let mut out: Vec<AttemptRow> = rows.iter().map(AttemptRow::from_row).collect::<StoreResult<_>>()?;
        attach_metrics(&mut out, &metric_rows)?;
        Ok(out)
    }
}
