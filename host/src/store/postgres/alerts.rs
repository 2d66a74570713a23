//! Alert instances in PostgreSQL: the `alerts` table. Recording one is a
//! single upsert on its key (fingerprint, start), so hosts receiving the
//! same alert at once keep one row.

use super::PgStore;
use crate::clock::now_ms;
use crate::store::{AlertRow, StoreResult};

impl PgStore {
    pub async fn record_alert(&self, a: &AlertRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO alerts (fingerprint, starts_at, status, labels, annotations, ends_at, group_key,
                                 first_seen_at, last_seen_at, resolved_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, CASE WHEN $3 = 'resolved' THEN $8 END)
             ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
                 status = excluded.status, labels = excluded.labels, annotations = excluded.annotations,
                 ends_at = excluded.ends_at, group_key = excluded.group_key, last_seen_at = excluded.last_seen_at,
                 resolved_at = CASE WHEN excluded.status = 'resolved'
                                    THEN COALESCE(alerts.resolved_at, excluded.last_seen_at) END",
        )
        .bind(&a.fingerprint)
        .bind(&a.starts_at)
        .bind(a.status.as_str())
        .bind(a.labels.to_string())
        .bind(a.annotations.to_string())
        .bind(&a.ends_at)
        .bind(&a.group_key)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn alerts(&self, limit: u32) -> StoreResult<Vec<AlertRow>> {
        let rows = sqlx::query(
            "SELECT fingerprint, starts_at, status, labels, annotations, ends_at, group_key
             FROM alerts ORDER BY last_seen_at DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AlertRow::from_row).collect()
    }
}
