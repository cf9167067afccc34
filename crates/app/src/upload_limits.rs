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

/// Bytes set aside for one append; given back when dropped.
pub(crate) struct Reservation {
    in_flight: Arc<AtomicU64>,
    reserved: u64,
    /// How many bytes the append may still take, when the open-bytes budget bounds it.
    room: Option<u64>,
}

impl Reservation {
    /// The most bytes the append may write, when the budget limits it.
    pub(crate) fn room(&self) -> Option<u64> {
        self.room
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.reserved, Ordering::Relaxed);
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

    /// Sets aside `expected` bytes (when known) on top of the `stored` bytes of open
    /// sessions, or refuses when the budget for uploads in progress would be exceeded.
    pub(crate) fn reserve_bytes(
        &self,
        stored: u64,
        expected: Option<u64>,
    ) -> Result<Reservation, RegistryError> {
        let reserved = expected.unwrap_or(0);
        let before = self.in_flight.fetch_add(reserved, Ordering::Relaxed);
        let room = (self.max_open_bytes > 0).then(|| {
            self.max_open_bytes
                .saturating_sub(stored.saturating_add(before))
        });
        // Dropped on refusal, which gives the bytes back.
        let reservation = Reservation {
            in_flight: self.in_flight.clone(),
            reserved,
            room,
        };
        if room.is_some_and(|room| reserved > room) {
            return Err(RegistryError::TooManyRequests(
                "the space for uploads in progress is used up".into(),
            ));
        }
        Ok(reservation)
    }
}
