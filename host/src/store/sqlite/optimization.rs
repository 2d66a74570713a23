//! Before/after comparisons in SQLite: the `optimization_results` table.

use super::SqliteStore;
use crate::clock::now_ms;
use crate::store::{OptimizationResult, StoreResult};
use rusqlite::params;

impl SqliteStore {
    pub async fn record_before(
        &self,
        run_id: &str,
        step_id: &str,
        iteration: u32,
        before: &[(String, f64)],
    ) -> StoreResult<Vec<i64>> {
        let (run_id, step_id, before) = (run_id.to_string(), step_id.to_string(), before.to_vec());
        self.writer
            .write(move |db| {
                let mut insert = db.prepare_cached(
                    "INSERT INTO optimization_results (run_id, step_id, iteration, metric, before, recorded_at)
                     VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                )?;
                let now = now_ms();
                let mut ids = Vec::with_capacity(before.len());
                for (metric, value) in &before {
                    ids.push(
                        insert.query_row(params![run_id, step_id, i64::from(iteration), metric, value, now], |r| {
                            r.get(0)
                        })?,
                    );
                }
                Ok(ids)
            })
            .await
    }

    pub async fn record_after(&self, id: i64, after: f64, step_id: &str, iteration: u32) -> StoreResult<()> {
        let step_id = step_id.to_string();
        self.writer
            .write(move |db| {
                db.prepare_cached(
                    "UPDATE optimization_results
                     SET after = ?, measured_by_step = ?, measured_by_iteration = ?, measured_at = ?
                     WHERE id = ? AND after IS NULL",
                )?
                .execute(params![after, step_id, i64::from(iteration), now_ms(), id])?;
                Ok(())
            })
            .await
    }

    pub async fn optimization_results(&self, run_id: &str) -> StoreResult<Vec<OptimizationResult>> {
        let rows = sqlx::query(
            "SELECT step_id, iteration, metric, before, after, measured_by_step, measured_by_iteration
             FROM optimization_results WHERE run_id = ? ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(OptimizationResult::from_row).collect()
    }
}
