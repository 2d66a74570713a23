//! `steps.<id>`: what expressions and templates see of one step. Built
//! here and nowhere else, so every path (a step that ran, was skipped,
//! failed before running, or was restored after a crash) shows one shape:
//!
//! - `status`: `pending`, `succeeded`, `failed` or `skipped`;
//! - `output`: the step's data (null until it succeeds);
//! - `metrics.<name>`: the value of the metric's first series — the value
//!   itself when the step emitted the name once;
//! - `series.<name>`: every series of the metric, in the order emitted, as
//!   `{labels: {k: v}, value}` — so series that differ only in labels are
//!   all kept (`steps.disk.series.disk_used_percent.filter(s, s.value > 90)`);
//! - `by_label.<name>.<label>.<label value>`: the value of the first series
//!   of the metric with that label value
//!   (`steps.disk.by_label.disk_used_percent.mount["/"]`);
//! - `findings`: the list of `{severity, title, detail, resource}`;
//! - `error`: why it failed (failed steps only).
//!
//! Pure data; no I/O.

use crate::runtime::record::{Finding, Metric};
use serde_json::{Map, Value, json};

/// The status of a step as expressions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Not run (yet) in this run.
    Pending,
    Succeeded,
    Failed,
    /// Its `when` was false.
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

impl std::str::FromStr for StepStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(StepStatus::Pending),
            "succeeded" => Ok(StepStatus::Succeeded),
            "failed" => Ok(StepStatus::Failed),
            "skipped" => Ok(StepStatus::Skipped),
            other => Err(format!("step status {other:?} is not pending, succeeded, failed or skipped")),
        }
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value `metrics.<name>` shows of each metric a step emitted: its
/// first series (the value itself when the step emitted the name once).
/// Also what `measured.<id>.<name>` collects, one value per attempt.
pub fn first_values(metrics: &[Metric]) -> Vec<(&str, f64)> {
    let mut out: Vec<(&str, f64)> = Vec::new();
    for m in metrics {
        if !out.iter().any(|(name, _)| *name == m.name) {
            out.push((&m.name, m.value));
        }
    }
    out
}

/// `steps.<id>` of a step with this status, output, metrics, findings and
/// (for a failed step) error.
pub fn step_view(
    status: StepStatus,
    output: Option<&Value>,
    metrics: &[Metric],
    findings: &[Finding],
    error: Option<&str>,
) -> Value {
    let first: Map<String, Value> = first_values(metrics).into_iter().map(|(n, v)| (n.to_string(), json!(v))).collect();
    let mut series: Map<String, Value> = Map::new();
    let mut by_label: Map<String, Value> = Map::new();
    for m in metrics {
        let value = json!(m.value);
        let labels: Map<String, Value> = m.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        if let Value::Array(list) = series.entry(m.name.clone()).or_insert_with(|| json!([])) {
            list.push(json!({"labels": labels, "value": value}));
        }
        if let Value::Object(index) = by_label.entry(m.name.clone()).or_insert_with(|| json!({})) {
            for (k, v) in &m.labels {
                if let Value::Object(values) = index.entry(k.clone()).or_insert_with(|| json!({})) {
                    values.entry(v.clone()).or_insert_with(|| value.clone());
                }
            }
        }
    }
    let mut view = json!({
        "status": status.as_str(),
        "output": output.cloned().unwrap_or(Value::Null),
        "metrics": first,
        "series": series,
        "by_label": by_label,
        "findings": findings,
    });
    if let (Some(error), Value::Object(map)) = (error, &mut view) {
        map.insert("error".into(), json!(error));
    }
    view
}

/// `steps.<id>` of a step that has not run.
pub fn pending() -> Value {
    step_view(StepStatus::Pending, None, &[], &[], None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: &str, value: f64, labels: &[(&str, &str)]) -> Metric {
        Metric {
            name: name.into(),
            value,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn series_that_differ_only_in_labels_are_all_kept() {
        let metrics = [
            metric("disk_used_percent", 42.0, &[("mount", "/")]),
            metric("disk_used_percent", 97.5, &[("mount", "/var")]),
            metric("load", 0.5, &[]),
        ];
        let v = step_view(StepStatus::Succeeded, Some(&json!({"ok": true})), &metrics, &[], None);
        assert_eq!(v["metrics"], json!({"disk_used_percent": 42.0, "load": 0.5}));
        assert_eq!(
            v["series"]["disk_used_percent"],
            json!([{"labels": {"mount": "/"}, "value": 42.0}, {"labels": {"mount": "/var"}, "value": 97.5}])
        );
        assert_eq!(v["by_label"]["disk_used_percent"]["mount"], json!({"/": 42.0, "/var": 97.5}));
        assert_eq!(v["series"]["load"], json!([{"labels": {}, "value": 0.5}]));
        assert_eq!(v["output"], json!({"ok": true}));
        assert!(v.get("error").is_none());
    }

    #[test]
    fn a_failed_step_shows_its_error_and_a_pending_one_nothing() {
        let v = step_view(StepStatus::Failed, None, &[], &[], Some("boom"));
        assert_eq!(
            (v["status"].as_str(), v["error"].as_str(), &v["output"]),
            (Some("failed"), Some("boom"), &Value::Null)
        );
        assert_eq!(
            pending(),
            json!({"status": "pending", "output": null, "metrics": {}, "series": {}, "by_label": {}, "findings": []})
        );
    }

    #[test]
    fn step_statuses_round_trip_through_their_names() {
        for s in [StepStatus::Pending, StepStatus::Succeeded, StepStatus::Failed, StepStatus::Skipped] {
            assert_eq!(s.as_str().parse::<StepStatus>(), Ok(s));
        }
        assert_eq!(
            "done".parse::<StepStatus>(),
            Err("step status \"done\" is not pending, succeeded, failed or skipped".to_string())
        );
    }
}
