//! The record of everything tend does: runs, step attempts, metrics,
//! escalations and their notifications, approvals, schedules, alerts,
//! reports, web sessions and plugin state.
//!
//! This module is the façade: [`Store`] and the backend-neutral types
//! callers use, one file per concern (`runs.rs` for the queue and leases,
//! `attempts.rs`, `escalations.rs`, ...). A [`Store`] dispatches every call
//! to its backend: SQLite (`sqlite/`, one file per concern, with the
//! group-commit writer) or PostgreSQL (`postgres/`, the same files, for
//! several hosts sharing one database). All SQL lives under the backends'
//! folders, so another backend follows by adding a folder beside them and
//! a variant to [`Backend`]; `conformance.rs` holds the behaviour every
//! backend must pass.
//!
//! Every write commits before it returns, so a status shown to a user is
//! already durable. Migrations run when the store opens; an applied
//! migration is never edited.
//!
//! Owns no policy: what runs, when, and what is sent are the engine's, the
//! scheduler's and the notifier's. Must not import them (nor serve, api,
//! web or cli); it may implement the traits of capabilities it backs
//! ([`crate::runtime::caps::state::StateStore`]).

/// An enum stored and shown as fixed strings, e.g. a status: `ALL`,
/// `as_str`, `FromStr` (whose error names `$what`, quotes the value and
/// lists the choices), `Display`, and serde and the API schema with the
/// same spellings. The strings are what the database holds: never change
/// one without a migration.
macro_rules! str_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $s:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $s)] $variant, )+
        }

        impl $name {
            /// Every value, in the order declared.
            pub const ALL: [$name; [$($s),+].len()] = [$($name::$variant),+];

            /// The spelling stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $s, )+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    format!("{} {s:?} is not one of {}", $what, names.join(", "))
                })
            }
        }

        /// The spelling, padded to the width asked (`{:<10}` in tables).
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

/// Calls the backend's method of the same name and arguments.
macro_rules! dispatch {
    ($store:expr, $method:ident($($arg:expr),* $(,)?)) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite(b) => b.$method($($arg),*).await,
            $crate::store::Backend::Postgres(b) => b.$method($($arg),*).await,
        }
    };
}

/// The SQL condition that the process in parameter `$p` (NULL: anyone)
/// still holds the run of the row: it is the owner, or the run never
/// started (a queued run cancelled before any claim). A run taken over
/// from a silent owner has another owner, or none but a start time, so the
/// late owner's writes change nothing. One text for every backend, as a
/// literal: `holds!("?4")` (SQLite), `holds!("$4::text")` (PostgreSQL).
macro_rules! holds {
    ($p:literal) => {
        concat!("(", $p, " IS NULL OR owner = ", $p, " OR (owner IS NULL AND started_at IS NULL))")
    };
}

mod alerts;
mod approvals;
mod attempts;
mod columns;
#[cfg(test)]
mod conformance;
mod error;
mod escalations;
mod metrics;
mod optimization;
mod pages;
mod postgres;
mod reports;
mod retention;
mod run_alerts;
mod runs;
mod schedules;
mod sessions;
mod sqlite;
mod state;

pub use alerts::{AlertRow, AlertStatus};
pub use approvals::{ApprovalRow, ApprovalStatus};
pub use attempts::{AttemptEnd, AttemptRow, AttemptStart, AttemptStatus};
pub use error::{StoreError, StoreResult};
pub use escalations::{EscalationRow, EscalationStatus, NewEscalation, NotificationRow, Raised};
pub use metrics::{MetricHistory, MetricPoint};
pub use optimization::{MeasuredBy, OptimizationResult};
pub use pages::PendingApproval;
pub use reports::StoredReport;
pub use run_alerts::RunAlert;
use runs::new_run_id;
pub use runs::{
    ActiveRuns, Heartbeat, Lease, NewRun, Orphan, RUN_RECORD_MAX_ESCALATIONS, RunFilter, RunRecord, RunRow, RunStatus,
    TriggerKind,
};
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
    /// A PostgreSQL database, which several tend processes may share.
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens (creating if needed) the database `path` names and applies
    /// pending migrations. `:memory:` opens a private throwaway database.
    ///
    /// `path` is a file path or a URL: `sqlite:PATH`, `sqlite://PATH`
    /// (`sqlite:///var/lib/tend/tend.db` for an absolute path), and
    /// `sqlite::memory:` for `:memory:`; or a PostgreSQL URL,
    /// `postgres://user:password@host:port/db` (or `postgresql://`), whose
    /// database must exist. Other schemes are refused. A SQLite file is
    /// opened in WAL mode with `synchronous = FULL` (a committed status
    /// survives a crash of the machine) and a 5-second busy timeout, so
    /// several tend processes on one machine can share it; tend processes
    /// on several machines share a PostgreSQL database. Errors about a
    /// URL show it with its password hidden.
    pub async fn open(path: &str) -> anyhow::Result<Store> {
        let backend = if postgres::is_postgres_url(path) {
            Backend::Postgres(postgres::PgStore::open(path).await?)
        } else {
            Backend::Sqlite(sqlite::SqliteStore::open(path).await?)
        };
        Ok(Store { backend })
    }

    /// Whether the database answers, for reads and for writes (a write
    /// waits for the write lock like any write).
    pub async fn ping(&self) -> StoreResult<()> {
        dispatch!(self, ping())
    }
}
