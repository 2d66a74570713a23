//! Reports written when a run finishes (a runbook's `report`): the
//! `run_reports` table, one report per run, replaced when it is rendered
//! again (an alert resolved after the run ended).
//!
//! SQL only; the Markdown is rendered elsewhere ([`crate::report`]).

use super::{DecisionError, RunStatus, Store, now_ms};
use rusqlite::{OptionalExtension as _, params};
use sqlx::Row;

/// A run's stored report.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReport {
    /// e.g. `postmortem`.
    pub kind: String,
    pub markdown: String,
    /// ms since the epoch.
    pub rendered_at: i64,
}

impl Store {
    /// Stores (or replaces) the report of a run.
    pub async fn save_report(&self, run_id: &str, kind: &str, markdown: &str) -> anyhow::Result<()> {
        let (run_id, kind, markdown) = (run_id.to_string(), kind.to_string(), markdown.to_string());
        self.writer.write(move |db| save(db, &run_id, &kind, &markdown)).await
    }

    /// Ends a run with a final status at `finished_at` and stores its
    /// report (kind, Markdown) in the same transaction. A run already
    /// final keeps its status and gets no report from here. Returns the
    /// run's status and error, and whether the report was stored.
    pub async fn finish_run_reported(
        &self,
        id: &str,
        status: RunStatus,
        error: Option<&str>,
        finished_at: i64,
        report: Option<(&str, &str)>,
    ) -> anyhow::Result<(RunStatus, Option<String>, bool)> {
        debug_assert!(status.is_final());
        let (id, error) = (id.to_string(), error.map(str::to_string));
        let report = report.map(|(k, m)| (k.to_string(), m.to_string()));
        self.writer
            .write(move |db| {
                let ended = db
                    .prepare_cached(
                        "UPDATE runs SET status = ?, error = ?, finished_at = ?
                         WHERE id = ? AND status IN ('queued', 'running', 'waiting_approval')",
                    )?
                    .execute(params![status.as_str(), error, finished_at, id])?;
                let stored = ended == 1 && report.is_some();
                if let (true, Some((kind, markdown))) = (stored, &report) {
                    save(db, &id, kind, markdown)?;
                }
                let (status, error): (String, Option<String>) = db
                    .prepare_cached("SELECT status, error FROM runs WHERE id = ?")?
                    .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                    .ok_or_else(|| DecisionError::NotFound(format!("run {id:?}")))?;
                Ok((status.parse().map_err(anyhow::Error::msg)?, error, stored))
            })
            .await
    }

    /// The report of a run, if one was written.
    pub async fn report(&self, run_id: &str) -> anyhow::Result<Option<StoredReport>> {
        let row = sqlx::query("SELECT kind, markdown, rendered_at FROM run_reports WHERE run_id = ?")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| StoredReport { kind: r.get(0), markdown: r.get(1), rendered_at: r.get(2) }))
    }
}

/// Stores (or replaces) a run's report.
fn save(db: &rusqlite::Connection, run_id: &str, kind: &str, markdown: &str) -> anyhow::Result<()> {
    db.prepare_cached(
        "INSERT INTO run_reports (run_id, kind, markdown, rendered_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (run_id) DO UPDATE SET
             kind = excluded.kind, markdown = excluded.markdown, rendered_at = excluded.rendered_at",
    )?
    .execute(params![run_id, kind, markdown, now_ms()])?;
    Ok(())
}
