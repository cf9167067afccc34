//! Robot accounts: system-level (any project, system permissions) and project-level
//! (their own project only). A secret is shown once, at creation or refresh; only its
//! hash is stored. Nobody grants a robot more than they hold themselves.

use std::sync::Arc;

use berth_authz::{
    Action, Permission, PermissionSet, ProjectRef, Resource, RobotLevel as Kind, allowed,
    effective_permissions, robot_permissions,
};
use berth_meta::{
    FieldFilter, ListQuery, Listed, Match, NewRobot, Robot, RobotField, RobotGrant, RobotLevel,
    RobotUpdate,
};

use super::projects::Projects;
use super::{ManageError, Requester};
use crate::identity::{Identity, check_policy, random_secret};

/// Milliseconds in a day.
const DAY_MS: i64 = 24 * 3600 * 1000;

/// A robot to create, as a request gives it.
/// Not `Debug`: it may hold a secret.
#[derive(Clone, Default)]
pub struct RobotRequest {
    /// Short name (without prefix or project).
    pub name: String,
    /// Free text.
    pub description: String,
    /// `system` or `project`.
    pub level: String,
    /// Days, -1 for never, 0 for the system default.
    pub duration: i64,
    /// Disabled from the start.
    pub disable: bool,
    /// A chosen secret; generated when empty.
    pub secret: String,
    /// What it may do.
    pub grants: Vec<RobotGrant>,
}

/// A created robot with its secret, shown this once.
/// Not `Debug`: it holds the secret.
#[derive(Clone)]
pub struct CreatedRobot {
    /// The stored robot.
    pub robot: Robot,
    /// Its full name (with prefix).
    pub full_name: String,
    /// Its secret.
    pub secret: String,
}

/// The robot use cases.
pub struct Robots {
    identity: Arc<Identity>,
}

impl Robots {
    /// Robots over `identity`.
    pub fn new(identity: Arc<Identity>) -> Self {
        Robots { identity }
    }

    /// The name robots log in with.
    pub async fn full_name(&self, robot: &Robot) -> Result<String, ManageError> {
        let prefix = self
            .identity
            .settings
            .current()
            .await?
            .robot_name_prefix
            .clone();
        Ok(format!("{prefix}{}", robot.name))
    }

    /// Creates a robot; returns it with its secret.
    pub async fn create(
        &self,
        who: &Requester,
        req: RobotRequest,
    ) -> Result<CreatedRobot, ManageError> {
        validate_name(&req.name)?;
        let (level, project_id, stored_name) = match req.level.as_str() {
            "system" => {
                self.require_system(who, Action::Create).await?;
                (RobotLevel::System, None, req.name.clone())
            }
            "project" => {
                let project = self.single_project(&req.grants)?;
                let project = self.project(who, &project, true, Action::Create).await?;
                let name = format!("{}+{}", project.name, req.name);
                (RobotLevel::Project, Some(project.id), name)
            }
            other => {
                return Err(ManageError::Invalid(format!(
                    "level must be system or project, not {other:?}"
                )));
            }
        };
        self.check_grants(who, level, &req.grants).await?;
        let secret = if req.secret.is_empty() {
            random_secret(32)
        } else {
            check_policy(&req.secret).map_err(|e| ManageError::Invalid(e.to_string()))?;
            req.secret.clone()
        };
        let now = self.identity.clock.now_ms();
        let (duration, expires_at) = self.expiry(req.duration, now).await?;
        let robot = NewRobot {
            name: stored_name,
            description: req.description,
            secret_hash: self.hash(secret.clone()).await,
            level,
            project_id,
            duration_days: duration,
            expires_at,
            disabled: req.disable,
            creator: who.account()?.name.clone(),
            grants: req.grants,
        };
        let prefix = self
            .identity
            .settings
            .current()
            .await?
            .robot_name_prefix
            .clone();
        let full_name = format!("{prefix}{}", robot.name);
        let audit = who
            .actor()
            .audit("create", "robot", &full_name, project_id, now);
        let id = self
            .identity
            .stores
            .robots
            .create_robot(&robot, now, &audit)
            .await?;
        let robot = self.stored(id).await?;
        Ok(CreatedRobot {
            robot,
            full_name,
            secret,
        })
    }

    /// A page of robots: an administrator may list all; others must name a project
    /// (`ProjectID=<id>` in the query) in which they may list robots.
    pub async fn list(
        &self,
        who: &Requester,
        mut query: ListQuery<RobotField>,
    ) -> Result<Listed<Robot>, ManageError> {
        let project = query
            .filters
            .iter()
            .find_map(|f| match (&f.field, &f.matching) {
                (RobotField::ProjectId, Match::Exact(id)) => Some(id.clone()),
                _ => None,
            });
        match project {
            Some(id) => {
                self.project(who, &id, false, Action::List).await?;
                query.filters.push(FieldFilter {
                    field: RobotField::Level,
                    matching: Match::Exact("project".into()),
                });
            }
            None => self.require_system(who, Action::List).await?,
        }
        Ok(self.identity.stores.robots.list_robots(&query).await?)
    }

