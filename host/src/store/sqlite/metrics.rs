//! Metrics in SQLite: the `metrics` table (labels as a JSON object with
//! sorted keys, so `'{}'` is "no labels").

use super::SqliteStore;
use crate::clock::now_ms;
use crate::runtime::record::Metric;
use crate::store::{MetricHistory, MetricPoint, StoreResult};
use rusqlite::params;
use sqlx::Row;

impl SqliteStore {
    pub async fn insert_metrics(
        &self,
        run_id: &str,
        runbook: &str,
        step_id: &str,
        iteration: u32,
        metrics: &[Metric],
    ) -> StoreResult<()> {
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
            .collect::<StoreResult<_>>()?;
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

    pub async fn metric_series(&self, runbook: &str, name: &str, limit: u32) -> StoreResult<Vec<MetricPoint>> {
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
        rows.iter().map(MetricPoint::from_row).collect()
    }

    pub async fn metric_history(&self, runbook: &str, except_run: &str, runs: u32) -> StoreResult<MetricHistory> {
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
}
