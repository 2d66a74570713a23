//! Plugin state in SQLite: the `plugin_state` table.

use super::SqliteStore;
use crate::clock::now_ms;
use crate::store::StoreResult;
use rusqlite::params;

impl SqliteStore {
    pub async fn state_get(&self, runbook: &str, key: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM plugin_state WHERE runbook = ? AND key = ?")
            .bind(runbook)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn state_set(&self, runbook: &str, key: &str, value: &str) -> StoreResult<()> {
        let (runbook, key, value) = (runbook.to_string(), key.to_string(), value.to_string());
        self.writer
            .write(move |db| {
                db.prepare_cached(
                    "INSERT INTO plugin_state (runbook, key, value, updated_at) VALUES (?, ?, ?, ?)
                     ON CONFLICT (runbook, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )?
                .execute(params![runbook, key, value, now_ms()])?;
                Ok(())
            })
            .await
    }

    pub async fn state_delete(&self, runbook: &str, key: &str) -> StoreResult<()> {
        let (runbook, key) = (runbook.to_string(), key.to_string());
        self.writer
            .write(move |db| {
                db.prepare_cached("DELETE FROM plugin_state WHERE runbook = ? AND key = ?")?
                    .execute(params![runbook, key])?;
                Ok(())
            })
            .await
    }
}
