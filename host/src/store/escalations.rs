//! Escalations and their notifications: raising (grouped by dedup key
//! inside a window), acknowledging, resolving, and the record of every
//! notification sent about them. Backend-neutral. Knows nothing of sinks
//! or formats: the notifier decides what is sent and records it here.

use super::columns::Columns;
use super::{Store, StoreResult};
use crate::notify::Status;
use crate::runtime::record::Severity;
use serde::Serialize;
use std::time::Duration;

str_enum! {
    /// Where an escalation stands.
    pub enum EscalationStatus("escalation status") {
        /// Raised; nobody has answered it yet.
        Open = "open",
        /// Someone is on it; still counts occurrences.
        Acknowledged = "acknowledged",
        /// Over: by a person, or by tend when its condition stopped holding.
        Resolved = "resolved",
    }
}

/// An escalation as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EscalationRow {
    pub id: i64,
    pub run_id: String,
    pub runbook: String,
    pub step_id: Option<String>,
    pub iteration: u32,
    pub severity: Severity,
    pub message: String,
    pub dedup_key: String,
    pub status: EscalationStatus,
    pub occurrences: i64,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: i64,
    pub acknowledged_by: Option<String>,
    #[serde(serialize_with = "crate::units::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<i64>,
    pub resolved_by: Option<String>,
    #[serde(serialize_with = "crate::units::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<i64>,
    /// Why it was resolved, e.g. `condition no longer holds at the end of run 01J...`.
    pub resolution: Option<String>,
    pub notifications: Vec<NotificationRow>,
}

/// A notification sent (or attempted) for an escalation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NotificationRow {
    /// What it announced: `triggered`, `acknowledged` or `resolved`.
    pub event: crate::notify::Status,
    /// `log`, `webhook:<host>` (JSON) or `<format>:<host>`, e.g. `pagerduty:events.pagerduty.com`.
    pub sink: String,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub sent_at: i64,
    pub ok: bool,
    pub error: Option<String>,
}

/// An escalation about to be raised.
#[derive(Debug, Clone)]
pub struct NewEscalation<'a> {
    pub run_id: &'a str,
    pub runbook: &'a str,
    pub step_id: Option<&'a str>,
    pub iteration: u32,
    pub severity: Severity,
    pub message: &'a str,
    pub dedup_key: &'a str,
}

/// What raising an escalation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    pub id: i64,
    /// True when an open escalation with the same dedup key inside the
    /// window took it in (no new notification is due).
    pub grouped: bool,
}

impl EscalationRow {
    /// An escalation, without its notifications, from a row with the
    /// columns id, run_id, runbook, step_id, iteration, severity, message,
    /// dedup_key, status, occurrences, created_at, last_seen_at,
    /// acknowledged_by, acknowledged_at, resolved_by, resolved_at,
    /// resolution, in that order.
    pub(super) fn from_row(r: &impl Columns) -> StoreResult<EscalationRow> {
        Ok(EscalationRow {
            id: r.int(0)?,
            run_id: r.text(1)?,
            runbook: r.text(2)?,
            step_id: r.opt_text(3)?,
            iteration: r.count(4)?,
            severity: serde_json::from_value(serde_json::Value::String(r.text(5)?))?,
            message: r.text(6)?,
            dedup_key: r.text(7)?,
            status: r.parsed(8)?,
            occurrences: r.int(9)?,
            created_at: r.int(10)?,
            last_seen_at: r.int(11)?,
            acknowledged_by: r.opt_text(12)?,
            acknowledged_at: r.opt_int(13)?,
            resolved_by: r.opt_text(14)?,
            resolved_at: r.opt_int(15)?,
            resolution: r.opt_text(16)?,
            notifications: Vec::new(),
        })
    }
}

impl NotificationRow {
    /// A notification from a row with the columns escalation_id, sink,
    /// sent_at, ok, error, event, in that order.
    pub(super) fn from_row(r: &impl Columns) -> StoreResult<NotificationRow> {
        Ok(NotificationRow {
            event: r.parsed(5)?,
            sink: r.text(1)?,
            sent_at: r.int(2)?,
            ok: r.flag(3)?,
            error: r.opt_text(4)?,
        })
    }
}

impl Store {
    /// Raises an escalation. When an escalation with the same dedup key is
    /// open or acknowledged and was last seen within `window` before `now`,
    /// it is grouped into that one (occurrences + 1) instead.
    pub async fn raise_escalation(&self, e: &NewEscalation<'_>, window: Duration, now: i64) -> StoreResult<Raised> {
        dispatch!(self, raise_escalation(e, window, now))
    }

    /// Records a notification attempt for an escalation: which `event` of
    /// it was announced, to which sink, and how the delivery went.
    pub async fn record_notification(
        &self,
        escalation_id: i64,
        event: Status,
        sink: &str,
        result: &Result<(), String>,
    ) -> StoreResult<()> {
        dispatch!(self, record_notification(escalation_id, event, sink, result))
    }

    /// Escalations, newest first, optionally only those with `status` or
    /// of one run.
    pub async fn list_escalations(
        &self,
        status: Option<EscalationStatus>,
        run_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<EscalationRow>> {
        dispatch!(self, list_escalations(status, run_id, limit))
    }

    /// One escalation with its notifications, or None when there is no such id.
    pub async fn get_escalation(&self, id: i64) -> StoreResult<Option<EscalationRow>> {
        dispatch!(self, get_escalation(id))
    }

    /// Acknowledges an open escalation.
    pub async fn acknowledge_escalation(&self, id: i64, by: &str) -> StoreResult<()> {
        dispatch!(self, acknowledge_escalation(id, by))
    }

    /// Resolves an open or acknowledged escalation, with why when given.
    pub async fn resolve_escalation(&self, id: i64, by: &str, reason: Option<&str>) -> StoreResult<()> {
        dispatch!(self, resolve_escalation(id, by, reason))
    }
}
