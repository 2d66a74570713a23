//! Schedules in SQLite: the `schedules` table; a fire moves its row and
//! records its runs in a savepoint of its own.

use super::SqliteStore;
use super::runs::insert_run;
use crate::clock::now_ms;
use crate::store::{NewSchedule, RunRow, ScheduleFire, StoreError, StoreResult, new_run_id};
use rusqlite::params;
use std::collections::HashMap;

impl SqliteStore {
    pub async fn schedule_next(&self, key: &str) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT next_fire_at FROM schedules WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn schedules(&self) -> StoreResult<HashMap<String, i64>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT key, next_fire_at FROM schedules").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().collect())
    }

    pub async fn init_schedules(&self, new: Vec<NewSchedule>) -> StoreResult<HashMap<String, i64>> {
        self.writer
            .write(move |db| {
                let mut insert = db.prepare_cached(
                    "INSERT INTO schedules (key, runbook, next_fire_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
                )?;
                let mut read = db.prepare_cached("SELECT next_fire_at FROM schedules WHERE key = ?")?;
                let mut stored = HashMap::with_capacity(new.len());
                for s in new {
                    insert.execute(params![s.key, s.runbook, s.next_fire_at])?;
                    let at: i64 = read.query_row([&s.key], |r| r.get(0))?;
                    stored.insert(s.key, at);
                }
                Ok(stored)
            })
            .await
    }

    pub async fn forget_schedules(&self, keep: &std::collections::BTreeSet<String>) -> StoreResult<Vec<String>> {
        let keep = keep.clone();
        self.writer
            .write(move |db| {
                let all: Vec<String> = db
                    .prepare_cached("SELECT key FROM schedules")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let mut delete = db.prepare_cached("DELETE FROM schedules WHERE key = ?")?;
                let mut forgotten = Vec::new();
                for key in all.into_iter().filter(|k| !keep.contains(k)) {
                    delete.execute([&key])?;
                    forgotten.push(key);
                }
                Ok(forgotten)
            })
            .await
    }

    pub async fn fire_schedules(&self, fires: Vec<ScheduleFire>) -> StoreResult<Vec<StoreResult<Option<Vec<RunRow>>>>> {
        self.writer
            .write(move |db| {
                let mut out = Vec::with_capacity(fires.len());
                for fire in &fires {
                    db.prepare_cached("SAVEPOINT fire")?.execute([])?;
                    let result = fire_schedule(db, fire);
                    // Some errors (a full disk) make SQLite roll back the
                    // whole transaction: every fire of it is lost.
                    if db.is_autocommit() {
                        return Err(result.err().unwrap_or_else(|| {
                            StoreError::Backend(anyhow::anyhow!("the transaction was rolled back"))
                        }));
                    }
                    if result.is_err() {
                        db.execute_batch("ROLLBACK TO fire; RELEASE fire")?;
                    } else {
                        db.prepare_cached("RELEASE fire")?.execute([])?;
                    }
                    out.push(result);
                }
                Ok(out)
            })
            .await
    }
}

/// Fires one schedule (see [`Store::fire_schedules`]).
fn fire_schedule(db: &rusqlite::Connection, fire: &ScheduleFire) -> StoreResult<Option<Vec<RunRow>>> {
    let now = now_ms();
    let moved = db
        .prepare_cached("UPDATE schedules SET next_fire_at = ?, last_fire_at = ? WHERE key = ? AND next_fire_at = ?")?
        .execute(params![fire.next, now, fire.key, fire.expected])?;
    if moved != 1 {
        return Ok(None);
    }
    let mut queued = Vec::new();
    for (run, skipped) in &fire.runs {
        let row = insert_run(db, &new_run_id(), run, skipped.as_deref(), now)?;
        if skipped.is_none() {
            queued.push(row);
        }
    }
    Ok(Some(queued))
}
