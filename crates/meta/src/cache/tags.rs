//! Whole tag lists kept in memory, checked against the repository's `tag_version`.
//!
//! A full `tags/list` of a large repository scans every tag row; with the list cached, a
//! request costs one point lookup of the version plus a binary search. A list is cached
//! only when a query already read all of it, so paged requests stay O(page) on a miss.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::TagPage;
use berth_oci::tag_listing_order;

/// Repositories whose lists are kept; beyond that an arbitrary one is dropped.
const MAX_REPOSITORIES: usize = 256;

/// A repository's complete, sorted tag list at one version.
struct Cached {
    version: i64,
    names: Arc<[String]>,
}

/// Cached tag lists by repository id.
#[derive(Default)]
pub struct TagCache {
    /// Entries are replaced whole; readers clone the `Arc` and page outside the lock.
    lists: Mutex<HashMap<i64, Cached>>,
}

impl TagCache {
    /// The page after `last` of at most `limit` names, if the list at `version` is cached.
    pub fn page(&self, repo_id: i64, version: i64, last: &str, limit: u32) -> Option<TagPage> {
        let names = {
            let lists = self.lists.lock().expect("tag cache");
            let cached = lists.get(&repo_id).filter(|c| c.version == version)?;
            cached.names.clone()
        };
        // The list is in `tag_listing_order`, as the query returned it.
        let start = names.partition_point(|n| tag_listing_order(n, last) != Ordering::Greater);
        let end = start.saturating_add(limit as usize).min(names.len());
        let more = end < names.len();
        Some(TagPage::window(names, start..end, more))
    }

    /// Remembers the complete list of a repository at `version`.
    pub fn store(&self, repo_id: i64, version: i64, names: Vec<String>) {
        let mut lists = self.lists.lock().expect("tag cache");
        if lists.len() >= MAX_REPOSITORIES
            && !lists.contains_key(&repo_id)
            && let Some(&evict) = lists.keys().next()
        {
            lists.remove(&evict);
        }
        lists.insert(
            repo_id,
            Cached {
                version,
                names: names.into(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_come_from_the_matching_version_only() {
        let cache = TagCache::default();
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        cache.store(1, 7, names);
        assert!(cache.page(1, 8, "", 10).is_none(), "stale version");
        assert!(cache.page(2, 7, "", 10).is_none(), "other repository");
        let p = cache.page(1, 7, "a", 2).unwrap();
        assert_eq!(
            (p.names(), p.more),
            (&["b".to_string(), "c".into()][..], true)
        );
        let p = cache.page(1, 7, "bb", 10).unwrap();
        assert_eq!(
            (p.names(), p.more),
            (&["c".to_string(), "d".into()][..], false)
        );
        assert!(cache.page(1, 7, "", 0).unwrap().names().is_empty());
    }

    #[test]
    fn pages_follow_the_listing_order() {
        let cache = TagCache::default();
        let names: Vec<String> = ["a", "B", "b", "C"].map(String::from).to_vec();
        cache.store(1, 1, names);
        let after = |last: &str| cache.page(1, 1, last, 10).unwrap().names().to_vec();
        assert_eq!(after("a"), ["B", "b", "C"]);
        assert_eq!(after("A"), ["a", "B", "b", "C"]);
        assert_eq!(after("B"), ["b", "C"]);
        assert_eq!(after("b"), ["C"]);
        assert_eq!(after("bb"), ["C"]);
        assert_eq!(after("BA"), ["C"]);
        assert!(after("c").is_empty());
    }
}
