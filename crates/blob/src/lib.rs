//! Content-addressed blob storage: committed blobs keyed by digest, and the byte side of
//! upload sessions (their offsets and hash states live in the metadata store).
//!
//! Architecture invariant: only adapters in this crate touch bytes at rest. A blob
//! becomes visible under its digest only after every byte was received, hashed and
//! made durable; readers never see a partial blob.

mod buffer_pool;
mod durable_dirs;
mod file_chunks;
mod fs;
mod port;
mod retired;
mod write_batch;

pub use fs::FsBlobStore;
pub use port::{
    AppendOutcome, BlobError, BlobRead, BlobStore, BodyLength, ByteStream, Committed, Moved,
    RetiredBlob, StoredBlob, checked_token, valid_token,
};

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
