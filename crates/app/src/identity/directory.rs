//! What access checks read on every request, kept in memory for a short while: each
//! project's id and visibility, and each role's permissions. A change made on this
//! node is seen at once; one made on another node within [`FRESHNESS`], or sooner when
//! the node follows the store's change mark (`Identity::follow_changes`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use berth_authz::{Permission, PermissionSet};
use berth_meta::{MetaError, ProjectAccessInfo, ProjectStore};

/// How long a cached answer is used.
pub const FRESHNESS: Duration = Duration::from_secs(2);
/// Projects remembered at most; past that the cache starts over.
const MAX_PROJECTS: usize = 100_000;

/// The permissions of each role, by role id.
pub type RolePermissions = Arc<HashMap<i64, PermissionSet>>;

/// Cached project lookups and role permissions.
pub struct Directory {
    store: Arc<dyn ProjectStore>,
    projects: RwLock<HashMap<String, (Option<ProjectAccessInfo>, Instant)>>,
    roles: Mutex<(RolePermissions, Option<Instant>)>,
}

impl Directory {
    /// A directory over `store`.
    pub fn new(store: Arc<dyn ProjectStore>) -> Self {
        Directory {
            store,
            projects: RwLock::new(HashMap::new()),
            roles: Mutex::new((Arc::new(HashMap::new()), None)),
        }
    }

    /// The project named `name`, if it exists.
    pub async fn project(&self, name: &str) -> Result<Option<ProjectAccessInfo>, MetaError> {
        if let Some((info, at)) = self.projects.read().expect("directory lock").get(name)
            && at.elapsed() < FRESHNESS
        {
            return Ok(*info);
        }
        let info = self.store.project_access(name).await?;
        let mut projects = self.projects.write().expect("directory lock");
        if projects.len() >= MAX_PROJECTS {
            projects.clear();
        }
        projects.insert(name.to_owned(), (info, Instant::now()));
        Ok(info)
    }

    /// Forgets what is known about project `name` (after this node changed it).
    pub fn forget(&self, name: &str) {
        self.projects.write().expect("directory lock").remove(name);
    }

    /// Forgets every project and role (after another node changed some).
    pub fn forget_all(&self) {
        self.projects.write().expect("directory lock").clear();
        self.roles.lock().expect("directory lock").1 = None;
    }

    /// The `(project id, role id)` pairs of a user's memberships.
    pub async fn user_roles(&self, user_id: i64) -> Result<Vec<(i64, i64)>, MetaError> {
        self.store.user_roles(user_id).await
    }

    /// The permissions of each role.
    pub async fn roles(&self) -> Result<RolePermissions, MetaError> {
        {
            let roles = self.roles.lock().expect("directory lock");
            if roles.1.is_some_and(|at| at.elapsed() < FRESHNESS) {
                return Ok(roles.0.clone());
            }
        }
        let loaded: HashMap<i64, PermissionSet> = self
            .store
            .roles()
            .await?
            .into_iter()
            .map(|role| {
                let set = role
                    .permissions
                    .iter()
                    .filter_map(|(resource, action)| {
                        Some(Permission::new(
                            resource.parse().ok()?,
                            action.parse().ok()?,
                        ))
                    })
                    .collect();
                (role.id, set)
            })
            .collect();
        let loaded = Arc::new(loaded);
        *self.roles.lock().expect("directory lock") = (loaded.clone(), Some(Instant::now()));
        Ok(loaded)
    }
}
