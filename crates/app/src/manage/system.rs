//! System-wide views and settings: Harbor's `/configurations`, `/statistics` and
//! `/search`.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_authz::{Action, Permission, Resource};
use berth_meta::{FieldFilter, ListQuery, Match, Project, RepositoryField, RepositoryInfo};
use serde_json::Value;

use super::{ManageError, Requester};
use crate::identity::{Identity, SettingsError, SystemSettings, visibility_of};

const CONFIG_READ: Permission = Permission::new(Resource::Configuration, Action::Read);
const CONFIG_UPDATE: Permission = Permission::new(Resource::Configuration, Action::Update);
/// Search results per kind, at most.
const SEARCH_LIMIT: u64 = 100;

/// Counts over the projects the caller may see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statistics {
    /// Private projects.
    pub private_projects: u64,
    /// Public projects.
    pub public_projects: u64,
    /// Repositories in private projects.
    pub private_repositories: u64,
    /// Repositories in public projects.
    pub public_repositories: u64,
    /// Bytes of the distinct blobs in those projects.
    pub stored_bytes: u64,
}

/// What a search found.
#[derive(Debug, Clone, Default)]
pub struct SearchResult {
    /// Projects whose name contains the words.
    pub projects: Vec<Project>,
    /// Repositories whose name contains them, with their project.
    pub repositories: Vec<(RepositoryInfo, Project)>,
}

/// The system use cases.
pub struct System {
    identity: Arc<Identity>,
}

impl System {
    /// The use cases over `identity`.
    pub fn new(identity: Arc<Identity>) -> Self {
        System { identity }
    }

    /// The settings (administrators only).
    pub async fn settings(&self, who: &Requester) -> Result<Arc<SystemSettings>, ManageError> {
        who.require_system(CONFIG_READ)?;
        Ok(self.identity.settings.current().await?)
    }

    /// Changes settings (administrators only); `null` values are skipped.
    pub async fn update_settings(
        &self,
        who: &Requester,
        values: BTreeMap<String, Value>,
    ) -> Result<(), ManageError> {
        who.require_system(CONFIG_UPDATE)?;
        let values: BTreeMap<String, Value> =
            values.into_iter().filter(|(_, v)| !v.is_null()).collect();
        if let Some(prefix) = values.get("robot_name_prefix").and_then(Value::as_str) {
            self.prefix_shadows_nobody(prefix).await?;
        }
        let now = self.identity.clock.now_ms();
        let keys: Vec<&str> = values.keys().map(String::as_str).collect();
        let audit = who
            .actor()
            .audit("update", "configuration", &keys.join(","), None, now);
        self.identity
            .settings
            .update(&values, &audit)
            .await
            .map_err(|e| match e {
                SettingsError::Invalid(m) => ManageError::Invalid(m),
                SettingsError::Meta(e) => ManageError::Meta(e),
            })?;
        self.identity.authenticator.forget_all();
        Ok(())
    }

    /// Refuses a robot name prefix that a login name starts with: that user could no
    /// longer log in, and a robot could answer to the name.
    async fn prefix_shadows_nobody(&self, prefix: &str) -> Result<(), ManageError> {
        let query = ListQuery {
            filters: vec![FieldFilter {
                field: berth_meta::UserField::Username,
                matching: Match::Fuzzy(prefix.to_owned()),
            }],
            ..ListQuery::default()
        };
        let users = self.identity.stores.users.list_users(&query).await?;
        if let Some(user) = users.items.iter().find(|u| u.username.starts_with(prefix)) {
            return Err(ManageError::Invalid(format!(
                "robot_name_prefix {prefix:?} would take the login name {:?}",
                user.username
            )));
        }
        Ok(())
    }

    async fn visible_projects(&self, who: &Requester) -> Result<Vec<Project>, ManageError> {
        let visibility = match &who.account {
            Some(a) => visibility_of(a),
            None => berth_meta::Visibility::PublicOnly,
        };
        Ok(self
            .identity
            .stores
            .projects
            .list_projects(&visibility, &ListQuery::default())
            .await?
            .items)
    }

    /// Project and repository counts (logged-in callers).
    pub async fn statistics(&self, who: &Requester) -> Result<Statistics, ManageError> {
        who.account()?;
        let mut stats = Statistics::default();
        let visible = self.visible_projects(who).await?;
        let ids: Vec<i64> = visible.iter().map(|p| p.id).collect();
        stats.stored_bytes = self.identity.stores.artifacts.stored_bytes(&ids).await?;
        for project in visible {
            if project.public {
                stats.public_projects += 1;
                stats.public_repositories += project.repo_count;
            } else {
                stats.private_projects += 1;
                stats.private_repositories += project.repo_count;
            }
        }
        Ok(stats)
    }

    /// Projects and repositories whose names contain `words`, among those the caller
    /// may see.
    pub async fn search(&self, who: &Requester, words: &str) -> Result<SearchResult, ManageError> {
        let visible = self.visible_projects(who).await?;
        let projects: Vec<Project> = visible
            .iter()
            .filter(|p| p.name.contains(words))
            .take(SEARCH_LIMIT as usize)
            .cloned()
            .collect();
        let ids: Vec<i64> = visible.iter().map(|p| p.id).collect();
        let query = ListQuery {
            filters: vec![FieldFilter {
                field: RepositoryField::Name,
                matching: Match::Fuzzy(words.to_owned()),
            }],
            limit: SEARCH_LIMIT,
            ..ListQuery::default()
        };
        let found = self
            .identity
            .stores
            .artifacts
            .list_repositories(&ids, &query)
            .await?;
        let repositories = found
            .items
            .into_iter()
            .filter_map(|r| {
                let project = visible.iter().find(|p| p.id == r.project_id)?.clone();
                Some((r, project))
            })
            .collect();
        Ok(SearchResult {
            projects,
            repositories,
        })
    }
}
