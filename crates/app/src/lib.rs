//! The use cases of the registry, over `Arc<dyn BlobStore>` and `Arc<dyn MetaStore>`.
//!
//! Architecture invariant: this is the only layer that enforces policy. HTTP handlers
//! call one method here and map its result; adapters only store what they are told.

mod buffer_budget;
mod clock;
mod collector;
mod error;
mod foreign_urls;
pub mod identity;
pub mod immutability;
mod integrity;
pub mod jobs;
mod locks;
pub mod manage;
mod manifest_buffers;
mod metered_body;
mod opened_uploads;
mod pulls;
mod quotas;
mod registry;
pub mod retention;
pub mod selectors;
mod upload_claims;
mod upload_limits;
mod uploads;

pub use berth_meta::UploadSession;
pub use buffer_budget::BufferPermit;
pub use clock::{Clock, SystemClock};
pub use collector::{
    CollectionOptions, CollectionPhase, CollectionProgress, CollectionReport, CollectionStep,
    CollectionTotals, FailedSweep,
};
pub use error::RegistryError;
pub use foreign_urls::{ForeignUrlPolicy, PatternError};
pub use integrity::{CorruptBlob, IntegrityReport};
pub use manifest_buffers::HeldManifest;
pub use opened_uploads::{UploadState, UploadUrlKey};
pub use registry::{
    BlobContent, BlobReply, BodyRoom, MountOutcome, PushedManifest, ReferrersPage, Registry,
    RegistryConfig, TagList,
};
pub use uploads::UploadBody;
