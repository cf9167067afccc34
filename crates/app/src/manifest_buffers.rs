//! Manifest bytes held by responses in flight, one buffer per digest, each charged to the
//! buffer budget once however many responses send it.
//!
//! A client that sends a `GET` and never reads keeps its response's buffer alive until
//! the send timeout drops it. Charging each response would let a few hundred such clients
//! of one manifest use up the budget while they hold a single buffer; charging nothing
//! would let many manifests escape it. So a buffer is charged when it is loaded, by the
//! size stored in its row and before its bytes are read, and released when the last
//! response holding it ends.
//!
//! Manifests smaller than [`SHARED_FROM`] skip the sharing: each response holds its own
//! room, which costs no lock on the hot path, and which no number of connections can
//! make large (`max_connections` × 64 KiB).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use berth_oci::Digest;
use bytes::Bytes;

use crate::buffer_budget::BufferPermit;

/// Manifests at least this large share one charged buffer between responses.
pub(crate) const SHARED_FROM: u64 = 64 << 10;

/// Live manifest buffers by digest.
#[derive(Default)]
pub(crate) struct ManifestBuffers {
    live: Arc<Mutex<HashMap<Digest, Weak<Held>>>>,
}

/// A manifest's bytes and the room they hold in the budget, shared by every response
/// that sends them.
#[derive(Clone)]
pub struct HeldManifest(Arc<Held>);

struct Held {
    /// The digest it is shared under, if it is.
    digest: Option<Digest>,
    content: Bytes,
    _permit: BufferPermit,
    live: Weak<Mutex<HashMap<Digest, Weak<Held>>>>,
}

impl HeldManifest {
    /// The manifest's bytes.
    pub fn content(&self) -> &Bytes {
        &self.0.content
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let (Some(digest), Some(live)) = (&self.digest, self.live.upgrade()) else {
            return;
        };
        let mut live = live.lock().expect("manifest buffers");
        // Another buffer may have taken this digest's place since this one's last
        // holder let go; only a dead entry is removed.
        if live
            .get(digest)
            .is_some_and(|held| held.strong_count() == 0)
        {
            live.remove(digest);
        }
    }
}

impl HeldManifest {
    /// `content` held by one response alone, with its own `permit`.
    pub(crate) fn own(content: Bytes, permit: BufferPermit) -> Self {
        HeldManifest(Arc::new(Held {
            digest: None,
            content,
            _permit: permit,
            live: Weak::new(),
        }))
    }
}

impl ManifestBuffers {
    /// The buffer of `digest` that responses in flight hold, if any.
    pub(crate) fn get(&self, digest: &Digest) -> Option<HeldManifest> {
        let live = self.live.lock().expect("manifest buffers");
        live.get(digest).and_then(Weak::upgrade).map(HeldManifest)
    }

    /// Shares `content` as the buffer of `digest`, holding `permit`; when another request
    /// loaded the same digest meanwhile, its buffer is shared instead and `permit` given
    /// back.
    pub(crate) fn insert(
        &self,
        digest: &Digest,
        content: Bytes,
        permit: BufferPermit,
    ) -> HeldManifest {
        let mut live = self.live.lock().expect("manifest buffers");
        if let Some(held) = live.get(digest).and_then(Weak::upgrade) {
            return HeldManifest(held);
        }
        let held = Arc::new(Held {
            digest: Some(digest.clone()),
            content,
            _permit: permit,
            live: Arc::downgrade(&self.live),
        });
        live.insert(digest.clone(), Arc::downgrade(&held));
        HeldManifest(held)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::buffer_budget::BufferBudget;

    fn digest(n: u8) -> Digest {
        Digest::compute(berth_oci::Algorithm::Sha256, &[n])
    }

    #[tokio::test]
    async fn one_buffer_per_digest_is_charged_once_and_released_with_its_last_holder() {
        let budget = BufferBudget::new(8 * 1024, Duration::from_millis(10));
        let buffers = ManifestBuffers::default();
        let first = buffers.insert(
            &digest(1),
            Bytes::from(vec![1; 6 * 1024]),
            budget.reserve(6 * 1024).await.unwrap(),
        );
        let shared = buffers.get(&digest(1)).expect("live");
        assert_eq!(shared.content().as_ptr(), first.content().as_ptr());
        let raced = buffers.insert(
            &digest(1),
            Bytes::from(vec![1; 6 * 1024]),
            budget.reserve(1024).await.unwrap(),
        );
        assert_eq!(raced.content().as_ptr(), first.content().as_ptr());
        drop(raced);
        assert!(
            budget.reserve(4 * 1024).await.is_err(),
            "still charged once"
        );
        drop((first, shared));
        assert!(buffers.get(&digest(1)).is_none());
        assert!(
            buffers.live.lock().unwrap().is_empty(),
            "no dead entry left"
        );
        budget.reserve(8 * 1024).await.expect("all room given back");
    }
}
