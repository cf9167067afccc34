//! Berth's blob store on an object store: Amazon S3 and S3-compatible services (MinIO,
//! Garage, Ceph RGW, Aliyun OSS), Azure Blob Storage and Google Cloud Storage, through
//! the `object_store` crate.
//!
//! Blobs live under `blobs/<alg>/<xx>/<hex>`. An upload's bytes live under
//! `uploads/<id>/`: full parts of a multipart upload, chunk objects for the bytes after
//! the last full part, and after each append a small state object naming them
//! (`state-<offset>`), so that any process can continue any upload.
//! `docs/design/object-storage.md` explains the design.

mod append;
mod backend;
mod bucket;
mod commit;
mod config;
mod finalize;
mod keys;
mod part_stream;
mod read;
mod retire;
mod state;
mod state_cache;
mod store;
mod streamed;

pub use config::{
    AzureSettings, Backend, DEFAULT_COPY_LIMIT, DEFAULT_PART_SIZE, GcsSettings, MIN_PART_SIZE,
    OpenError, S3Settings, Secret, StoreOptions,
};
pub use store::ObjectBlobStore;
