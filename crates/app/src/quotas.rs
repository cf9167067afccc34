//! Quota policy on the registry's writes: a blob that would take its project past its
//! limit is refused at upload completion and at mount, and a push that brings a
//! project's usage to the warning threshold is written to the audit log.
//!
//! Manifest pushes are checked by the store itself, in the push's transaction
//! ([`berth_meta::PutManifestError::QuotaExceeded`]); blob links count nothing, but a
//! blob that no manifest of the project could reference within the limit is refused
//! before it is linked.

use berth_meta::BlobQuota;
use berth_oci::{Digest, RepositoryName};

use crate::error::RegistryError;
use crate::identity::Actor;
use crate::registry::Registry;

impl Registry {
    /// Refuses a blob of `size` bytes for `repository` when its project's manifests do
    /// not hold it already and it does not fit under the project's limit.
    pub(crate) async fn check_blob_quota(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RegistryError> {
        refuse_over_quota(self.meta.blob_quota(repository, digest).await?, size)
    }

    /// Writes a `quota_warning` audit entry when the push just made brought its
    /// project's usage to `quota_warning_percent` of its limit (once per crossing). A
    /// failure is logged: the push itself is committed.
    pub(crate) async fn note_quota_warning(&self, repository: &RepositoryName, actor: &Actor) {
        let entry = actor.audit(
            "quota_warning",
            "quota",
            repository.project(),
            None,
            self.clock.now_ms(),
        );
        let percent = self.config.quota_warning_percent;
        match self.meta.warn_quota(repository, percent, &entry).await {
            Ok(Some(quota)) => tracing::warn!(
                project = %quota.project_name,
                used = quota.used,
                limit = quota.hard,
                percent,
                "project storage reached its quota warning threshold"
            ),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "quota warning not recorded"),
        }
    }
}

/// Refuses a blob of `size` bytes when `state`, where its project stands for it (`None`:
/// no such project), says its manifests do not hold it already and it does not fit
/// under the project's limit.
fn refuse_over_quota(state: Option<BlobQuota>, size: u64) -> Result<(), RegistryError> {
    match state.and_then(|state| state.refusal(size)) {
        Some(refusal) => Err(RegistryError::QuotaExceeded(refusal)),
        None => Ok(()),
    }
}
