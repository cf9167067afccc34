//! Last-pull times, recorded in batches so that pulls never wait for a database write.

use std::collections::HashSet;
use std::sync::Mutex;

use berth_meta::PullRecord;

/// Pulls seen since the last flush.
#[derive(Default)]
pub struct PendingPulls {
    /// Deduplicated: many pulls of one artifact between flushes need one update.
    pending: Mutex<HashSet<PullRecord>>,
}

impl PendingPulls {
    /// Notes a pull.
    pub fn note(&self, pull: PullRecord) {
        self.pending.lock().expect("pending pulls").insert(pull);
    }

    /// Takes everything noted so far.
    pub fn take(&self) -> Vec<PullRecord> {
        self.pending
            .lock()
            .expect("pending pulls")
            .drain()
            .collect()
    }
}
