//! Reports written when a run finishes (a runbook's `report`): the
//! `run_reports` table, one report per run, replaced when it is rendered
//! again (an alert resolved after the run ended).
//!
//! Backend-neutral; the Markdown is rendered elsewhere ([`crate::report`]).

use super::{RunStatus, Store, StoreResult};

/// A run's stored report.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReport {
    /// e.g. `postmortem`.
    pub kind: String,
    pub markdown: String,
    /// ms since the epoch.
    pub rendered_at: i64,
}

impl Store {
    /// Stores (or replaces) the report of a run.
    pub async fn save_report(&self, run_id: &str, kind: &str, markdown: &str) -> StoreResult<()> {
        dispatch!(self, save_report(run_id, kind, markdown))
    }

    /// Ends a run with a final status at `finished_at` and stores its
    /// report (kind, Markdown) in the same transaction. A run already
    /// final (or, with a `holder`, held by another process: see
    /// [`Store::finish_run`]) keeps its status and gets no report from
    /// here. Returns the run's status and error, and whether the report was
    /// stored.
    pub async fn finish_run_reported(
        &self,
        id: &str,
        status: RunStatus,
        error: Option<&str>,
        finished_at: i64,
        report: Option<(&str, &str)>,
        holder: Option<&str>,
    ) -> StoreResult<(RunStatus, Option<String>, bool)> {
        dispatch!(self, finish_run_reported(id, status, error, finished_at, report, holder))
    }

    /// The report of a run, if one was written.
    pub async fn report(&self, run_id: &str) -> StoreResult<Option<StoredReport>> {
        dispatch!(self, report(run_id))
    }
}
