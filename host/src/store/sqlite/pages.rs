//! The web view's pages in SQLite. Each query walks an index newest first
//! (migration 0007) and stops at the page size; the WHERE clause names only
//! the filters given (an `?1 IS NULL OR ...` clause would keep SQLite from
//! using the index).

use super::SqliteStore;
use crate::store::{
    ApprovalRow, EscalationRow, EscalationStatus, PendingApproval, RunFilter, RunRow, RunStatus, StoreResult,
};
use sqlx::Row;

impl SqliteStore {
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
        Ok(sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = ?")
            .bind(status.as_str())
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn pending_approvals(&self, limit: u32) -> StoreResult<Vec<PendingApproval>> {
        let rows = sqlx::query(
            "SELECT a.id, a.run_id, a.step_id, a.iteration, a.message, a.status, a.requested_at, a.expires_at,
                    a.decided_by, a.decided_at, a.reason, r.runbook
             FROM approvals a JOIN runs r ON r.id = a.run_id
             WHERE a.status = 'pending' ORDER BY a.id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(PendingApproval { approval: ApprovalRow::from_row(r)?, runbook: r.get(11) })).collect()
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
             FROM escalations WHERE status = ? AND id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(status.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(EscalationRow::from_row).collect()
    }

    pub async fn count_escalations(&self, status: EscalationStatus) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM escalations WHERE status = ?")
            .bind(status.as_str())
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn list_runs_plan(&self, filter: &RunFilter) -> StoreResult<Vec<String>> {
        let (sql, binds) = list_runs_sql(filter);
        let mut q =
            sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
        for b in &binds {
            q = q.bind(b);
        }
        Ok(q.bind(filter.page_size()).fetch_all(&self.pool).await?.into_iter().map(|r| r.3).collect())
    }
}

/// The columns of [`RunRow::from_row`].
const RUN_COLUMNS: &str = "id, runbook, runbook_hash, trigger_kind, trigger_source, params, status, error,
                           created_at, started_at, finished_at";

/// The query of [`Store::list_runs`] (its last `?` is the limit) and the
/// values of its other parameters, in order.
fn list_runs_sql(filter: &RunFilter) -> (String, Vec<String>) {
    let (clauses, binds): (Vec<String>, Vec<String>) =
        filter.conditions().into_iter().map(|(condition, value)| (format!("{condition} ?"), value)).unzip();
    let filter_sql = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    (format!("SELECT {RUN_COLUMNS} FROM runs {filter_sql} ORDER BY id DESC LIMIT ?"), binds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_filter_of_the_runs_page_walks_an_index_and_sorts_nothing() {
        let store = SqliteStore::open(":memory:").await.unwrap();
        let (rb, st, before) = (Some("web".to_string()), Some(RunStatus::Failed), Some("01J".to_string()));
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
            assert!(plan.contains("USING INDEX") || plan.contains("USING COVERING INDEX"), "{filter:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{filter:?} sorts: {plan}");
        }
    }
}
