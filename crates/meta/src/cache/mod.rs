//! In-memory caches every adapter may keep in front of its database. They stay correct
//! when another node writes: tag lists and other facts about a repository are served
//! only at the version the database reports, and a manifest's bytes never change for
//! its digest.

mod manifests;
mod tags;
mod versioned;

pub use manifests::ManifestCache;
pub use tags::TagCache;
pub use versioned::VersionedCache;
