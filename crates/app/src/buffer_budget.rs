//! A budget for request and response bytes held in memory (manifest bodies, listings),
//! so that no number of slow or non-reading clients can take the process beyond it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::RegistryError;

/// Budget granularity: permits are counted in KiB.
const UNIT: usize = 1024;

/// The bytes that buffered bodies may hold at once (a handle: clones share the budget).
#[derive(Clone)]
pub(crate) struct BufferBudget {
    /// One permit per KiB of the budget.
    units: Arc<Semaphore>,
    /// Every permit, so that one request larger than the budget still fits alone.
    total_units: u32,
    /// How long a request waits for room before it is refused.
    wait: Duration,
}

/// Room for one buffered body; given back when dropped.
pub struct BufferPermit(OwnedSemaphorePermit);

impl BufferPermit {
    /// Gives back the room beyond `bytes`, once a body turned out smaller than the room
    /// set aside for it.
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = bytes.div_ceil(UNIT).max(1);
        let excess = (self.0.num_permits()).saturating_sub(keep);
        if excess > 0 {
            drop(self.0.split(excess));
        }
    }
}

impl BufferBudget {
    /// A budget of `bytes` (at least one KiB).
    pub(crate) fn new(bytes: u64, wait: Duration) -> Self {
        let total_units = (bytes / UNIT as u64).clamp(1, u64::from(u32::MAX >> 3)) as u32;
        BufferBudget {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            wait,
        }
    }

    /// Room for `bytes` if there is some now.
    pub(crate) fn try_reserve(&self, bytes: usize) -> Option<BufferPermit> {
        self.units
            .clone()
            .try_acquire_many_owned(self.units_for(bytes))
            .ok()
            .map(BufferPermit)
    }

    fn units_for(&self, bytes: usize) -> u32 {
        bytes.div_ceil(UNIT).clamp(1, self.total_units as usize) as u32
    }

    /// Waits (briefly) for room for `bytes`.
    pub(crate) async fn reserve(&self, bytes: usize) -> Result<BufferPermit, RegistryError> {
        // Most of the time there is room: no timer is set up then.
        if let Some(permit) = self.try_reserve(bytes) {
            return Ok(permit);
        }
        let acquire = self.units.clone().acquire_many_owned(self.units_for(bytes));
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(permit)) => Ok(BufferPermit(permit)),
            _ => Err(RegistryError::TooManyRequests(
                "the memory for buffered requests and responses is in use".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_room_then_are_refused() {
        let budget = BufferBudget::new(8 * 1024, Duration::from_millis(20));
        let held = budget.reserve(6 * 1024).await.unwrap();
        assert!(budget.reserve(4 * 1024).await.is_err(), "over the budget");
        drop(held);
        let mut shrunk = budget.reserve(8 * 1024).await.unwrap();
        shrunk.shrink_to(1000);
        let _rest = budget
            .reserve(7 * 1024)
            .await
            .expect("the excess was given back");
        drop((shrunk, _rest));
        let _big = budget
            .reserve(100 * 1024)
            .await
            .expect("a lone large body fits");
    }
}
