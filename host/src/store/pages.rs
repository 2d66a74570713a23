//! The paged lists (the API's and the web view's): runs by runbook and/or status,
//! pending approvals, escalations by status, and the counts in its header.
//! A page must cost the same with 100 or 100,000 runs: each backend walks
//! an index newest first and stops at the page size. Backend-neutral.

use super::{ApprovalRow, EscalationRow, EscalationStatus, RunFilter, RunRow, RunStatus, Store, StoreResult};

/// An approval request waiting for a decision, with its run's runbook.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PendingApproval {
    pub approval: ApprovalRow,
    pub runbook: String,
}

impl Store {
    /// A page of runs, newest first: the filter's runbook and status, older
    /// than `before`, at most `limit` (by default 50). Reads only the page,
    /// walking an index, however many runs are recorded.
    pub async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRow>> {
        dispatch!(self, list_runs(filter))
    }

    /// How many runs have `status`.
    pub async fn count_runs(&self, status: RunStatus) -> StoreResult<i64> {
        dispatch!(self, count_runs(status))
    }

    /// Approval requests waiting for a decision, newest first, at most `limit`.
    pub async fn pending_approvals(&self, limit: u32) -> StoreResult<Vec<PendingApproval>> {
        dispatch!(self, pending_approvals(limit))
    }

    /// Escalations with `status`, newest first, older than the id `before`, at most `limit`; without their
    /// notifications (`notifications` is empty).
    pub async fn escalation_page(
        &self,
        status: EscalationStatus,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<EscalationRow>> {
        dispatch!(self, escalation_page(status, before, limit))
    }

    /// How many escalations have `status`.
    pub async fn count_escalations(&self, status: EscalationStatus) -> StoreResult<i64> {
        dispatch!(self, count_escalations(status))
    }

    /// The database's plan for a page of runs with this filter, one step a line
    /// (tests check that it walks an index and sorts nothing).
    pub async fn list_runs_plan(&self, filter: &RunFilter) -> StoreResult<Vec<String>> {
        dispatch!(self, list_runs_plan(filter))
    }
}
