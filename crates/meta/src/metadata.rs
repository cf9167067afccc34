//! The whole metadata port, as a server holds it.

use crate::{
    ArtifactStore, AuditStore, JobStore, LabelStore, MetaStore, ProjectStore, RobotStore,
    SessionStore, SettingsStore, UserStore,
};

/// Every store trait at once: what a server opens (an SQLite file or a PostgreSQL
/// database) and hands out, one trait to each service.
pub trait Metadata:
    MetaStore
    + UserStore
    + ProjectStore
    + RobotStore
    + SettingsStore
    + AuditStore
    + ArtifactStore
    + SessionStore
    + JobStore
    + LabelStore
{
}

impl<T> Metadata for T where
    T: MetaStore
        + UserStore
        + ProjectStore
        + RobotStore
        + SettingsStore
        + AuditStore
        + ArtifactStore
        + SessionStore
        + JobStore
        + LabelStore
{
}
