//! Sign-in sessions of the web view: the `web_sessions` table. A session
//! is found by the SHA-256 of its cookie's value (the value itself is
//! never stored) and names the API token it was opened with, by the
//! token's SHA-256, as tend.toml holds it. SQL only: cookies, scopes and
//! expiry policy are the web module's.

use super::{Store, now_ms};
use rusqlite::params;
use sqlx::Row;

/// A signed-in session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Hex SHA-256 of the API token signed in with.
    pub token_sha256: String,
    /// The token's name when the session was opened, e.g. `admin`.
    pub token_name: String,
    /// ms since the epoch.
    pub expires_at: i64,
}

impl Store {
    /// Opens a session under the hash of its cookie's value, until
    /// `expires_at`, and deletes the sessions already expired.
    pub async fn open_session(
        &self,
        id_sha256: &str,
        token_sha256: &str,
        token_name: &str,
        expires_at: i64,
    ) -> anyhow::Result<()> {
        let (id, token, name) = (id_sha256.to_string(), token_sha256.to_string(), token_name.to_string());
        self.writer
            .write(move |db| {
                let now = now_ms();
                db.prepare_cached("DELETE FROM web_sessions WHERE expires_at <= ?")?.execute([now])?;
                db.prepare_cached(
                    "INSERT INTO web_sessions (id_sha256, token_sha256, token_name, created_at, expires_at)
                     VALUES (?, ?, ?, ?, ?)",
                )?
                .execute(params![id, token, name, now, expires_at])?;
                Ok(())
            })
            .await
    }

    /// The session whose cookie hashes to `id_sha256`, unless it expired by `now`.
    pub async fn session(&self, id_sha256: &str, now: i64) -> anyhow::Result<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT token_sha256, token_name, expires_at FROM web_sessions WHERE id_sha256 = ? AND expires_at > ?",
        )
        .bind(id_sha256)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| SessionRow { token_sha256: r.get(0), token_name: r.get(1), expires_at: r.get(2) }))
    }

    /// Ends a session (signing out). Ending one that does not exist is not an error.
    pub async fn close_session(&self, id_sha256: &str) -> anyhow::Result<()> {
        let id = id_sha256.to_string();
        self.writer
            .write(move |db| {
                db.prepare_cached("DELETE FROM web_sessions WHERE id_sha256 = ?")?.execute([id])?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_is_found_by_its_hash_until_it_expires_or_is_closed() {
        let store = Store::open(":memory:").await.unwrap();
        let now = now_ms();
        store.open_session("aa", "tt", "admin", now + 60_000).await.unwrap();
        let s = store.session("aa", now).await.unwrap().unwrap();
        assert_eq!((s.token_sha256.as_str(), s.token_name.as_str()), ("tt", "admin"));
        assert!(store.session("bb", now).await.unwrap().is_none());
        assert!(store.session("aa", now + 60_000).await.unwrap().is_none(), "expired");
        store.close_session("aa").await.unwrap();
        assert!(store.session("aa", now).await.unwrap().is_none(), "closed");
        // Opening a session deletes the expired ones.
        store.open_session("old", "tt", "admin", now - 1).await.unwrap();
        store.open_session("new", "tt", "admin", now + 60_000).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM web_sessions").fetch_one(&store.pool).await.unwrap();
        assert_eq!(left, 1);
    }
}
