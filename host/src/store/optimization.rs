//! Before/after comparisons of action steps (a step's `compare`): the
//! `optimization_results` table. The engine records a comparison with its
//! "before" when the action succeeds and completes it with the first
//! later measurement; readers get the change computed here.
//!
//! SQL only; knows nothing of how values are measured.

use super::{Store, now_ms};
use rusqlite::params;
use serde::Serialize;
use sqlx::Row;

/// One metric compared around one action: `GET /v1/runs/{id}`'s
/// `optimization_results`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OptimizationResult {
    /// The action step, e.g. `restart`.
    pub step_id: String,
    /// Its iteration (0 outside loops).
    pub iteration: u32,
    /// e.g. `health_score`.
    pub metric: String,
    /// The latest value measured in the run before the action ran.
    pub before: f64,
    /// The first value measured after it succeeded; null when the run
    /// ended first.
    pub after: Option<f64>,
    /// `after - before`.
    pub change: Option<f64>,
    /// `(after - before) / |before| * 100`; null when `before` is 0.
    pub change_percent: Option<f64>,
    /// Which step (and iteration) measured `after`.
    pub measured_by: Option<MeasuredBy>,
}

/// A step of a run in one iteration.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MeasuredBy {
    pub step_id: String,
    pub iteration: u32,
}

impl OptimizationResult {
    /// A comparison with its change computed.
    pub fn new(
        step_id: String,
        iteration: u32,
        metric: String,
        before: f64,
        after: Option<f64>,
        measured_by: Option<MeasuredBy>,
    ) -> OptimizationResult {
        let change = after.map(|a| a - before);
        let change_percent = change.filter(|_| before != 0.0).map(|c| c / before.abs() * 100.0);
        OptimizationResult { step_id, iteration, metric, before, after, change, change_percent, measured_by }
    }
}

impl Store {
    /// Records the "before" of each metric compared around an action that
    /// succeeded; returns each comparison's id, in order.
    pub async fn record_before(
        &self,
        run_id: &str,
        step_id: &str,
        iteration: u32,
        before: &[(String, f64)],
    ) -> anyhow::Result<Vec<i64>> {
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

    /// Completes comparison `id` with its "after", measured by `step_id`
    /// in `iteration`. A comparison already completed keeps its first.
    pub async fn record_after(&self, id: i64, after: f64, step_id: &str, iteration: u32) -> anyhow::Result<()> {
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

    /// The comparisons of a run, in the order they were recorded.
    pub async fn optimization_results(&self, run_id: &str) -> anyhow::Result<Vec<OptimizationResult>> {
        let rows = sqlx::query(
            "SELECT step_id, iteration, metric, before, after, measured_by_step, measured_by_iteration
             FROM optimization_results WHERE run_id = ? ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let by: Option<String> = r.get(5);
                let by_iteration: Option<i64> = r.get(6);
                OptimizationResult::new(
                    r.get(0),
                    r.get::<i64, _>(1) as u32,
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    by.map(|step_id| MeasuredBy { step_id, iteration: by_iteration.unwrap_or(0) as u32 }),
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_is_absolute_and_relative_to_the_size_of_before() {
        let r = OptimizationResult::new("restart".into(), 1, "health_score".into(), 3.0, Some(9.0), None);
        assert_eq!((r.change, r.change_percent), (Some(6.0), Some(200.0)));
        let r = OptimizationResult::new("scale".into(), 0, "drift".into(), -4.0, Some(-2.0), None);
        assert_eq!((r.change, r.change_percent), (Some(2.0), Some(50.0)));
        let r = OptimizationResult::new("scale".into(), 0, "errors".into(), 0.0, Some(2.0), None);
        assert_eq!((r.change, r.change_percent), (Some(2.0), None), "no percentage of zero");
        let r = OptimizationResult::new("scale".into(), 0, "errors".into(), 5.0, None, None);
        assert_eq!((r.change, r.change_percent), (None, None));
    }

    #[tokio::test]
    async fn a_comparison_keeps_its_first_after() {
        let store = Store::open(":memory:").await.unwrap();
        let run = store
            .create_run(&super::super::NewRun {
                runbook: "rb".into(),
                runbook_hash: "h".into(),
                trigger_kind: "cli".into(),
                trigger_source: None,
                params: serde_json::json!({}),
            })
            .await
            .unwrap();
        let ids = store.record_before(&run.id, "restart", 1, &[("health_score".into(), 3.0)]).await.unwrap();
        store.record_after(ids[0], 9.0, "score", 2).await.unwrap();
        store.record_after(ids[0], 1.0, "score", 3).await.unwrap();
        let results = store.optimization_results(&run.id).await.unwrap();
        assert_eq!(
            results,
            vec![OptimizationResult::new(
                "restart".into(),
                1,
                "health_score".into(),
                3.0,
                Some(9.0),
                Some(MeasuredBy { step_id: "score".into(), iteration: 2 })
            )]
        );
    }
}
