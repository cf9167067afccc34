//! Where a collection stands, kept as a run's checkpoint: the cutoff fixed when it
//! started, the phase, the phase's cursor and what it did so far.

use serde::{Deserialize, Serialize};

/// The phases of a collection, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectionPhase {
    /// Deleting untagged manifests that nothing needs, pass after pass.
    Untagged,
    /// Removing the blob links no manifest references.
    Unlink,
    /// Marking the blobs nothing links or pins.
    Mark,
    /// Recording bytes no blob row knows as marked blobs.
    Orphans,
    /// Deleting marked blobs, bytes then row.
    Sweep,
    /// Nothing is left to do.
    Done,
}

/// What a collection did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionTotals {
    /// Untagged manifests deleted.
    pub manifests: u64,
    /// Blob links removed.
    pub links_removed: u64,
    /// Blobs deleted.
    pub blobs: u64,
    /// The bytes those blobs held.
    pub bytes: u64,
    /// Blobs whose deletion failed (they stay marked, for the next run).
    #[serde(default)]
    pub failed: u64,
}

/// Where a collection stands. Each step is idempotent, so a run that resumes from a
/// checkpoint older than its last step (it was cut between the two) does that step
/// again harmlessly; only its totals then miss what the repeated step had done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionProgress {
    /// Manifests pushed and links set before this time (Unix milliseconds) are old
    /// enough to go: now less the grace period, when the collection started.
    pub before: i64,
    /// The phase the next step belongs to.
    pub phase: CollectionPhase,
    /// The walk of the phase goes on after this repository id...
    pub(super) after_repository: i64,
    /// ...and this digest (empty: from the start).
    pub(super) after_digest: String,
    /// Whether the current pass over untagged manifests deleted any: if so, another
    /// pass follows, for what those held up.
    pub(super) pass_deleted: bool,
    /// What the collection did so far.
    pub totals: CollectionTotals,
}

impl CollectionProgress {
    /// A collection from the start, of what is older than `before`; untagged manifests
    /// are deleted first when `delete_untagged`.
    pub fn start(before: i64, delete_untagged: bool) -> Self {
        CollectionProgress {
            before,
            phase: if delete_untagged {
                CollectionPhase::Untagged
            } else {
                CollectionPhase::Unlink
            },
            after_repository: 0,
            after_digest: String::new(),
            pass_deleted: false,
            totals: CollectionTotals::default(),
        }
    }

    /// Moves on to `phase`, from the start of its walk.
    pub(super) fn enter(&mut self, phase: CollectionPhase) {
        self.phase = phase;
        self.after_repository = 0;
        self.after_digest.clear();
        self.pass_deleted = false;
    }
}
