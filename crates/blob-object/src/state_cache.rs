//! The state objects this process wrote last, one per upload, with the entity tag the
//! store gave each: reading a state back is then a conditional GET (`If-None-Match`)
//! that the store answers `304 Not Modified`, without a body, while the object is still
//! the one written. The bucket stays the only authority: a state is taken from memory
//! only when the store says the object it holds has that entity tag.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::keys::UploadKeys;
use crate::state::UploadState;

/// Uploads whose last state is kept; past it, the one written longest ago is dropped.
const CAPACITY: usize = 1024;

/// The last state written per upload, with its entity tag.
#[derive(Default)]
pub(crate) struct StateCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_upload: HashMap<String, Entry>,
    /// Counts the states remembered, to find the oldest.
    clock: u64,
}

struct Entry {
    state: UploadState,
    e_tag: String,
    written: u64,
}

impl StateCache {
    /// Remembers `state`, just stored for `up` with entity tag `e_tag`.
    pub(crate) fn remember(&self, up: &UploadKeys, state: &UploadState, e_tag: Option<String>) {
        let mut entries = self
            .entries
            .lock()
            .expect("the state cache is never poisoned");
        let key = up.dir().to_string();
        let Some(e_tag) = e_tag else {
            entries.by_upload.remove(&key);
            return;
        };
        if entries.by_upload.len() >= CAPACITY && !entries.by_upload.contains_key(&key) {
            let oldest = entries
                .by_upload
                .iter()
                .min_by_key(|(_, entry)| entry.written)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                entries.by_upload.remove(&oldest);
            }
        }
        entries.clock += 1;
        let written = entries.clock;
        entries.by_upload.insert(
            key,
            Entry {
                state: state.clone(),
                e_tag,
                written,
            },
        );
    }

    /// The state remembered for `up` at `offset`, with its entity tag.
    pub(crate) fn recall(&self, up: &UploadKeys, offset: u64) -> Option<(UploadState, String)> {
        let entries = self
            .entries
            .lock()
            .expect("the state cache is never poisoned");
        let entry = entries.by_upload.get(up.dir().as_ref())?;
        (entry.state.offset == offset).then(|| (entry.state.clone(), entry.e_tag.clone()))
    }

    /// Forgets `up`'s state.
    pub(crate) fn forget(&self, up: &UploadKeys) {
        let mut entries = self
            .entries
            .lock()
            .expect("the state cache is never poisoned");
        entries.by_upload.remove(up.dir().as_ref());
    }
}

#[cfg(test)]
mod tests {
    use berth_oci::UploadId;

    use super::*;
    use crate::keys::Keys;

    fn upload(seed: u8) -> UploadKeys {
        Keys::new(None)
            .unwrap()
            .upload(&UploadId::from_random([seed; 16]))
    }

    fn at(offset: u64) -> UploadState {
        UploadState {
            offset,
            ..UploadState::default()
        }
    }

    #[test]
    fn recalls_the_last_state_at_its_offset_only() {
        let cache = StateCache::default();
        let up = upload(1);
        cache.remember(&up, &at(5), Some("\"a\"".into()));
        cache.remember(&up, &at(9), Some("\"b\"".into()));
        assert_eq!(cache.recall(&up, 5), None);
        assert_eq!(cache.recall(&up, 9), Some((at(9), "\"b\"".into())));
        cache.remember(&up, &at(12), None);
        assert_eq!(cache.recall(&up, 9), None);
        cache.remember(&up, &at(12), Some("\"c\"".into()));
        cache.forget(&up);
        assert_eq!(cache.recall(&up, 12), None);
    }

    #[test]
    fn drops_the_oldest_upload_when_full() {
        let cache = StateCache::default();
        let ups: Vec<UploadKeys> = (0..CAPACITY + 1)
            .map(|i| {
                Keys::new(None).unwrap().upload(&UploadId::from_random(
                    u128::try_from(i).unwrap().to_le_bytes(),
                ))
            })
            .collect();
        for up in &ups {
            cache.remember(up, &at(1), Some("\"e\"".into()));
        }
        assert_eq!(cache.recall(&ups[0], 1), None);
        assert!(cache.recall(&ups[1], 1).is_some());
        assert!(cache.recall(&ups[CAPACITY], 1).is_some());
    }
}
