//! Reports in PostgreSQL: the `run_reports` table; a run ends and gets its
//! report in one transaction.

use super::PgStore;
use super::runs::{end_run, status_of};
use crate::clock::now_ms;
use crate::store::{RunStatus, StoreResult, StoredReport};
use sqlx::{PgConnection, Row};

impl PgStore {
    pub async fn save_report(&self, run_id: &str, kind: &str, markdown: &str) -> StoreResult<()> {
        let mut db = self.pool.acquire().await?;
        save(&mut db, run_id, kind, markdown).await
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
        let mut tx = self.pool.begin().await?;
        let ended = end_run(&mut tx, id, status, error, finished_at, holder).await?;
        let stored = ended && report.is_some();
        if let (true, Some((kind, markdown))) = (stored, report) {
            save(&mut tx, id, kind, markdown).await?;
        }
        let (status, error) = status_of(&mut tx, id).await?;
        tx.commit().await?;
        Ok((status, error, stored))
    }

    pub async fn report(&self, run_id: &str) -> StoreResult<Option<StoredReport>> {
        let row = sqlx::query("SELECT kind, markdown, rendered_at FROM run_reports WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(StoredReport { kind: r.try_get(0)?, markdown: r.try_get(1)?, rendered_at: r.try_get(2)? }))
            .transpose()
    }
}

/// Stores (or replaces) a run's report.
async fn save(db: &mut PgConnection, run_id: &str, kind: &str, markdown: &str) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO run_reports (run_id, kind, markdown, rendered_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (run_id) DO UPDATE SET
             kind = excluded.kind, markdown = excluded.markdown, rendered_at = excluded.rendered_at",
    )
    .bind(run_id)
    .bind(kind)
    .bind(markdown)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}
