//! Metrics steps returned, by runbook, step and name: series over time
//! and the history earlier runs give a run's expressions. Backend-neutral.

use super::columns::Columns;
use super::{Store, StoreResult};
use crate::runtime::record::Metric;
use serde::Serialize;
use serde_json::Value;

/// A point of a metric series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPoint {
    pub run_id: String,
    pub step_id: String,
    pub iteration: u32,
    pub value: f64,
    pub labels: Value,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    pub recorded_at: i64,
}

/// Earlier values of each step's metrics: step id, then metric name, then
/// one value per earlier run, oldest first ([`Store::metric_history`]).
pub type MetricHistory = std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<f64>>>;

impl MetricPoint {
    /// A point from a row with the columns run_id, step_id, iteration,
    /// value, labels, recorded_at, in that order.
    pub(super) fn from_row(r: &impl Columns) -> StoreResult<MetricPoint> {
        Ok(MetricPoint {
            run_id: r.text(0)?,
            step_id: r.text(1)?,
            iteration: r.count(2)?,
            value: r.float(3)?,
            labels: r.json(4)?,
            recorded_at: r.int(5)?,
        })
    }
}

impl Store {
    /// Records the metrics a step returned.
    pub async fn insert_metrics(
        &self,
        run_id: &str,
        runbook: &str,
        step_id: &str,
        iteration: u32,
        metrics: &[Metric],
    ) -> StoreResult<()> {
        dispatch!(self, insert_metrics(run_id, runbook, step_id, iteration, metrics))
    }

    /// A metric of a runbook over time, oldest first, across runs and
    /// iterations: before/after comparisons in one query.
    pub async fn metric_series(&self, runbook: &str, name: &str, limit: u32) -> StoreResult<Vec<MetricPoint>> {
        dispatch!(self, metric_series(runbook, name, limit))
    }

    /// What each step of `runbook` measured in its `runs` latest finished
    /// runs other than `except_run`: `{step id: {metric name: [value, ...]}}`,
    /// one value per run (the run's last measurement), oldest first. Only
    /// metrics without labels: a labelled series has no single value.
    /// Reads the runs through their index, then their metrics through
    /// `metrics_by_run`: it never scans the runbook's whole history.
    pub async fn metric_history(&self, runbook: &str, except_run: &str, runs: u32) -> StoreResult<MetricHistory> {
        dispatch!(self, metric_history(runbook, except_run, runs))
    }
}
