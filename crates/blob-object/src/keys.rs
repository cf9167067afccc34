//! Where each object lives in the bucket.
//!
//! ```text
//! <prefix>/blobs/<alg>/<xx>/<hex>        committed blobs
//! <prefix>/retired/<alg>/<xx>/<hex>.<token> a blob's bytes a sweep moved aside
//! <prefix>/uploads/<id>/state-<offset>   an upload's state after an append ending there
//! <prefix>/uploads/<id>/chunk-<nonce>    staged bytes after the last full part
//! <prefix>/uploads/<id>/data             the multipart upload's object, once completed
//! <prefix>/uploads/<id>/multipart-<nonce> the id of a multipart upload, for aborting it
//! <prefix>/readyz-<nonce>                a readiness probe, removed at once
//! ```

use berth_oci::{Digest, UploadId};
use object_store::path::Path;

/// Name of the object a completed multipart upload becomes.
pub(crate) const DATA: &str = "data";

const STATE: &str = "state-";
const CHUNK: &str = "chunk-";
const MULTIPART: &str = "multipart-";

/// The key layout under the store's prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    root: Path,
}

impl Keys {
    /// The layout under `prefix` (the bucket's root when `None`).
    pub(crate) fn new(prefix: Option<&str>) -> Result<Self, object_store::path::Error> {
        let root = match prefix {
            Some(p) => Path::parse(p.trim_matches('/'))?,
            None => Path::default(),
        };
        Ok(Keys { root })
    }

    /// Where a committed blob lives.
    pub(crate) fn blob(&self, digest: &Digest) -> Path {
        let hex = digest.encoded();
        self.root
            .child("blobs")
            .child(digest.algorithm().as_str())
            .child(&hex[..2])
            .child(hex)
    }

    /// The directory of every committed blob.
    pub(crate) fn blobs(&self) -> Path {
        self.root.child("blobs")
    }

    /// The committed blob a key under [`Keys::blobs`] holds, if it names one.
    pub(crate) fn blob_of(&self, location: &Path) -> Option<Digest> {
        let parts: Vec<_> = location.prefix_match(&self.blobs())?.collect();
        match parts.as_slice() {
            [algorithm, _, hex] => {
                Digest::parse(&format!("{}:{}", algorithm.as_ref(), hex.as_ref())).ok()
            }
            _ => None,
        }
    }

    /// Where the copy of `digest` retired under `token` lives.
    pub(crate) fn retired(&self, digest: &Digest, token: &str) -> Path {
        (self.retired_shard(digest)).child(format!("{}.{token}", digest.encoded()))
    }

    /// The directory of the copies of `digest` (and of the digests that share its
    /// first two hex digits).
    pub(crate) fn retired_shard(&self, digest: &Digest) -> Path {
        self.retired_dir()
            .child(digest.algorithm().as_str())
            .child(&digest.encoded()[..2])
    }

    /// The directory of every retired copy.
    pub(crate) fn retired_dir(&self) -> Path {
        self.root.child("retired")
    }

    /// The blob and token a key under [`Keys::retired_dir`] names, if it names one.
    pub(crate) fn retired_of(&self, location: &Path) -> Option<(Digest, String)> {
        let parts: Vec<_> = location.prefix_match(&self.retired_dir())?.collect();
        let [algorithm, _, name] = parts.as_slice() else {
            return None;
        };
        let (hex, token) = name.as_ref().split_once('.')?;
        let digest = Digest::parse(&format!("{}:{hex}", algorithm.as_ref())).ok()?;
        Some((digest, token.to_owned()))
    }

    /// The directory of every upload.
    pub(crate) fn uploads(&self) -> Path {
        self.root.child("uploads")
    }

    /// The objects of one upload.
    pub(crate) fn upload(&self, id: &UploadId) -> UploadKeys {
        UploadKeys {
            dir: self.uploads().child(id.as_str()),
        }
    }

    /// The upload an object under [`Keys::uploads`] belongs to.
    pub(crate) fn upload_of(&self, location: &Path) -> Option<UploadId> {
        let mut rest = location.prefix_match(&self.uploads())?;
        UploadId::parse(rest.next()?.as_ref()).ok()
    }

    /// A fresh readiness-probe object.
    pub(crate) fn probe(&self) -> Path {
        self.root.child(format!("readyz-{}", nonce()))
    }
}

/// The objects of one upload.
#[derive(Debug, Clone)]
pub(crate) struct UploadKeys {
    dir: Path,
}

impl UploadKeys {
    /// The upload's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The upload's object called `name`.
    pub(crate) fn object(&self, name: &str) -> Path {
        self.dir.child(name)
    }

    /// The state object after an append ending at `offset`.
    pub(crate) fn state(&self, offset: u64) -> Path {
        self.object(&state_name(offset))
    }

    /// The object the upload's multipart uploads complete into.
    pub(crate) fn data(&self) -> Path {
        self.object(DATA)
    }
}

/// Name of the state object at `offset` (zero-padded, so listings sort by offset).
pub(crate) fn state_name(offset: u64) -> String {
    format!("{STATE}{offset:020}")
}

/// The offset a state object's name gives.
pub(crate) fn state_offset(name: &str) -> Option<u64> {
    name.strip_prefix(STATE)?.parse().ok()
}

/// A name no other chunk has.
pub(crate) fn new_chunk_name() -> String {
    format!("{CHUNK}{}", nonce())
}

/// A name no other multipart marker has.
pub(crate) fn new_marker_name() -> String {
    format!("{MULTIPART}{}", nonce())
}

/// True for the name of a multipart marker.
pub(crate) fn is_marker(name: &str) -> bool {
    name.starts_with(MULTIPART)
}

fn nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_oci::Algorithm;

    #[test]
    fn keys_sit_under_the_prefix() {
        let keys = Keys::new(Some("/registry/one/")).unwrap();
        let digest = Digest::compute(Algorithm::Sha256, b"x");
        let blob = keys.blob(&digest).to_string();
        assert!(blob.starts_with("registry/one/blobs/sha256/"), "{blob}");
        assert!(blob.ends_with(&format!("/{}", digest.encoded())));
        let id = UploadId::from_random([7; 16]);
        let state = keys.upload(&id).state(42);
        assert_eq!(
            state.to_string(),
            format!("registry/one/uploads/{id}/state-00000000000000000042")
        );
        assert_eq!(keys.upload_of(&state), Some(id));
        assert_eq!(state_offset(state.filename().unwrap()), Some(42));
        assert_eq!(keys.upload_of(&keys.probe()), None);
        let retired = keys.retired(&digest, "t0");
        assert!(
            retired
                .to_string()
                .starts_with("registry/one/retired/sha256/")
        );
        assert_eq!(
            keys.retired_of(&retired),
            Some((digest.clone(), "t0".into()))
        );
        assert_eq!(keys.retired_of(&keys.blob(&digest)), None);
        let bare = Keys::new(None).unwrap();
        assert!(bare.blob(&digest).to_string().starts_with("blobs/"));
    }
}
