//! Limits on uploads in progress, so that no client can fill the disk with abandoned
//! sessions or hold every connection's worth of bodies open.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_meta::SessionLimits;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::RegistryError;
use crate::registry::RegistryConfig;

/// The limits on open sessions, their bytes and the bodies streaming at once.
pub(crate) struct UploadLimits {
    sessions: SessionLimits,
    max_open_bytes: u64,
    /// One permit per upload body allowed to stream at once.
    bodies: Arc<Semaphore>,
    /// How long a body waits for a permit before it is refused.
    body_wait: Duration,
    /// Bodies streaming now, by client address, and the most one client may stream.
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_client: usize,
    /// Bytes of appends in progress.
    counters: Arc<Counters>,
}

/// The right to stream one upload body; given back when dropped.
pub(crate) struct BodySlot {
    _permit: OwnedSemaphorePermit,
    _client: Option<ClientSlot>,
}

/// One of a client's bodies streaming at once.
struct ClientSlot {
    streaming: Arc<Mutex<HashMap<IpAddr, usize>>>,
    addr: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut streaming = self.streaming.lock().expect("bodies per client");
        if let Some(count) = streaming.get_mut(&self.addr) {
            *count -= 1;
            if *count == 0 {
                streaming.remove(&self.addr);
            }
        }
    }
}

/// Bytes set aside for one append, given back when its last holder drops it: the
/// append's body stream and the append itself, which holds it until the new offset is
/// stored (from then on the bytes count among the sessions' stored bytes).
#[derive(Clone)]
pub(crate) struct Reservation(Arc<Reserved>);

struct Reserved {
    counters: Arc<Counters>,
    reserved: AtomicU64,
    /// Whether the reserved bytes are now stored in their session's offset.
    stored_now: AtomicBool,
    /// The budget for bytes in open uploads (0: none).
    max_open_bytes: u64,
    /// The bytes open sessions held when the append began.
    stored: u64,
    /// [`Counters::moved`] when the append began.
    moved_before: u64,
}

/// Bytes of appends in progress, shared by all reservations.
#[derive(Default)]
struct Counters {
    /// Bytes set aside by appends streaming now, not yet in any session's offset.
    in_flight: AtomicU64,
    /// Bytes that moved from in flight to a session's offset since the process started:
    /// an append adds those committed after it read the stored total, which that total
    /// does not include.
    moved: AtomicU64,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        let reserved = self.reserved.load(Ordering::Relaxed);
        if self.stored_now.load(Ordering::Relaxed) {
            self.counters.moved.fetch_add(reserved, Ordering::Relaxed);
        }
        self.counters
            .in_flight
            .fetch_sub(reserved, Ordering::Relaxed);
    }
}

/// How many bytes appends had stored when it was taken.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredMark(u64);

/// The bytes open sessions held, read from the store, and where the count of bytes
/// stored by this node's appends stood just before the read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenBytesReading {
    /// Taken before the read.
    pub(crate) mark: StoredMark,
    /// The bytes read.
    pub(crate) stored: u64,
}

/// The budget for bytes in open uploads has no room for more.
#[derive(Debug, thiserror::Error)]
#[error("the space for uploads in progress is used up")]
pub(crate) struct OpenBytesExhausted;

impl Reservation {
    /// Sets `n` more bytes aside, unless the budget has no room for them.
    ///
    /// The total counts the stored bytes read when the append began, the bytes stored
    /// since, and those in flight; bytes freed since (completed or cancelled sessions) are
    /// still counted until the next append reads the total again.
    pub(crate) fn grow(&self, n: u64) -> Result<(), OpenBytesExhausted> {
        let r = &self.0;
        let c = &r.counters;
        let before = c.in_flight.fetch_add(n, Ordering::Relaxed);
        let moved = c
            .moved
            .load(Ordering::Relaxed)
            .saturating_sub(r.moved_before);
        let total = r
            .stored
            .saturating_add(moved)
            .saturating_add(before)
            .saturating_add(n);
        if r.max_open_bytes > 0 && total > r.max_open_bytes {
            c.in_flight.fetch_sub(n, Ordering::Relaxed);
            return Err(OpenBytesExhausted);
        }
        r.reserved.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Notes that the reserved bytes are now counted in their session's stored offset.
    pub(crate) fn stored(&self) {
        self.0.stored_now.store(true, Ordering::Relaxed);
    }
}

impl UploadLimits {
    /// The limits `config` sets.
    pub(crate) fn new(config: &RegistryConfig) -> Self {
        UploadLimits {
            sessions: SessionLimits {
                total: config.max_upload_sessions,
                per_repository: config.max_upload_sessions_per_repository,
            },
            max_open_bytes: config.max_open_upload_bytes,
            bodies: Arc::new(Semaphore::new(config.max_upload_bodies)),
            body_wait: config.overload_wait,
            per_client: Arc::default(),
            max_per_client: config.max_upload_bodies_per_client,
            counters: Arc::default(),
        }
    }

    /// The most sessions open at once, which the metadata store enforces as it records a
    /// new one.
    pub(crate) fn sessions(&self) -> SessionLimits {
        self.sessions
    }

    /// Waits (briefly) for the right to stream one upload body; refuses at once when
    /// `client` already streams as many as one client may.
    pub(crate) async fn body_slot(
        &self,
        client: Option<IpAddr>,
    ) -> Result<BodySlot, RegistryError> {
        let client = match client {
            Some(addr) if self.max_per_client > 0 => {
                let mut streaming = self.per_client.lock().expect("bodies per client");
                let count = streaming.entry(addr).or_default();
                if *count >= self.max_per_client {
                    return Err(RegistryError::TooManyRequests(format!(
                        "{count} uploads from {addr} are streaming, the most one client may"
                    )));
                }
                *count += 1;
                Some(ClientSlot {
                    streaming: self.per_client.clone(),
                    addr,
                })
            }
            _ => None,
        };
        let acquire = self.bodies.clone().acquire_owned();
        match tokio::time::timeout(self.body_wait, acquire).await {
            Ok(Ok(permit)) => Ok(BodySlot {
                _permit: permit,
                _client: client,
            }),
            _ => Err(RegistryError::TooManyRequests(
                "too many uploads are streaming at once".into(),
            )),
        }
    }

    /// Where the count of bytes stored by appends stands, to take before reading the
    /// stored total handed to [`UploadLimits::reserve_bytes`].
    pub(crate) fn stored_mark(&self) -> StoredMark {
        StoredMark(self.counters.moved.load(Ordering::Relaxed))
    }

    /// Sets aside `expected` bytes (when declared) on top of the bytes of open sessions
    /// `open` read, or refuses when the budget for bytes in open uploads has no room for
    /// them. A body of unknown length starts with nothing set aside and is counted as it
    /// streams (`metered_body`).
    ///
    /// The bytes were read after the reading's mark was taken: bytes stored in between are
    /// then counted twice rather than not at all.
    pub(crate) fn reserve_bytes(
        &self,
        open: OpenBytesReading,
        expected: Option<u64>,
    ) -> Result<Reservation, RegistryError> {
        let OpenBytesReading { mark, stored } = open;
        let reservation = Reservation(Arc::new(Reserved {
            counters: self.counters.clone(),
            stored_now: AtomicBool::new(false),
            moved_before: mark.0,
            reserved: AtomicU64::new(0),
            max_open_bytes: self.max_open_bytes,
            stored,
        }));
        if let Some(expected) = expected {
            reservation
                .grow(expected)
                .map_err(|e| RegistryError::TooManyRequests(e.to_string()))?;
        }
        Ok(reservation)
    }
}
