//! Which Alertmanager alert instances started which runs (`run_alerts`),
//! so a run's record shows its alerts as they are now: firing, or
//! resolved and when.
//!
//! SQL only; the alerts themselves are recorded by [`Store::record_alert`].

use super::Store;
use rusqlite::params;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

/// An alert instance that started a run: `GET /v1/runs/{id}`'s `alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunAlert {
    /// The `alertname` label, e.g. `DemoErrorRate`.
    pub alertname: Option<String>,
    pub fingerprint: String,
    pub labels: Value,
    /// firing | resolved
    pub status: String,
    /// As Alertmanager sent it (RFC 3339).
    pub starts_at: String,
    /// As Alertmanager sent it (RFC 3339); null while firing.
    pub ends_at: Option<String>,
    /// When tend received the resolution; null while firing.
    #[serde(serialize_with = "crate::units::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<i64>,
    /// When tend first received the alert.
    #[serde(serialize_with = "crate::units::rfc3339_field")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: i64,
}

impl Store {
    /// Records that an alert instance started (or was re-sent for) a run.
    /// Recording it again changes nothing.
    pub async fn link_alert(&self, run_id: &str, fingerprint: &str, starts_at: &str) -> anyhow::Result<()> {
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

    /// The alerts that started a run, oldest first.
    pub async fn run_alerts(&self, run_id: &str) -> anyhow::Result<Vec<RunAlert>> {
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
                    status: r.get(2),
                    starts_at: r.get(3),
                    ends_at: r.get(4),
                    resolved_at: r.get(5),
                    received_at: r.get(6),
                })
            })
            .collect()
    }

    /// The runs an alert instance started.
    pub async fn alert_runs(&self, fingerprint: &str, starts_at: &str) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT run_id FROM run_alerts WHERE fingerprint = ? AND starts_at = ? ORDER BY run_id")
            .bind(fingerprint)
            .bind(starts_at)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
