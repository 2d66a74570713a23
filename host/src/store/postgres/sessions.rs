//! Web sessions in PostgreSQL: the `web_sessions` table.

use super::PgStore;
use crate::clock::now_ms;
use crate::store::{SessionRow, StoreResult};
use sqlx::Row;

impl PgStore {
    pub async fn open_session(
        &self,
        id_sha256: &str,
        token_sha256: &str,
        token_name: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1").bind(now).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO web_sessions (id_sha256, token_sha256, token_name, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_sha256)
        .bind(token_sha256)
        .bind(token_name)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn session(&self, id_sha256: &str, now: i64) -> StoreResult<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT token_sha256, token_name, expires_at FROM web_sessions WHERE id_sha256 = $1 AND expires_at > $2",
        )
        .bind(id_sha256)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SessionRow { token_sha256: r.try_get(0)?, token_name: r.try_get(1)?, expires_at: r.try_get(2)? })
        })
        .transpose()
    }

    pub async fn close_session(&self, id_sha256: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM web_sessions WHERE id_sha256 = $1").bind(id_sha256).execute(&self.pool).await?;
        Ok(())
    }
}
