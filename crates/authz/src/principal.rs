//! Who is asking, and the access check.

use std::collections::HashMap;

use crate::roles::public_project_permissions;
use crate::set::PermissionSet;
use crate::vocab::{Action, Permission, Resource};

/// The authenticated (or not) caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials.
    Anonymous,
    /// A user account.
    User(UserGrants),
    /// A robot account.
    Robot(RobotGrants),
}

impl Principal {
    /// Whether this is a system administrator, who may do everything.
    pub fn is_sysadmin(&self) -> bool {
        matches!(self, Principal::User(u) if u.sysadmin)
    }

    /// Whether the caller presented no credentials.
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Principal::Anonymous)
    }
}

/// A user's grants, resolved by the application from its database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserGrants {
    /// The user's id.
    pub user_id: i64,
    /// Whether the user is a system administrator.
    pub sysadmin: bool,
    /// Per project id, the union of the permissions of the user's roles there
    /// (direct membership and group memberships).
    pub projects: HashMap<i64, PermissionSet>,
}

/// A robot's grants, resolved by the application from its database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RobotGrants {
    /// The robot's id.
    pub robot_id: i64,
    /// System-level permissions (Harbor kind `system`, namespace `/`).
    pub system: PermissionSet,
    /// Permissions on every project (Harbor kind `project`, namespace `*`).
    pub all_projects: PermissionSet,
    /// Permissions per project id (Harbor kind `project`, a named namespace).
    pub projects: HashMap<i64, PermissionSet>,
}

/// The project a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProjectRef {
    /// The project id.
    pub id: i64,
    /// Whether the project is public.
    pub public: bool,
}

const REPOSITORY_PULL: Permission = Permission::new(Resource::Repository, Action::Pull);
const REPOSITORY_PUSH: Permission = Permission::new(Resource::Repository, Action::Push);

/// Whether `principal` may perform `permission`.
///
/// `project: None` is a system-level check: only system administrators and robots
/// whose `system` set contains the permission pass. With a project, the
/// public-project permissions apply to every caller when the project is public,
/// then a user gets its set for that project and a robot
/// `all_projects ∪ projects[id]`. A robot's `(repository, push)` on a project
/// implies `(repository, pull)` there, as in Harbor's `filterRobotPolicies`.
/// System administrators pass every check.
pub fn allowed(principal: &Principal, project: Option<ProjectRef>, permission: Permission) -> bool {
    match (principal, project) {
        (Principal::User(u), _) if u.sysadmin => true,
        (Principal::Robot(r), None) => r.system.contains(permission),
        (_, None) => false,
        (_, Some(p)) if p.public && public_project_permissions().contains(permission) => true,
        (Principal::Anonymous, Some(_)) => false,
        (Principal::User(u), Some(p)) => u
            .projects
            .get(&p.id)
            .is_some_and(|set| set.contains(permission)),
        (Principal::Robot(r), Some(p)) => {
            let check = |set: &PermissionSet| {
                set.contains(permission)
                    || (permission == REPOSITORY_PULL && set.contains(REPOSITORY_PUSH))
            };
            check(&r.all_projects) || r.projects.get(&p.id).is_some_and(check)
        }
    }
}

