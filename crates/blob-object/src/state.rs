//! An upload's state: which objects hold its bytes, in order. One is stored after each
//! append (`state-<offset>`), so whichever node serves the next request finds them.

use berth_oci::{Algorithm, Digest, ResumableHasher};
use serde::{Deserialize, Serialize};

use crate::keys::DATA;

/// The bytes of an upload up to `offset`: the parts of a multipart upload first, then
/// readable chunk objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UploadState {
    /// Bytes the upload holds.
    pub offset: u64,
    /// The hash state of those bytes as the append that wrote them computed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<SavedHash>,
    /// The multipart upload holding the leading bytes, in full parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<Multipart>,
    /// Readable objects holding the bytes after the parts, in order.
    #[serde(default)]
    pub chunks: Vec<Chunk>,
    /// Objects the state this one replaced needed and this one does not; the next
    /// append, which proves this state acknowledged, deletes them.
    #[serde(default)]
    pub superseded: Vec<String>,
}

/// A running hash, as [`ResumableHasher::save`] gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedHash {
    /// `sha256` or `sha512`.
    pub algorithm: String,
    /// The serialized state, in hex.
    pub state: String,
}

/// A multipart upload into the upload's `data` object, and its parts so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Multipart {
    /// The backend's id of the multipart upload.
    pub id: String,
    /// The marker object recording the id, so that the upload can be aborted.
    pub marker: String,
    /// The parts, in order; part `i` was put with index `i`.
    pub parts: Vec<Part>,
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Part {
    /// The id the backend gave the part (its entity tag on S3), checked at completion.
    pub id: String,
    /// Bytes in the part.
    pub len: u64,
}

/// Bytes `start..start + len` of the upload's object `name`, which holds `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Chunk {
    /// The object's name in the upload's directory.
    pub name: String,
    /// Bytes in the whole object.
    pub size: u64,
    /// First byte of the object that belongs to the upload here.
    pub start: u64,
    /// Bytes of the object that belong to the upload here.
    pub len: u64,
}

impl Chunk {
    /// A chunk that is a whole object of `size` bytes.
    pub(crate) fn whole(name: String, size: u64) -> Self {
        Chunk {
            name,
            size,
            start: 0,
            len: size,
        }
    }

    /// True when the chunk is its whole object.
    pub(crate) fn is_whole_object(&self) -> bool {
        self.start == 0 && self.len == self.size
    }
}

impl SavedHash {
    /// The state of `hasher`.
    pub(crate) fn of(hasher: &ResumableHasher) -> Self {
        SavedHash {
            algorithm: hasher.algorithm().as_str().to_owned(),
            state: hex::encode(hasher.save()),
        }
    }

    /// The digest of the bytes hashed, when the state is of `algorithm`.
    pub(crate) fn digest(&self, algorithm: Algorithm) -> Option<Digest> {
        if self.algorithm != algorithm.as_str() {
            return None;
        }
        let state = hex::decode(&self.state).ok()?;
        Some(ResumableHasher::restore(algorithm, &state).ok()?.finish())
    }
}

impl UploadState {
    /// Bytes held by the multipart upload's parts.
    pub(crate) fn parts_len(&self) -> u64 {
        self.multipart
            .as_ref()
            .map_or(0, |m| m.parts.iter().map(|p| p.len).sum())
    }

    /// True when this state reads the upload's object `name`, or its multipart upload
    /// will complete into it.
    pub(crate) fn needs(&self, name: &str) -> bool {
        (self.multipart.is_some() && name == DATA) || self.chunks.iter().any(|c| c.name == name)
    }

    /// The state of the first `len` bytes, or `None` when they end inside a part (parts
    /// cannot be read back or cut: the multipart upload must be completed first).
    pub(crate) fn truncated(&self, len: u64) -> Option<UploadState> {
        let parts_len = self.parts_len();
        if len < parts_len || len > self.offset {
            return None;
        }
        let mut left = len - parts_len;
        let mut chunks = Vec::new();
        for chunk in &self.chunks {
            if left == 0 {
                break;
            }
            let take = chunk.len.min(left);
            chunks.push(Chunk {
                len: take,
                ..chunk.clone()
            });
            left -= take;
        }
        Some(UploadState {
            offset: len,
            hash: (len == self.offset).then(|| self.hash.clone()).flatten(),
            multipart: self.multipart.clone(),
            chunks,
            superseded: Vec::new(),
        })
    }

    /// Serialized, to be stored.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an upload state always serializes")
    }

    /// Parses a stored state.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> UploadState {
        UploadState {
            offset: 30,
            hash: None,
            multipart: Some(Multipart {
                id: "mp".into(),
                marker: "multipart-1".into(),
                parts: vec![Part {
                    id: "e1".into(),
                    len: 10,
                }],
            }),
            chunks: vec![
                Chunk::whole("chunk-a".into(), 15),
                Chunk {
                    name: "chunk-b".into(),
                    size: 9,
                    start: 4,
                    len: 5,
                },
            ],
            superseded: vec!["state-x".into()],
        }
    }

    #[test]
    fn a_prefix_keeps_the_parts_and_cuts_the_chunks() {
        let s = state();
        let cut = s.truncated(18).unwrap();
        assert_eq!(cut.offset, 18);
        assert_eq!(cut.multipart, s.multipart);
        assert_eq!(cut.chunks.len(), 1);
        assert_eq!(cut.chunks[0].len, 8);
        assert!(!cut.chunks[0].is_whole_object());
        assert!(cut.superseded.is_empty());
        let cut = s.truncated(27).unwrap();
        assert_eq!(cut.chunks[1].start, 4);
        assert_eq!(cut.chunks[1].len, 2);
        assert_eq!(s.truncated(10).unwrap().chunks, []);
        assert_eq!(s.truncated(30).unwrap().chunks, s.chunks);
    }

    #[test]
    fn a_prefix_inside_a_part_or_past_the_end_needs_more() {
        assert_eq!(state().truncated(9), None);
        assert_eq!(state().truncated(31), None);
    }

    #[test]
    fn states_round_trip_and_name_what_they_need() {
        let s = state();
        assert_eq!(UploadState::from_bytes(&s.to_bytes()).unwrap(), s);
        assert!(s.needs("data") && s.needs("chunk-b") && !s.needs("chunk-c"));
        let mut h = ResumableHasher::new(Algorithm::Sha256);
        h.update(b"abc");
        let saved = SavedHash::of(&h);
        assert_eq!(
            saved.digest(Algorithm::Sha256),
            Some(Digest::compute(Algorithm::Sha256, b"abc"))
        );
        assert_eq!(saved.digest(Algorithm::Sha512), None);
    }
}
