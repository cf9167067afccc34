//! Repository versions for many concurrent readers, read with one query per batch.
//!
//! A cached fact about a repository (a tag's manifest, a linked blob, its tag list) is
//! served only at the version the database reports, so every cached read needs the
//! current version. Reading it for each request would cost a round trip each; instead
//! requests queue their repository names and one task reads the versions of everything
//! queued with one query, then answers them all. A request is answered only by a query
//! that started after it was queued, so it sees every write committed before it
//! arrived, from any node.
//!
//! The task has a connection of its own, outside the pools: it runs one query at a
//! time, and a pooled connection would cost a checkout and the pool's ping per batch.
//! When that connection turns out to be gone (dropped while idle by the server or a
//! proxy), the query is retried once on a new one, so the batch does not fail for it;
//! the retry, too, starts after every request it answers was queued.
//!
//! The task runs on a thread of its own, so that a node busy with requests never
//! delays it, and it starts a query at most every [`QUERY_GAP`], unless a full batch
//! ([`FULL_BATCH`]) waits sooner: the request that fills one wakes the thread. Under
//! moderate load a query answers the requests of the whole gap, rather than the few
//! that arrived during the last round trip, and each node sends the database a
//! thousand small queries a second; under heavy load the queries follow the requests,
//! each answering a full batch, so that requests do not wait out the gap behind a
//! query that is ready to run. An idle node's request waits for no gap.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use berth_meta::MetaError;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};
use tokio::sync::{mpsc, oneshot};

use crate::{db_err, queries};

/// Most requests one query answers.
const MAX_BATCH: usize = 512;

/// Least time between the starts of two queries, unless [`FULL_BATCH`] requests are
/// waiting sooner. A request waits this long at most (plus a round trip) for its
/// version, and only while the node is busy. Measured on
/// two cores, three nodes behind a load balancer sent 2.5 times the queries of one
/// (about 1,300 a second each) without a gap, which cost a quarter of the machine.
/// With one millisecond, each of three nodes seeing a third of the load rarely filled
/// a batch before the gap ended, and they still sent 1.5 times the queries of one
/// node (PostgreSQL's and the readers' CPU per request doubled): they served 82 % of
/// one node's cached reads. With two milliseconds they serve 86 to 89 %, one node
/// serves as many as before (its batches fill first), and the p99 of a manifest GET
/// at 64 connections stays under 6 ms.
pub(crate) const QUERY_GAP: Duration = Duration::from_millis(2);

/// Requests worth a query of their own before the gap has passed: the request that
/// makes this many since the last query started wakes the task, and the next query
/// starts at once.
pub(crate) const FULL_BATCH: usize = 16;

/// A repository's id and its current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RepositoryVersion {
    /// The repository's row id.
    pub id: i64,
    /// Bumped by every change that could make a cached fact about it wrong.
    pub version: i64,
}

type Answer = Result<Option<RepositoryVersion>, MetaError>;

type Request = (String, oneshot::Sender<Answer>);

/// Queues version reads for the batching task.
pub(crate) struct VersionReader {
    requests: mpsc::UnboundedSender<Request>,
    /// Requests queued since the task's last query started: those of the batch it
    /// gathers, and those still in the queue.
    waiting: Arc<AtomicUsize>,
    /// The task's thread, woken when a full batch waits.
    thread: Thread,
    queries: Arc<AtomicU64>,
}

impl VersionReader {
    /// Starts the batching task on a thread of its own; it connects with `options` when
    /// first needed, gives a connection and query up after `timeout` (a connection that
    /// hangs without closing), starts a query at most every `gap` unless a full batch
    /// waits, and ends when the reader is dropped.
    pub(crate) fn spawn(
        options: PgConnectOptions,
        timeout: Duration,
        gap: Duration,
    ) -> Result<Self, MetaError> {
        let (requests, queued) = mpsc::unbounded_channel();
        let queries = Arc::new(AtomicU64::new(0));
        let waiting = Arc::new(AtomicUsize::new(0));
        let reader = Reader {
            options,
            timeout,
            gap,
            connection: None,
            waiting: waiting.clone(),
            queries: queries.clone(),
        };
        let cannot_start =
            |e: std::io::Error| MetaError(format!("starting the repository version reader: {e}"));
        // The runtime is built on the thread, so that nothing drops it in async code.
        let (started, start) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("berth-versions".into())
            .spawn(move || {
                let built = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match built {
                    Ok(runtime) => {
                        let _ = started.send(Ok(()));
                        runtime.block_on(reader.answer_batches(queued));
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                    }
                }
            })
            .map_err(cannot_start)?
            .thread()
            .clone();
        start
            .recv()
            .map_err(|_| MetaError("the repository version reader stopped at start".into()))?
            .map_err(cannot_start)?;
        Ok(VersionReader {
            requests,
            waiting,
            thread,
            queries,
        })
    }

