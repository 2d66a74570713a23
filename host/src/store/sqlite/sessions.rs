//! Web sessions in SQLite: the `web_sessions` table.

use super::SqliteStore;
use crate::clock::now_ms;
use crate::store::{SessionRow, StoreResult};
use rusqlite::params;
use sqlx::Row;

impl SqliteStore {
    pub async fn open_session(
        &self,
        id_sha256: &str,
        token_sha256: &str,
        token_name: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
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

    pub async fn session(&self, id_sha256: &str, now: i64) -> StoreResult<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT token_sha256, token_name, expires_at FROM web_sessions WHERE id_sha256 = ? AND expires_at > ?",
        )
        .bind(id_sha256)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| SessionRow { token_sha256: r.get(0), token_name: r.get(1), expires_at: r.get(2) }))
    }

    pub async fn close_session(&self, id_sha256: &str) -> StoreResult<()> {
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
    async fn opening_a_session_deletes_the_expired_rows() {
        let store = SqliteStore::open(":memory:").await.unwrap();
        let now = now_ms();
        store.open_session("old", "tt", "admin", now - 1).await.unwrap();
        store.open_session("new", "tt", "admin", now + 60_000).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM web_sessions").fetch_one(&store.pool).await.unwrap();
        assert_eq!(left, 1);
    }
}
