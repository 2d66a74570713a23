//! The SQLite backend: a database file in WAL mode. Reads use a pool of
//! async connections (sqlx); every write goes through one writer thread
//! ([`writer`]) that commits the writes of concurrent tasks in one
//! transaction, so many runs share each fsync. One file per concern, as in
//! the façade above; each holds that concern's SQL and nothing else.

mod alerts;
mod approvals;
mod attempts;
mod escalations;
mod metrics;
mod open;
mod optimization;
mod pages;
mod reports;
mod retention;
mod run_alerts;
mod runs;
mod schedules;
mod sessions;
mod state;
mod writer;

use crate::store::StoreError;
use sqlx::SqlitePool;

/// A SQLite store. Cheap to clone (a pool, a channel to the writer).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: writer::Writer,
    /// Keeps the file of a `:memory:` store until the last clone is dropped.
    _scratch: Option<std::sync::Arc<tempfile::TempDir>>,
}

/// A SQLite error, as the driver reports it.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.into())
    }
}

/// The store's conformance checks on SQLite, each on a fresh database file
/// in a temporary directory (what `:memory:` opens).
#[cfg(test)]
mod conformance {
    async fn store() -> crate::store::Store {
        crate::store::Store::open(":memory:").await.unwrap()
    }

    crate::store::conformance::conformance_tests!(store());
}
