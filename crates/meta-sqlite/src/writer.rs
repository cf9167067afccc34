//! The single writer thread and its group commit.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc;

use berth_meta::MetaError;
use rusqlite::Connection;

use crate::db_err;

/// Most requests folded into one transaction.
const MAX_BATCH: usize = 256;

/// Called once the batch holding a job has committed (or failed to).
type Completion = Box<dyn FnOnce(Result<(), MetaError>) + Send>;
/// A write request: runs in its own savepoint and says whether to keep its changes.
type Job = Box<dyn FnOnce(Result<&Connection, MetaError>) -> (bool, Completion) + Send>;

/// What a committed write must survive, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Durability {
    /// A crash of the process only. The commit is in the write-ahead log but not yet
    /// fsynced; a power loss may roll it back (never partly), and the next
    /// `PowerLoss` commit or checkpoint makes it durable too.
    ProcessCrash,
    /// Power loss: the commit waits for the write-ahead log to be fsynced.
    PowerLoss,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::PowerLoss => "PRAGMA synchronous = FULL",
            Durability::ProcessCrash => "PRAGMA synchronous = NORMAL",
        }
    }
}

/// A job and the durability its commit needs.
struct Request {
    durability: Durability,
    job: Job,
}

/// Opens the read-write connection with WAL, durable commits and foreign keys.
pub fn open_writer_connection(path: &Path) -> Result<Connection, MetaError> {
    let conn = Connection::open(path).map_err(db_err)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;",
    )
    .map_err(db_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Handle to the writer thread.
pub struct Writer {
    /// Queue of write requests; the thread exits when every handle is dropped.
    jobs: mpsc::Sender<Request>,
}

impl Writer {
    pub fn start(conn: Connection) -> Result<Self, MetaError> {
        let (jobs, queue) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("berth-sqlite-writer".into())
            .spawn(move || writer_loop(conn, queue))
            .map_err(|e| MetaError(format!("starting the writer thread: {e}")))?;
        Ok(Writer { jobs })
    }

    /// Runs `f` in a write transaction and returns its result once durably committed.
    pub async fn run<R, E>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<MetaError> + Send + 'static,
    {
        self.run_with(Durability::PowerLoss, f).await
    }

    /// Runs `f` in a write transaction and returns its result once committed as
    /// `durability` asks.
    pub async fn run_with<R, E>(
        &self,
        durability: Durability,
        f: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<MetaError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<R, E>>();
        let job: Job = Box::new(move |conn| {
            let result = conn.map_err(E::from).and_then(f);
            let keep = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let outcome = match (result, commit) {
                    (Ok(r), Ok(())) => Ok(r),
                    (Ok(_), Err(e)) => Err(E::from(e)),
                    (Err(e), _) => Err(e),
                };
                let _ = tx.send(outcome);
            });
            (keep, completion)
        });
        let stopped = || MetaError("the metadata writer has stopped".into());
        self.jobs
            .send(Request { durability, job })
            .map_err(|_| E::from(stopped()))?;
        rx.await.map_err(|_| E::from(stopped()))?
    }
}

fn writer_loop(conn: Connection, queue: mpsc::Receiver<Request>) {
    let mut synchronous = Durability::PowerLoss;
    while let Ok(first) = queue.recv() {
        let mut durability = first.durability;
        let mut batch = vec![first.job];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => {
                    durability = durability.max(request.durability);
                    batch.push(request.job);
                }
                Err(_) => break,
            }
        }
        // The batch commits as durably as its most demanding job needs.
        if let Err(e) = set_synchronous(&conn, &mut synchronous, durability) {
            fail_all(batch, &db_err(e));
            continue;
        }
        run_batch(&conn, batch);
    }
}

/// Runs `batch` in one transaction, each job in its own savepoint, and answers every job
/// once the fate of its changes is known.
///
/// SQLite may roll back the whole transaction on its own when a statement fails with
/// `SQLITE_FULL`, `SQLITE_IOERR` or `SQLITE_NOMEM`; the connection is then back in
/// autocommit mode, where each later `SAVEPOINT … RELEASE` would commit by itself and
/// the final `COMMIT` would fail. So the connection is checked after every job: when the
/// transaction is gone, every job whose changes it held is told so, and the remaining
/// jobs go on in a new transaction.
fn run_batch(conn: &Connection, batch: Vec<Job>) {
    let mut jobs = batch.into_iter();
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        fail_all(jobs, &db_err(e));
        return;
    }
    // Completions of the jobs whose answer is the open transaction's commit.
    let mut pending: Vec<Completion> = Vec::new();
    while let Some(job) = jobs.next() {
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            job(Err(db_err(e))).1(Err(MetaError("savepoint failed".into())));
            continue;
        }
        let completion = match catch_unwind(AssertUnwindSafe(|| job(Ok(conn)))) {
            Ok((keep, completion)) => {
                if !conn.is_autocommit() {
                    let end = if keep {
                        "RELEASE job"
                    } else {
                        "ROLLBACK TO job; RELEASE job"
                    };
                    let _ = conn.execute_batch(end);
                }
                Some(completion)
            }
            Err(_) => {
                tracing::error!("a metadata write panicked; its changes were rolled back");
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                }
                None
            }
        };
        if conn.is_autocommit() {
            tracing::error!(
                jobs = pending.len() + 1,
                "the database rolled back a write transaction on its own"
            );
            let err = MetaError(
                "the database rolled back the transaction holding this write \
                 (disk full, I/O error or out of memory); nothing of it was saved"
                    .into(),
            );
            for completion in pending.drain(..).chain(completion) {
                completion(Err(err.clone()));
            }
            if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
                fail_all(jobs, &db_err(e));
                return;
            }
        } else {
            pending.extend(completion);
        }
    }
    let commit = conn.execute_batch("COMMIT").map_err(db_err);
    if commit.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for completion in pending {
        completion(commit.clone());
    }
}

