//! Step attempts: one row per attempt of a step in an iteration (attempt
//! 0 for a step that did not run), with its output, findings, logs and the
//! metrics it recorded. Backend-neutral.

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
