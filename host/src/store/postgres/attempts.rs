//! Step attempts in PostgreSQL: the `step_attempts` table, read with the
//! `metrics` each successful attempt recorded.

use super::{PgStore, parsed};
use crate::clock::now_ms;
use crate::runtime::record::Metric;
use crate::store::{AttemptEnd, AttemptRow, AttemptStart, AttemptStatus, StoreResult};
use serde_json::Value;
use sqlx::Row;

impl PgStore {
    pub async fn start_attempt(&self, a: &AttemptStart<'_>) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
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
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn finish_attempt(&self, id: i64, end: &AttemptEnd) -> StoreResult<()> {
        sqlx::query(
            "UPDATE step_attempts SET status = $1, outcome = $2, error = $3, plugin_digest = $4, output = $5,
                    findings = $6, logs = $7, duration_ms = $8, peak_memory_bytes = $9, finished_at = $10
             WHERE id = $11",
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
        let mut out: Vec<AttemptRow> = rows.iter().map(attempt_row).collect::<StoreResult<_>>()?;
        for m in metric_rows {
            let (step, iteration): (String, i64) = (m.try_get(0)?, m.try_get(1)?);
            // Metrics belong to the successful (last) attempt of the step in that iteration.
            if let Some(a) = out.iter_mut().rev().find(|a| {
                a.step_id == step && i64::from(a.iteration) == iteration && a.status == AttemptStatus::Succeeded
            }) {
                let labels: Vec<(String, String)> =
                    serde_json::from_str::<std::collections::BTreeMap<String, String>>(&m.try_get::<String, _>(4)?)?
                        .into_iter()
                        .collect();
                a.metrics.push(Metric { name: m.try_get(2)?, value: m.try_get(3)?, labels });
            }
        }
        Ok(out)
    }
}

fn json_col(r: &sqlx::postgres::PgRow, i: usize) -> StoreResult<Option<Value>> {
    r.try_get::<Option<String>, _>(i)?.map(|s| serde_json::from_str(&s)).transpose().map_err(Into::into)
}

fn attempt_row(r: &sqlx::postgres::PgRow) -> StoreResult<AttemptRow> {
    let list = |i: usize| -> StoreResult<Value> { Ok(json_col(r, i)?.unwrap_or(Value::Array(Vec::new()))) };
    Ok(AttemptRow {
        id: r.try_get(0)?,
        run_id: r.try_get(1)?,
        step_id: r.try_get(2)?,
        iteration: r.try_get::<i64, _>(3)? as u32,
        attempt: r.try_get::<i64, _>(4)? as u32,
        plugin: r.try_get(5)?,
        plugin_digest: r.try_get(6)?,
        config: json_col(r, 7)?,
        input: json_col(r, 8)?,
        status: parsed(r, 9)?,
        outcome: r.try_get(10)?,
        error: r.try_get(11)?,
        output: json_col(r, 12)?,
        findings: serde_json::from_value(list(13)?)?,
        logs: serde_json::from_value(list(14)?)?,
        metrics: Vec::new(),
        duration_ms: r.try_get(15)?,
        peak_memory_bytes: r.try_get(16)?,
        started_at: r.try_get(17)?,
        finished_at: r.try_get(18)?,
    })
}
