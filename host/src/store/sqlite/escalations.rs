//! Escalations in SQLite: the `escalations` and `notifications` tables.

use super::SqliteStore;
use crate::clock::now_ms;
use crate::notify::Status;
use crate::store::{EscalationRow, EscalationStatus, NewEscalation, NotificationRow, Raised, StoreError, StoreResult};
use rusqlite::{OptionalExtension as _, params};
use sqlx::Row;
use std::time::Duration;

impl SqliteStore {
    pub async fn raise_escalation(&self, e: &NewEscalation<'_>, window: Duration, now: i64) -> StoreResult<Raised> {
        let since = now - window.as_millis() as i64;
        let (run_id, runbook, step_id) = (e.run_id.to_string(), e.runbook.to_string(), e.step_id.map(str::to_string));
        let (message, dedup_key) = (e.message.to_string(), e.dedup_key.to_string());
        let (iteration, severity) = (i64::from(e.iteration), e.severity.as_str());
        self.writer
            .write(move |db| {
                let existing: Option<i64> = db
                    .prepare_cached(
                        "SELECT id FROM escalations
                         WHERE dedup_key = ? AND status IN ('open', 'acknowledged') AND last_seen_at >= ?
                         ORDER BY id DESC LIMIT 1",
                    )?
                    .query_row(params![dedup_key, since], |r| r.get(0))
                    .optional()?;
                if let Some(id) = existing {
                    db.prepare_cached(
                        "UPDATE escalations SET occurrences = occurrences + 1, last_seen_at = ? WHERE id = ?",
                    )?
                    .execute(params![now, id])?;
                    return Ok(Raised { id, grouped: true });
                }
                let id = db
                    .prepare_cached(
                        "INSERT INTO escalations (run_id, runbook, step_id, iteration, severity, message, dedup_key,
                                                  status, created_at, last_seen_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?) RETURNING id",
                    )?
                    .query_row(
                        params![run_id, runbook, step_id, iteration, severity, message, dedup_key, now, now],
                        |r| r.get(0),
                    )?;
                Ok(Raised { id, grouped: false })
            })
            .await
    }

    pub async fn record_notification(
        &self,
        escalation_id: i64,
        event: Status,
        sink: &str,
        result: &Result<(), String>,
    ) -> StoreResult<()> {
        let (sink, error) = (sink.to_string(), result.as_ref().err().cloned());
        self.writer
            .write(move |db| {
                db.prepare_cached(
                    "INSERT INTO notifications (escalation_id, event, sink, sent_at, ok, error)
                     VALUES (?, ?, ?, ?, ?, ?)",
                )?
                .execute(params![
                    escalation_id,
                    event.as_str(),
                    sink,
                    now_ms(),
                    error.is_none(),
                    error
                ])?;
                Ok(())
            })
            .await
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
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR run_id = ?2)
             ORDER BY id DESC LIMIT ?3",
        )
        .bind(status.map(EscalationStatus::as_str))
        .bind(run_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<EscalationRow> = rows.iter().map(EscalationRow::from_row).collect::<StoreResult<_>>()?;
        // The notifications of all of them in one query, selected by the same filter.
        if !out.is_empty() {
            let sent = sqlx::query(
                "SELECT escalation_id, sink, sent_at, ok, error, event FROM notifications
                 WHERE escalation_id IN (
                     SELECT id FROM escalations
                     WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR run_id = ?2)
                     ORDER BY id DESC LIMIT ?3)
                 ORDER BY id",
            )
            .bind(status.map(EscalationStatus::as_str))
            .bind(run_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            let index: std::collections::HashMap<i64, usize> = out.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
            for n in &sent {
                if let Some(&i) = index.get(&n.get::<i64, _>(0)) {
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
             FROM escalations WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut e = EscalationRow::from_row(&row)?;
        let sent = sqlx::query(
            "SELECT escalation_id, sink, sent_at, ok, error, event FROM notifications WHERE escalation_id = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        e.notifications = sent.iter().map(NotificationRow::from_row).collect::<StoreResult<_>>()?;
        Ok(Some(e))
    }

    pub async fn acknowledge_escalation(&self, id: i64, by: &str) -> StoreResult<()> {
        let by = by.to_string();
        self.writer
            .write(move |db| {
                let done = db
                    .prepare_cached(
                        "UPDATE escalations SET status = 'acknowledged', acknowledged_by = ?, acknowledged_at = ?
                         WHERE id = ? AND status = 'open'",
                    )?
                    .execute(params![by, now_ms(), id])?;
                if done == 0 {
                    return Err(escalation_refusal(db, id, "acknowledged")?);
                }
                Ok(())
            })
            .await
    }

    pub async fn resolve_escalation(&self, id: i64, by: &str, reason: Option<&str>) -> StoreResult<()> {
        let (by, reason) = (by.to_string(), reason.map(str::to_string));
        self.writer
            .write(move |db| {
                let done = db
                    .prepare_cached(
                        "UPDATE escalations SET status = 'resolved', resolved_by = ?, resolved_at = ?, resolution = ?
                         WHERE id = ? AND status IN ('open', 'acknowledged')",
                    )?
                    .execute(params![by, now_ms(), reason, id])?;
                if done == 0 {
                    return Err(escalation_refusal(db, id, "resolved")?);
                }
                Ok(())
            })
            .await
    }
}

/// Why an escalation could not be acknowledged or resolved.
fn escalation_refusal(db: &rusqlite::Connection, id: i64, verb: &str) -> StoreResult<StoreError> {
    let status: Option<String> =
        db.prepare_cached("SELECT status FROM escalations WHERE id = ?")?.query_row([id], |r| r.get(0)).optional()?;
    Ok(match status {
        None => StoreError::NotFound(format!("escalation {id}")),
        Some(s) => StoreError::Conflict(format!("escalation {id} is {s} and cannot be {verb}")),
    })
}
