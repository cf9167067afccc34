//! Last-pull times, recorded in batches so that pulls never wait for a database write.

use std::collections::HashMap;
use std::sync::Mutex;

use berth_meta::{AuditEntry, PullRecord};
use berth_oci::RepositoryName;

/// Pull audit entries kept between flushes at most; past that they are dropped (and
/// the drop is logged), so that a flood of pulls cannot grow memory without bound.
const MAX_PENDING_AUDITS: usize = 100_000;

/// Pulls seen since the last flush.
#[derive(Default)]
pub struct PendingPulls {
    /// Deduplicated: many pulls of one artifact between flushes need one update; the
    /// value counts them.
    pending: Mutex<HashMap<PullRecord, u64>>,
    /// Audit entries of pulls, when pulls are audited.
    audits: Mutex<Vec<(RepositoryName, AuditEntry)>>,
}

impl PendingPulls {
    /// Notes a pull.
    pub fn note(&self, pull: PullRecord) {
        *self
            .pending
            .lock()
            .expect("pending pulls")
            .entry(pull)
            .or_default() += 1;
    }

    /// Notes the audit entry of a pull; returns false when it was dropped.
    pub fn note_audit(&self, repository: RepositoryName, entry: AuditEntry) -> bool {
        let mut audits = self.audits.lock().expect("pending pull audits");
        if audits.len() >= MAX_PENDING_AUDITS {
            return false;
        }
        audits.push((repository, entry));
        true
    }

    /// Takes everything noted so far.
    pub fn take(&self) -> (Vec<PullRecord>, Vec<(RepositoryName, AuditEntry)>) {
        let pulls = self
            .pending
            .lock()
            .expect("pending pulls")
            .drain()
            .map(|(pull, count)| PullRecord { count, ..pull })
            .collect();
        let audits = std::mem::take(&mut *self.audits.lock().expect("pending pull audits"));
        (pulls, audits)
    }
}
