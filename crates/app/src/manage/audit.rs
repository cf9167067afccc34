//! Reading the audit log: all of it for administrators, otherwise the entries of the
//! projects whose logs the caller may list.

use std::sync::Arc;

use berth_authz::{Action, Permission, Principal, Resource};
use berth_meta::{AuditField, AuditRecord, ListQuery, Listed};

use super::projects::Projects;
use super::{ManageError, Requester};
use crate::identity::Identity;

const LOG_LIST: Permission = Permission::new(Resource::Log, Action::List);
const AUDIT_LIST: Permission = Permission::new(Resource::AuditLog, Action::List);

/// The audit log use cases.
pub struct AuditLog {
    identity: Arc<Identity>,
}

impl AuditLog {
    /// The audit log over `identity`.
    pub fn new(identity: Arc<Identity>) -> Self {
        AuditLog { identity }
    }

    /// A page of the entries the caller may read.
    pub async fn list(
        &self,
        who: &Requester,
        query: &ListQuery<AuditField>,
    ) -> Result<Listed<AuditRecord>, ManageError> {
        let account = who.account()?;
        let store = &self.identity.stores.audit;
        if berth_authz::allowed(&account.principal, None, AUDIT_LIST) {
            return Ok(store.list_audit(None, query).await?);
        }
        let projects: Vec<i64> = match &account.principal {
            Principal::User(u) => u
                .projects
                .iter()
                .filter(|(_, set)| set.contains(LOG_LIST))
                .map(|(id, _)| *id)
                .collect(),
            Principal::Robot(r) => r
                .projects
                .iter()
                .filter(|(_, set)| set.union(&r.all_projects).contains(LOG_LIST))
                .map(|(id, _)| *id)
                .collect(),
            Principal::Anonymous => Vec::new(),
        };
        Ok(store.list_audit(Some(&projects), query).await?)
    }

    /// A page of one project's entries.
    pub async fn project(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
        query: &ListQuery<AuditField>,
    ) -> Result<Listed<AuditRecord>, ManageError> {
        let project = Projects::new(self.identity.clone())
            .with_permission(who, name_or_id, by_name, Resource::Log, Action::List)
            .await?;
        Ok(self
            .identity
            .stores
            .audit
            .list_audit(Some(&[project.id]), query)
            .await?)
    }
}
