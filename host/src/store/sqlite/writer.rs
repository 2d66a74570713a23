//! The store's single writer: one thread owns the only connection that
//! writes, and commits the writes that every task queued meanwhile in one
//! transaction (group commit). A write's caller is answered only after that
//! transaction is durable. Owns the writer thread and its batching; the SQL
//! itself comes from the store's functions.
//!
//! Why a thread and not the async pool: SQLite has one writer at a time, and
//! a durable commit costs an fsync (about 0.15 ms here), so writes that each
//! commit on their own top out at a few thousand per second, shared by all
//! runs. Here a batch of N writes costs one fsync. The connection is a
//! synchronous one (rusqlite) so a batch runs with no thread hop per
//! statement.
//!
//! Each write runs inside its own savepoint: a write that fails is rolled
//! back alone and answered with its error; the rest of the batch commits.

use crate::store::{StoreError, StoreResult};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;

/// What the writer does with a queued write: runs it (given the connection)
/// or, when the batch's transaction could not begin, fails it (given why).
/// Returns how to answer the caller once the batch's commit is known.
type Work = Box<dyn FnOnce(Result<&rusqlite::Connection, &str>) -> Answer + Send>;
/// Answers a write's caller: `Ok` once the commit is durable, or why the
/// commit failed.
type Answer = Box<dyn FnOnce(Result<(), &str>) + Send>;

struct Job {
    work: Work,
    /// Runs alone and outside a transaction (`PRAGMA`s like
    /// `incremental_vacuum` and `wal_checkpoint`).
    alone: bool,
}

/// Durability of the writer's commits.
#[derive(Debug, Clone, Copy)]
pub(super) enum Sync {
    /// `synchronous = FULL`: a commit survives a crash of the machine.
    Full,
    /// `synchronous = OFF`: for throwaway databases.
    Off,
}

/// Queues writes for the writer thread. Cheap to clone; the thread stops
/// when the last clone is dropped (after answering what was queued).
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens the writer's connection to the database at `path` (which must
    /// exist and be migrated) and starts its thread.
    pub(super) fn start(path: &Path, sync: Sync) -> anyhow::Result<Writer> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            match sync {
                Sync::Full => "FULL",
                Sync::Off => "OFF",
            },
        )?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.set_prepared_statement_cache_capacity(64);
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new().name("tend-db-writer".into()).spawn(move || serve(conn, queue))?;
        Ok(Writer { jobs })
    }

    /// Runs `f` in the next batch and returns its result once the batch is
    /// committed. An error from `f` rolls back what `f` wrote, and only that.
    /// A write whose caller stops waiting (a dropped future) still happens.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.queue(false, move |conn| in_savepoint(conn, f)).await
    }

    /// Runs `f` alone, outside any transaction, between two batches.
    pub(super) async fn alone<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.queue(true, f).await
    }

    async fn queue<T: Send + 'static>(
        &self,
        alone: bool,
        f: impl FnOnce(&rusqlite::Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let work: Work = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => guarded(conn, f),
                Err(why) => Err(failed(why)),
            };
            Box::new(move |commit: Result<(), &str>| {
                let _ = tx.send(match commit {
                    Ok(()) => result,
                    Err(why) if result.is_ok() => Err(failed(why)),
                    Err(_) => result,
                });
            })
        });
        self.jobs.send(Job { work, alone }).map_err(|_| failed("the database writer has stopped"))?;
        rx.await.map_err(|_| failed("the database writer stopped before answering"))?
    }
}

/// A write that failed for a reason of the writer's own.
fn failed(why: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(anyhow::anyhow!("{why}"))
}

fn in_savepoint<T>(
    conn: &rusqlite::Connection,
    f: impl FnOnce(&rusqlite::Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.prepare_cached("SAVEPOINT w")?.execute([])?;
    let result = guarded(conn, f);
    // Some errors (a full disk, an I/O error) make SQLite roll back the
    // whole transaction itself; the batch then fails (see `serve`).
    if conn.is_autocommit() {
        return result;
    }
    let end = if result.is_err() {
        conn.execute_batch("ROLLBACK TO w; RELEASE w")
    } else {
        conn.prepare_cached("RELEASE w").and_then(|mut release| release.execute([])).map(|_| ())
    };
    // A savepoint that cannot be ended would let this write's changes (or
    // a failed write's) commit with the batch: give up the whole batch.
    if let Err(e) = end {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(failed(format!("ending the write's savepoint: {e}")));
    }
    result
}

/// Runs `f`; a panic (a bug in tend) fails this write, not the writer.
fn guarded<T>(conn: &rusqlite::Connection, f: impl FnOnce(&rusqlite::Connection) -> StoreResult<T>) -> StoreResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(failed("a database write panicked (a bug in tend)")))
}

