//! Locks by key within the process: per upload session, so two requests on one upload
//! never interleave their bytes, and per digest, so two garbage-collection sweeps of
//! one blob never interleave.
//!
//! A lock is held by the task doing the work, not by the HTTP request: the work runs to
//! its end (or is rolled back) even when the client goes away, and only then is the lock
//! released.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use berth_oci::{Digest, UploadId};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// One async lock per key in use.
pub struct KeyedLocks<K> {
    /// Locks of keys in use; an entry is removed when its last holder or waiter leaves.
    held: Mutex<HashMap<K, Arc<AsyncMutex<()>>>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        KeyedLocks {
            held: Mutex::new(HashMap::new()),
        }
    }
}

/// One lock per upload session that has a request in flight.
pub type SessionLocks = KeyedLocks<UploadId>;
/// One lock per blob digest being swept.
pub type DigestLocks = KeyedLocks<Digest>;

/// A claim on a key's lock: held once [`KeyedLocks::lock`] returns it, and removed from
/// the table when dropped, whether it was granted or its waiter was cancelled.
pub struct KeyGuard<'a, K: Eq + Hash + Clone> {
    locks: &'a KeyedLocks<K>,
    id: K,
    /// The granted lock; `None` while waiting.
    guard: Option<OwnedMutexGuard<()>>,
    /// The table entry this claim counts on, dropped before the table is tidied.
    entry: Option<Arc<AsyncMutex<()>>>,
}

/// A claim on an upload session's lock.
pub type SessionGuard<'a> = KeyGuard<'a, UploadId>;

impl<K: Eq + Hash + Clone> KeyedLocks<K> {
    /// Waits for exclusive use of `id`.
    pub async fn lock(&self, id: &K) -> KeyGuard<'_, K> {
        let mut claim = self.claim(id);
        let entry = claim.entry.clone().expect("a new claim has its entry");
        claim.guard = Some(entry.lock_owned().await);
        claim
    }

    /// Takes `id` only if nobody holds or waits for it.
    pub fn try_lock(&self, id: &K) -> Option<KeyGuard<'_, K>> {
        let mut claim = self.claim(id);
        let entry = claim.entry.clone().expect("a new claim has its entry");
        claim.guard = Some(entry.try_lock_owned().ok()?);
        Some(claim)
    }

    /// Number of keys with a holder or waiter (for tests of the table's upkeep).
    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.held.lock().expect("session lock table").len()
    }

    fn claim(&self, id: &K) -> KeyGuard<'_, K> {
        let entry = self
            .held
            .lock()
            .expect("lock table")
            .entry(id.clone())
            .or_default()
            .clone();
        KeyGuard {
            locks: self,
            id: id.clone(),
            guard: None,
            entry: Some(entry),
        }
    }
}

impl<K: Eq + Hash + Clone> Drop for KeyGuard<'_, K> {
    fn drop(&mut self) {
        drop(self.guard.take());
        drop(self.entry.take());
        let mut held = self.locks.held.lock().expect("lock table");
        // Only the table itself still refers to the lock: nobody holds or awaits it.
        if held
            .get(&self.id)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            held.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_no_entry_behind() {
        let locks = SessionLocks::default();
        let id = UploadId::from_random([1; 16]);
        let held = locks.lock(&id).await;
        // The waiter queues, then gives up.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), locks.lock(&id));
        assert!(waited.await.is_err());
        drop(held);
        assert_eq!(locks.in_use(), 0);
    }

    #[tokio::test]
    async fn a_waiter_granted_then_dropped_leaves_no_entry_behind() {
        let locks = Arc::new(SessionLocks::default());
        let id = UploadId::from_random([2; 16]);
        let held = locks.lock(&id).await;
        let waiter = {
            let (locks, id) = (locks.clone(), id.clone());
            tokio::spawn(async move {
                let _g = locks.lock(&id).await;
            })
        };
        tokio::task::yield_now().await;
        drop(held);
        waiter.await.unwrap();
        assert_eq!(locks.in_use(), 0);
    }

    #[tokio::test]
    async fn try_lock_fails_while_held() {
        let locks = SessionLocks::default();
        let id = UploadId::from_random([3; 16]);
        let held = locks.lock(&id).await;
        assert!(locks.try_lock(&id).is_none());
        drop(held);
        assert!(locks.try_lock(&id).is_some());
        assert_eq!(locks.in_use(), 0);
    }
}
