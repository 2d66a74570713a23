//! Retention in PostgreSQL: deletes old finished runs in batches by
//! primary key (`id = ANY(ARRAY(SELECT ... LIMIT n))`, each batch its own
//! statement, so row locks are held briefly; foreign keys cascade to what
//! a run owns), and the fire records of schedules as old (by `ctid`, the
//! row's address: they have a two-column key). Autovacuum
//! reclaims the space; there is no vacuum step as on SQLite.

use super::PgStore;
use crate::store::StoreResult;

impl PgStore {
    pub async fn prune(&self, cutoff: i64, batch: u32) -> StoreResult<u64> {
        let batch = i64::from(batch.max(1));
        let mut deleted = 0;
        loop {
            // Ids are ULIDs: the primary key walks oldest first.
            let done = sqlx::query(
                "DELETE FROM runs WHERE id = ANY(ARRAY(
                     SELECT id FROM runs
                     WHERE created_at < $1 AND status NOT IN ('queued', 'running', 'waiting_approval')
                     ORDER BY id LIMIT $2))",
            )
            .bind(cutoff)
            .bind(batch)
            .execute(&self.pool)
            .await?
            .rows_affected();
            deleted += done;
            if done < batch as u64 {
                break;
            }
        }
        loop {
            let done = sqlx::query(
                "DELETE FROM schedule_fires WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM schedule_fires WHERE fired_at < $1 LIMIT $2))",
            )
            .bind(cutoff)
            .bind(batch)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if done < batch as u64 {
                break;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::now_ms;
    use crate::store::{NewRun, NewSchedule, ScheduleFire, TriggerKind};

    #[tokio::test]
    async fn pruning_deletes_the_fire_records_of_schedules_past_the_cutoff() {
        let s = PgStore::open(&super::super::conformance::database_url().await).await.unwrap();
        let run = NewRun {
            runbook: "rb".into(),
            runbook_hash: "h".into(),
            trigger_kind: TriggerKind::Cron,
            trigger_source: None,
            params: serde_json::json!({}),
        };
        s.init_schedules(vec![NewSchedule { key: "a".into(), runbook: "rb".into(), next_fire_at: 1_000 }])
            .await
            .unwrap();
        let fire = ScheduleFire { key: "a".into(), expected: 1_000, next: 2_000, runs: vec![(run, None)] };
        assert!(s.fire_schedules(vec![fire]).await.unwrap()[0].as_ref().unwrap().is_some());
        let fires = || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM schedule_fires").fetch_one(&s.pool).await.unwrap()
        };
        assert_eq!(fires().await, 1);
        s.prune(now_ms() - 60_000, 10).await.unwrap();
        assert_eq!(fires().await, 1, "a recent fire is kept");
        s.prune(now_ms() + 1, 10).await.unwrap();
        assert_eq!(fires().await, 0);
    }
}
