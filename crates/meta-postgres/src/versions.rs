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

use std::collections::HashMap;

use berth_meta::MetaError;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};
use tokio::sync::{mpsc, oneshot};

use crate::{db_err, queries};

/// Most requests one query answers.
const MAX_BATCH: usize = 512;

/// Times the task lets the runtime's other tasks run before it queries, so that
/// requests arriving together share the query. Yielding costs no timer and no wait
/// when nothing else is ready to run.
const GATHER_YIELDS: usize = 32;

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
}

impl VersionReader {
    /// Starts the batching task on the current Tokio runtime; it connects with
    /// `options` when first needed, and ends when the reader is dropped.
    pub(crate) fn spawn(options: PgConnectOptions) -> Self {
        let (requests, queued) = mpsc::unbounded_channel();
        tokio::spawn(answer_batches(options, queued));
        VersionReader { requests }
    }

    /// The id and current version of `repository`, or `None` if it does not exist.
    pub(crate) async fn of(&self, repository: &str) -> Answer {
        let (reply, answer) = oneshot::channel();
        let stopped = || MetaError("the repository version reader stopped".into());
        self.requests
            .send((repository.to_owned(), reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Answers queued requests, one query per batch, until the reader is dropped.
async fn answer_batches(options: PgConnectOptions, mut queued: mpsc::UnboundedReceiver<Request>) {
    let mut connection: Option<PgConnection> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queued.recv_many(&mut batch, MAX_BATCH).await > 0 {
        for _ in 0..GATHER_YIELDS {
            tokio::task::yield_now().await;
        }
        while batch.len() < MAX_BATCH
            && let Ok(request) = queued.try_recv()
        {
            batch.push(request);
        }
        let versions = read_versions(&options, &mut connection, &batch).await;
        for (name, reply) in batch.drain(..) {
            // A request dropped meanwhile (its client went away) needs no answer.
            let _ = reply.send(match &versions {
                Ok(found) => Ok(found.get(&name).copied()),
                Err(e) => Err(e.clone()),
            });
        }
    }
}

/// The versions of the batch's repositories, over `connection` (opened when there is
/// none; dropped after a failure, so the next batch opens a new one).
async fn read_versions(
    options: &PgConnectOptions,
    connection: &mut Option<PgConnection>,
    batch: &[Request],
) -> Result<HashMap<String, RepositoryVersion>, MetaError> {
    let mut names: Vec<&str> = batch.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let conn = match connection {
        Some(conn) => conn,
        None => connection.insert(options.connect().await.map_err(db_err)?),
    };
    let versions = queries::repository_versions(conn, &names).await;
    if versions.is_err() {
        *connection = None;
    }
    versions
}
