//! Claims on upload sessions that hold across nodes.
//!
//! Requests on one upload may reach different nodes behind a load balancer, so the
//! right to write a session's bytes is a lease in the metadata store: granted to one
//! claim at a time, renewed while the work runs, released when it ends, and lapsing on
//! its own when its node dies. Within a node, the session's lock queues requests first,
//! so that they do not poll the store for one another.
//!
//! A node that lost its claim (it was paused, or cut off from the database, for longer
//! than the lease term, and another node took the session over) must stop writing at
//! once: the body it streams is fenced ([`SessionClaim::fence`]), so that before its
//! bytes go on to the blob store, at least every [`FENCE_EVERY`] and [`FENCE_BYTES`]
//! and at its end, the claim is known held: renewed in the store, or granted or
//! renewed so recently that it cannot have lapsed since. A claim found lost fails the
//! body. As a blob store completes a part only once it was given a part's worth (5 MiB
//! at least; an object store may stream a part as its bytes arrive, but a part cut short
//! is never stored), no part is made of bytes that passed no check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_blob::ByteStream;
use berth_meta::{GrantedUpload, MetaStore, UploadLease, UploadSession};
use berth_oci::UploadId;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::error::RegistryError;
use crate::locks::SessionGuard;
use crate::registry::Registry;
use crate::upload_limits::{OpenBytesReading, StoredMark};

/// First pause between two attempts to claim a session another node holds.
const FIRST_RETRY: Duration = Duration::from_millis(20);
/// Longest pause between two attempts.
const LONGEST_RETRY: Duration = Duration::from_millis(250);
/// A streaming body's claim is checked in the store before its bytes go on, at least
/// this often and at its end.
pub(crate) const FENCE_EVERY: Duration = Duration::from_secs(1);
/// … and at least once per this many bytes: less than the smallest part an object
/// store accepts.
pub(crate) const FENCE_BYTES: u64 = 4 << 20;

/// A body failed because the claim on its upload was lost to another node.
#[derive(Debug, thiserror::Error)]
#[error("another request took this upload over; ask where it stands and resume from there")]
pub(crate) struct ClaimLost;

/// The right to write one upload session, until [`SessionClaim::release`] or drop.
pub(crate) struct SessionClaim<'a> {
    _local: SessionGuard<'a>,
    lease: Lease,
    /// The session as it stood when the claim was granted.
    pub(crate) session: UploadSession,
    /// The bytes open sessions held then, for the budget on them.
    pub(crate) open_bytes: OpenBytesReading,
}

/// What a granted lease comes with.
struct Granted {
    session: UploadSession,
    open_bytes: OpenBytesReading,
}

/// The store-side part of a claim: its holder and the task renewing it.
struct Lease {
    term: Term,
    /// When the request that granted the claim was sent: it holds until a term later.
    asked_at: Instant,
    /// … and what the clock the term is measured with read then.
    asked_at_ms: i64,
    renewal: JoinHandle<()>,
    released: bool,
}

/// What renews one claim: the store, the session, the holder and the term.
#[derive(Clone)]
struct Term {
    meta: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
    id: UploadId,
    holder: i64,
    length: Duration,
}

impl Term {
    /// Extends the claim by a term from now, if it is still held.
    async fn renew(&self) -> Result<bool, berth_meta::MetaError> {
        let until = lease_end(&*self.clock, self.length);
        self.meta
            .renew_upload_lease(&self.id, self.holder, until)
            .await
    }
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
            if let Some((lease, granted)) = self.lease(id).await? {
                return Ok(SessionClaim {
                    _local: local,
                    lease,
                    session: granted.session,
                    open_bytes: granted.open_bytes,
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
            Ok(Some((lease, granted))) => Ok(Some(SessionClaim {
                _local: local,
                lease,
                session: granted.session,
                open_bytes: granted.open_bytes,
            })),
            Ok(None) | Err(RegistryError::BlobUploadUnknown) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One attempt at the store's lease, with the session it grants: `Ok(None)` while
    /// another claim holds it.
    async fn lease(&self, id: &UploadId) -> Result<Option<(Lease, Granted)>, RegistryError> {
        let ask = self.ask_lease();
        match self
            .meta
            .lease_upload(id, ask.holder, ask.asked_at_ms, ask.until)
            .await?
        {
            UploadLease::Granted(granted) => {
                let GrantedUpload {
                    session,
                    open_bytes,
                } = *granted;
                let open_bytes = OpenBytesReading {
                    mark: ask.mark,
                    stored: open_bytes,
                };
                Ok(Some((
                    self.granted_lease(id, ask),
                    Granted {
                        session,
                        open_bytes,
                    },
                )))
            }
            UploadLease::Held => Ok(None),
            UploadLease::Missing => Err(RegistryError::BlobUploadUnknown),
        }
    }

    /// A new holder's request for a claim, for the store to grant.
    pub(crate) fn ask_lease(&self) -> LeaseAsk {
        let term = self.config.upload_lease;
        LeaseAsk {
            holder: rand::random_range(1..i64::MAX),
            until: lease_end(&*self.clock, term),
            asked_at: Instant::now(),
            asked_at_ms: self.clock.now_ms(),
            mark: self.limits.stored_mark(),
        }
    }

    /// The claim `ask` asked for, which the store granted with `session` recorded as it
    /// stands (a session recorded already claimed, by
    /// [`berth_meta::CollectionStore::pin_new_upload`]), under this node's lock `local`.
    pub(crate) fn recorded_claim<'a>(
        &'a self,
        local: SessionGuard<'a>,
        ask: LeaseAsk,
        session: UploadSession,
    ) -> SessionClaim<'a> {
        let open_bytes = OpenBytesReading {
            mark: ask.mark,
            stored: 0,
        };
        SessionClaim {
            _local: local,
            lease: self.granted_lease(&session.id, ask),
            session,
            open_bytes,
        }
    }

    /// The lease the store granted to `ask` on session `id`, renewed from now on.
    fn granted_lease(&self, id: &UploadId, ask: LeaseAsk) -> Lease {
        let term = Term {
            meta: self.meta.clone(),
            clock: self.clock.clone(),
            id: id.clone(),
            holder: ask.holder,
            length: self.config.upload_lease,
        };
        Lease {
            renewal: tokio::spawn(renew(term.clone())),
            term,
            asked_at: ask.asked_at,
            asked_at_ms: ask.asked_at_ms,
            released: false,
        }
    }
}

/// A claim asked for: its holder and term, and when it was asked for.
pub(crate) struct LeaseAsk {
    /// The new holder.
    pub(crate) holder: i64,
    /// When the claim lapses unless renewed.
    pub(crate) until: i64,
    asked_at: Instant,
    asked_at_ms: i64,
    mark: StoredMark,
}

impl SessionClaim<'_> {
    /// `body`, failing with [`ClaimLost`] as soon as the claim is found lost: the claim
    /// is renewed in the store before the body's bytes go on, when it was last known held
    /// longer than [`FENCE_EVERY`] or [`FENCE_BYTES`] ago, and before its end is passed on
    /// (after which the blob store writes what it has left) unless it was known held a
    /// moment ago, well within its term: a small body that arrives at once costs no
    /// renewal.
    pub(crate) fn fence(&self, body: ByteStream) -> ByteStream {
        let fence = Fence {
            body,
            term: self.lease.term.clone(),
            checked_at: self.lease.asked_at,
            checked_at_ms: self.lease.asked_at_ms,
            unchecked_bytes: 0,
            failed: false,
        };
        Box::pin(futures_util::stream::unfold(
            fence,
            |mut fence| async move {
                let item = fence.next().await?;
                Some((item, fence))
            },
        ))
    }

