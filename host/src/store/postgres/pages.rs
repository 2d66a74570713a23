//! The web view's pages in PostgreSQL. Each query walks an index newest
//! first and stops at the page size; the WHERE clause names only the
//! filters given, so the planner picks the index that matches them.

use super::PgStore;
use crate::store::{
    ApprovalRow, EscalationRow, EscalationStatus, PendingApproval, RunFilter, RunRow, RunStatus, StoreResult,
};
use sqlx::Row;

impl PgStore {
    pub async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRow>> {
        let (sql, binds) = list_runs_sql(filter);
        // Audited: the text is made of fixed clauses; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.bind(filter.page_size()).fetch_all(&self.pool).await?;
        rows.iter().map(RunRow::from_row).collect()
    }

    pub async fn count_runs(&self, status: RunStatus) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = $1")
            .bind(status.as_str())
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn pending_approvals(&self, limit: u32) -> StoreResult<Vec<PendingApproval>> {
        let rows = sqlx::query(
            "SELECT a.id, a.run_id, a.step_id, a.iteration, a.message, a.status, a.requested_at, a.expires_at,
                    a.decided_by, a.decided_at, a.reason, r.runbook
             FROM approvals a JOIN runs r ON r.id = a.run_id
             WHERE a.status = 'pending' ORDER BY a.id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(PendingApproval { approval: ApprovalRow::from_row(r)?, runbook: r.try_get(11)? }))
            .collect()
    }

    pub async fn escalation_page(
        &self,
        status: EscalationStatus,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<EscalationRow>> {
        let rows = sqlx::query(
            "SELECT id, run_id, runbook, step_id, iteration, severity, message, dedup_key, status, occurrences,
                    created_at, last_seen_at, acknowledged_by, acknowledged_at, resolved_by, resolved_at, resolution
             FROM escalations WHERE status = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(status.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(EscalationRow::from_row).collect()
    }

    pub async fn count_escalations(&self, status: EscalationStatus) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM escalations WHERE status = $1")
            .bind(status.as_str())
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn list_runs_plan(&self, filter: &RunFilter) -> StoreResult<Vec<String>> {
        let (sql, binds) = list_runs_sql(filter);
        // Audited: as in `list_runs`.
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!("EXPLAIN (COSTS OFF) {sql}")));
        for b in &binds {
            q = q.bind(b);
        }
        Ok(q.bind(filter.page_size()).fetch_all(&self.pool).await?)
    }
}

/// The columns of [`RunRow::from_row`].
const RUN_COLUMNS: &str = "id, runbook, runbook_hash, trigger_kind, trigger_source, params, status, error,
                           created_at, started_at, finished_at";

/// The query of [`PgStore::list_runs`] (its last parameter is the limit)
/// and the values of its other parameters, in order.
fn list_runs_sql(filter: &RunFilter) -> (String, Vec<String>) {
    let (clauses, binds): (Vec<String>, Vec<String>) = filter
        .conditions()
        .into_iter()
        .enumerate()
        .map(|(i, (condition, value))| (format!("{condition} ${}", i + 1), value))
        .unzip();
    let filter_sql = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    let limit = binds.len() + 1;
    (format!("SELECT {RUN_COLUMNS} FROM runs {filter_sql} ORDER BY id DESC LIMIT ${limit}"), binds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_filter_of_the_runs_page_walks_an_index_and_sorts_nothing() {
        let store = PgStore::open(&super::super::conformance::database_url().await).await.unwrap();
        // Enough runs, with statistics, that the planner weighs real costs.
        sqlx::query(
            "INSERT INTO runs (id, runbook, runbook_hash, trigger_kind, params, status, created_at)
             SELECT lpad(n::text, 26, '0'), 'rb' || (n % 20), 'h', 'cli', '{}',
                    (ARRAY['succeeded', 'failed', 'queued'])[n % 3 + 1], n
             FROM generate_series(1, 20000) AS n",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE runs").execute(&store.pool).await.unwrap();
        let (rb, st, before) =
            (Some("rb7".to_string()), Some(RunStatus::Failed), Some("00000000000000000000010000".to_string()));
        for (runbook, status, before) in [
            (None, None, None),
            (rb.clone(), None, None),
            (None, st, None),
            (rb.clone(), st, None),
            (rb.clone(), st, before.clone()),
            (None, None, before.clone()),
        ] {
            let filter = RunFilter { runbook, status, before, limit: None };
            let plan = store.list_runs_plan(&filter).await.unwrap().join("; ");
            assert!(plan.contains("Index Scan Backward"), "{filter:?}: {plan}");
            assert!(!plan.contains("Sort"), "{filter:?} sorts: {plan}");
        }
    }
}