    /// How many queries the task has started so far.
    pub(crate) fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// The id and current version of `repository`, or `None` if it does not exist.
    pub(crate) async fn of(&self, repository: &str) -> Answer {
        let (reply, answer) = oneshot::channel();
        let stopped = || MetaError("the repository version reader stopped".into());
        // Counted before it is queued, so the task never takes more than were counted.
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        self.requests
            .send((repository.to_owned(), reply))
            .map_err(|_| stopped())?;
        if ahead + 1 == FULL_BATCH {
            self.thread.unpark();
        }
        answer.await.map_err(|_| stopped())?
    }
}

/// The batching task's state: how to connect, and its connection once it has one.
struct Reader {
    options: PgConnectOptions,
    timeout: Duration,
    /// Least time between the starts of two queries, unless a full batch waits.
    gap: Duration,
    connection: Option<PgConnection>,
    /// Requests queued since the last query started, counted by their senders.
    waiting: Arc<AtomicUsize>,
    /// Queries started, retries included.
    queries: Arc<AtomicU64>,
}

impl Reader {
    /// Answers queued requests, one query per batch and at most one per gap unless
    /// [`FULL_BATCH`] requests wait, until the reader is dropped.
    async fn answer_batches(mut self, mut queued: mpsc::UnboundedReceiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut last_query: Option<Instant> = None;
        loop {
            if queued.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
            if let Some(at) = last_query {
                self.gather(&mut queued, &mut batch, at + self.gap);
            }
            // The requests of the next batch are counted from here.
            self.waiting.fetch_sub(batch.len(), Ordering::AcqRel);
            last_query = Some(Instant::now());
            let mut names: Vec<&str> = batch.iter().map(|(name, _)| name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            let versions = self.read(&names).await;
            for (name, reply) in batch.drain(..) {
                // A request dropped meanwhile (its client went away) needs no answer.
                let _ = reply.send(match &versions {
                    Ok(found) => Ok(found.get(&name).copied()),
                    Err(e) => Err(e.clone()),
                });
            }
        }
    }

    /// Adds the requests queued by `until` to `batch`, or fewer once [`FULL_BATCH`]
    /// wait. The thread parks until then, woken early by the request that fills a
    /// batch, rather than looking every few hundred microseconds: each look is a
    /// wake-up of the thread, and on two cores three nodes each looking every 100 µs
    /// served 73 % of one node's cached reads; sleeping once, 86 to 88 %. The thread
    /// runs nothing else: parking here delays no other work, and is finer than the
    /// runtime's millisecond timer.
    fn gather(
        &self,
        queued: &mut mpsc::UnboundedReceiver<Request>,
        batch: &mut Vec<Request>,
        until: Instant,
    ) {
        loop {
            Self::take_queued(queued, batch);
            let now = Instant::now();
            if batch.len() >= FULL_BATCH || now >= until {
                return;
            }
            std::thread::park_timeout(until - now);
        }
    }

    /// Moves the requests queued now into `batch`, up to [`MAX_BATCH`].
    fn take_queued(queued: &mut mpsc::UnboundedReceiver<Request>, batch: &mut Vec<Request>) {
        while batch.len() < MAX_BATCH {
            let Ok(request) = queued.try_recv() else {
                return;
            };
            batch.push(request);
        }
    }

    /// The versions of `names`; a query that fails on a connection opened before it is
    /// retried once on a new connection.
    async fn read(
        &mut self,
        names: &[&str],
    ) -> Result<HashMap<String, RepositoryVersion>, MetaError> {
        let reused = self.connection.is_some();
        match self.read_once(names).await {
            Err(_) if reused => self.read_once(names).await,
            read => read,
        }
    }

    /// One query, over the connection (opened when there is none, dropped after a
    /// failure), within the timeout.
    async fn read_once(
        &mut self,
        names: &[&str],
    ) -> Result<HashMap<String, RepositoryVersion>, MetaError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let attempt = async {
            let conn = match &mut self.connection {
                Some(conn) => conn,
                None => self
                    .connection
                    .insert(self.options.connect().await.map_err(db_err)?),
            };
            queries::repository_versions(conn, names).await
        };
        let read = tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(MetaError(format!(
                    "reading repository versions took longer than {:?}",
                    self.timeout
                )))
            });
        if read.is_err() {
            self.connection = None;
        }
        read
    }
}
