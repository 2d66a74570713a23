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

use crate::store::{StoreError, StoreResult};
use sqlx::{Row as _, SqlitePool};
use std::str::FromStr;

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

/// A SQLite error, as the driver reports it.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Backend(e.into())
    }
}

/// Column `i` of a row, parsed from the text it is stored as (a status, a
/// kind). A value no spelling matches is an error naming it.
pub(super) fn parsed<T: FromStr<Err = String>>(r: &sqlx::sqlite::SqliteRow, i: usize) -> StoreResult<T> {
    Ok(r.try_get::<String, _>(i)?.parse().map_err(anyhow::Error::msg)?)
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
