//! Which Alertmanager alert instances started which runs (`run_alerts`),
//! so a run's record shows its alerts as they are now: firing, or
//! resolved and when.
//!
//! Backend-neutral; the alerts themselves are recorded by [`Store::record_alert`].

use super::columns::Columns;
use super::{AlertStatus, Store, StoreResult};
use serde::Serialize;
use serde_json::Value;

/// An alert instance that started a run: `GET /v1/runs/{id}`'s `alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunAlert {
    /// The `alertname` label, e.g. `DemoErrorRate`.
    pub alertname: Option<String>,
    pub fingerprint: String,
    pub labels: Value,
    pub status: AlertStatus,
    /// As Alertmanager sent it (RFC 3339).
    pub starts_at: String,
    /// As Alertmanager sent it (RFC 3339); null while firing.
    pub ends_at: Option<String>,
    /// When tend received the resolution; null while firing.
    #[serde(serialize_with = "crate::units::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<i64>,
    /// When tend first received the alert.
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: i64,
}

impl RunAlert {
    /// A run's alert from a row with the alert's columns fingerprint,
    /// labels, status, starts_at, ends_at, resolved_at, first_seen_at, in
    /// that order.
    pub(super) fn from_row(r: &impl Columns) -> StoreResult<RunAlert> {
        let labels = r.json(1)?;
        Ok(RunAlert {
            alertname: labels.get("alertname").and_then(Value::as_str).map(str::to_string),
            fingerprint: r.text(0)?,
            labels,
            status: r.parsed(2)?,
            starts_at: r.text(3)?,
            ends_at: r.opt_text(4)?,
            resolved_at: r.opt_int(5)?,
            received_at: r.int(6)?,
        })
    }
}

impl Store {
    /// Records that an alert instance started (or was re-sent for) a run.
    /// Recording it again changes nothing.
    pub async fn link_alert(&self, run_id: &str, fingerprint: &str, starts_at: &str) -> StoreResult<()> {
        dispatch!(self, link_alert(run_id, fingerprint, starts_at))
    }

    /// The alerts that started a run, oldest first.
    pub async fn run_alerts(&self, run_id: &str) -> StoreResult<Vec<RunAlert>> {
        dispatch!(self, run_alerts(run_id))
    }

    /// The runs an alert instance started.
    pub async fn alert_runs(&self, fingerprint: &str, starts_at: &str) -> StoreResult<Vec<String>> {
        dispatch!(self, alert_runs(fingerprint, starts_at))
    }
}
