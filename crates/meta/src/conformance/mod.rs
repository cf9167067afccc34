//! The behaviour every metadata-store adapter must show; each adapter's tests call [`run`]
//! on a new store.
//!
//! One file checks one aggregate. The checks share the store, so each names its own
//! projects, users, robots and audit actor (`cf-…`) and looks only at those: a check
//! holds whatever else the store contains.

mod accounts;
mod artifacts;
mod audit;
mod collection;
mod immutable;
mod labels;
mod one_request;
mod projects;
mod quotas;
mod registry;
mod retention;
mod robots;
mod sessions;
mod settings;
mod support;
pub mod sweep_bytes;
mod upload_ids;
mod upload_leases;

pub mod jobs;

use std::sync::Arc;

use crate::Metadata;

/// Runs every check against a new store.
pub async fn run<S: Metadata>(store: Arc<S>) {
    let store: Arc<dyn Metadata> = store;
    // First: it needs a store in which no administrator exists yet.
    accounts::first_administrator(store.clone()).await;
    registry::run(store.clone()).await;
    upload_leases::run(&*store).await;
    upload_ids::run(store.clone()).await;
    accounts::run(&*store).await;
    projects::run(&*store).await;
    robots::run(&*store).await;
    immutable::run(&*store).await;
    artifacts::run(&*store).await;
    labels::run(&*store).await;
    retention::run(&*store).await;
    audit::run(&*store).await;
    settings::run(&*store).await;
    sessions::run(&*store).await;
    quotas::run(store.clone()).await;
    // Last: it marks every blob of the store that nothing links.
    collection::run(&*store).await;
    one_request::run(&*store).await;
    quotas::assert_clean(&*store).await;
    store.check().await.unwrap();
}
