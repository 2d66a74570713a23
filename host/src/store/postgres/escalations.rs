//! Escalations in PostgreSQL: the `escalations` and `notifications`
//! tables. Raising one with a dedup key holds that key's advisory
//! transaction lock, so two hosts raising it at once group into one row.

use super::{LockSpace, PgStore, lock_xact};
use crate::clock::now_ms;
use crate::notify::Status;
use crate::store::{EscalationRow, EscalationStatus, NewEscalation, NotificationRow, Raised, StoreError, StoreResult};
use sqlx::{PgConnection, Row};
use std::time::Duration;

impl PgStore {
    pub async fn raise_escalation(&self, e: &NewEscalation<'_>, window: Duration, now: i64) -> StoreResult<Raised> {
        let since = now - window.as_millis() as i64;
        let mut tx = self.pool.begin().await?;
        lock_xact(&mut tx, LockSpace::EscalationKey, e.dedup_key).await?;
        let grouped: Option<i64> = sqlx::query_scalar(
            "UPDATE escalations SET occurrences = occurrences + 1, last_seen_at = $1
             WHERE id = (SELECT id FROM escalations
                         WHERE dedup_key = $2 AND status IN ('open', 'acknowledged') AND last_seen_at >= $3
                         ORDER BY id DESC LIMIT 1)
             RETURNING id",
        )
        .bind(now)
        .bind(e.dedup_key)
        .bind(since)
        .fetch_optional(&mut *tx)
        .await?;
        let raised = match grouped {
            Some(id) => Raised { id, grouped: true },
            None => {
                let id = sqlx::query_scalar(
                    "INSERT INTO escalations (run_id, runbook, step_id, iteration, severity, message, dedup_key,
                                              status, created_at, last_seen_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $8) RETURNING id",
                )
                .bind(e.run_id)
                .bind(e.runbook)
                .bind(e.step_id)
                .bind(i64::from(e.iteration))
                .bind(e.severity.as_str())
                .bind(e.message)
                .bind(e.dedup_key)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                Raised { id, grouped: false }
            }
        };
        tx.commit().await?;
        Ok(raised)
    }

    pub async fn record_notification(
        &self,
        escalation_id: i64,
        event: Status,
        sink: &str,
        result: &Result<(), String>,
    ) -> StoreResult<()> {
        let error = result.as_ref().err();
        sqlx::query(
            "INSERT INTO notifications (escalation_id, event, sink, sent_at, ok, error) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(escalation_id)
        .bind(event.as_str())
        .bind(sink)
        .bind(now_ms())
        .bind(error.is_none())
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn list_escalations(
        &self,
        status: Option<EscalationStatus>,
        run_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<EscalationRow>> {
        let rows = sqlx::query(
            "SELECT id, run_id, runbook, step_id, iteration, severity, message, dedup_key, status, occurrences,
                    created_at, last_seen_at, acknowledged_by, acknowledged_at, resolved_by, resolved_at, resolution
             FROM escalations
             WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR run_id = $2)
             ORDER BY id DESC LIMIT $3",
        )
        .bind(status.map(EscalationStatus::as_str))
        .bind(run_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<EscalationRow> = rows.iter().map(EscalationRow::from_row).collect::<StoreResult<_>>()?;
        // The notifications of all of them in one query, by their ids.
        if !out.is_empty() {
            let ids: Vec<i64> = out.iter().map(|e| e.id).collect();
            let sent = sqlx::query(
                "SELECT escalation_id, sink, sent_at, ok, error, event FROM notifications
                 WHERE escalation_id = ANY($1) ORDER BY id",
            )
            .bind(&ids)
            .fetch_all(&self.pool)
            .await?;
            let index: std::collections::HashMap<i64, usize> = out.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
            for n in &sent {
                if let Some(&i) = index.get(&n.try_get::<i64, _>(0)?) {
                    out[i].notifications.push(NotificationRow::from_row(n)?);
                }
            }
        }
        Ok(out)
    }

    pub async fn get_escalation(&self, id: i64) -> StoreResult<Option<EscalationRow>> {
        let row = sqlx::query(
            "SELECT id, run_id, runbook, step_id, iteration, severity, message, dedup_key, status, occurrences,
                    created_at, last_seen_at, acknowledged_by, acknowledged_at, resolved_by, resolved_at, resolution
             FROM escalations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut e = EscalationRow::from_row(&row)?;
        let sent = sqlx::query(
            "SELECT escalation_id, sink, sent_at, ok, error, event FROM notifications WHERE escalation_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        e.notifications = sent.iter().map(NotificationRow::from_row).collect::<StoreResult<_>>()?;
        Ok(Some(e))
    }

    pub async fn acknowledge_escalation(&self, id: i64, by: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE escalations SET status = 'acknowledged', acknowledged_by = $1, acknowledged_at = $2
             WHERE id = $3 AND status = 'open'",
        )
        .bind(by)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            return Err(escalation_refusal(&mut tx, id, "acknowledged").await?);
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn resolve_escalation(&self, id: i64, by: &str, reason: Option<&str>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE escalations SET status = 'resolved', resolved_by = $1, resolved_at = $2, resolution = $3
             WHERE id = $4 AND status IN ('open', 'acknowledged')",
        )
        .bind(by)
        .bind(now_ms())
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            return Err(escalation_refusal(&mut tx, id, "resolved").await?);
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Why an escalation could not be acknowledged or resolved.
async fn escalation_refusal(db: &mut PgConnection, id: i64, verb: &str) -> StoreResult<StoreError> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM escalations WHERE id = $1").bind(id).fetch_optional(db).await?;
    Ok(match status {
        None => StoreError::NotFound(format!("escalation {id}")),
        Some(s) => StoreError::Conflict(format!("escalation {id} is {s} and cannot be {verb}")),
    })
}
