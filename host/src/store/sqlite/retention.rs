//! Retention in SQLite: deletes in batches (foreign keys cascade to what a
//! run owns), then hands the freed pages back to the file system
//! (incremental vacuum) and truncates the WAL.

use super::SqliteStore;
use crate::store::StoreResult;
use rusqlite::params;

impl SqliteStore {
    pub async fn prune(&self, cutoff: i64, batch: u32) -> StoreResult<u64> {
        let batch = batch.max(1);
        let mut deleted = 0;
        loop {
            let done = self
                .writer
                .write(move |db| {
                    Ok(db
                        .prepare_cached(
                            "DELETE FROM runs WHERE id IN (
                                 SELECT id FROM runs
                                 WHERE created_at < ? AND status NOT IN ('queued', 'running', 'waiting_approval')
                                 LIMIT ?)",
                        )?
                        .execute(params![cutoff, i64::from(batch)])?)
                })
                .await?;
            deleted += done as u64;
            if done < batch as usize {
                break;
            }
        }
        if deleted > 0 {
            self.writer
                .alone(|db| {
                    // Frees one page per step: step it to the end.
                    let mut vacuum = db.prepare("PRAGMA incremental_vacuum")?;
                    let mut freed = vacuum.query([])?;
                    while freed.next()?.is_some() {}
                    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                    Ok(())
                })
                .await?;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::now_ms;
    use crate::store::{NewRun, RunStatus, TriggerKind};

    async fn store() -> SqliteStore {
        SqliteStore::open(":memory:").await.unwrap()
    }

    #[tokio::test]
    async fn pruning_gives_the_freed_pages_back_to_the_file_system() {
        let s = store().await;
        let big = NewRun {
            runbook: "rb".into(),
            runbook_hash: "h".into(),
            trigger_kind: TriggerKind::Cli,
            trigger_source: None,
            params: serde_json::json!({"pad": "x".repeat(8192)}),
        };
        for _ in 0..200 {
            let id = s.create_run(&big).await.unwrap().id;
            s.finish_run(&id, RunStatus::Succeeded, None, None).await.unwrap();
        }
        let pages = || async { sqlx::query_scalar::<_, i64>("PRAGMA page_count").fetch_one(&s.pool).await.unwrap() };
        let before = pages().await;
        assert_eq!(s.prune(now_ms() + 1, 50).await.unwrap(), 200);
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count").fetch_one(&s.pool).await.unwrap();
        assert_eq!(free, 0, "every freed page went back to the file system");
        assert!(pages().await < before / 4, "{} pages before, {} after", before, pages().await);
    }
}
