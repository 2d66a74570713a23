//! Alerts of runs in PostgreSQL: the `run_alerts` table, joined to `alerts`.

use super::PgStore;
use crate::store::{RunAlert, StoreResult};

impl PgStore {
    pub async fn link_alert(&self, run_id: &str, fingerprint: &str, starts_at: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO run_alerts (run_id, fingerprint, starts_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(run_id)
        .bind(fingerprint)
        .bind(starts_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn run_alerts(&self, run_id: &str) -> StoreResult<Vec<RunAlert>> {
        let rows = sqlx::query(
            "SELECT a.fingerprint, a.labels, a.status, a.starts_at, a.ends_at, a.resolved_at, a.first_seen_at
             FROM run_alerts l JOIN alerts a ON a.fingerprint = l.fingerprint AND a.starts_at = l.starts_at
             WHERE l.run_id = $1 ORDER BY a.first_seen_at, a.fingerprint",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RunAlert::from_row).collect()
    }

    pub async fn alert_runs(&self, fingerprint: &str, starts_at: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT run_id FROM run_alerts WHERE fingerprint = $1 AND starts_at = $2 ORDER BY run_id",
        )
        .bind(fingerprint)
        .bind(starts_at)
        .fetch_all(&self.pool)
        .await?)
    }
}
