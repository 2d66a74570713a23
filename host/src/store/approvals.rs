//! Approval requests of steps that wait for a person: requested, then
//! decided once (approved, rejected or timed out). Backend-neutral.

#[cfg(doc)]
use super::StoreError;
use super::columns::Columns;
use super::{Store, StoreResult};
use serde::Serialize;

str_enum! {
    /// Where an approval request stands.
    pub enum ApprovalStatus("approval status") {
        /// Waiting for a decision.
        Pending = "pending",
        Approved = "approved",
        /// Rejected by a person, or withdrawn by tend when the run ended.
        Rejected = "rejected",
        /// Nobody decided before its timeout (without `on_timeout: approve`).
        TimedOut = "timed_out",
    }
}

/// An approval request.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApprovalRow {
    pub id: i64,
    pub run_id: String,
    pub step_id: String,
    pub iteration: u32,
    pub message: String,
    pub status: ApprovalStatus,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: i64,
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    pub decided_by: Option<String>,
    #[serde(serialize_with = "crate::units::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<i64>,
    pub reason: Option<String>,
}

impl ApprovalRow {
    /// An approval request from a row with the columns id, run_id,
    /// step_id, iteration, message, status, requested_at, expires_at,
    /// decided_by, decided_at, reason, in that order.
    pub(super) fn from_row(r: &impl Columns) -> StoreResult<ApprovalRow> {
        Ok(ApprovalRow {
            id: r.int(0)?,
            run_id: r.text(1)?,
            step_id: r.text(2)?,
            iteration: r.count(3)?,
            message: r.text(4)?,
            status: r.parsed(5)?,
            requested_at: r.int(6)?,
            expires_at: r.int(7)?,
            decided_by: r.opt_text(8)?,
            decided_at: r.opt_int(9)?,
            reason: r.opt_text(10)?,
        })
    }
}

impl Store {
    /// Records a pending approval request and returns its id.
    pub async fn request_approval(
        &self,
        run_id: &str,
        step_id: &str,
        iteration: u32,
        message: &str,
        expires_at: i64,
    ) -> StoreResult<i64> {
        dispatch!(self, request_approval(run_id, step_id, iteration, message, expires_at))
    }

    /// One approval request.
    pub async fn approval(&self, id: i64) -> StoreResult<Option<ApprovalRow>> {
        dispatch!(self, approval(id))
    }

    /// Approval requests of a run, oldest first.
    pub async fn approvals(&self, run_id: &str) -> StoreResult<Vec<ApprovalRow>> {
        dispatch!(self, approvals(run_id))
    }

    /// Decides the pending approval of a run: approved or rejected (or
    /// timed out, by the engine). Errors name the run and what is wrong:
    /// [`StoreError::NotFound`] for no such run, [`StoreError::Conflict`]
    /// when it waits for no approval (a second decision).
    pub async fn decide_approval(
        &self,
        run_id: &str,
        status: ApprovalStatus,
        by: &str,
        reason: Option<&str>,
    ) -> StoreResult<ApprovalRow> {
        dispatch!(self, decide_approval(run_id, status, by, reason))
    }
}
