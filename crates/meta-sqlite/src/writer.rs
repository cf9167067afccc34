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
        let begun = set_synchronous(&conn, &mut synchronous, durability)
            .and_then(|()| conn.execute_batch("BEGIN IMMEDIATE"));
        if let Err(e) = begun {
            let err = db_err(e);
            for job in batch {
                job(Err(err.clone())).1(Err(err.clone()));
            }
            continue;
        }
        let mut completions = Vec::with_capacity(batch.len());
        for job in batch {
            if let Err(e) = conn.execute_batch("SAVEPOINT job") {
                job(Err(db_err(e))).1(Err(MetaError("savepoint failed".into())));
                continue;
            }
            match catch_unwind(AssertUnwindSafe(|| job(Ok(&conn)))) {
                Ok((true, completion)) => {
                    let _ = conn.execute_batch("RELEASE job");
                    completions.push(completion);
                }
                Ok((false, completion)) => {
                    let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                    completions.push(completion);
                }
                Err(_) => {
                    tracing::error!("a metadata write panicked; its changes were rolled back");
                    let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                }
            }
        }
        let commit = conn.execute_batch("COMMIT").map_err(db_err);
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for completion in completions {
            completion(commit.clone());
        }
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
}