    /// One robot the caller may read.
    pub async fn get(&self, who: &Requester, id: i64) -> Result<Robot, ManageError> {
        self.authorized(who, id, Action::Read).await
    }

    /// Changes description, lifetime, state and permissions; name and level stay.
    pub async fn update(
        &self,
        who: &Requester,
        id: i64,
        req: RobotRequest,
    ) -> Result<(), ManageError> {
        let robot = self.authorized(who, id, Action::Update).await?;
        let full_name = self.full_name(&robot).await?;
        let level = level_name(robot.level);
        if !req.level.is_empty() && req.level != level {
            return Err(ManageError::Invalid("a robot's level cannot change".into()));
        }
        let short = robot.name.rsplit('+').next().unwrap_or(&robot.name);
        if !req.name.is_empty()
            && ![full_name.as_str(), robot.name.as_str(), short].contains(&req.name.as_str())
        {
            return Err(ManageError::Invalid("a robot's name cannot change".into()));
        }
        if robot.level == RobotLevel::Project {
            let project = self.single_project(&req.grants)?;
            let project = self.project(who, &project, true, Action::Update).await?;
            if Some(project.id) != robot.project_id {
                return Err(ManageError::Invalid(
                    "a project robot's permissions must stay in its project".into(),
                ));
            }
        }
        self.check_grants(who, robot.level, &req.grants).await?;
        let (duration, expires_at) = if req.duration == robot.duration_days {
            (robot.duration_days, robot.expires_at)
        } else {
            self.expiry_from(req.duration, robot.created_at).await?
        };
        let now = self.identity.clock.now_ms();
        let audit = who
            .actor()
            .audit("update", "robot", &full_name, robot.project_id, now);
        let update = RobotUpdate {
            description: req.description,
            duration_days: duration,
            expires_at,
            disabled: req.disable,
            grants: req.grants,
        };
        self.identity
            .stores
            .robots
            .update_robot(id, &update, now, &audit)
            .await?;
        self.identity.authenticator.forget_all();
        Ok(())
    }

    /// Sets a new secret (the one given, or a generated one); returns it.
    pub async fn refresh_secret(
        &self,
        who: &Requester,
        id: i64,
        secret: &str,
    ) -> Result<String, ManageError> {
        let robot = self.authorized(who, id, Action::Update).await?;
        let secret = if secret.is_empty() {
            random_secret(32)
        } else {
            check_policy(secret).map_err(|e| ManageError::Invalid(e.to_string()))?;
            secret.to_owned()
        };
        let now = self.identity.clock.now_ms();
        let full_name = self.full_name(&robot).await?;
        let audit = who
            .actor()
            .audit("update", "robot", &full_name, robot.project_id, now);
        let hash = self.hash(secret.clone()).await;
        self.identity
            .stores
            .robots
            .set_robot_secret(id, &hash, now, &audit)
            .await?;
        self.identity.authenticator.forget_all();
        Ok(secret)
    }

    /// Deletes a robot.
    pub async fn delete(&self, who: &Requester, id: i64) -> Result<(), ManageError> {
        let robot = self.authorized(who, id, Action::Delete).await?;
        let now = self.identity.clock.now_ms();
        let full_name = self.full_name(&robot).await?;
        let audit = who
            .actor()
            .audit("delete", "robot", &full_name, robot.project_id, now);
        self.identity.stores.robots.delete_robot(id, &audit).await?;
        self.identity.authenticator.forget_all();
        Ok(())
    }

    /// The robot, when the caller may perform `action` on it.
    async fn authorized(
        &self,
        who: &Requester,
        id: i64,
        action: Action,
    ) -> Result<Robot, ManageError> {
        who.account()?;
        let robot = self.identity.stores.robots.robot(id).await?;
        let not_found = || ManageError::NotFound(format!("robot {id} not found"));
        let robot = robot.ok_or_else(not_found)?;
        match (robot.level, robot.project_id) {
            (RobotLevel::Project, Some(project)) => {
                // Another project's robot is "not found" (`with_permission`).
                self.project(who, &project.to_string(), false, action)
                    .await?;
            }
            _ => {
                if !who.is_sysadmin() {
                    return Err(not_found());
                }
            }
        }
        Ok(robot)
    }

    async fn require_system(&self, who: &Requester, action: Action) -> Result<(), ManageError> {
        who.require_system(Permission::new(Resource::Robot, action))
    }

    /// The project (by name, or by id when `by_name` is false) when the caller may
    /// perform `action` on its robots.
    async fn project(
        &self,
        who: &Requester,
        name_or_id: &str,
        by_name: bool,
        action: Action,
    ) -> Result<berth_meta::Project, ManageError> {
        Projects::new(self.identity.clone())
            .with_permission(who, name_or_id, by_name, Resource::Robot, action)
            .await
    }

