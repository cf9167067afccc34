//! A budget for request and response bytes held in memory (manifest bodies, listings),
//! so that no number of slow or non-reading clients can take the process beyond it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::RegistryError;

/// Budget granularity: room is counted in KiB.
const UNIT: usize = 1024;
/// How often a request waiting for room looks again.
const RETRY_EVERY: Duration = Duration::from_millis(5);

/// The bytes that buffered bodies may hold at once (a handle: clones share the budget).
///
/// One counter, taken and given back with atomic operations: the budget is touched by
/// every manifest and blob response, so it takes no lock.
#[derive(Clone)]
pub(crate) struct BufferBudget {
    /// KiB held now.
    used: Arc<AtomicU64>,
    /// KiB in all; one request larger than the budget still fits alone.
    total_units: u64,
    /// How long a request waits for room before it is refused.
    wait: Duration,
}

/// Room for one buffered body; given back when dropped.
pub struct BufferPermit {
    used: Arc<AtomicU64>,
    units: u64,
}

impl Drop for BufferPermit {
    fn drop(&mut self) {
        self.used.fetch_sub(self.units, Ordering::Release);
    }
}

impl BufferPermit {
    /// Bytes of room held.
    fn bytes(&self) -> usize {
        self.units as usize * UNIT
    }

    /// Gives back the room beyond `bytes`, once a body turned out smaller than the room
    /// set aside for it.
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = bytes.div_ceil(UNIT).max(1) as u64;
        if self.units > keep {
            self.used.fetch_sub(self.units - keep, Ordering::Release);
            self.units = keep;
        }
    }
}

impl BufferBudget {
    /// A budget of `bytes` (at least one KiB).
    pub(crate) fn new(bytes: u64, wait: Duration) -> Self {
        BufferBudget {
            used: Arc::default(),
            total_units: (bytes / UNIT as u64).max(1),
            wait,
        }
    }

    /// Grows `permit` to hold at least `bytes`, waiting (briefly) for the difference.
    pub(crate) async fn grow(
        &self,
        permit: &mut BufferPermit,
        bytes: usize,
    ) -> Result<(), RegistryError> {
        if bytes > permit.bytes() && permit.units < self.total_units {
            let mut more = self.reserve(bytes - permit.bytes()).await?;
            permit.units += std::mem::take(&mut more.units);
        }
        Ok(())
    }

    /// Room for `bytes` if there is some now.
    pub(crate) fn try_reserve(&self, bytes: usize) -> Option<BufferPermit> {
        let units = (bytes.div_ceil(UNIT) as u64).clamp(1, self.total_units);
        self.used
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |used| {
                (used + units <= self.total_units).then_some(used + units)
            })
            .ok()
            .map(|_| BufferPermit {
                used: self.used.clone(),
                units,
            })
    }

    /// Waits (briefly) for room for `bytes`.
    ///
    /// Waiters do not queue: each looks for room every few milliseconds, so a request
    /// that needs a little is never held behind one that waits for a lot.
    pub(crate) async fn reserve(&self, bytes: usize) -> Result<BufferPermit, RegistryError> {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            if let Some(permit) = self.try_reserve(bytes) {
                return Ok(permit);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RegistryError::TooManyRequests(
                    "the memory for buffered requests and responses is in use".into(),
                ));
            }
            tokio::time::sleep(RETRY_EVERY).await;
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

    #[tokio::test]
    async fn a_small_request_is_not_held_behind_a_large_one() {
        let budget = BufferBudget::new(8 * 1024, Duration::from_millis(500));
        let _held = budget.reserve(6 * 1024).await.unwrap();
        let large = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(8 * 1024).await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let asked = std::time::Instant::now();
        let _small = budget.reserve(1024).await.expect("room for a small one");
        assert!(
            asked.elapsed() < Duration::from_millis(100),
            "it did not wait"
        );
        assert!(!large.await.unwrap(), "the large one never had room");
    }
}
