//! Schedules of cron triggers: each one's next fire time, and firing due
//! ones by compare and swap so that processes sharing a database fire each
//! fire time once. Backend-neutral; the cron maths is [`crate::cron`]'s and
//! the policy (missed fires, overlap) the scheduler's.

use super::{NewRun, RunRow, Store, StoreResult};
use std::collections::HashMap;

/// A schedule's first next fire time, about to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    pub key: String,
    pub runbook: String,
    /// ms since the epoch, jitter included.
    pub next_fire_at: i64,
}

/// A due schedule about to fire (see [`Store::fire_schedules`]).
#[derive(Debug, Clone)]
pub struct ScheduleFire {
    pub key: String,
    /// The stored next fire time it moves from.
    pub expected: i64,
    /// The next fire time it moves to.
    pub next: i64,
    /// Its runs: each queued, or skipped with the reason.
    pub runs: Vec<(NewRun, Option<String>)>,
}

impl Store {
    /// The next fire time of a schedule, if it is known.
    pub async fn schedule_next(&self, key: &str) -> StoreResult<Option<i64>> {
        dispatch!(self, schedule_next(key))
    }

    /// The next fire time of every stored schedule, by key, in one read.
    pub async fn schedules(&self) -> StoreResult<HashMap<String, i64>> {
        dispatch!(self, schedules())
    }

    /// Records the first next fire time of schedules not known yet, in one
    /// transaction, and returns the stored time of each by key: the one
    /// given, or the one another process sharing the database recorded
    /// first.
    pub async fn init_schedules(&self, new: Vec<NewSchedule>) -> StoreResult<HashMap<String, i64>> {
        dispatch!(self, init_schedules(new))
    }

    /// Deletes the schedules whose key is not in `keep`; returns their keys.
    pub async fn forget_schedules(&self, keep: &std::collections::BTreeSet<String>) -> StoreResult<Vec<String>> {
        dispatch!(self, forget_schedules(keep))
    }

    /// Fires due schedules in one transaction. Each fire moves its
    /// schedule's next fire time from `expected` to `next` (compare and
    /// swap) and records its runs, in a savepoint of its own: one that fails
    /// is rolled back alone and answered with its error. Returns, in order,
    /// each fire's queued runs as recorded, None when its schedule had
    /// already moved on (another process fired it), or its error.
    pub async fn fire_schedules(&self, fires: Vec<ScheduleFire>) -> StoreResult<Vec<StoreResult<Option<Vec<RunRow>>>>> {
        dispatch!(self, fire_schedules(fires))
    }
}