    /// The one project a project robot's permissions name.
    fn single_project(&self, grants: &[RobotGrant]) -> Result<String, ManageError> {
        match grants {
            [grant] if grant.kind == "project" && grant.namespace != "*" => {
                Ok(grant.namespace.clone())
            }
            _ => Err(ManageError::Invalid(
                "a project robot needs exactly one permission entry, of kind project, \
                 naming its project"
                    .into(),
            )),
        }
    }

    /// Every permission must be grantable to a robot, and held by the caller.
    async fn check_grants(
        &self,
        who: &Requester,
        level: RobotLevel,
        grants: &[RobotGrant],
    ) -> Result<(), ManageError> {
        let account = who.account()?;
        if grants.is_empty() {
            return Err(ManageError::Invalid("a robot needs permissions".into()));
        }
        for grant in grants {
            let (kind, held) = match grant.kind.as_str() {
                "system" if level == RobotLevel::System => {
                    if grant.namespace != "/" {
                        return Err(ManageError::Invalid(
                            "system permissions have the namespace /".into(),
                        ));
                    }
                    (Kind::System, self.system_held(account))
                }
                "project" if grant.namespace == "*" => {
                    if level != RobotLevel::System || !who.is_sysadmin() {
                        return Err(ManageError::Forbidden(
                            "only administrators grant permissions on every project".into(),
                        ));
                    }
                    (Kind::Project, PermissionSet::all())
                }
                "project" => {
                    let project = self
                        .identity
                        .stores
                        .projects
                        .project_by_name(&grant.namespace)
                        .await?
                        .ok_or_else(|| {
                            ManageError::NotFound(format!("project {} not found", grant.namespace))
                        })?;
                    let reference = ProjectRef {
                        id: project.id,
                        public: project.public,
                    };
                    (
                        Kind::Project,
                        effective_permissions(&account.principal, Some(reference)),
                    )
                }
                other => {
                    return Err(ManageError::Invalid(format!(
                        "unknown permission kind {other:?}"
                    )));
                }
            };
            let grantable = robot_permissions(kind);
            for (resource, action) in &grant.access {
                let permission = parse_permission(resource, action)?;
                if !grantable.contains(permission) {
                    return Err(ManageError::Invalid(format!(
                        "a robot cannot be granted {permission}"
                    )));
                }
                if !held.contains(permission) {
                    return Err(ManageError::Forbidden(format!(
                        "you cannot grant {permission} in {}, which you do not hold",
                        grant.namespace
                    )));
                }
            }
        }
        Ok(())
    }

    fn system_held(&self, account: &crate::identity::Account) -> PermissionSet {
        if account.principal.is_sysadmin() {
            return PermissionSet::all();
        }
        PermissionSet::all()
            .iter()
            .filter(|p| allowed(&account.principal, None, *p))
            .collect()
    }

    async fn expiry(&self, duration: i64, now: i64) -> Result<(i64, i64), ManageError> {
        self.expiry_from(duration, now).await
    }

    /// The lifetime in days and the expiry, counted from `from`.
    async fn expiry_from(&self, duration: i64, from: i64) -> Result<(i64, i64), ManageError> {
        let days = match duration {
            -1 => return Ok((-1, -1)),
            0 => self.identity.settings.current().await?.robot_token_duration,
            d if d > 0 => d,
            _ => {
                return Err(ManageError::Invalid(
                    "duration must be -1 (never) or a positive number of days".into(),
                ));
            }
        };
        let expires = days
            .checked_mul(DAY_MS)
            .and_then(|ms| from.checked_add(ms))
            .ok_or_else(|| ManageError::Invalid("duration is too long".into()))?;
        Ok((days, expires))
    }

    async fn stored(&self, id: i64) -> Result<Robot, ManageError> {
        self.identity
            .stores
            .robots
            .robot(id)
            .await?
            .ok_or_else(|| ManageError::NotFound(format!("robot {id} not found")))
    }

    async fn hash(&self, secret: String) -> String {
        let passwords = self.identity.passwords.clone();
        tokio::task::spawn_blocking(move || passwords.hash(&secret))
            .await
            .expect("hashing does not panic")
    }
}

/// `system` or `project`.
pub fn level_name(level: RobotLevel) -> &'static str {
    match level {
        RobotLevel::System => "system",
        RobotLevel::Project => "project",
    }
}

fn parse_permission(resource: &str, action: &str) -> Result<Permission, ManageError> {
    let resource: Resource = resource
        .parse()
        .map_err(|_| ManageError::Invalid(format!("unknown resource {resource:?}")))?;
    let action: Action = action
        .parse()
        .map_err(|_| ManageError::Invalid(format!("unknown action {action:?}")))?;
    Ok(Permission::new(resource, action))
}

fn validate_name(name: &str) -> Result<(), ManageError> {
    let valid = (1..=255).contains(&name.len())
        && !name.contains('/')
        && !name.contains('+')
        && berth_oci::RepositoryName::parse(name).is_ok();
    if valid {
        Ok(())
    } else {
        Err(ManageError::Invalid(format!(
            "robot name {name:?} must be lower-case letters and digits, separated by '.', \
             '_' or '-'"
        )))
    }
}
