//! Opening a SQLite store: the file a database setting names, the pool of
//! readers, migrations, and the writer thread.

use super::{SqliteStore, writer};
use crate::store::StoreResult;
use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::time::Duration;

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies
    /// pending migrations (`host/migrations/`). `:memory:` opens a private
    /// throwaway database (a file in a temporary directory, deleted when
    /// the store is dropped).
    ///
    /// By default: WAL journal, `synchronous = FULL` (a committed status
    /// survives a crash of tend and of the machine), foreign keys on, a
    /// 5-second busy timeout so several tend processes can share the file.
    ///
    /// `path` is a file path or a URL: `sqlite:PATH`, `sqlite://PATH`
    /// (`sqlite:///var/lib/tend/tend.db` for an absolute path), and
    /// `sqlite::memory:` for `:memory:`. Other schemes are refused.
    pub async fn open(path: &str) -> anyhow::Result<SqliteStore> {
        let (file, scratch) = match database_file(path)? {
            Some(file) => (file, None),
            None => {
                let dir = tempfile::tempdir()?;
                (dir.path().join("tend.db"), Some(std::sync::Arc::new(dir)))
            }
        };
        // Two processes opening a new database at once would both set it up
        // (WAL mode, tables); an advisory lock on the file (flock, which is
        // independent of SQLite's own fcntl locks) makes one wait for the
        // other. An empty file is a valid empty database.
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating the directory of database {path}"))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .with_context(|| format!("opening database {path}"))?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await?
            .with_context(|| format!("locking database {path} to set it up"))?;
        let sync = if scratch.is_some() { writer::Sync::Off } else { writer::Sync::Full };
        let options = SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Lets retention hand freed pages back to the file system in steps
            // (applies to databases created from now on).
            .auto_vacuum(sqlx::sqlite::SqliteAutoVacuum::Incremental)
            .synchronous(match sync {
                writer::Sync::Full => SqliteSynchronous::Full,
                writer::Sync::Off => SqliteSynchronous::Off,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening database {path}"))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .with_context(|| format!("applying migrations to database {path}"))?;
        let writer = writer::Writer::start(&file, sync).with_context(|| format!("opening database {path} to write"))?;
        drop(lock);
        Ok(SqliteStore { pool, writer, _scratch: scratch })
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        self.writer.write(|db| Ok(db.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }
}

/// The file a database setting names (a path or a `sqlite:` URL), or None
/// for a private in-memory database. Errors say what was expected.
fn database_file(setting: &str) -> anyhow::Result<Option<std::path::PathBuf>> {
    let path = match setting.split_once(':') {
        _ if [":memory:", "sqlite::memory:", "sqlite://:memory:"].contains(&setting) => return Ok(None),
        Some(("file", _)) => anyhow::bail!(
            "database {setting:?}: SQLite URI file names are not supported; expected a path or a sqlite: URL, e.g. \"sqlite:///var/lib/tend/tend.db\""
        ),
        Some(("sqlite", rest)) => rest.strip_prefix("//").unwrap_or(rest),
        Some((scheme, rest))
            if rest.starts_with("//") && !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            anyhow::bail!(
                "database {setting:?}: unsupported scheme; expected a file path, a sqlite: URL (e.g. \"sqlite:///var/lib/tend/tend.db\") or a postgres:// URL"
            )
        }
        _ => setting,
    };
    if path.is_empty() {
        anyhow::bail!(
            "database {setting:?} names no file; expected e.g. \"tend.db\" or \"sqlite:///var/lib/tend/tend.db\""
        );
    }
    if path.contains('?') && setting.starts_with("sqlite:") {
        anyhow::bail!("database {setting:?}: URL options (after `?`) are not supported; tend sets its own");
    }
    Ok(Some(std::path::PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_settings_are_paths_or_sqlite_urls() {
        let file = |s: &str| database_file(s).map(|f| f.map(|p| p.display().to_string())).map_err(|e| e.to_string());
        assert_eq!(file("tend.db"), Ok(Some("tend.db".into())));
        assert_eq!(file("/var/lib/tend/tend.db"), Ok(Some("/var/lib/tend/tend.db".into())));
        assert_eq!(file("sqlite:tend.db"), Ok(Some("tend.db".into())));
        assert_eq!(file("sqlite://data/tend.db"), Ok(Some("data/tend.db".into())));
        assert_eq!(file("sqlite:///var/lib/tend/tend.db"), Ok(Some("/var/lib/tend/tend.db".into())));
        assert_eq!(file(":memory:"), Ok(None));
        assert_eq!(file("sqlite::memory:"), Ok(None));
        assert_eq!(
            file("mysql://tend@db/tend"),
            Err("database \"mysql://tend@db/tend\": unsupported scheme; expected a file path, a sqlite: URL (e.g. \"sqlite:///var/lib/tend/tend.db\") or a postgres:// URL".into())
        );
        assert_eq!(
            file("sqlite://"),
            Err(
                "database \"sqlite://\" names no file; expected e.g. \"tend.db\" or \"sqlite:///var/lib/tend/tend.db\""
                    .into()
            )
        );
        assert_eq!(
            file("sqlite://tend.db?mode=ro"),
            Err("database \"sqlite://tend.db?mode=ro\": URL options (after `?`) are not supported; tend sets its own"
                .into())
        );
        assert_eq!(file("sqlite://:memory:"), Ok(None));
        assert_eq!(
            file("file:tend.db"),
            Err("database \"file:tend.db\": SQLite URI file names are not supported; expected a path or a sqlite: URL, e.g. \"sqlite:///var/lib/tend/tend.db\"".into())
        );
        // A path with a colon that is not a URL stays a path.
        assert_eq!(file("backups/10:00.db"), Ok(Some("backups/10:00.db".into())));
    }
}
