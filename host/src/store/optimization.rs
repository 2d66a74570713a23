//! Before/after comparisons of action steps (a step's `compare`): the
//! `optimization_results` table. The engine records a comparison with its
//! "before" when the action succeeds and completes it with the first
//! later measurement; readers get the change computed here.
//!
//! Backend-neutral; knows nothing of how values are measured.

use super::columns::Columns;
use super::{Store, StoreResult};
use serde::Serialize;

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

    /// A comparison from a row with the columns step_id, iteration,
    /// metric, before, after, measured_by_step, measured_by_iteration, in
    /// that order.
    pub(super) fn from_row(r: &impl Columns) -> StoreResult<OptimizationResult> {
        let by_iteration = r.opt_int(6)?;
        let measured_by =
            r.opt_text(5)?.map(|step_id| MeasuredBy { step_id, iteration: by_iteration.unwrap_or(0) as u32 });
        Ok(OptimizationResult::new(r.text(0)?, r.count(1)?, r.text(2)?, r.float(3)?, r.opt_float(4)?, measured_by))
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
    ) -> StoreResult<Vec<i64>> {
        dispatch!(self, record_before(run_id, step_id, iteration, before))
    }

    /// Completes comparison `id` with its "after", measured by `step_id`
    /// in `iteration`. A comparison already completed keeps its first.
    pub async fn record_after(&self, id: i64, after: f64, step_id: &str, iteration: u32) -> StoreResult<()> {
        dispatch!(self, record_after(id, after, step_id, iteration))
    }

    /// The comparisons of a run, in the order they were recorded.
    pub async fn optimization_results(&self, run_id: &str) -> StoreResult<Vec<OptimizationResult>> {
        dispatch!(self, optimization_results(run_id))
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
}
