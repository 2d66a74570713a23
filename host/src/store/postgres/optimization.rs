//! Before/after comparisons in PostgreSQL: the `optimization_results` table.

use super::PgStore;
use crate::clock::now_ms;
use crate::store::{OptimizationResult, StoreResult};

impl PgStore {
    pub async fn record_before(
        &self,
        run_id: &str,
        step_id: &str,
        iteration: u32,
        before: &[(String, f64)],
    ) -> StoreResult<Vec<i64>> {
        let (metrics, values): (Vec<&str>, Vec<f64>) = before.iter().map(|(m, v)| (m.as_str(), *v)).unzip();
        // One statement; the ids are given out in the order of `before`.
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO optimization_results (run_id, step_id, iteration, metric, before, recorded_at)
             SELECT $1, $2, $3, b.metric, b.before, $4
             FROM unnest($5::text[], $6::float8[]) WITH ORDINALITY AS b (metric, before, n)
             ORDER BY b.n
             RETURNING id",
        )
        .bind(run_id)
        .bind(step_id)
        .bind(i64::from(iteration))
        .bind(now_ms())
        .bind(&metrics)
        .bind(&values)
        .fetch_all(&self.pool)
        .await?;
        ids.sort_unstable();
        Ok(ids)
    }

    pub async fn record_after(&self, id: i64, after: f64, step_id: &str, iteration: u32) -> StoreResult<()> {
        sqlx::query(
            "UPDATE optimization_results
             SET after = $1, measured_by_step = $2, measured_by_iteration = $3, measured_at = $4
             WHERE id = $5 AND after IS NULL",
        )
        .bind(after)
        .bind(step_id)
        .bind(i64::from(iteration))
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn optimization_results(&self, run_id: &str) -> StoreResult<Vec<OptimizationResult>> {
        let rows = sqlx::query(
            "SELECT step_id, iteration, metric, before, after, measured_by_step, measured_by_iteration
             FROM optimization_results WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(OptimizationResult::from_row).collect()
    }
}
