//! Labels as Harbor manages them: a global label is the system's (Harbor's system
//! `label` permissions: administrators), a project label its project's (the roles
//! whose permissions include `label`); labels are added to and removed from artifacts
//! with the project's `artifact-label` permissions, and a project label only to
//! artifacts of its own project.

use std::sync::Arc;

use berth_authz::{Action, Permission, Resource};
use berth_meta::{
    AddLabelError, ArtifactInfo, AuditEntry, FieldFilter, Label, LabelError, LabelField,
    LabelScope, LabelUpdate, ListQuery, Listed, Match, NewLabel, Project,
};
use berth_oci::{Reference, RepositoryName};

use super::artifacts::Artifacts;
use super::projects::Projects;
use super::{ManageError, Requester};
use crate::identity::Identity;

/// The longest label name Harbor takes.
const MAX_NAME_LEN: usize = 128;

/// A label as a request gives it.
#[derive(Debug, Clone, Default)]
pub struct LabelDraft {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Colour.
    pub color: String,
    /// `g` (global) or `p` (project); an update keeps the stored scope.
    pub scope: String,
    /// The project of a project label.
    pub project_id: i64,
}

/// Which labels a listing shows, as Harbor's `scope`, `project_id` and `name`
/// parameters ask.
#[derive(Debug, Clone, Default)]
pub struct LabelFilter {
    /// `g` or `p`.
    pub scope: String,
    /// The project, for `p`.
    pub project_id: Option<i64>,
    /// Part of the name.
    pub name: Option<String>,
}

/// The label use cases.
pub struct Labels {
    identity: Arc<Identity>,
}

impl Labels {
    /// Labels over `identity`.
    pub fn new(identity: Arc<Identity>) -> Self {
        Labels { identity }
    }

    /// A page of the global labels, or of one project's labels (which needs the
    /// project's `label` list permission).
    pub async fn list(
        &self,
        who: &Requester,
        filter: &LabelFilter,
        mut query: ListQuery<LabelField>,
    ) -> Result<Listed<Label>, ManageError> {
        let mut restrict = |field, value: String| {
            query.filters.push(FieldFilter {
                field,
                matching: Match::Exact(value),
            })
        };
        match filter.scope.as_str() {
            "g" => restrict(LabelField::Scope, "g".into()),
            "p" => {
                let project = filter.project_id.filter(|&id| id != 0).ok_or_else(|| {
                    ManageError::Invalid("must with project ID when to query project labels".into())
                })?;
                self.project(who, project, Action::List).await?;
                restrict(LabelField::Scope, "p".into());
                restrict(LabelField::ProjectId, project.to_string());
            }
            other => return Err(ManageError::Invalid(format!("invalid scope: {other}"))),
        }
        if let Some(name) = filter.name.as_deref().filter(|n| !n.is_empty()) {
            query.filters.push(FieldFilter {
                field: LabelField::Name,
                matching: Match::Fuzzy(name.to_owned()),
            });
        }
        Ok(self.identity.stores.labels.list_labels(&query).await?)
    }

    /// Creates a label; returns its id.
    pub async fn create(&self, who: &Requester, draft: LabelDraft) -> Result<i64, ManageError> {
        let scope = match draft.scope.as_str() {
            "g" => LabelScope::Global,
            "p" => LabelScope::Project(draft.project_id),
            _ => return Err(ManageError::Invalid("unsupported label scope".into())),
        };
        self.require(who, scope, Action::Create).await?;
        validate_name(&draft.name)?;
        let label = NewLabel {
            name: draft.name,
            description: draft.description,
            color: draft.color,
            scope,
        };
        let audit = self.audit(who, "create", &label.name, scope);
        self.identity
            .stores
            .labels
            .create_label(&label, audit.op_time, &audit)
            .await
            .map_err(|e| label_error(e, scope))
    }

    /// One label the caller may read.
    pub async fn get(&self, who: &Requester, id: i64) -> Result<Label, ManageError> {
        self.authorized(who, id, Action::Read).await
    }

    /// Changes a label's name, description and colour.
    pub async fn update(
        &self,
        who: &Requester,
        id: i64,
        draft: LabelDraft,
    ) -> Result<(), ManageError> {
        let label = self.authorized(who, id, Action::Update).await?;
        validate_name(&draft.name)?;
        let update = LabelUpdate {
            name: draft.name,
            description: draft.description,
            color: draft.color,
        };
        let audit = self.audit(who, "update", &update.name, label.scope);
        let found = self
            .identity
            .stores
            .labels
            .update_label(id, &update, audit.op_time, &audit)
            .await
            .map_err(|e| label_error(e, label.scope))?;
        found.then_some(()).ok_or_else(|| label_not_found(id))
    }

    /// Deletes a label, removing it from every artifact.
    pub async fn delete(&self, who: &Requester, id: i64) -> Result<(), ManageError> {
        let label = self.authorized(who, id, Action::Delete).await?;
        let audit = self.audit(who, "delete", &label.name, label.scope);
        let found = self.identity.stores.labels.delete_label(id, &audit).await?;
        found.then_some(()).ok_or_else(|| label_not_found(id))
    }

