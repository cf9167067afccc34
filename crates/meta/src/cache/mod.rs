//! In-memory caches every adapter may keep in front of its database. Both stay correct
//! when another node writes: a tag list is served only at the version the database
//! reports, and a manifest's bytes never change for its digest.

mod manifests;
mod tags;

pub use manifests::ManifestCache;
pub use tags::TagCache;
