//! Reports in SQLite: the `run_reports` table; a run ends and gets its
//! report in one transaction.

use super::SqliteStore;
use crate::clock::now_ms;
use crate::store::{RunStatus, StoreError, StoreResult, StoredReport};
use rusqlite::{OptionalExtension as _, params};
use sqlx::Row;

impl SqliteStore {
    pub async fn save_report(&self, run_id: &str, kind: &str, markdown: &str) -> StoreResult<()> {
        let (run_id, kind, markdown) = (run_id.to_string(), kind.to_string(), markdown.to_string());
        self.writer.write(move |db| save(db, &run_id, &kind, &markdown)).await
    }

    pub async fn finish_run_reported(
        &self,
        id: &str,
        status: RunStatus,
        error: Option<&str>,
        finished_at: i64,
        report: Option<(&str, &str)>,
        holder: Option<&str>,
    ) -> StoreResult<(RunStatus, Option<String>, bool)> {
        debug_assert!(status.is_final());
        let (id, error, holder) = (id.to_string(), error.map(str::to_string), holder.map(str::to_string));
        let report = report.map(|(k, m)| (k.to_string(), m.to_string()));
        self.writer
            .write(move |db| {
                let ended = db
                    .prepare_cached(concat!(
                        "UPDATE runs SET status = ?1, error = ?2, finished_at = ?5
                         WHERE id = ?3 AND status IN ('queued', 'running', 'waiting_approval') AND ",
                        holds!("?4")
                    ))?
                    .execute(params![status.as_str(), error, id, holder, finished_at])?;
                let stored = ended == 1 && report.is_some();
                if let (true, Some((kind, markdown))) = (stored, &report) {
                    save(db, &id, kind, markdown)?;
                }
                let (status, error): (String, Option<String>) = db
                    .prepare_cached("SELECT status, error FROM runs WHERE id = ?")?
                    .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                    .ok_or_else(|| StoreError::NotFound(format!("run {id:?}")))?;
                Ok((status.parse().map_err(anyhow::Error::msg)?, error, stored))
            })
            .await
    }

    pub async fn report(&self, run_id: &str) -> StoreResult<Option<StoredReport>> {
        let row = sqlx::query("SELECT kind, markdown, rendered_at FROM run_reports WHERE run_id = ?")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| StoredReport { kind: r.get(0), markdown: r.get(1), rendered_at: r.get(2) }))
    }
}

/// Stores (or replaces) a run's report.
fn save(db: &rusqlite::Connection, run_id: &str, kind: &str, markdown: &str) -> StoreResult<()> {
    db.prepare_cached(
        "INSERT INTO run_reports (run_id, kind, markdown, rendered_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (run_id) DO UPDATE SET
             kind = excluded.kind, markdown = excluded.markdown, rendered_at = excluded.rendered_at",
    )?
    .execute(params![run_id, kind, markdown, now_ms()])?;
    Ok(())
}
