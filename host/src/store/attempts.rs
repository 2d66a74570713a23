//! Step attempts: one row per attempt of a step in an iteration (attempt
//! 0 for a step that did not run), with its output, findings, logs and the
//! metrics it recorded. Backend-neutral.

use super::columns::Columns;
use super::{Store, StoreResult};
use crate::runtime::record::{Finding, LogLine, Metric};
use serde::Serialize;
use serde_json::Value;

str_enum! {
    /// Where an attempt of a step stands.
    pub enum AttemptStatus("attempt status") {
        /// The plugin is running.
        Running = "running",
        Succeeded = "succeeded",
        /// The plugin failed, trapped, or could not be called.
        Failed = "failed",
        /// The run was cancelled during the attempt.
        Cancelled = "cancelled",
        /// The run passed its timeout during the attempt.
        TimedOut = "timed_out",
        /// The process running it died, or the run stopped during it.
        Interrupted = "interrupted",
        /// The step did not run (`when` was false): attempt 0.
        Skipped = "skipped",
    }
}

/// One attempt of one step (or a skipped step, with attempt 0).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AttemptRow {
    pub id: i64,
    pub run_id: String,
    pub step_id: String,
    pub iteration: u32,
    pub attempt: u32,
    pub plugin: String,
    pub plugin_digest: Option<String>,
    pub config: Option<Value>,
    pub input: Option<Value>,
    pub status: AttemptStatus,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub output: Option<Value>,
    pub findings: Vec<Finding>,
    pub logs: Vec<LogLine>,
    pub metrics: Vec<Metric>,
    pub duration_ms: Option<f64>,
    pub peak_memory_bytes: Option<i64>,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: i64,
    #[serde(serialize_with = "crate::units::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<i64>,
}

/// The start of an attempt.
#[derive(Debug, Clone)]
pub struct AttemptStart<'a> {
    pub run_id: &'a str,
    /// The process that must still hold the run for the attempt to be
    /// recorded (the engine's owner); None records it regardless (tools,
    /// tests). Refused with [`super::StoreError::Conflict`] otherwise.
    pub holder: Option<&'a str>,
    pub step_id: &'a str,
    pub iteration: u32,
    pub attempt: u32,
    pub plugin: &'a str,
    pub config: &'a Value,
    pub input: &'a Value,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct AttemptEnd {
    pub status: AttemptStatus,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub plugin_digest: Option<String>,
    pub output: Option<Value>,
    pub findings: Vec<Finding>,
    pub logs: Vec<LogLine>,
    pub duration_ms: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
}

impl AttemptEnd {
    /// An end with `status` and nothing else recorded yet.
    pub fn new(status: AttemptStatus) -> AttemptEnd {
        AttemptEnd {
            status,
            outcome: None,
            error: None,
            plugin_digest: None,
            output: None,
            findings: Vec::new(),
            logs: Vec::new(),
            duration_ms: None,
            peak_memory_bytes: None,
        }
    }
}

impl AttemptRow {
    /// An attempt, without its metrics, from a row with the columns id,
    /// run_id, step_id, iteration, attempt, plugin, plugin_digest, config,
    /// input, status, outcome, error, output, findings, logs, duration_ms,
    /// peak_memory_bytes, started_at, finished_at, in that order.
    pub(super) fn from_row(r: &impl Columns) -> StoreResult<AttemptRow> {
        let list = |i: usize| -> StoreResult<Value> { Ok(r.opt_json(i)?.unwrap_or(Value::Array(Vec::new()))) };
        Ok(AttemptRow {
            id: r.int(0)?,
            run_id: r.text(1)?,
            step_id: r.text(2)?,
            iteration: r.count(3)?,
            attempt: r.count(4)?,
            plugin: r.text(5)?,
            plugin_digest: r.opt_text(6)?,
            config: r.opt_json(7)?,
            input: r.opt_json(8)?,
            status: r.parsed(9)?,
            outcome: r.opt_text(10)?,
            error: r.opt_text(11)?,
            output: r.opt_json(12)?,
            findings: serde_json::from_value(list(13)?)?,
            logs: serde_json::from_value(list(14)?)?,
            metrics: Vec::new(),
            duration_ms: r.opt_float(15)?,
            peak_memory_bytes: r.opt_int(16)?,
            started_at: r.int(17)?,
            finished_at: r.opt_int(18)?,
        })
    }
}

/// Gives each metric of a run to the attempt that recorded it: the
/// successful (last) attempt of its step in its iteration. `metrics` are
/// rows with the columns step_id, iteration, name, value, labels (a JSON
/// object), oldest first.
pub(super) fn attach_metrics<R: Columns>(attempts: &mut [AttemptRow], metrics: &[R]) -> StoreResult<()> {
    for m in metrics {
        let (step, iteration) = (m.text(0)?, m.int(1)?);
        if let Some(a) = attempts
            .iter_mut()
            .rev()
            .find(|a| a.step_id == step && i64::from(a.iteration) == iteration && a.status == AttemptStatus::Succeeded)
        {
            let labels: Vec<(String, String)> =
                serde_json::from_str::<std::collections::BTreeMap<String, String>>(&m.text(4)?)?.into_iter().collect();
            a.metrics.push(Metric { name: m.text(2)?, value: m.float(3)?, labels });
        }
    }
    Ok(())
}

impl Store {
    /// Records that an attempt started; returns its row id.
    pub async fn start_attempt(&self, a: &AttemptStart<'_>) -> StoreResult<i64> {
        dispatch!(self, start_attempt(a))
    }

    /// Records how an attempt ended.
    pub async fn finish_attempt(&self, id: i64, end: &AttemptEnd) -> StoreResult<()> {
        dispatch!(self, finish_attempt(id, end))
    }

    /// Records a step that did not run, with why (`when` was false, ...).
    pub async fn record_skipped(
        &self,
        run_id: &str,
        step_id: &str,
        iteration: u32,
        plugin: &str,
        reason: &str,
    ) -> StoreResult<()> {
        dispatch!(self, record_skipped(run_id, step_id, iteration, plugin, reason))
    }

    /// Every attempt of a run in order, with the metrics each recorded.
    pub async fn attempts(&self, run_id: &str) -> StoreResult<Vec<AttemptRow>> {
        dispatch!(self, attempts(run_id))
    }
}
