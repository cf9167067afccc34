//! Projects and their members: create, list, read, update settings, delete when
//! empty, summary; members added, listed, given another role, removed.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_authz::{Action, Permission, ProjectRef, Resource, allowed};
use berth_meta::{
    ListQuery, Listed, Member, MemberKind, NewProject, Project, ProjectField, ProjectUpdate,
};

use super::{ManageError, Requester};
use crate::identity::{Identity, visibility_of};

/// Project metadata keys Harbor knows, and whether each holds `true`/`false`.
const METADATA_KEYS: &[(&str, bool)] = &[
    ("public", true),
    ("enable_content_trust", true),
    ("enable_content_trust_cosign", true),
    ("prevent_vul", true),
    ("severity", false),
    ("auto_scan", true),
    ("auto_sbom_generation", true),
    ("reuse_sys_cve_allowlist", true),
    ("retention_id", false),
    ("proxy_speed_kb", false),
];

/// A project to create.
#[derive(Debug, Clone, Default)]
pub struct ProjectRequest {
    /// Name.
    pub name: String,
    /// Visibility (the deprecated top-level `public`, or `metadata.public`).
    pub public: Option<bool>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// The owner's login name, when an administrator creates the project for someone
    /// else; by default the caller (none for the system account).
    pub owner: Option<String>,
    /// Storage limit in bytes (`-1`: none); by default the `storage_per_project`
    /// setting's.
    pub storage_limit: Option<i64>,
}

/// Changes to a project's settings.
#[derive(Debug, Clone, Default)]
pub struct ProjectDraft {
    /// New visibility.
    pub public: Option<bool>,
    /// Metadata keys to set.
    pub metadata: BTreeMap<String, String>,
}

/// Counts shown on a project's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectSummary {
    /// Repositories.
    pub repo_count: u64,
    /// Members per role id.
    pub members_by_role: BTreeMap<i64, u64>,
}

/// The project use cases.
pub struct Projects {
    identity: Arc<Identity>,
}

impl Projects {
    /// Projects over `identity`.
    pub fn new(identity: Arc<Identity>) -> Self {
        Projects { identity }
    }

    /// Creates a project owned by the caller; returns its id.
    pub async fn create(&self, who: &Requester, req: ProjectRequest) -> Result<i64, ManageError> {
        let account = who.account()?;
        let settings = self.identity.settings.current().await?;
        if settings.project_creation_restriction == "adminonly" && !who.is_sysadmin() {
            return Err(ManageError::Forbidden(
                "only administrators may create projects".into(),
            ));
        }
        if account.user_id().is_none()
            && !allowed(
                &account.principal,
                None,
                Permission::new(Resource::Project, Action::Create),
            )
        {
            return Err(ManageError::Forbidden(
                "this robot may not create projects".into(),
            ));
        }
        validate_project_name(&req.name)?;
        // As in Harbor, only a system administrator chooses a new project's limit; a
        // limit of 0, or one asked for by anyone else, is the default for new projects.
        let storage_limit = req
            .storage_limit
            .filter(|limit| *limit != 0 && who.is_sysadmin());
        if let Some(limit) = storage_limit {
            crate::manage::quotas::validate_limit(limit)?;
        }
        let mut metadata = validate_metadata(req.metadata)?;
        let public = match (req.public, metadata.remove("public")) {
            (_, Some(p)) => p == "true",
            (Some(p), None) => p,
            (None, None) => false,
        };
        let owner_id = match &req.owner {
            None => account.user_id(),
            Some(_) if !who.is_sysadmin() => {
                return Err(ManageError::Forbidden(
                    "only administrators may create a project for someone else".into(),
                ));
            }
            Some(name) => {
                let owner = self.identity.stores.users.user_by_name(name).await?;
                let owner = owner
                    .ok_or_else(|| ManageError::NotFound(format!("user {name:?} not found")))?;
                Some(owner.id)
            }
        };
        let now = self.identity.clock.now_ms();
        let audit = who.actor().audit("create", "project", &req.name, None, now);
        let project = NewProject {
            name: req.name.clone(),
            owner_id,
            public,
            metadata,
            storage_limit,
        };
        let id = self
            .identity
            .stores
            .projects
            .create_project(&project, berth_authz::ROLE_PROJECT_ADMIN, now, &audit)
            .await?;
        self.changed(&req.name);
        Ok(id)
    }

