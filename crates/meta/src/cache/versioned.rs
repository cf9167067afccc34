//! Small facts about a repository's content (what a tag or digest resolves to, which
//! blobs it links), kept in memory at the repository version they were read at.
//!
//! An adapter whose database bumps a repository's version with every change that could
//! make such a fact wrong (a tag moved or deleted, a manifest or blob link removed)
//! serves a fact only when the version it has just read from the database is the one
//! the fact was read at: a hit costs the version check, not the query behind the fact.
//! Facts that a write adds (a new tag, a new link) need no bump, as only facts that were
//! true are cached.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// The facts of one repository at one version.
struct Generation<K, V> {
    version: i64,
    facts: HashMap<K, V>,
}

struct Entries<K, V> {
    by_repository: HashMap<i64, Generation<K, V>>,
    /// Facts held, over every repository.
    count: usize,
}

/// Facts by repository id and key, each valid at one repository version.
pub struct VersionedCache<K, V> {
    entries: Mutex<Entries<K, V>>,
    /// Facts kept at most; when full, everything is dropped and refilled on demand.
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> VersionedCache<K, V> {
    /// An empty cache holding at most `capacity` facts.
    pub fn new(capacity: usize) -> Self {
        VersionedCache {
            entries: Mutex::new(Entries {
                by_repository: HashMap::new(),
                count: 0,
            }),
            capacity,
        }
    }

    /// The fact under `key` in repository `repo_id`, if it was read at `version`.
    pub fn get<Q>(&self, repo_id: i64, version: i64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.lock().expect("versioned cache");
        let generation = entries.by_repository.get(&repo_id)?;
        (generation.version == version)
            .then(|| generation.facts.get(key).cloned())
            .flatten()
    }

    /// Remembers `value` under `key`, as read at `version` of repository `repo_id`.
    /// Facts of an older version of the repository are dropped; a fact older than
    /// those held is not kept.
    pub fn store(&self, repo_id: i64, version: i64, key: K, value: V) {
        let mut entries = self.entries.lock().expect("versioned cache");
        if entries.count >= self.capacity {
            entries.by_repository.clear();
            entries.count = 0;
        }
        let Entries {
            by_repository,
            count,
        } = &mut *entries;
        let generation = by_repository.entry(repo_id).or_insert_with(|| Generation {
            version,
            facts: HashMap::new(),
        });
        if generation.version > version {
            return;
        }
        if generation.version < version {
            *count -= generation.facts.len();
            generation.facts.clear();
            generation.version = version;
        }
        if generation.facts.insert(key, value).is_none() {
            *count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_served_at_their_version_only() {
        let cache: VersionedCache<String, u64> = VersionedCache::new(16);
        cache.store(1, 5, "a".into(), 10);
        assert_eq!(cache.get(1, 5, "a"), Some(10));
        assert_eq!(cache.get(1, 6, "a"), None, "the repository changed since");
        assert_eq!(cache.get(2, 5, "a"), None, "another repository");
        cache.store(1, 4, "b".into(), 20);
        assert_eq!(cache.get(1, 4, "b"), None, "an older read is not kept");
        assert_eq!(
            cache.get(1, 5, "a"),
            Some(10),
            "nor does it drop newer facts"
        );
        cache.store(1, 6, "b".into(), 30);
        assert_eq!(cache.get(1, 6, "b"), Some(30));
        assert_eq!(
            cache.get(1, 6, "a"),
            None,
            "facts of the old version are gone"
        );
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache: VersionedCache<String, u64> = VersionedCache::new(3);
        for i in 0..3 {
            cache.store(i, 1, "k".into(), i as u64);
        }
        cache.store(9, 1, "k".into(), 9);
        assert_eq!(cache.get(9, 1, "k"), Some(9));
        assert_eq!(cache.get(0, 1, "k"), None);
        let entries = cache.entries.lock().unwrap();
        assert_eq!(entries.count, 1);
    }
}