/// Answers every job in `jobs` with `err` without running its work.
fn fail_all(jobs: impl IntoIterator<Item = Job>, err: &MetaError) {
    for job in jobs {
        job(Err(err.clone())).1(Err(err.clone()));
    }
}

/// Switches the connection's `synchronous` setting to what `wanted` needs, tracking the
/// setting in `current` so that the pragma only runs on a change.
fn set_synchronous(
    conn: &Connection,
    current: &mut Durability,
    wanted: Durability,
) -> rusqlite::Result<()> {
    if *current != wanted {
        conn.execute_batch(wanted.pragma())?;
        *current = wanted;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(c: &Connection) -> rusqlite::Result<i64> {
        c.query_row("PRAGMA synchronous", [], |r| r.get(0))
    }

    #[tokio::test]
    async fn each_commit_is_as_durable_as_its_job_asks() {
        let dir = tempfile::tempdir().unwrap();
        let writer =
            Writer::start(open_writer_connection(&dir.path().join("w.db")).unwrap()).unwrap();
        const NORMAL: i64 = 1;
        const FULL: i64 = 2;
        let cases = [
            (Durability::PowerLoss, FULL),
            (Durability::ProcessCrash, NORMAL),
            (Durability::ProcessCrash, NORMAL),
            (Durability::PowerLoss, FULL),
        ];
        for (durability, expected) in cases {
            let seen = writer
                .run_with(durability, |c| synchronous(c).map_err(crate::db_err))
                .await
                .unwrap();
            assert_eq!(seen, expected, "{durability:?}");
        }
    }

    /// Polls `future` once, so that a `Writer::run` call queues its job before the test
    /// goes on.
    fn queue<F: std::future::Future + Unpin>(future: &mut F) {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::pin::Pin::new(future).poll(&mut cx).is_pending());
    }

    #[tokio::test]
    async fn an_automatic_rollback_is_reported_to_every_job_it_undid() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer_connection(&dir.path().join("w.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB NOT NULL)")
            .unwrap();
        // Room for a few small rows but not for one of 64 KiB: the big insert fails with
        // SQLITE_FULL, and SQLite then rolls back the whole transaction on its own.
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        conn.query_row(
            &format!("PRAGMA max_page_count = {}", pages + 4),
            [],
            |_| Ok(()),
        )
        .unwrap();
        let writer = Writer::start(conn).unwrap();

        // The first job holds the writer thread until every other job is queued, so
        // that those all run in the next batch, in this order.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let mut holder = Box::pin(writer.run(move |_| {
            started.send(()).unwrap();
            hold.recv().unwrap();
            Ok::<_, MetaError>(())
        }));
        queue(&mut holder);
        running.recv().unwrap();
        // Each job inserts a row of its size under its index; a job marked `true` then
        // also tries a big insert and ignores its failure, as a careless caller might.
        const BIG: usize = 64 * 1024;
        let plan = [
            (10, false),
            (10, false),
            (BIG, false),
            (10, false),
            (10, false),
            (BIG, false),
            (10, false),
            (10, true),
            (10, false),
        ];
        let autocommit_seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut jobs: Vec<_> = (0_i64..)
            .zip(plan)
            .map(|(id, (size, then_big))| {
                let autocommit_seen = autocommit_seen.clone();
                Box::pin(writer.run(move |c| {
                    if c.is_autocommit() {
                        autocommit_seen.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    let insert = |id: i64, size: usize| {
                        c.execute("INSERT INTO t VALUES (?1, ?2)", (id, vec![7_u8; size]))
                            .map(|_| ())
                            .map_err(crate::db_err)
                    };
                    insert(id, size)?;
                    if then_big {
                        let _ = insert(id + 1000, BIG);
                    }
                    Ok::<_, MetaError>(())
                }))
            })
            .collect();
        for job in &mut jobs {
            queue(job);
        }
        release.send(()).unwrap();
        holder.await.unwrap();
        let mut answers = Vec::new();
        for job in jobs {
            answers.push(job.await.is_ok());
        }

        let check = Connection::open(dir.path().join("w.db")).unwrap();
        let stored: Vec<bool> = (0..plan.len() as i64)
            .map(|id| {
                check
                    .query_row("SELECT count(*) FROM t WHERE id = ?1", [id], |r| {
                        r.get::<_, i64>(0)
                    })
                    .unwrap()
                    == 1
            })
            .collect();
        assert_eq!(answers, stored, "each answer matches what was committed");
        assert!(
            !autocommit_seen.load(std::sync::atomic::Ordering::SeqCst),
            "no job ran outside a transaction"
        );
        // The rows queued before each big insert were undone with it; the last one was
        // committed in a new transaction.
        assert_eq!(
            stored,
            [false, false, false, false, false, false, false, false, true]
        );
    }
}