    /// Whether a project with this name exists (logged-in callers only).
    pub async fn exists(&self, who: &Requester, name: &str) -> Result<bool, ManageError> {
        who.account()?;
        Ok(self
            .identity
            .stores
            .projects
            .project_access(name)
            .await?
            .is_some())
    }

    /// A page of the projects the caller may see.
    pub async fn list(
        &self,
        who: &Requester,
        query: &ListQuery<ProjectField>,
    ) -> Result<Listed<Project>, ManageError> {
        let visibility = match &who.account {
            Some(a) => visibility_of(a),
            None => berth_meta::Visibility::PublicOnly,
        };
        Ok(self
            .identity
            .stores
            .projects
            .list_projects(&visibility, query)
            .await?)
    }

    /// A project the caller may read, by name or id (`name_or_id`; `by_name` decides
    /// how a number is read, as Harbor's `X-Is-Resource-Name` header does).
    pub async fn get(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
    ) -> Result<Project, ManageError> {
        self.with_permission(who, name_or_id, by_name, Resource::Project, Action::Read)
            .await
    }

    /// Changes a project's visibility and metadata.
    pub async fn update(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
        draft: ProjectDraft,
    ) -> Result<(), ManageError> {
        let project = self
            .with_permission(who, name_or_id, by_name, Resource::Project, Action::Update)
            .await?;
        let mut metadata = validate_metadata(draft.metadata)?;
        let public = metadata
            .remove("public")
            .map(|p| p == "true")
            .or(draft.public);
        self.apply(who, &project, ProjectUpdate { public, metadata })
            .await
    }

    /// Writes a validated update with its audit entry.
    async fn apply(
        &self,
        who: &Requester,
        project: &Project,
        update: ProjectUpdate,
    ) -> Result<(), ManageError> {
        let now = self.identity.clock.now_ms();
        let audit = who
            .actor()
            .audit("update", "project", &project.name, Some(project.id), now);
        self.identity
            .stores
            .projects
            .update_project(project.id, &update, now, &audit)
            .await?;
        self.changed(&project.name);
        Ok(())
    }

    /// A project's metadata (Harbor's `/metadatas`), `public` included.
    pub async fn metadata(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
    ) -> Result<BTreeMap<String, String>, ManageError> {
        let project = self
            .with_permission(who, name_or_id, by_name, Resource::Metadata, Action::Read)
            .await?;
        let mut metadata = project.metadata;
        metadata.insert("public".into(), project.public.to_string());
        Ok(metadata)
    }

    /// Sets metadata keys (`create` for new ones, `update` for existing ones).
    pub async fn set_metadata(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
        values: BTreeMap<String, String>,
        action: Action,
    ) -> Result<(), ManageError> {
        let project = self
            .with_permission(who, name_or_id, by_name, Resource::Metadata, action)
            .await?;
        let mut metadata = validate_metadata(values)?;
        let public = metadata.remove("public").map(|p| p == "true");
        self.apply(who, &project, ProjectUpdate { public, metadata })
            .await
    }

    /// Removes a metadata key (`public` stays: it is made `false` instead).
    pub async fn delete_metadata(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
        key: &str,
    ) -> Result<(), ManageError> {
        if key == "public" {
            return self
                .set_metadata(
                    who,
                    name_or_id,
                    by_name,
                    BTreeMap::from([("public".into(), "false".into())]),
                    Action::Delete,
                )
                .await;
        }
        let project = self
            .with_permission(who, name_or_id, by_name, Resource::Metadata, Action::Delete)
            .await?;
        let now = self.identity.clock.now_ms();
        let audit = who
            .actor()
            .audit("update", "project", &project.name, Some(project.id), now);
        if !self
            .identity
            .stores
            .projects
            .delete_project_metadata(project.id, key, now, &audit)
            .await?
        {
            return Err(ManageError::NotFound(format!("metadata {key} not found")));
        }
        Ok(())
    }

    /// Deletes an empty project.
    pub async fn delete(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
    ) -> Result<(), ManageError> {
        let project = self
            .with_permission(who, name_or_id, by_name, Resource::Project, Action::Delete)
            .await?;
        let now = self.identity.clock.now_ms();
        let audit = who
            .actor()
            .audit("delete", "project", &project.name, Some(project.id), now);
        self.identity
            .stores
            .projects
            .delete_project(project.id, &audit)
            .await?;
        self.changed(&project.name);
        Ok(())
    }

