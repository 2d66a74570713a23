//! Metrics in PostgreSQL: the `metrics` table (labels as a JSON object with
//! sorted keys, so `'{}'` is "no labels").

use super::PgStore;
use crate::clock::now_ms;
use crate::runtime::record::Metric;
use crate::store::{MetricHistory, MetricPoint, StoreResult};
use sqlx::Row;

impl PgStore {
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
        let mut names = Vec::with_capacity(metrics.len());
        let mut values = Vec::with_capacity(metrics.len());
        let mut labels = Vec::with_capacity(metrics.len());
        for m in metrics {
            let sorted: std::collections::BTreeMap<&str, &str> =
                m.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            names.push(m.name.clone());
            values.push(m.value);
            labels.push(serde_json::to_string(&sorted)?);
        }
        // One statement for all of them, in the order given (ids ascending).
        sqlx::query(
            "INSERT INTO metrics (run_id, runbook, step_id, iteration, name, value, labels, recorded_at)
             SELECT $1, $2, $3, $4, m.name, m.value, m.labels, $5
             FROM unnest($6::text[], $7::float8[], $8::text[]) WITH ORDINALITY AS m (name, value, labels, n)
             ORDER BY m.n",
        )
        .bind(run_id)
        .bind(runbook)
        .bind(step_id)
        .bind(i64::from(iteration))
        .bind(now_ms())
        .bind(&names)
        .bind(&values)
        .bind(&labels)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn metric_series(&self, runbook: &str, name: &str, limit: u32) -> StoreResult<Vec<MetricPoint>> {
        let rows = sqlx::query(
            "SELECT run_id, step_id, iteration, value, labels, recorded_at FROM (
                 SELECT * FROM metrics WHERE runbook = $1 AND name = $2 ORDER BY id DESC LIMIT $3
             ) AS latest ORDER BY id",
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
                 WHERE runbook = $1 AND id <> $2 AND finished_at IS NOT NULL
                 ORDER BY created_at DESC LIMIT $3
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
            history.entry(r.try_get(0)?).or_default().entry(r.try_get(1)?).or_default().push(r.try_get(2)?);
        }
        Ok(history)
    }
}
