//! Builders for what a step returns: metrics, findings and the output.

use crate::{Finding, Metric, Severity, StepError, StepOutput};
use serde::{Deserialize, Serialize};

/// A [`Severity`] as it is written in JSON config: `"info"`, `"low"`,
/// `"medium"`, `"high"` or `"critical"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeverityLevel {
    /// Worth knowing; no action needed.
    Info,
    /// Fix when convenient.
    Low,
    /// Fix soon.
    Medium,
    /// Fix now; something is degraded.
    High,
    /// Service is down or data is at risk.
    Critical,
}

impl SeverityLevel {
    /// The names accepted in config, lowest first, for JSON Schema enums.
    pub const NAMES: [&'static str; 5] = ["info", "low", "medium", "high", "critical"];
}

impl From<SeverityLevel> for Severity {
    fn from(level: SeverityLevel) -> Self {
        match level {
            SeverityLevel::Info => Severity::Info,
            SeverityLevel::Low => Severity::Low,
            SeverityLevel::Medium => Severity::Medium,
            SeverityLevel::High => Severity::High,
            SeverityLevel::Critical => Severity::Critical,
        }
    }
}

/// A metric named `name` with `value` and `labels`.
pub fn metric(name: &str, value: f64, labels: &[(&str, &str)]) -> Metric {
    Metric {
        name: name.to_string(),
        value,
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

/// A finding about `resource` (if any).
pub fn finding(
    severity: impl Into<Severity>,
    title: impl Into<String>,
    detail: impl Into<String>,
    resource: Option<&str>,
) -> Finding {
    Finding {
        severity: severity.into(),
        title: title.into(),
        detail: detail.into(),
        resource: resource.map(str::to_string),
    }
}

/// Serializes `data` as the JSON text of a step's output.
pub fn to_json<T: Serialize + ?Sized>(data: &T) -> Result<String, StepError> {
    serde_json::to_string(data).map_err(|e| StepError::Failed(format!("cannot encode the output as JSON: {e}")))
}

/// A step output of `data` (serialized to JSON), `metrics` and `findings`.
pub fn output<T: Serialize + ?Sized>(
    data: &T,
    metrics: Vec<Metric>,
    findings: Vec<Finding>,
) -> Result<StepOutput, StepError> {
    Ok(StepOutput { data: to_json(data)?, metrics, findings })
}
