//! Alert instances in SQLite: the `alerts` table.

use super::SqliteStore;
use crate::clock::now_ms;
use crate::store::{AlertRow, StoreResult};
use rusqlite::params;

impl SqliteStore {
    pub async fn record_alert(&self, a: &AlertRow) -> StoreResult<()> {
        let a = a.clone();
        self.writer
            .write(move |db| {
                let now = now_ms();
                db.prepare_cached(
                    "INSERT INTO alerts (fingerprint, starts_at, status, labels, annotations, ends_at, group_key,
                                         first_seen_at, last_seen_at, resolved_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ?3 = 'resolved' THEN ?9 END)
                     ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
                         status = excluded.status, labels = excluded.labels, annotations = excluded.annotations,
                         ends_at = excluded.ends_at, group_key = excluded.group_key, last_seen_at = excluded.last_seen_at,
                         resolved_at = CASE WHEN excluded.status = 'resolved'
                                            THEN COALESCE(alerts.resolved_at, excluded.last_seen_at) END",
                )?
                .execute(params![
                    a.fingerprint,
                    a.starts_at,
                    a.status.as_str(),
                    a.labels.to_string(),
                    a.annotations.to_string(),
                    a.ends_at,
                    a.group_key,
                    now,
                    now
                ])?;
                Ok(())
            })
            .await
    }

    pub async fn alerts(&self, limit: u32) -> StoreResult<Vec<AlertRow>> {
        let rows = sqlx::query(
            "SELECT fingerprint, starts_at, status, labels, annotations, ends_at, group_key
             FROM alerts ORDER BY last_seen_at DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AlertRow::from_row).collect()
    }
}
