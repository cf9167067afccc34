//! Manifest bytes kept in memory by digest, shared by every response that sends them.
//!
//! A manifest's bytes never change for its digest, so an entry needs no invalidation:
//! lookups always resolve the reference through the database first, and the cache only
//! saves reading and copying the content. Each response holds a reference to the one
//! buffer instead of a copy of its own, so many clients of one manifest cost one buffer.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;

/// Bytes of manifests kept; the oldest entries are dropped past it.
const CAPACITY_BYTES: usize = 64 << 20;

#[derive(Default)]
struct Entries {
    by_digest: HashMap<String, Bytes>,
    /// Digests in insertion order, oldest first.
    order: VecDeque<String>,
    bytes: usize,
}

/// Recently read manifest contents by digest.
#[derive(Default)]
pub struct ManifestCache {
    entries: Mutex<Entries>,
}

impl ManifestCache {
    /// The content of `digest`, if cached.
    pub fn get(&self, digest: &str) -> Option<Bytes> {
        self.entries
            .lock()
            .expect("manifest cache")
            .by_digest
            .get(digest)
            .cloned()
    }

    /// Keeps `content` as the bytes of `digest`; returns the buffer to share (the one
    /// already cached, when another reader got there first).
    pub fn insert(&self, digest: &str, content: Bytes) -> Bytes {
        let mut e = self.entries.lock().expect("manifest cache");
        if let Some(cached) = e.by_digest.get(digest) {
            return cached.clone();
        }
        if content.len() > CAPACITY_BYTES / 4 {
            return content;
        }
        while e.bytes + content.len() > CAPACITY_BYTES {
            let Some(oldest) = e.order.pop_front() else {
                break;
            };
            if let Some(gone) = e.by_digest.remove(&oldest) {
                e.bytes -= gone.len();
            }
        }
        e.bytes += content.len();
        e.order.push_back(digest.to_owned());
        e.by_digest.insert(digest.to_owned(), content.clone());
        content
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_one_buffer_and_old_entries_make_room() {
        let cache = ManifestCache::default();
        let first = cache.insert("a", Bytes::from(vec![1u8; 1024]));
        let again = cache.insert("a", Bytes::from(vec![1u8; 1024]));
        assert_eq!(first.as_ptr(), again.as_ptr(), "one buffer per digest");
        assert_eq!(cache.get("a").unwrap().as_ptr(), first.as_ptr());
        let big = CAPACITY_BYTES / 4;
        for i in 0..4 {
            cache.insert(&format!("big{i}"), Bytes::from(vec![0u8; big]));
        }
        assert!(cache.get("a").is_none(), "the oldest entry made room");
        assert!(cache.get("big3").is_some());
        let e = cache.entries.lock().unwrap();
        assert!(e.bytes <= CAPACITY_BYTES);
    }
}
