//! Project quotas (Harbor's `/quotas`): listing and reading one need the system's quota
//! permissions, as in Harbor's handler; a project's summary shows its quota to those who
//! may read quotas in the project; changing a limit is for system administrators.

use std::sync::Arc;

use berth_authz::{Action, Permission, Resource};
use berth_meta::{ListQuery, Listed, Project, Quota, QuotaField, UNLIMITED};

use super::projects::Projects;
use super::{ManageError, Requester};
use crate::identity::Identity;
use crate::registry::Registry;

/// The quota use cases.
pub struct Quotas {
    identity: Arc<Identity>,
    registry: Arc<Registry>,
}

/// Refuses a limit that is neither `-1` (no limit) nor a positive number of bytes.
pub fn validate_limit(limit: i64) -> Result<(), ManageError> {
    if limit == UNLIMITED || limit > 0 {
        Ok(())
    } else {
        Err(ManageError::Invalid(format!(
            "storage limit {limit} must be -1 (no limit) or a positive number of bytes"
        )))
    }
}

fn not_found(id: i64) -> ManageError {
    ManageError::NotFound(format!("quota {id} not found"))
}

impl Quotas {
    /// Quotas over `identity`'s projects and `registry`'s store.
    pub fn new(identity: Arc<Identity>, registry: Arc<Registry>) -> Self {
        Quotas { identity, registry }
    }

    /// A page of quotas.
    pub async fn list(
        &self,
        who: &Requester,
        query: &ListQuery<QuotaField>,
    ) -> Result<Listed<Quota>, ManageError> {
        who.require_system(Permission::new(Resource::Quota, Action::List))?;
        Ok(self.registry.meta.quotas(query).await?)
    }

    /// One quota, for a caller who may read quotas system-wide.
    pub async fn get(&self, who: &Requester, id: i64) -> Result<Quota, ManageError> {
        who.require_system(Permission::new(Resource::Quota, Action::Read))?;
        self.quota(id).await
    }

    /// The quota of a project, for its summary: `None` when the caller may not read
    /// the project's quota.
    pub async fn of_project(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
    ) -> Result<Option<Quota>, ManageError> {
        match self.readable(who, name_or_id, by_name).await {
            Ok(project) => Ok(self.registry.meta.quota(project.id).await?),
            Err(ManageError::Forbidden(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The project, when the caller may read its quota.
    async fn readable(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
    ) -> Result<Project, ManageError> {
        Projects::new(self.identity.clone())
            .with_permission(who, name_or_id, by_name, Resource::Quota, Action::Read)
            .await
    }

    /// Quota `id`, or `NotFound`.
    async fn quota(&self, id: i64) -> Result<Quota, ManageError> {
        (self.registry.meta.quota(id).await?).ok_or_else(|| not_found(id))
    }

    /// Sets a quota's limit (`-1`: no limit).
    pub async fn set_limit(&self, who: &Requester, id: i64, hard: i64) -> Result<(), ManageError> {
        who.require_system(Permission::new(Resource::Quota, Action::Update))?;
        validate_limit(hard)?;
        let quota = self.quota(id).await?;
        let now = self.identity.clock.now_ms();
        let audit = who.actor().audit(
            "update",
            "quota",
            &quota.project_name,
            Some(quota.project_id),
            now,
        );
        if !self
            .registry
            .meta
            .set_quota_limit(id, hard, now, &audit)
            .await?
        {
            return Err(not_found(id));
        }
        Ok(())
    }
}
