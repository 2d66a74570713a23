//! Plugin state in PostgreSQL: the `plugin_state` table.

use super::PgStore;
use crate::clock::now_ms;
use crate::store::StoreResult;

impl PgStore {
    pub async fn state_get(&self, runbook: &str, key: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM plugin_state WHERE runbook = $1 AND key = $2")
            .bind(runbook)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn state_set(&self, runbook: &str, key: &str, value: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO plugin_state (runbook, key, value, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (runbook, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(runbook)
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn state_delete(&self, runbook: &str, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM plugin_state WHERE runbook = $1 AND key = $2")
            .bind(runbook)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
