//! The record of everything tend does: runs, step attempts, metrics,
//! escalations and their notifications, approvals, schedules, alerts,
//! reports, web sessions and plugin state.
//!
//! This module is the façade: [`Store`] and the backend-neutral types
//! callers use, one file per concern (`runs.rs` for the queue and leases,
//! `attempts.rs`, `escalations.rs`, ...). A [`Store`] dispatches every call
//! to its backend; today the only one is SQLite (`sqlite/`, one file per
//! concern, with the group-commit writer). All SQL lives under the
//! backends' folders, so another backend follows by adding a folder beside
//! `sqlite/` and a variant to [`Backend`]; `conformance.rs` holds the
//! behaviour every backend must pass.
//!
//! Every write commits before it returns, so a status shown to a user is
//! already durable. Migrations run when the store opens; an applied
//! migration is never edited.
//!
//! Owns no policy: what runs, when, and what is sent are the engine's, the
//! scheduler's and the notifier's. Must not import them (nor serve, api,
//! web or cli); it may implement the traits of capabilities it backs
//! ([`crate::runtime::caps::state::StateStore`]).

/// Calls the backend's method of the same name and arguments.
macro_rules! dispatch {
    ($store:expr, $method:ident($($arg:expr),* $(,)?)) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite(b) => b.$method($($arg),*).await,
        }
    };
}

mod alerts;
mod approvals;
mod attempts;
mod error;
mod escalations;
mod metrics;
mod optimization;
mod pages;
mod reports;
mod retention;
mod run_alerts;
mod runs;
mod schedules;
mod sessions;
mod sqlite;
mod state;
#[cfg(test)]
mod tests;

pub use alerts::AlertRow;
pub use approvals::ApprovalRow;
pub use attempts::{AttemptEnd, AttemptRow, AttemptStart};
pub use error::{StoreError, StoreResult};
pub use escalations::{EscalationRow, NewEscalation, NotificationRow, Raised};
pub use metrics::{MetricHistory, MetricPoint};
pub use optimization::{MeasuredBy, OptimizationResult};
pub use pages::PendingApproval;
pub use reports::StoredReport;
pub use run_alerts::RunAlert;
pub use runs::{ActiveRuns, Lease, NewRun, RUN_RECORD_MAX_ESCALATIONS, RunFilter, RunRecord, RunRow, RunStatus};
pub use schedules::{NewSchedule, ScheduleFire};
pub use sessions::SessionRow;

/// The store. Cheap to clone: every backend is a handle to shared state.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

/// Where a [`Store`] keeps its record. An enum, not a trait object: its
/// methods are plain async functions (no boxed futures) and a call costs
/// one `match`.
#[derive(Debug, Clone)]
enum Backend {
    /// A SQLite file (WAL), written through one group-commit writer thread.
    Sqlite(sqlite::SqliteStore),
}

impl Store {
    /// Opens (creating if needed) the database `path` names and applies
    /// pending migrations. `:memory:` opens a private throwaway database.
    ///
    /// `path` is a file path or a URL: `sqlite:PATH`, `sqlite://PATH`
    /// (`sqlite:///var/lib/tend/tend.db` for an absolute path), and
    /// `sqlite::memory:` for `:memory:`. Other schemes are refused. A
    /// SQLite file is opened in WAL mode with `synchronous = FULL` (a
    /// committed status survives a crash of the machine) and a 5-second
    /// busy timeout, so several tend processes can share it.
    pub async fn open(path: &str) -> anyhow::Result<Store> {
        Ok(Store { backend: Backend::Sqlite(sqlite::SqliteStore::open(path).await?) })
    }

    /// Whether the database answers, for reads and for writes (a write
    /// waits for the write lock like any write).
    pub async fn ping(&self) -> StoreResult<()> {
        dispatch!(self, ping())
    }
}
