//! The store's error: what a caller must tell apart (a thing that does not
//! exist, a request that contradicts the record) and the backend's own
//! failures, which callers only report.

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The run, approval or escalation named does not exist; holds what
    /// was looked for, e.g. `run "01J..."` or `escalation 7`.
    #[error("{0} not found")]
    NotFound(String),
    /// The request contradicts what is recorded, and says how: an
    /// approval or escalation already decided, a run already over, an
    /// idempotency key first used for another runbook.
    #[error("{0}")]
    Conflict(String),
    /// The database failed: the driver's error, with context.
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

/// The result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A JSON column that does not parse (or a value that does not serialize).
impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Backend(e.into())
    }
}

/// A database error, as sqlx reports it (either backend).
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Backend(e.into())
    }
}

impl StoreError {
    /// A write refused because `holder` no longer holds the run: another
    /// process took it over while `holder` was silent past the lease.
    pub(crate) fn lost(run_id: &str, holder: Option<&str>) -> StoreError {
        StoreError::Conflict(format!(
            "run {run_id:?} is no longer held by {}: another process took it over",
            holder.unwrap_or("this process")
        ))
    }
}
