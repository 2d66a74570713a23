//! Alerts of runs in SQLite: the `run_alerts` table, joined to `alerts`.

use super::SqliteStore;
use crate::store::{RunAlert, StoreResult};
use rusqlite::params;
use sqlx::Row;

impl SqliteStore {
    pub async fn link_alert(&self, run_id: &str, fingerprint: &str, starts_at: &str) -> StoreResult<()> {
        let (run_id, fingerprint, starts_at) = (run_id.to_string(), fingerprint.to_string(), starts_at.to_string());
        self.writer
            .write(move |db| {
                db.prepare_cached(
                    "INSERT INTO run_alerts (run_id, fingerprint, starts_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                )?
                .execute(params![run_id, fingerprint, starts_at])?;
                Ok(())
            })
            .await
    }

    pub async fn run_alerts(&self, run_id: &str) -> StoreResult<Vec<RunAlert>> {
        let rows = sqlx::query(
            "SELECT a.fingerprint, a.labels, a.status, a.starts_at, a.ends_at, a.resolved_at, a.first_seen_at
             FROM run_alerts l JOIN alerts a ON a.fingerprint = l.fingerprint AND a.starts_at = l.starts_at
             WHERE l.run_id = ? ORDER BY a.first_seen_at, a.fingerprint",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RunAlert::from_row).collect()
    }

    pub async fn alert_runs(&self, fingerprint: &str, starts_at: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT run_id FROM run_alerts WHERE fingerprint = ? AND starts_at = ? ORDER BY run_id")
            .bind(fingerprint)
            .bind(starts_at)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
