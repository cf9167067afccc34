//! Claims on upload sessions that hold across nodes.
//!
//! Requests on one upload may reach different nodes behind a load balancer, so the
//! right to write a session's bytes is a lease in the metadata store: granted to one
//! claim at a time, renewed while the work runs, released when it ends, and lapsing on
//! its own when its node dies. Within a node, the session's lock queues requests first,
//! so that they do not poll the store for one another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_meta::{MetaStore, UploadLease};
use berth_oci::UploadId;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::error::RegistryError;
use crate::locks::SessionGuard;
use crate::registry::Registry;

/// First pause between two attempts to claim a session another node holds.
const FIRST_RETRY: Duration = Duration::from_millis(20);
/// Longest pause between two attempts.
const LONGEST_RETRY: Duration = Duration::from_millis(250);

/// The right to write one upload session, until [`SessionClaim::release`] or drop.
pub(crate) struct SessionClaim<'a> {
    _local: SessionGuard<'a>,
    lease: Lease,
}

/// The store-side part of a claim: its holder and the task renewing it.
struct Lease {
    meta: Arc<dyn MetaStore>,
    id: UploadId,
    holder: i64,
    renewal: JoinHandle<()>,
    released: bool,
}

impl Registry {
    /// Waits for the right to write session `id`: first this node's lock on it, then the
    /// store's lease. Fails with `BLOB_UPLOAD_UNKNOWN` when the session is gone, and with
    /// `TOOMANYREQUESTS` when another node kept it for longer than two lease terms.
    pub(crate) async fn claim_session(
        &self,
        id: &UploadId,
    ) -> Result<SessionClaim<'_>, RegistryError> {
        let local = self.upload_locks.lock(id).await;
        let started = Instant::now();
        let mut pause = FIRST_RETRY;
        loop {
            if let Some(lease) = self.lease(id).await? {
                return Ok(SessionClaim {
                    _local: local,
                    lease,
                });
            }
            if started.elapsed() > self.config.upload_lease * 2 {
                return Err(RegistryError::TooManyRequests(
                    "another request is writing to this upload; retry later".into(),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_RETRY);
        }
    }

    /// Takes the right to write session `id` only if nobody here or on another node
    /// holds it; `Ok(None)` when it is in use or gone.
    pub(crate) async fn try_claim_session(
        &self,
        id: &UploadId,
    ) -> Result<Option<SessionClaim<'_>>, RegistryError> {
        let Some(local) = self.upload_locks.try_lock(id) else {
            return Ok(None);
        };
        match self.lease(id).await {
            Ok(Some(lease)) => Ok(Some(SessionClaim {
                _local: local,
                lease,
            })),
            Ok(None) | Err(RegistryError::BlobUploadUnknown) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One attempt at the store's lease: `Ok(None)` while another claim holds it.
    async fn lease(&self, id: &UploadId) -> Result<Option<Lease>, RegistryError> {
        let holder = rand::random_range(1..i64::MAX);
        let term = self.config.upload_lease;
        match self
            .meta
            .lease_upload(
                id,
                holder,
                self.clock.now_ms(),
                lease_end(&*self.clock, term),
            )
            .await?
        {
            UploadLease::Granted => Ok(Some(Lease {
                meta: self.meta.clone(),
                id: id.clone(),
                holder,
                renewal: tokio::spawn(renew(
                    self.meta.clone(),
                    self.clock.clone(),
                    id.clone(),
                    holder,
                    term,
                )),
                released: false,
            })),
            UploadLease::Held => Ok(None),
            UploadLease::Missing => Err(RegistryError::BlobUploadUnknown),
        }
    }
}

impl SessionClaim<'_> {
    /// Gives the session up, so that the next request, here or on another node, may
    /// take it at once.
    pub(crate) async fn release(mut self) {
        self.lease.renewal.abort();
        self.lease.released = true;
        if let Err(e) = self
            .lease
            .meta
            .release_upload(&self.lease.id, self.lease.holder)
            .await
        {
            tracing::warn!(upload = %self.lease.id, error = %e, "releasing an upload claim failed");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
        if self.released {
            return;
        }
        // Dropped without a release (a failed or cancelled task): release in the
        // background; at worst the lease lapses at the end of its term.
        let (meta, id, holder) = (self.meta.clone(), self.id.clone(), self.holder);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { meta.release_upload(&id, holder).await });
        }
    }
}

/// Renews the lease every third of its term while the work runs.
async fn renew(
    meta: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
    id: UploadId,
    holder: i64,
    term: Duration,
) {
    loop {
        tokio::time::sleep(term / 3).await;
        match meta
            .lease_upload(&id, holder, clock.now_ms(), lease_end(&*clock, term))
            .await
        {
            Ok(UploadLease::Granted) => {}
            Ok(lost) => {
                tracing::warn!(upload = %id, ?lost, "an upload claim lapsed while in use");
                return;
            }
            Err(e) => tracing::warn!(upload = %id, error = %e, "renewing an upload claim failed"),
        }
    }
}

fn lease_end(clock: &dyn Clock, term: Duration) -> i64 {
    clock
        .now_ms()
        .saturating_add(i64::try_from(term.as_millis()).unwrap_or(i64::MAX))
}