    /// Ends the claim of a session that is gone (completed): there is no row left to
    /// release.
    pub(crate) fn ended(mut self) {
        self.lease.renewal.abort();
        self.lease.released = true;
    }

    /// Gives the session up, so that the next request, here or on another node, may
    /// take it at once.
    pub(crate) async fn release(mut self) {
        self.lease.renewal.abort();
        self.lease.released = true;
        let term = &self.lease.term;
        if let Err(e) = term.meta.release_upload(&term.id, term.holder).await {
            tracing::warn!(upload = %term.id, error = %e, "releasing an upload claim failed");
        }
    }
}

/// A body being fenced, and when its claim was last known held (when the request that
/// found it held was sent).
struct Fence {
    body: ByteStream,
    term: Term,
    checked_at: Instant,
    /// What the term's clock read at `checked_at`.
    checked_at_ms: i64,
    unchecked_bytes: u64,
    failed: bool,
}

impl Fence {
    /// The body's next item, or `ClaimLost` in its place once the claim is found lost.
    async fn next(&mut self) -> Option<std::io::Result<bytes::Bytes>> {
        if self.failed {
            return None;
        }
        let next = self.body.next().await;
        if let Some(Ok(chunk)) = &next {
            self.unchecked_bytes += chunk.len() as u64;
        }
        let since = self.since();
        let due = self.unchecked_bytes >= FENCE_BYTES
            || since >= FENCE_EVERY
            || (next.is_none() && since >= self.recent());
        if due {
            let (asked_at, asked_at_ms) = (Instant::now(), self.term.clock.now_ms());
            if !matches!(self.term.renew().await, Ok(true)) {
                self.failed = true;
                return Some(Err(std::io::Error::other(ClaimLost)));
            }
            self.checked_at = asked_at;
            self.checked_at_ms = asked_at_ms;
            self.unchecked_bytes = 0;
        }
        next
    }

    /// How long ago the claim was last known held, by the monotonic clock and by the
    /// clock its term is measured with, whichever says longer: a suspend of the machine
    /// (or virtual machine) stops the monotonic clock on Linux, while the term, measured
    /// by the other nodes' clocks, runs on. A clock that went back says nothing: it
    /// counts as long ago.
    fn since(&self) -> Duration {
        let elapsed = self.checked_at.elapsed();
        match u64::try_from(self.term.clock.now_ms() - self.checked_at_ms) {
            Ok(ms) => elapsed.max(Duration::from_millis(ms)),
            Err(_) => Duration::MAX,
        }
    }

    /// How long after the claim was last known held it surely still is: a small part
    /// of its term, so that neither a pause of this node nor the clocks of two nodes
    /// drifting apart by less than the rest of the term make a lapsed claim look held.
    fn recent(&self) -> Duration {
        (self.term.length / 8).min(FENCE_EVERY)
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
        let term = self.term.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { term.meta.release_upload(&term.id, term.holder).await });
        }
    }
}

/// Renews the lease every third of its term while the work runs (a client that stalls
/// sends nothing for the fence to renew it on).
async fn renew(term: Term) {
    loop {
        tokio::time::sleep(term.length / 3).await;
        match term.renew().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(upload = %term.id, "an upload claim lapsed while in use");
                return;
            }
            Err(e) => {
                tracing::warn!(upload = %term.id, error = %e, "renewing an upload claim failed")
            }
        }
    }
}

fn lease_end(clock: &dyn Clock, term: Duration) -> i64 {
    clock
        .now_ms()
        .saturating_add(i64::try_from(term.as_millis()).unwrap_or(i64::MAX))
}
