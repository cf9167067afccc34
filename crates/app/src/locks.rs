//! Per-session locks, so two requests on one upload never interleave their bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_oci::UploadId;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// One async lock per upload session that has a request in flight.
#[derive(Default)]
pub struct SessionLocks {
    /// Locks of sessions in use; an entry is removed when its last holder leaves.
    held: Mutex<HashMap<UploadId, Arc<AsyncMutex<()>>>>,
}

/// Holds a session's lock until dropped.
pub struct SessionGuard<'a> {
    locks: &'a SessionLocks,
    id: UploadId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl SessionLocks {
    /// Waits for exclusive use of session `id`.
    pub async fn lock(&self, id: &UploadId) -> SessionGuard<'_> {
        let lock = self
            .held
            .lock()
            .expect("session lock table")
            .entry(id.clone())
            .or_default()
            .clone();
        SessionGuard {
            locks: self,
            id: id.clone(),
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut held = self.locks.held.lock().expect("session lock table");
        // Only the table itself still holds the lock: nobody is waiting for it.
        if held
            .get(&self.id)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            held.remove(&self.id);
        }
    }
}