    /// The project's counts.
    pub async fn summary(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
    ) -> Result<ProjectSummary, ManageError> {
        let project = self.get(who, name_or_id, by_name).await?;
        let mut summary = ProjectSummary {
            repo_count: project.repo_count,
            ..ProjectSummary::default()
        };
        let members = self
            .identity
            .stores
            .projects
            .list_members(project.id, None, 0, u64::MAX)
            .await?;
        for member in members.items {
            *summary.members_by_role.entry(member.role_id).or_default() += 1;
        }
        Ok(summary)
    }

    /// The role ids the caller holds in a project.
    pub async fn roles_of(
        &self,
        who: &Requester,
        project_id: i64,
    ) -> Result<Vec<i64>, ManageError> {
        let Some(user) = who.account.as_ref().and_then(|a| a.user_id()) else {
            return Ok(Vec::new());
        };
        Ok(self
            .identity
            .directory
            .user_roles(user)
            .await?
            .into_iter()
            .filter(|(p, _)| *p == project_id)
            .map(|(_, role)| role)
            .collect())
    }

    /// A page of a project's members.
    pub async fn members(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
        name: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<Listed<Member>, ManageError> {
        let project = self
            .with_permission(who, name_or_id, by_name, Resource::Member, Action::List)
            .await?;
        Ok(self
            .identity
            .stores
            .projects
            .list_members(project.id, name, offset, limit)
            .await?)
    }

    /// One member of a project.
    pub async fn member(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
        member_id: i64,
    ) -> Result<Member, ManageError> {
        let project = self
            .with_permission(who, name_or_id, by_name, Resource::Member, Action::Read)
            .await?;
        self.identity
            .stores
            .projects
            .member(project.id, member_id)
            .await?
            .ok_or_else(|| member_not_found(member_id))
    }

    /// Adds a user (by id, or by name when the id is 0) with a role; returns the
    /// membership id.
    pub async fn add_member(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
        user: (i64, &str),
        role_id: i64,
    ) -> Result<i64, ManageError> {
        let project = self
            .with_permission(who, name_or_id, by_name, Resource::Member, Action::Create)
            .await?;
        self.may_grant_role(who, &project, role_id).await?;
        let users = &self.identity.stores.users;
        let found = match user {
            (id, _) if id > 0 => users.user(id).await?,
            (_, name) => users.user_by_name(name).await?,
        };
        let user = found.ok_or_else(|| ManageError::NotFound("the user does not exist".into()))?;
        let now = self.identity.clock.now_ms();
        let audit = who.actor().audit(
            "create",
            "project_member",
            &user.username,
            Some(project.id),
            now,
        );
        let id = self
            .identity
            .stores
            .projects
            .add_member(project.id, MemberKind::User, user.id, role_id, now, &audit)
            .await?;
        self.identity.authenticator.forget_all();
        Ok(id)
    }

    /// Gives a member another role.
    pub async fn set_member_role(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
        member_id: i64,
        role_id: i64,
    ) -> Result<(), ManageError> {
        let project = self
            .with_permission(who, name_or_id, by_name, Resource::Member, Action::Update)
            .await?;
        self.may_grant_role(who, &project, role_id).await?;
        let member = self.member_of(project.id, member_id).await?;
        let now = self.identity.clock.now_ms();
        let audit = who.actor().audit(
            "update",
            "project_member",
            &member.entity_name,
            Some(project.id),
            now,
        );
        if !self
            .identity
            .stores
            .projects
            .set_member_role(project.id, member_id, role_id, now, &audit)
            .await?
        {
            return Err(member_not_found(member_id));
        }
        self.identity.authenticator.forget_all();
        Ok(())
    }

    /// Removes a member.
    pub async fn remove_member(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
        member_id: i64,
    ) -> Result<(), ManageError> {
        let project = self
            .with_permission(who, name_or_id, by_name, Resource::Member, Action::Delete)
            .await?;
        let member = self.member_of(project.id, member_id).await?;
        let now = self.identity.clock.now_ms();
        let audit = who.actor().audit(
            "delete",
            "project_member",
            &member.entity_name,
            Some(project.id),
            now,
        );
        if !self
            .identity
            .stores
            .projects
            .remove_member(project.id, member_id, &audit)
            .await?
        {
            return Err(member_not_found(member_id));
        }
        self.identity.authenticator.forget_all();
        Ok(())
    }

    /// Refuses a role holding permissions the caller does not hold in the project:
    /// nobody makes anyone more powerful than themselves.
    async fn may_grant_role(
        &self,
        who: &Requester,
        project: &Project,
        role_id: i64,
    ) -> Result<(), ManageError> {
        let roles = self.identity.directory.roles().await?;
        let Some(role) = roles.get(&role_id) else {
            return Err(ManageError::Invalid(format!("no role has id {role_id}")));
        };
        let held = berth_authz::effective_permissions(who.principal(), Some(project_ref(project)));
        if role.is_subset(&held) {
            Ok(())
        } else {
            Err(ManageError::Forbidden(format!(
                "you cannot give role {role_id}: it holds permissions you do not hold"
            )))
        }
    }

    async fn member_of(&self, project_id: i64, member_id: i64) -> Result<Member, ManageError> {
        self.identity
            .stores
            .projects
            .member(project_id, member_id)
            .await?
            .ok_or_else(|| member_not_found(member_id))
    }

    /// The project, when the caller holds `(resource, action)` in it. A project in
    /// which the caller holds no permission at all is "not found" to an account (no
    /// existence oracle) and needs a login from an anonymous caller, whether it exists
    /// or not.
    pub async fn with_permission(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
        resource: Resource,
        action: Action,
    ) -> Result<Project, ManageError> {
        let store = &self.identity.stores.projects;
        let found = match name_or_id.parse::<i64>() {
            Ok(id) if !by_name => store.project(id).await?,
            _ => store.project_by_name(name_or_id).await?,
        };
        let principal = who.principal();
        let readable = found.filter(|p| {
            !berth_authz::effective_permissions(principal, Some(project_ref(p))).is_empty()
        });
        let Some(project) = readable else {
            return Err(if who.account.is_none() {
                ManageError::Unauthenticated
            } else {
                ManageError::NotFound(format!("project {name_or_id} not found"))
            });
        };
        if !allowed(
            principal,
            Some(project_ref(&project)),
            Permission::new(resource, action),
        ) {
            return Err(if who.account.is_none() {
                ManageError::Unauthenticated
            } else {
                ManageError::Forbidden(format!(
                    "you may not {action} {resource} in project {}",
                    project.name
                ))
            });
        }
        Ok(project)
    }

    fn changed(&self, name: &str) {
        self.identity.directory.forget(name);
        self.identity.authenticator.forget_all();
    }
}

fn project_ref(p: &Project) -> ProjectRef {
    ProjectRef {
        id: p.id,
        public: p.public,
    }
}

fn member_not_found(id: i64) -> ManageError {
    ManageError::NotFound(format!("member {id} not found"))
}

/// A project name must be a valid first component of a repository name.
fn validate_project_name(name: &str) -> Result<(), ManageError> {
    let valid = (1..=255).contains(&name.len())
        && !name.contains('/')
        && berth_oci::RepositoryName::parse(name).is_ok();
    if valid {
        Ok(())
    } else {
        Err(ManageError::Invalid(format!(
            "project name {name:?} must be lower-case letters and digits, separated by \
             '.', '_' or '-', at most 255 characters"
        )))
    }
}

/// Checks metadata keys and values.
fn validate_metadata(
    metadata: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ManageError> {
    for (key, value) in &metadata {
        let Some((_, boolean)) = METADATA_KEYS.iter().find(|(k, _)| k == key) else {
            return Err(ManageError::Invalid(format!(
                "unknown project metadata {key:?}"
            )));
        };
        let valid = match key.as_str() {
            _ if *boolean => value == "true" || value == "false",
            "severity" => ["none", "low", "medium", "high", "critical"].contains(&value.as_str()),
            _ => value.parse::<i64>().is_ok(),
        };
        if !valid {
            return Err(ManageError::Invalid(format!(
                "project metadata {key}: {value:?} is not a valid value"
            )));
        }
    }
    Ok(metadata)
}