/// Everything `principal` may do: at system level (`project: None`) or on a project.
///
/// Agrees with [`allowed`] on every permission; useful to compute granted token
/// actions or Harbor's `current user permissions` in one pass. A system
/// administrator gets [`PermissionSet::all`].
pub fn effective_permissions(principal: &Principal, project: Option<ProjectRef>) -> PermissionSet {
    match (principal, project) {
        (Principal::User(u), _) if u.sysadmin => PermissionSet::all(),
        (Principal::Robot(r), None) => r.system,
        (_, None) => PermissionSet::empty(),
        (_, Some(p)) => {
            let base = if p.public {
                public_project_permissions()
            } else {
                PermissionSet::empty()
            };
            let own = match principal {
                Principal::Anonymous => PermissionSet::empty(),
                Principal::User(u) => u.projects.get(&p.id).copied().unwrap_or_default(),
                Principal::Robot(r) => {
                    let set = r
                        .all_projects
                        .union(&r.projects.get(&p.id).copied().unwrap_or_default());
                    if set.contains(REPOSITORY_PUSH) {
                        set.with(REPOSITORY_PULL)
                    } else {
                        set
                    }
                }
            };
            base.union(&own)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::{
        ROLE_DEVELOPER, ROLE_GUEST, ROLE_LIMITED_GUEST, ROLE_MAINTAINER, ROLE_PROJECT_ADMIN,
        RobotLevel, builtin_role, robot_permissions,
    };

    const PRIVATE: ProjectRef = ProjectRef {
        id: 7,
        public: false,
    };
    const PUBLIC: ProjectRef = ProjectRef {
        id: 8,
        public: true,
    };
    const OTHER: ProjectRef = ProjectRef {
        id: 9,
        public: false,
    };

    fn p(resource: Resource, action: Action) -> Permission {
        Permission::new(resource, action)
    }

    fn user_with(role: i64, project: i64) -> Principal {
        Principal::User(UserGrants {
            user_id: 42,
            sysadmin: false,
            projects: HashMap::from([(project, builtin_role(role).unwrap().permissions)]),
        })
    }

    fn every_pair() -> impl Iterator<Item = Permission> {
        Resource::ALL
            .into_iter()
            .flat_map(|r| Action::ALL.into_iter().map(move |a| Permission::new(r, a)))
    }

    fn assert_consistent(principal: &Principal) {
        for project in [None, Some(PRIVATE), Some(PUBLIC), Some(OTHER)] {
            let set = effective_permissions(principal, project);
            for perm in every_pair() {
                assert_eq!(
                    allowed(principal, project, perm),
                    set.contains(perm),
                    "{principal:?} {project:?} {perm}"
                );
            }
        }
    }

    #[test]
    fn predicates() {
        assert!(Principal::Anonymous.is_anonymous());
        assert!(!Principal::Anonymous.is_sysadmin());
        let admin = Principal::User(UserGrants {
            sysadmin: true,
            ..Default::default()
        });
        assert!(admin.is_sysadmin() && !admin.is_anonymous());
        assert!(!user_with(ROLE_PROJECT_ADMIN, 7).is_sysadmin());
        assert!(!Principal::Robot(RobotGrants::default()).is_sysadmin());
    }

    #[test]
    fn sysadmin_may_do_everything() {
        let admin = Principal::User(UserGrants {
            user_id: 1,
            sysadmin: true,
            projects: HashMap::new(),
        });
        for perm in every_pair() {
            assert!(allowed(&admin, None, perm));
            assert!(allowed(&admin, Some(PRIVATE), perm));
        }
        assert_consistent(&admin);
    }

    #[test]
    fn anonymous_on_public_and_private_projects() {
        let anon = Principal::Anonymous;
        let pull = p(Resource::Repository, Action::Pull);
        assert!(allowed(&anon, Some(PUBLIC), pull));
        assert!(!allowed(
            &anon,
            Some(PUBLIC),
            p(Resource::Repository, Action::Push)
        ));
        assert!(!allowed(
            &anon,
            Some(PUBLIC),
            p(Resource::Member, Action::List)
        ));
        assert!(!allowed(&anon, Some(PRIVATE), pull));
        assert!(!allowed(&anon, None, p(Resource::Catalog, Action::Read)));
        assert_consistent(&anon);
    }

    #[test]
    fn users_get_their_project_roles() {
        let push = p(Resource::Repository, Action::Push);
        let pull = p(Resource::Repository, Action::Pull);
        let delete = p(Resource::Repository, Action::Delete);

        let dev = user_with(ROLE_DEVELOPER, PRIVATE.id);
        assert!(allowed(&dev, Some(PRIVATE), push));
        assert!(!allowed(&dev, Some(PRIVATE), delete));
        assert!(!allowed(&dev, Some(OTHER), pull));
        // A non-member still gets the public set on a public project.
        assert!(allowed(&dev, Some(PUBLIC), pull));
        assert!(!allowed(&dev, Some(PUBLIC), push));

        let guest = user_with(ROLE_GUEST, PRIVATE.id);
        assert!(allowed(&guest, Some(PRIVATE), pull));
        assert!(!allowed(&guest, Some(PRIVATE), push));

        let limited = user_with(ROLE_LIMITED_GUEST, PRIVATE.id);
        assert!(allowed(&limited, Some(PRIVATE), pull));
        assert!(!allowed(
            &limited,
            Some(PRIVATE),
            p(Resource::Member, Action::List)
        ));
        assert!(!allowed(
            &limited,
            Some(PRIVATE),
            p(Resource::Log, Action::List)
        ));

        let maintainer = user_with(ROLE_MAINTAINER, PRIVATE.id);
        assert!(allowed(&maintainer, Some(PRIVATE), delete));

        let admin = user_with(ROLE_PROJECT_ADMIN, PRIVATE.id);
        assert!(allowed(
            &admin,
            Some(PRIVATE),
            p(Resource::Member, Action::Create)
        ));
        assert!(allowed(
            &admin,
            Some(PRIVATE),
            p(Resource::Project, Action::Delete)
        ));

        for u in [&dev, &guest, &limited, &maintainer, &admin] {
            assert_consistent(u);
        }
    }

    #[test]
    fn system_level_checks() {
        let create_project = p(Resource::Project, Action::Create);
        let audit = p(Resource::AuditLog, Action::List);
        // Project admins are not system admins.
        let admin = user_with(ROLE_PROJECT_ADMIN, PRIVATE.id);
        assert!(!allowed(&admin, None, create_project));
        assert!(!allowed(&admin, None, audit));

        let robot = Principal::Robot(RobotGrants {
            robot_id: 3,
            system: PermissionSet::from_slice(&[create_project]),
            ..Default::default()
        });
        assert!(allowed(&robot, None, create_project));
        assert!(!allowed(&robot, None, audit));
        // System grants do not leak into projects.
        assert!(!allowed(&robot, Some(PRIVATE), create_project));
        assert_consistent(&robot);
    }

    #[test]
    fn robots_get_all_projects_and_their_projects() {
        let pull = p(Resource::Repository, Action::Pull);
        let push = p(Resource::Repository, Action::Push);
        let delete = p(Resource::Repository, Action::Delete);
        let robot = Principal::Robot(RobotGrants {
            robot_id: 5,
            system: PermissionSet::empty(),
            all_projects: PermissionSet::from_slice(&[pull]),
            projects: HashMap::from([(PRIVATE.id, PermissionSet::from_slice(&[push]))]),
        });
        assert!(allowed(&robot, Some(PRIVATE), push));
        assert!(allowed(&robot, Some(PRIVATE), pull));
        assert!(allowed(&robot, Some(OTHER), pull));
        assert!(!allowed(&robot, Some(OTHER), push));
        assert!(!allowed(&robot, Some(PRIVATE), delete));
        assert!(!allowed(&robot, None, pull));
        assert_consistent(&robot);

        // Push implies pull for robots.
        let pusher = Principal::Robot(RobotGrants {
            projects: HashMap::from([(PRIVATE.id, PermissionSet::from_slice(&[push]))]),
            ..Default::default()
        });
        assert!(allowed(&pusher, Some(PRIVATE), pull));
        assert!(!allowed(&pusher, Some(OTHER), pull));
        assert_consistent(&pusher);

        // A robot holding the whole project-level list.
        let full = Principal::Robot(RobotGrants {
            all_projects: robot_permissions(RobotLevel::Project),
            ..Default::default()
        });
        assert!(allowed(&full, Some(OTHER), delete));
        assert!(!allowed(&full, None, delete));
        assert_consistent(&full);
    }
}
