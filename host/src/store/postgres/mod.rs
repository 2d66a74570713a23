//! The PostgreSQL backend: a database several `tend serve` processes may
//! share. Every method is a statement or a short transaction on a pool of
//! connections (sqlx); writes commit before they return. One file per
//! concern, as in the façade above; each holds that concern's SQL and
//! nothing else. Must not know of SQLite nor hold state of its own beyond
//! the pool: whatever several hosts must agree on is decided by the
//! database (row locks, unique keys, advisory transaction locks).
//!
//! Times are taken from this host's clock (`crate::clock::now_ms`), as on
//! SQLite, so both backends record the same values.

mod alerts;
mod approvals;
mod attempts;
mod escalations;
mod metrics;
mod open;
pub(super) use open::is_postgres_url;
mod optimization;
mod pages;
mod reports;
mod retention;
mod run_alerts;
mod runs;
mod schedules;
mod sessions;
mod state;

use crate::store::StoreResult;
use sqlx::PgPool;

/// A PostgreSQL store. Cheap to clone (a pool).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// The first key of tend's advisory locks (the two-int form of
/// `pg_advisory_xact_lock`, whose key space never meets the one-bigint
/// form sqlx's migrator locks with); a [`LockSpace`] is added to it.
/// Arbitrary: "tend" in ASCII.
const LOCK_CLASS: i32 = 0x7465_6e00;

/// What an advisory transaction lock of tend serializes. The second key is
/// `hashtext` of a name (a runbook, a dedup key), so two names may share a
/// lock and merely wait for each other.
#[derive(Debug, Clone, Copy)]
enum LockSpace {
    /// Claims of a runbook's runs under its concurrency cap.
    RunbookClaims = 1,
    /// Escalations raised with one dedup key.
    EscalationKey = 2,
}

/// Takes the advisory lock of `name` in `space` until the transaction
/// ends (it is released at commit or rollback, never leaked).
async fn lock_xact(tx: &mut sqlx::PgConnection, space: LockSpace, name: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(LOCK_CLASS + space as i32)
        .bind(name)
        .execute(tx)
        .await?;
    Ok(())
}

/// The throw-away PostgreSQL clusters of the tests (one copy, shared with
/// the integration tests).
#[cfg(test)]
#[path = "../../../../tests/support/postgres.rs"]
mod harness;

/// The store's conformance checks on PostgreSQL (and the databases of the
/// backend's own tests): one throw-away cluster per test process (started on first use, stopped by the harness's
/// watchdog when the process exits), a fresh database per check.
#[cfg(test)]
mod conformance {
    use super::harness;

    static CLUSTER: std::sync::LazyLock<harness::Postgres> = std::sync::LazyLock::new(|| {
        harness::Postgres::start().unwrap_or_else(|e| panic!("starting a PostgreSQL cluster for the tests: {e}"))
    });

    /// The URL of a new, empty database of the shared cluster.
    pub(in crate::store::postgres) async fn database_url() -> String {
        tokio::task::spawn_blocking(|| CLUSTER.unique_database("tend"))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("creating a test database: {e}"))
            .1
    }

    /// A store on a new, empty database of the shared cluster.
    async fn store() -> crate::store::Store {
        crate::store::Store::open(&database_url().await).await.unwrap()
    }

    crate::store::conformance::conformance_tests!(store());
}
