//! Alertmanager alert instances as received: one row per instance
//! (fingerprint and start), from firing to resolved. Backend-neutral.

use super::columns::Columns;
use super::{Store, StoreResult};
use serde::Serialize;
use serde_json::Value;

str_enum! {
    /// Whether an Alertmanager alert instance still fires.
    pub enum AlertStatus("alert status") {
        Firing = "firing",
        Resolved = "resolved",
    }
}

/// An Alertmanager alert instance.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertRow {
    pub fingerprint: String,
    pub starts_at: String,
    pub status: AlertStatus,
    pub labels: Value,
    pub annotations: Value,
    pub ends_at: Option<String>,
    pub group_key: Option<String>,
}

impl AlertRow {
    /// An alert instance from a row with the columns fingerprint,
    /// starts_at, status, labels, annotations, ends_at, group_key, in that
    /// order.
    pub(super) fn from_row(r: &impl Columns) -> StoreResult<AlertRow> {
        Ok(AlertRow {
            fingerprint: r.text(0)?,
            starts_at: r.text(1)?,
            status: r.parsed(2)?,
            labels: r.json(3)?,
            annotations: r.json(4)?,
            ends_at: r.opt_text(5)?,
            group_key: r.opt_text(6)?,
        })
    }
}

impl Store {
    /// Records an Alertmanager alert instance (firing or resolved); a
    /// repeated notification updates the same row.
    pub async fn record_alert(&self, a: &AlertRow) -> StoreResult<()> {
        dispatch!(self, record_alert(a))
    }

    /// Recorded alerts, most recently seen first.
    pub async fn alerts(&self, limit: u32) -> StoreResult<Vec<AlertRow>> {
        dispatch!(self, alerts(limit))
    }
}
