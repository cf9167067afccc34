//! Limits on uploads in progress, so that no client can fill the disk with abandoned
//! sessions or hold every connection's worth of bodies open.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Bytes promised to appends streaming now, not yet counted in any session's offset.
    in_flight: Arc<AtomicU64>,
}

/// Bytes set aside for one append, given back when its last holder drops it: the
/// append's body stream and the append itself, which holds it until the new offset is
/// stored (from then on the bytes count among the sessions' stored bytes).
#[derive(Clone)]
pub(crate) struct Reservation(Arc<Reserved>);

struct Reserved {
    in_flight: Arc<AtomicU64>,
    reserved: AtomicU64,
    /// The budget for bytes in open uploads (0: none).
    max_open_bytes: u64,
    /// The bytes open sessions held when the append began.
    stored: u64,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        let reserved = self.reserved.load(Ordering::Relaxed);
        self.in_flight.fetch_sub(reserved, Ordering::Relaxed);
    }
}

/// The budget for bytes in open uploads has no room for more.
#[derive(Debug, thiserror::Error)]
#[error("the space for uploads in progress is used up")]
pub(crate) struct OpenBytesExhausted;

impl Reservation {
    /// Sets `n` more bytes aside, unless the budget has no room for them.
    pub(crate) fn grow(&self, n: u64) -> Result<(), OpenBytesExhausted> {
        let r = &self.0;
        let before = r.in_flight.fetch_add(n, Ordering::Relaxed);
        let total = r.stored.saturating_add(before).saturating_add(n);
        if r.max_open_bytes > 0 && total > r.max_open_bytes {
            r.in_flight.fetch_sub(n, Ordering::Relaxed);
            return Err(OpenBytesExhausted);
        }
        r.reserved.fetch_add(n, Ordering::Relaxed);
        Ok(())
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
            in_flight: Arc::default(),
        }
    }

    /// The most sessions open at once, which the metadata store enforces as it records a
    /// new one.
    pub(crate) fn sessions(&self) -> SessionLimits {
        self.sessions
    }

    /// Waits (briefly) for the right to stream one upload body.
    pub(crate) async fn body_slot(&self) -> Result<OwnedSemaphorePermit, RegistryError> {
        let acquire = self.bodies.clone().acquire_owned();
        match tokio::time::timeout(self.body_wait, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(RegistryError::TooManyRequests(
                "too many uploads are streaming at once".into(),
            )),
        }
    }

    /// Sets aside `expected` bytes (when declared) on top of the `stored` bytes of open
    /// sessions, or refuses when the budget for bytes in open uploads has no room for
    /// them. A body of unknown length starts with nothing set aside and is counted as it
    /// streams (`metered_body`).
    pub(crate) fn reserve_bytes(
        &self,
        stored: u64,
        expected: Option<u64>,
    ) -> Result<Reservation, RegistryError> {
        let reservation = Reservation(Arc::new(Reserved {
            in_flight: self.in_flight.clone(),
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
