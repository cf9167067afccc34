//! Repository versions for many concurrent readers, read with one query per batch.
//!
//! A cached fact about a repository (a tag's manifest, a linked blob, its tag list) is
//! served only at the version the database reports, so every cached read needs the
//! current version. Reading it for each request would cost a round trip each; instead
//! requests queue their repository names and one task reads the versions of everything
//! queued with one query, then answers them all. A request is answered only by a query
//! that started after it was queued, so it sees every write committed before it
//! arrived, from any node.

use std::collections::HashMap;

use berth_meta::MetaError;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::queries;

/// Most requests one query answers.
const MAX_BATCH: usize = 512;

/// A repository's id and its current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RepositoryVersion {
    /// The repository's row id.
    pub id: i64,
    /// Bumped by every change that could make a cached fact about it wrong.
    pub version: i64,
}

type Answer = Result<Option<RepositoryVersion>, MetaError>;

/// Queues version reads for the batching task.
pub(crate) struct VersionReader {
    requests: mpsc::UnboundedSender<(String, oneshot::Sender<Answer>)>,
}

impl VersionReader {
    /// Starts the batching task on the current Tokio runtime; it ends when the reader
    /// is dropped.
    pub(crate) fn spawn(pool: PgPool) -> Self {
        let (requests, queued) = mpsc::unbounded_channel();
        tokio::spawn(answer_batches(pool, queued));
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
async fn answer_batches(
    pool: PgPool,
    mut queued: mpsc::UnboundedReceiver<(String, oneshot::Sender<Answer>)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queued.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut names: Vec<&str> = batch.iter().map(|(name, _)| name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let versions: Result<HashMap<String, RepositoryVersion>, MetaError> =
            queries::repository_versions(&pool, &names).await;
        for (name, reply) in batch.drain(..) {
            // A request dropped meanwhile (its client went away) needs no answer.
            let _ = reply.send(match &versions {
                Ok(found) => Ok(found.get(&name).copied()),
                Err(e) => Err(e.clone()),
            });
        }
    }
}
