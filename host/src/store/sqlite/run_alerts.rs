//! Alerts of runs in SQLite: the `run_alerts` table, joined to `alerts`.

use super::{SqliteStore, parsed};
use crate::store::{RunAlert, StoreResult};
use rusqlite::params;
use serde_json::Value;
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
        rows.iter()
            .map(|r| {
                let labels: Value = serde_json::from_str(&r.get::<String, _>(1))?;
                Ok(RunAlert {
                    alertname: labels.get("alertname").and_then(Value::as_str).map(str::to_string),
                    fingerprint: r.get(0),
                    labels,
                    status: parsed(r, 2)?,
                    starts_at: r.get(3),
                    ends_at: r.get(4),
                    resolved_at: r.get(5),
                    received_at: r.get(6),
                })
            })
            .collect()
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
