//! Retention: deleting finished runs past their age with everything they
//! own. Backend-neutral; the age and the batch size are `tend serve`'s.

use super::{Store, StoreResult};

impl Store {
    /// Deletes finished runs created before `cutoff` (ms since the epoch)
    /// with everything they own (attempts, metrics, escalations and their
    /// notifications, approvals, idempotency keys), `batch` runs per
    /// transaction so writers are never blocked for long; then, on SQLite,
    /// returns freed pages to the file system and truncates the WAL (on
    /// PostgreSQL autovacuum reclaims the space, and fire records of
    /// schedules as old go too). Returns the number of runs deleted.
    pub async fn prune(&self, cutoff: i64, batch: u32) -> StoreResult<u64> {
        dispatch!(self, prune(cutoff, batch))
    }
}