/// The writer thread: takes what is queued (at most [`MAX_BATCH`]), runs it
/// in one transaction, commits, answers, and starts over.
fn serve(conn: rusqlite::Connection, queue: mpsc::Receiver<Job>) {
    let mut held: Option<Job> = None;
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        if first.alone {
            let answer = (first.work)(Ok(&conn));
            answer(Ok(()));
            continue;
        }
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) if job.alone => {
                    held = Some(job);
                    break;
                }
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Never left inside a transaction (a failed ROLLBACK, an `alone`
        // job that began one); if so, start clean.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let why = format!("starting a database transaction: {e}");
            for job in batch {
                (job.work)(Err(&why))(Err(&why));
            }
            continue;
        }
        let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
        let mut lost = None;
        for job in batch {
            match &lost {
                None => {
                    answers.push((job.work)(Ok(&conn)));
                    // The transaction is gone (SQLite rolled it back after
                    // an error): what ran in it is lost, nothing more runs.
                    if conn.is_autocommit() {
                        lost = Some("the database rolled back the transaction after an error".to_string());
                    }
                }
                Some(why) => answers.push((job.work)(Err(why))),
            }
        }
        let commit = match lost {
            Some(why) => Err(why),
            None => conn.execute_batch("COMMIT").map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                format!("committing to the database: {e}")
            }),
        };
        match &commit {
            Ok(()) => {
                metrics::counter!("tend_store_commits_total").increment(1);
                metrics::counter!("tend_store_writes_total").increment(answers.len() as u64);
            }
            Err(e) => {
                tracing::error!("database writer: {e}");
                metrics::counter!("tend_store_failed_commits_total").increment(1);
            }
        }
        for answer in answers {
            answer(commit.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)").unwrap();
        drop(conn);
        let w = Writer::start(&path, Sync::Off).unwrap();
        (dir, w)
    }

    async fn count(w: &Writer) -> i64 {
        w.write(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)).await.unwrap()
    }

    type Write = Box<dyn FnOnce(&rusqlite::Connection) -> StoreResult<usize> + Send>;

    /// Runs `writes` in one batch, in order: the writer is held in a batch
    /// of its own until all of them are queued.
    async fn in_one_batch(w: &Writer, writes: Vec<Write>) -> Vec<StoreResult<usize>> {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let w = w.clone();
            async move { w.write(move |_| Ok(hold.recv().map_err(anyhow::Error::from)?)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut queued = Vec::new();
        for f in writes {
            let w = w.clone();
            queued.push(tokio::spawn(async move { w.write(f).await }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        let mut results = Vec::new();
        for q in queued {
            results.push(q.await.unwrap());
        }
        results
    }

    #[tokio::test]
    async fn a_failed_write_rolls_back_alone_and_the_batch_commits() {
        let (_dir, w) = writer();
        // The middle write inserts a row and then fails on a duplicate key.
        let r = in_one_batch(
            &w,
            vec![
                Box::new(|c| Ok(c.execute("INSERT INTO t VALUES ('a', 1)", [])?)),
                Box::new(|c| {
                    c.execute("INSERT INTO t VALUES ('b', 2)", [])?;
                    Ok(c.execute("INSERT INTO t VALUES ('a', 3)", [])?)
                }),
                Box::new(|c| Ok(c.execute("INSERT INTO t VALUES ('c', 4)", [])?)),
            ],
        )
        .await;
        assert_eq!(r[0].as_ref().unwrap(), &1);
        assert!(r[1].as_ref().unwrap_err().to_string().contains("UNIQUE constraint failed: t.k"));
        assert_eq!(r[2].as_ref().unwrap(), &1);
        let keys: Vec<String> = w
            .write(|c| {
                let mut s = c.prepare("SELECT k FROM t ORDER BY k")?;
                Ok(s.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(keys, ["a", "c"]);
    }

    #[tokio::test]
    async fn a_batch_whose_transaction_is_lost_fails_every_write_in_it() {
        let (_dir, w) = writer();
        // The middle write ends the batch's transaction, as SQLite does
        // after a full disk.
        let r = in_one_batch(
            &w,
            vec![
                Box::new(|c| Ok(c.execute("INSERT INTO t VALUES ('a', 1)", [])?)),
                Box::new(|c| Ok(c.execute_batch("ROLLBACK").map(|()| 0)?)),
                Box::new(|c| Ok(c.execute("INSERT INTO t VALUES ('c', 3)", [])?)),
            ],
        )
        .await;
        let lost = "the database rolled back the transaction after an error";
        assert_eq!(r[0].as_ref().unwrap_err().to_string(), lost);
        assert!(r[1].is_err());
        assert_eq!(r[2].as_ref().unwrap_err().to_string(), lost);
        assert_eq!(count(&w).await, 0, "nothing of the lost batch stayed");
        // The writer goes on.
        w.write(|c| Ok(c.execute("INSERT INTO t VALUES ('d', 4)", [])?)).await.unwrap();
        assert_eq!(count(&w).await, 1);
    }

    #[tokio::test]
    async fn a_savepoint_that_cannot_end_fails_the_batch_not_just_the_write() {
        let (_dir, w) = writer();
        // The middle write releases the writer's savepoint itself, so ending
        // it fails; its insert must not commit with the others.
        let r = in_one_batch(
            &w,
            vec![
                Box::new(|c| Ok(c.execute("INSERT INTO t VALUES ('a', 1)", [])?)),
                Box::new(|c| {
                    c.execute("INSERT INTO t VALUES ('b', 2)", [])?;
                    Ok(c.execute_batch("RELEASE w").map(|()| 0)?)
                }),
                Box::new(|c| Ok(c.execute("INSERT INTO t VALUES ('c', 3)", [])?)),
            ],
        )
        .await;
        assert!(r[1].as_ref().unwrap_err().to_string().starts_with("ending the write's savepoint: "), "{r:?}");
        assert!(r.iter().all(|x| x.is_err()), "{r:?}");
        assert_eq!(count(&w).await, 0);
    }

    #[tokio::test]
    async fn many_concurrent_writes_are_all_committed() {
        let (_dir, w) = writer();
        let mut tasks = Vec::new();
        for i in 0..2000 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                w.write(move |c| Ok(c.execute("INSERT INTO t VALUES (?, ?)", rusqlite::params![format!("k{i}"), i])?))
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 1);
        }
        assert_eq!(count(&w).await, 2000);
        // Work outside a transaction runs between batches.
        let mode: String = w
            .alone(|c| Ok(c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0))?.to_string()))
            .await
            .unwrap();
        assert_eq!(mode, "0");
    }
}