    /// Adds a label to an artifact: a global label, or a label of the artifact's
    /// project.
    pub async fn add_to_artifact(
        &self,
        who: &Requester,
        project: &str,
        repository: &str,
        reference: &Reference,
        label_id: i64,
    ) -> Result<(), ManageError> {
        let project = self.artifact_project(who, project, Action::Create).await?;
        let label = self
            .identity
            .stores
            .labels
            .label(label_id)
            .await?
            .ok_or_else(|| label_not_found(label_id))?;
        if matches!(label.scope, LabelScope::Project(p) if p != project.id) {
            return Err(ManageError::NotFound(format!(
                "project id {}, label {label_id} not found",
                project.id
            )));
        }
        let (repository, artifact) = self.artifact(&project, repository, reference).await?;
        let audit = self.artifact_audit(who, "create", &project, &repository, &artifact, label_id);
        self.identity
            .stores
            .labels
            .add_artifact_label(artifact.id, label_id, audit.op_time, &audit)
            .await
            .map_err(|e| match e {
                AddLabelError::AlreadyAdded { .. } => ManageError::Conflict(e.to_string()),
                AddLabelError::NotFound { .. } => ManageError::NotFound(e.to_string()),
                AddLabelError::Meta(e) => ManageError::Meta(e),
            })
    }

    /// Removes a label from an artifact.
    pub async fn remove_from_artifact(
        &self,
        who: &Requester,
        project: &str,
        repository: &str,
        reference: &Reference,
        label_id: i64,
    ) -> Result<(), ManageError> {
        let project = self.artifact_project(who, project, Action::Delete).await?;
        let (repository, artifact) = self.artifact(&project, repository, reference).await?;
        let audit = self.artifact_audit(who, "delete", &project, &repository, &artifact, label_id);
        let removed = self
            .identity
            .stores
            .labels
            .remove_artifact_label(artifact.id, label_id, &audit)
            .await?;
        removed.then_some(()).ok_or_else(|| {
            ManageError::NotFound(format!(
                "reference with label {label_id} and artifact {} not found",
                artifact.id
            ))
        })
    }

    /// The label, when the caller may perform `action` on it; a project label of a
    /// project the caller may not see is not found.
    async fn authorized(
        &self,
        who: &Requester,
        id: i64,
        action: Action,
    ) -> Result<Label, ManageError> {
        let label = self
            .identity
            .stores
            .labels
            .label(id)
            .await?
            .ok_or_else(|| label_not_found(id))?;
        match self.require(who, label.scope, action).await {
            Err(ManageError::NotFound(_)) => Err(label_not_found(id)),
            checked => checked.map(|()| label),
        }
    }

    /// Harbor's check of `action` on a label of `scope`: a system permission for a
    /// global label, a permission in its project for a project label.
    async fn require(
        &self,
        who: &Requester,
        scope: LabelScope,
        action: Action,
    ) -> Result<(), ManageError> {
        match scope {
            LabelScope::Global => who.require_system(Permission::new(Resource::Label, action)),
            LabelScope::Project(id) => self.project(who, id, action).await.map(drop),
        }
    }

    /// Project `id`, when the caller may perform `action` on its labels.
    async fn project(
        &self,
        who: &Requester,
        id: i64,
        action: Action,
    ) -> Result<Project, ManageError> {
        Projects::new(self.identity.clone())
            .with_permission(who, &id.to_string(), false, Resource::Label, action)
            .await
    }

    /// Project `name`, when the caller may perform `action` on its artifacts' labels.
    async fn artifact_project(
        &self,
        who: &Requester,
        name: &str,
        action: Action,
    ) -> Result<Project, ManageError> {
        Projects::new(self.identity.clone())
            .with_permission(who, name, true, Resource::ArtifactLabel, action)
            .await
    }

    /// The repository and the artifact a reference names in it.
    async fn artifact(
        &self,
        project: &Project,
        repository: &str,
        reference: &Reference,
    ) -> Result<(RepositoryName, ArtifactInfo), ManageError> {
        let repository = Artifacts::repository_name(project, repository)?;
        let artifact = self
            .identity
            .stores
            .artifacts
            .artifact(&repository, reference, 0)
            .await?
            .ok_or_else(|| {
                ManageError::NotFound(format!("artifact {repository}:{reference} not found"))
            })?;
        Ok((repository, artifact))
    }

    /// The audit entry of a change to label `name` of `scope`, now.
    fn audit(&self, who: &Requester, operation: &str, name: &str, scope: LabelScope) -> AuditEntry {
        let now = self.identity.clock.now_ms();
        who.actor()
            .audit(operation, "label", name, scope.project_id(), now)
    }

    /// The audit entry of a label added to or removed from an artifact, now.
    fn artifact_audit(
        &self,
        who: &Requester,
        operation: &str,
        project: &Project,
        repository: &RepositoryName,
        artifact: &ArtifactInfo,
        label_id: i64,
    ) -> AuditEntry {
        let now = self.identity.clock.now_ms();
        let resource = format!("{repository}@{}, label {label_id}", artifact.digest);
        who.actor().audit(
            operation,
            "artifact_label",
            &resource,
            Some(project.id),
            now,
        )
    }
}

/// Harbor's rules for a label's name: not empty, at most 128 bytes.
fn validate_name(name: &str) -> Result<(), ManageError> {
    if name.is_empty() {
        return Err(ManageError::Invalid(
            "the label's name cannot be empty".into(),
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ManageError::Invalid(format!(
            "the label's name may be at most {MAX_NAME_LEN} bytes long"
        )));
    }
    Ok(())
}

fn label_not_found(id: i64) -> ManageError {
    ManageError::NotFound(format!("label {id} not found"))
}

fn label_error(e: LabelError, scope: LabelScope) -> ManageError {
    match e {
        LabelError::NameTaken(_) => ManageError::Conflict(e.to_string()),
        LabelError::NoProject => ManageError::NotFound(format!(
            "project {} not found",
            scope.project_id().unwrap_or_default()
        )),
        LabelError::Meta(e) => ManageError::Meta(e),
    }
}
