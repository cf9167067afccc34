//! The OCI distribution vocabulary, parsed at the edge and passed around as types.
//!
//! Architecture invariant: this crate is pure. It performs no I/O and depends on no
//! runtime (no tokio, no SQL, no HTTP), so every other crate can use it and every
//! parser here can be fuzzed in isolation.

mod digest;
mod hasher;
mod manifest;
pub mod media_type;
mod name;
mod range;
mod reference;
mod strict_json;
mod upload_id;

pub use digest::{Algorithm, Digest, DigestError};
pub use hasher::{HashStateError, ResumableHasher};
pub use manifest::{Descriptor, ManifestError, ManifestKind, ParsedManifest};
pub use name::{NameError, RepositoryName};
pub use range::{ByteRange, ContentRange, RangeError, RangeRequest};
pub use reference::{Reference, ReferenceError, Tag, TagError, tag_listing_order};
pub use upload_id::{Opening, UploadId, UploadIdError, UploadRef};
