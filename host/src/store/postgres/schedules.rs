//! Schedules in PostgreSQL: the `schedules` and `schedule_fires` tables.
//! A fire is claimed by inserting its (schedule, fire time) into
//! `schedule_fires` (`ON CONFLICT DO NOTHING`: a host whose insert meets
//! another's waits for it to commit, then inserts nothing) and moves its
//! schedule by compare and swap, with its runs, in a savepoint of its own.

use super::PgStore;
use super::runs::insert_run;
use crate::clock::now_ms;
use crate::store::{NewSchedule, RunRow, ScheduleFire, StoreResult, new_run_id};
use sqlx::PgConnection;
use std::collections::HashMap;

impl PgStore {
    pub async fn schedule_next(&self, key: &str) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT next_fire_at FROM schedules WHERE key = $1")
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
        let mut tx = self.pool.begin().await?;
        let mut stored = HashMap::with_capacity(new.len());
        for s in new {
            sqlx::query(
                "INSERT INTO schedules (key, runbook, next_fire_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
            )
            .bind(&s.key)
            .bind(&s.runbook)
            .bind(s.next_fire_at)
            .execute(&mut *tx)
            .await?;
            let at: i64 = sqlx::query_scalar("SELECT next_fire_at FROM schedules WHERE key = $1")
                .bind(&s.key)
                .fetch_one(&mut *tx)
                .await?;
            stored.insert(s.key, at);
        }
        tx.commit().await?;
        Ok(stored)
    }

    pub async fn forget_schedules(&self, keep: &std::collections::BTreeSet<String>) -> StoreResult<Vec<String>> {
        let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
        let mut forgotten: Vec<String> = sqlx::query_scalar("DELETE FROM schedules WHERE key <> ALL($1) RETURNING key")
            .bind(&keep)
            .fetch_all(&self.pool)
            .await?;
        forgotten.sort();
        Ok(forgotten)
    }

    pub async fn fire_schedules(&self, fires: Vec<ScheduleFire>) -> StoreResult<Vec<StoreResult<Option<Vec<RunRow>>>>> {
        // Fired in the order of their keys, so two hosts firing overlapping
        // sets wait for each other instead of deadlocking.
        let mut order: Vec<usize> = (0..fires.len()).collect();
        order.sort_by(|&a, &b| fires[a].key.cmp(&fires[b].key));
        let mut out: Vec<Option<StoreResult<Option<Vec<RunRow>>>>> = (0..fires.len()).map(|_| None).collect();
        let mut tx = self.pool.begin().await?;
        for i in order {
            let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
            let result = fire_schedule(&mut savepoint, &fires[i]).await;
            match result {
                Ok(Some(_)) => savepoint.commit().await?,
                // Not fired (or failed): nothing of it stays, not even its claim.
                _ => savepoint.rollback().await?,
            }
            out[i] = Some(result);
        }
        tx.commit().await?;
        Ok(out.into_iter().map(|r| r.expect("every fire was answered")).collect())
    }
}

/// Fires one schedule (see [`crate::store::Store::fire_schedules`]).
async fn fire_schedule(db: &mut PgConnection, fire: &ScheduleFire) -> StoreResult<Option<Vec<RunRow>>> {
    let now = now_ms();
    let claimed = sqlx::query(
        "INSERT INTO schedule_fires (key, fire_at, fired_at) VALUES ($1, $2, $3) ON CONFLICT (key, fire_at) DO NOTHING",
    )
    .bind(&fire.key)
    .bind(fire.expected)
    .bind(now)
    .execute(&mut *db)
    .await?
    .rows_affected();
    if claimed != 1 {
        return Ok(None);
    }
    let moved =
        sqlx::query("UPDATE schedules SET next_fire_at = $1, last_fire_at = $2 WHERE key = $3 AND next_fire_at = $4")
            .bind(fire.next)
            .bind(now)
            .bind(&fire.key)
            .bind(fire.expected)
            .execute(&mut *db)
            .await?
            .rows_affected();
    if moved != 1 {
        return Ok(None);
    }
    let mut queued = Vec::new();
    for (run, skipped) in &fire.runs {
        let row = insert_run(db, &new_run_id(), run, skipped.as_deref(), now).await?;
        if skipped.is_none() {
            queued.push(row);
        }
    }
    Ok(Some(queued))
}
