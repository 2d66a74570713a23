//! Opening a PostgreSQL store: the pool of connections a `postgres://` URL
//! names and the migrations of `host/migrations/postgres/`. Errors name
//! the URL with its password hidden.

use super::PgStore;
use crate::store::{StoreError, StoreResult};
use anyhow::Context as _;
use sqlx::ConnectOptions as _;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;

/// Most connections one store holds open: each is a server process, and
/// several `tend serve` share one server's `max_connections` (100 by
/// default).
const MAX_CONNECTIONS: u32 = 10;

/// How long a call waits for a free connection (or for the server to
/// accept one) before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The name tend's connections show in `pg_stat_activity`.
const APPLICATION_NAME: &str = "tend";

/// The migrations of the PostgreSQL schema, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl PgStore {
    /// Connects to the database `url` names (`postgres://user:password@host:port/db`
    /// or `postgresql://...`) and applies pending migrations. Several
    /// processes may do so at once: the migrator takes an advisory lock.
    pub async fn open(url: &str) -> anyhow::Result<PgStore> {
        let shown = redacted(url);
        let options: PgConnectOptions = url.parse().with_context(|| {
            format!("database {shown:?} is not a valid PostgreSQL URL; expected e.g. \"postgres://tend:PASSWORD@db.example:5432/tend\"")
        })?;
        let options = options.application_name(APPLICATION_NAME);
        // One connection first: a server that refuses or a login that fails
        // is reported at once, not after the pool's acquire timeout.
        options.connect().await.with_context(|| format!("connecting to database {shown:?}"))?.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to database {shown:?}"))?;
        MIGRATOR.run(&pool).await.with_context(|| format!("applying migrations to database {shown:?}"))?;
        Ok(PgStore { pool })
    }

    /// Whether the server answers and takes writes: a hot standby (or a
    /// session forced read-only) answers reads only, and is an error.
    pub async fn ping(&self) -> StoreResult<()> {
        let writable: bool =
            sqlx::query_scalar("SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'")
                .fetch_one(&self.pool)
                .await?;
        if !writable {
            return Err(StoreError::Backend(anyhow::anyhow!(
                "the database answers but is read-only (a standby, or default_transaction_read_only is on); expected a primary that takes writes"
            )));
        }
        Ok(())
    }
}

/// Whether a database setting is a PostgreSQL URL.
pub(crate) fn is_postgres_url(setting: &str) -> bool {
    ["postgres://", "postgresql://"].iter().any(|p| setting.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p)))
}

/// `url` with its password (in the authority or a `password=` option)
/// replaced by `***`, for messages and logs.
pub(crate) fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    if scheme.is_empty() { format!("{authority}{tail}") } else { format!("{scheme}://{authority}{tail}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(redacted("postgres://tend:s3cret@db:5432/tend"), "postgres://tend:***@db:5432/tend");
        assert_eq!(redacted("postgresql://tend@db/tend"), "postgresql://tend@db/tend");
        assert_eq!(redacted("postgres://db/tend?user=t&password=s3cret"), "postgres://db/tend?user=t&password=***");
        assert_eq!(redacted("postgres://a:b:c@d@db"), "postgres://a:***@db");
    }

    #[test]
    fn postgres_urls_are_told_from_paths() {
        assert!(is_postgres_url("postgres://db/tend"));
        assert!(is_postgres_url("PostgreSQL://db/tend"));
        assert!(!is_postgres_url("postgres.db"));
        assert!(!is_postgres_url("sqlite://tend.db"));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error_naming_the_url_without_its_password() {
        // Port 1 on loopback: nothing listens there.
        let err = PgStore::open("postgres://tend:s3cret@127.0.0.1:1/tend").await.unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with("connecting to database \"postgres://tend:***@127.0.0.1:1/tend\": "), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
    }

    #[tokio::test]
    async fn a_read_only_database_fails_the_ping() {
        let url = super::super::conformance::database_url().await;
        let store = PgStore::open(&url).await.unwrap();
        store.ping().await.unwrap();
        let db = url.rsplit('/').next().unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE {db} SET default_transaction_read_only = on")))
            .execute(&store.pool)
            .await
            .unwrap();
        // New sessions start read-only.
        let read_only = PgStore { pool: sqlx::PgPool::connect(&url).await.unwrap() };
        let err = read_only.ping().await.unwrap_err().to_string();
        assert!(err.starts_with("the database answers but is read-only"), "{err}");
    }

    #[tokio::test]
    async fn a_malformed_url_is_an_error_naming_it_without_its_password() {
        let err = PgStore::open("postgres://tend:s3cret@db:notaport/tend").await.unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with("database \"postgres://tend:***@db:notaport/tend\" is not a valid PostgreSQL URL"),
            "{msg}"
        );
        assert!(!msg.contains("s3cret"), "{msg}");
    }
}
