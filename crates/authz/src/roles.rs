//! Harbor's built-in permission data.
//!
//! Transcribed from goharbor/harbor (see the crate docs for the commit):
//! - role sets: `src/common/rbac/project/rbac_role.go` (`rolePoliciesMap`); role ids
//!   from `src/common/const.go` (`RoleProjectAdmin` … `RoleLimitedGuest`), role names
//!   from the `role` table seed in `make/migrations/postgresql/` (0001, 0004, 0015,
//!   renamed `master` → `maintainer` in 0040, ids fixed in 0050);
//! - public projects: `src/common/rbac/project/rbac_util.go` (`publicProjectPolicies`);
//! - the system namespace: `src/common/rbac/system/policies.go` (`policies`);
//! - robot-grantable permissions: `src/common/rbac/const.go` (`PoliciesMap` and
//!   `NolimitProvider.GetPermissions`), which is what `src/server/v2.0/handler/robot.go`
//!   (`validate`) and `src/server/v2.0/handler/permissions.go` use.
//!
//! Harbor's "self" resource (the project itself) is written as [`Resource::Project`].

use crate::set::PermissionSet;
use crate::vocab::{Action, Permission, Resource};

/// Harbor role id of `projectAdmin`.
pub const ROLE_PROJECT_ADMIN: i64 = 1;
/// Harbor role id of `developer`.
pub const ROLE_DEVELOPER: i64 = 2;
/// Harbor role id of `guest`.
pub const ROLE_GUEST: i64 = 3;
/// Harbor role id of `maintainer`.
pub const ROLE_MAINTAINER: i64 = 4;
/// Harbor role id of `limitedGuest`.
pub const ROLE_LIMITED_GUEST: i64 = 5;

/// A named set of permissions, as stored in the application's role table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDefinition {
    /// Harbor's role id (`role.role_id`).
    pub id: i64,
    /// Harbor's role name (`role.name`), e.g. `projectAdmin`.
    pub name: &'static str,
    /// What a member with this role may do inside the project.
    pub permissions: PermissionSet,
}

/// Harbor's five built-in project roles, ordered by id, for seeding the database.
pub fn builtin_roles() -> Vec<RoleDefinition> {
    [
        ROLE_PROJECT_ADMIN,
        ROLE_DEVELOPER,
        ROLE_GUEST,
        ROLE_MAINTAINER,
        ROLE_LIMITED_GUEST,
    ]
    .into_iter()
    .filter_map(builtin_role)
    .collect()
}

/// The built-in role with Harbor id `id`, if any.
pub fn builtin_role(id: i64) -> Option<RoleDefinition> {
    let (name, permissions) = match id {
        ROLE_PROJECT_ADMIN => ("projectAdmin", PROJECT_ADMIN),
        ROLE_DEVELOPER => ("developer", DEVELOPER),
        ROLE_GUEST => ("guest", GUEST),
        ROLE_MAINTAINER => ("maintainer", MAINTAINER),
        ROLE_LIMITED_GUEST => ("limitedGuest", LIMITED_GUEST),
        _ => return None,
    };
    Some(RoleDefinition {
        id,
        name,
        permissions,
    })
}

/// What any caller, anonymous included, may do on a public project.
pub const fn public_project_permissions() -> PermissionSet {
    PUBLIC_PROJECT
}

/// Every permission of a project namespace (`computeSubPoliciesForProject` in
/// `src/common/rbac/project/rbac_util.go`: the union of the built-in roles' sets):
/// what `GET /users/current/permissions?scope=/project/<id>` can list.
pub const fn project_namespace_permissions() -> PermissionSet {
    PROJECT_ADMIN
        .union(&MAINTAINER)
        .union(&DEVELOPER)
        .union(&GUEST)
        .union(&LIMITED_GUEST)
}

/// The system namespace's policies (`src/common/rbac/system/policies.go`): what
/// `GET /users/current/permissions?scope=/system` can list.
pub const fn system_namespace_permissions() -> PermissionSet {
    SYSTEM
}

/// Which kind of robot permission is being granted.
///
/// Harbor validates each permission entry of a robot by its `kind`: `system`
/// entries (namespace `/`) against the system list, `project` entries (a project
/// name or `*`) against the project list. A system-level robot may carry both
/// kinds; a project-level robot carries exactly one `project` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RobotLevel {
    /// Harbor kind `system`.
    System,
    /// Harbor kind `project`.
    Project,
}

/// The permissions Harbor allows granting to a robot at `level`
/// (`GET /api/v2.0/permissions` lists the same data).
pub const fn robot_permissions(level: RobotLevel) -> PermissionSet {
    match level {
        RobotLevel::System => ROBOT_SYSTEM,
        RobotLevel::Project => ROBOT_PROJECT,
    }
}

const fn p(resource: Resource, action: Action) -> Permission {
    Permission::new(resource, action)
}

/// `projectAdmin` (`rolePoliciesMap` in `src/common/rbac/project/rbac_role.go`).
const PROJECT_ADMIN: PermissionSet = PermissionSet::from_slice(&[
    p(Resource::Project, Action::Read),
    p(Resource::Project, Action::Update),
    p(Resource::Project, Action::Delete),
    p(Resource::Member, Action::Create),
    p(Resource::Member, Action::Read),
    p(Resource::Member, Action::Update),
    p(Resource::Member, Action::Delete),
    p(Resource::Member, Action::List),
    p(Resource::Metadata, Action::Create),
    p(Resource::Metadata, Action::Read),
    p(Resource::Metadata, Action::Update),
    p(Resource::Metadata, Action::Delete),
    p(Resource::Log, Action::List),
    p(Resource::Label, Action::Create),
    p(Resource::Label, Action::Read),
    p(Resource::Label, Action::Update),
    p(Resource::Label, Action::Delete),
    p(Resource::Label, Action::List),
    p(Resource::Quota, Action::Read),
    p(Resource::Repository, Action::Create),
    p(Resource::Repository, Action::Read),
    p(Resource::Repository, Action::Update),
    p(Resource::Repository, Action::Delete),
    p(Resource::Repository, Action::List),
    p(Resource::Repository, Action::Pull),
    p(Resource::Repository, Action::Push),
    p(Resource::TagRetention, Action::Create),
    p(Resource::TagRetention, Action::Read),
    p(Resource::TagRetention, Action::Update),
    p(Resource::TagRetention, Action::Delete),
    p(Resource::TagRetention, Action::List),
    p(Resource::TagRetention, Action::Operate),
    p(Resource::ImmutableTag, Action::Create),
    p(Resource::ImmutableTag, Action::Update),
    p(Resource::ImmutableTag, Action::Delete),
    p(Resource::ImmutableTag, Action::List),
    p(Resource::Configuration, Action::Read),
    p(Resource::Configuration, Action::Update),
    p(Resource::Robot, Action::Create),
    p(Resource::Robot, Action::Read),
    p(Resource::Robot, Action::Update),
    p(Resource::Robot, Action::Delete),
    p(Resource::Robot, Action::List),
    p(Resource::NotificationPolicy, Action::Create),
    p(Resource::NotificationPolicy, Action::Update),
    p(Resource::NotificationPolicy, Action::Delete),
    p(Resource::NotificationPolicy, Action::List),
    p(Resource::NotificationPolicy, Action::Read),
    p(Resource::Scan, Action::Create),
    p(Resource::Scan, Action::Read),
    p(Resource::Scan, Action::Stop),
    p(Resource::Sbom, Action::Create),
    p(Resource::Sbom, Action::Stop),
    p(Resource::Sbom, Action::Read),
    p(Resource::Scanner, Action::Read),
    p(Resource::Scanner, Action::Create),
    p(Resource::Artifact, Action::Create),
    p(Resource::Artifact, Action::Read),
    p(Resource::Artifact, Action::Delete),
    p(Resource::Artifact, Action::List),
    p(Resource::ArtifactAddition, Action::Read),
    p(Resource::Tag, Action::List),
    p(Resource::Tag, Action::Create),
    p(Resource::Tag, Action::Delete),
    p(Resource::Accessory, Action::List),
    p(Resource::ArtifactLabel, Action::Create),
    p(Resource::ArtifactLabel, Action::Delete),
    p(Resource::PreheatPolicy, Action::Create),
    p(Resource::PreheatPolicy, Action::Read),
    p(Resource::PreheatPolicy, Action::Update),
    p(Resource::PreheatPolicy, Action::Delete),
    p(Resource::PreheatPolicy, Action::List),
    p(Resource::ExportCve, Action::Create),
    p(Resource::ExportCve, Action::Read),
    p(Resource::ExportCve, Action::List),
]);

/// `maintainer` (`rolePoliciesMap` in `src/common/rbac/project/rbac_role.go`).
const MAINTAINER: PermissionSet = PermissionSet::from_slice(&[
    p(Resource::Project, Action::Read),
    p(Resource::Member, Action::Read),
    p(Resource::Member, Action::List),
    p(Resource::Metadata, Action::Read),
    p(Resource::Quota, Action::Read),
    p(Resource::Label, Action::Create),
    p(Resource::Label, Action::Read),
    p(Resource::Label, Action::Update),
    p(Resource::Label, Action::Delete),
    p(Resource::Label, Action::List),
    p(Resource::Repository, Action::Create),
    p(Resource::Repository, Action::Read),
    p(Resource::Repository, Action::Update),
    p(Resource::Repository, Action::Delete),
    p(Resource::Repository, Action::List),
    p(Resource::Repository, Action::Push),
    p(Resource::Repository, Action::Pull),
    p(Resource::TagRetention, Action::Create),
    p(Resource::TagRetention, Action::Read),
    p(Resource::TagRetention, Action::Update),
    p(Resource::TagRetention, Action::Delete),
    p(Resource::TagRetention, Action::List),
    p(Resource::TagRetention, Action::Operate),
    p(Resource::Accessory, Action::List),
    p(Resource::ImmutableTag, Action::Create),
    p(Resource::ImmutableTag, Action::Update),
    p(Resource::ImmutableTag, Action::Delete),
    p(Resource::ImmutableTag, Action::List),
    p(Resource::Configuration, Action::Read),
    p(Resource::Robot, Action::Read),
    p(Resource::Robot, Action::List),
    p(Resource::NotificationPolicy, Action::Read),
    p(Resource::NotificationPolicy, Action::List),
    p(Resource::Scan, Action::Create),
    p(Resource::Scan, Action::Read),
    p(Resource::Scan, Action::Stop),
    p(Resource::Sbom, Action::Create),
    p(Resource::Sbom, Action::Stop),
    p(Resource::Sbom, Action::Read),
    p(Resource::Scanner, Action::Read),
    p(Resource::Artifact, Action::Create),
    p(Resource::Artifact, Action::Read),
    p(Resource::Artifact, Action::Delete),
    p(Resource::Artifact, Action::List),
    p(Resource::ArtifactAddition, Action::Read),
    p(Resource::Tag, Action::List),
    p(Resource::Tag, Action::Create),
    p(Resource::Tag, Action::Delete),
    p(Resource::ArtifactLabel, Action::Create),
    p(Resource::ArtifactLabel, Action::Delete),
    p(Resource::ExportCve, Action::Create),
    p(Resource::ExportCve, Action::Read),
    p(Resource::ExportCve, Action::List),
]);

/// `developer` (`rolePoliciesMap` in `src/common/rbac/project/rbac_role.go`).
const DEVELOPER: PermissionSet = PermissionSet::from_slice(&[
    p(Resource::Project, Action::Read),
    p(Resource::Member, Action::Read),
    p(Resource::Member, Action::List),
    p(Resource::Label, Action::Read),
    p(Resource::Label, Action::List),
    p(Resource::Quota, Action::Read),
    p(Resource::Repository, Action::Create),
    p(Resource::Repository, Action::Read),
    p(Resource::Repository, Action::Update),
    p(Resource::Repository, Action::List),
    p(Resource::Repository, Action::Push),
    p(Resource::Repository, Action::Pull),
    p(Resource::TagRetention, Action::Create),
    p(Resource::TagRetention, Action::Read),
    p(Resource::TagRetention, Action::Update),
    p(Resource::TagRetention, Action::Delete),
    p(Resource::TagRetention, Action::List),
    p(Resource::TagRetention, Action::Operate),
    p(Resource::Configuration, Action::Read),
    p(Resource::Robot, Action::Read),
    p(Resource::Robot, Action::List),
    p(Resource::Scan, Action::Read),
    p(Resource::Sbom, Action::Read),
    p(Resource::Scanner, Action::Read),
    p(Resource::Artifact, Action::Create),
    p(Resource::Artifact, Action::Read),
    p(Resource::Artifact, Action::List),
    p(Resource::ArtifactAddition, Action::Read),
    p(Resource::Tag, Action::List),
    p(Resource::Tag, Action::Create),
    p(Resource::Accessory, Action::List),
    p(Resource::ArtifactLabel, Action::Create),
    p(Resource::ArtifactLabel, Action::Delete),
    p(Resource::ExportCve, Action::Create),
    p(Resource::ExportCve, Action::Read),
    p(Resource::ExportCve, Action::List),
]);

/// `guest` (`rolePoliciesMap` in `src/common/rbac/project/rbac_role.go`).
const GUEST: PermissionSet = PermissionSet::from_slice(&[
    p(Resource::Project, Action::Read),
    p(Resource::Member, Action::Read),
    p(Resource::Member, Action::List),
    p(Resource::Label, Action::Read),
    p(Resource::Label, Action::List),
    p(Resource::Quota, Action::Read),
    p(Resource::Repository, Action::Read),
    p(Resource::Repository, Action::List),
    p(Resource::Repository, Action::Pull),
    p(Resource::Configuration, Action::Read),
    p(Resource::Robot, Action::Read),
    p(Resource::Robot, Action::List),
    p(Resource::Scan, Action::Read),
    p(Resource::Sbom, Action::Read),
    p(Resource::Scanner, Action::Read),
    p(Resource::Tag, Action::List),
    p(Resource::Accessory, Action::List),
    p(Resource::Artifact, Action::Read),
    p(Resource::Artifact, Action::List),
    p(Resource::ArtifactAddition, Action::Read),
]);

/// `limitedGuest` (`rolePoliciesMap` in `src/common/rbac/project/rbac_role.go`).
const LIMITED_GUEST: PermissionSet = PermissionSet::from_slice(&[
    p(Resource::Project, Action::Read),
    p(Resource::Quota, Action::Read),
    p(Resource::Repository, Action::List),
    p(Resource::Repository, Action::Read),
    p(Resource::Repository, Action::Pull),
    p(Resource::Configuration, Action::Read),
    p(Resource::Scan, Action::Read),
    p(Resource::Sbom, Action::Read),
    p(Resource::Scanner, Action::Read),
    p(Resource::Tag, Action::List),
    p(Resource::Accessory, Action::List),
    p(Resource::Artifact, Action::Read),
    p(Resource::Artifact, Action::List),
    p(Resource::ArtifactAddition, Action::Read),
]);

/// Everyone on a public project (`publicProjectPolicies` in `src/common/rbac/project/rbac_util.go`).
const PUBLIC_PROJECT: PermissionSet = PermissionSet::from_slice(&[
    p(Resource::Project, Action::Read),
    p(Resource::Label, Action::Read),
    p(Resource::Label, Action::List),
    p(Resource::Repository, Action::List),
    p(Resource::Repository, Action::Pull),
    p(Resource::Scan, Action::Read),
    p(Resource::Scanner, Action::Read),
    p(Resource::Tag, Action::List),
    p(Resource::Artifact, Action::Read),
    p(Resource::Artifact, Action::List),
    p(Resource::ArtifactAddition, Action::Read),
    p(Resource::Accessory, Action::List),
]);

/// The system namespace (`policies` in `src/common/rbac/system/policies.go`).
const SYSTEM: PermissionSet = PermissionSet::from_slice(&[
    p(Resource::Catalog, Action::Read),
    p(Resource::AuditLog, Action::List),
    p(Resource::Project, Action::Create),
    p(Resource::Project, Action::Read),
    p(Resource::Project, Action::Update),
    p(Resource::Project, Action::Delete),
    p(Resource::Project, Action::List),
    p(Resource::User, Action::Create),
    p(Resource::User, Action::Read),
    p(Resource::User, Action::Update),
    p(Resource::User, Action::Delete),
    p(Resource::User, Action::List),
    p(Resource::UserGroup, Action::Create),
    p(Resource::UserGroup, Action::Read),
    p(Resource::UserGroup, Action::Update),
    p(Resource::UserGroup, Action::Delete),
    p(Resource::UserGroup, Action::List),
    p(Resource::Registry, Action::Create),
    p(Resource::Registry, Action::Read),
    p(Resource::Registry, Action::Update),
    p(Resource::Registry, Action::Delete),
    p(Resource::Registry, Action::List),
    p(Resource::Replication, Action::Create),
    p(Resource::Replication, Action::Read),
    p(Resource::Replication, Action::Update),
    p(Resource::Replication, Action::List),
    p(Resource::Replication, Action::Delete),
    p(Resource::Distribution, Action::Create),
    p(Resource::Distribution, Action::Read),
    p(Resource::Distribution, Action::Update),
    p(Resource::Distribution, Action::Delete),
    p(Resource::Distribution, Action::List),
    p(Resource::GarbageCollection, Action::Create),
    p(Resource::GarbageCollection, Action::Read),
    p(Resource::GarbageCollection, Action::Update),
    p(Resource::GarbageCollection, Action::Delete),
    p(Resource::GarbageCollection, Action::List),
    p(Resource::ScanAll, Action::Create),
    p(Resource::ScanAll, Action::Read),
    p(Resource::ScanAll, Action::Update),
    p(Resource::ScanAll, Action::Delete),
    p(Resource::ScanAll, Action::List),
    p(Resource::ScanAll, Action::Stop),
    p(Resource::SystemVolumes, Action::Read),
    p(Resource::LdapUser, Action::Create),
    p(Resource::LdapUser, Action::List),
    p(Resource::Configuration, Action::Read),
    p(Resource::Configuration, Action::Update),
    p(Resource::JobserviceMonitor, Action::Read),
    p(Resource::JobserviceMonitor, Action::List),
    p(Resource::JobserviceMonitor, Action::Stop),
    p(Resource::SecurityHub, Action::Read),
    p(Resource::SecurityHub, Action::List),
]);

/// Grantable to robots with kind `system` (`PoliciesMap[ScopeSystem]` plus the `NolimitProvider` additions in `src/common/rbac/const.go`).
const ROBOT_SYSTEM: PermissionSet = PermissionSet::from_slice(&[
    p(Resource::AuditLog, Action::List),
    p(Resource::PreheatInstance, Action::Read),
    p(Resource::PreheatInstance, Action::Create),
    p(Resource::PreheatInstance, Action::Delete),
    p(Resource::PreheatInstance, Action::List),
    p(Resource::PreheatInstance, Action::Update),
    p(Resource::Project, Action::List),
    p(Resource::Project, Action::Create),
    p(Resource::ReplicationPolicy, Action::Read),
    p(Resource::ReplicationPolicy, Action::Create),
    p(Resource::ReplicationPolicy, Action::Delete),
    p(Resource::ReplicationPolicy, Action::List),
    p(Resource::ReplicationPolicy, Action::Update),
    p(Resource::Replication, Action::Read),
    p(Resource::Replication, Action::Create),
    p(Resource::Replication, Action::List),
    p(Resource::ReplicationAdapter, Action::List),
    p(Resource::Registry, Action::Read),
    p(Resource::Registry, Action::Create),
    p(Resource::Registry, Action::Delete),
    p(Resource::Registry, Action::List),
    p(Resource::Registry, Action::Update),
    p(Resource::ScanAll, Action::Read),
    p(Resource::ScanAll, Action::Update),
    p(Resource::ScanAll, Action::Stop),
    p(Resource::ScanAll, Action::Create),
    p(Resource::SystemVolumes, Action::Read),
    p(Resource::GarbageCollection, Action::Read),
    p(Resource::GarbageCollection, Action::Create),
    p(Resource::GarbageCollection, Action::List),
    p(Resource::GarbageCollection, Action::Update),
    p(Resource::GarbageCollection, Action::Stop),
    p(Resource::PurgeAudit, Action::Read),
    p(Resource::PurgeAudit, Action::Create),
    p(Resource::PurgeAudit, Action::List),
    p(Resource::PurgeAudit, Action::Update),
    p(Resource::PurgeAudit, Action::Stop),
    p(Resource::JobserviceMonitor, Action::List),
    p(Resource::JobserviceMonitor, Action::Stop),
    p(Resource::Scanner, Action::Read),
    p(Resource::Scanner, Action::Create),
    p(Resource::Scanner, Action::Delete),
    p(Resource::Scanner, Action::List),
    p(Resource::Scanner, Action::Update),
    p(Resource::Label, Action::Read),
    p(Resource::Label, Action::Create),
    p(Resource::Label, Action::Delete),
    p(Resource::Label, Action::Update),
    p(Resource::SecurityHub, Action::Read),
    p(Resource::SecurityHub, Action::List),
    p(Resource::Catalog, Action::Read),
    p(Resource::Quota, Action::Read),
    p(Resource::Quota, Action::List),
    p(Resource::Robot, Action::Create),
    p(Resource::Robot, Action::Read),
    p(Resource::Robot, Action::List),
    p(Resource::Robot, Action::Delete),
    p(Resource::User, Action::Create),
    p(Resource::User, Action::Read),
    p(Resource::User, Action::Update),
    p(Resource::User, Action::List),
    p(Resource::User, Action::Delete),
    p(Resource::LdapUser, Action::Create),
    p(Resource::LdapUser, Action::List),
    p(Resource::Quota, Action::Update),
    p(Resource::UserGroup, Action::Create),
    p(Resource::UserGroup, Action::Read),
    p(Resource::UserGroup, Action::Update),
    p(Resource::UserGroup, Action::List),
    p(Resource::UserGroup, Action::Delete),
]);

/// Grantable to robots with kind `project` (`PoliciesMap[ScopeProject]` plus the `NolimitProvider` additions in `src/common/rbac/const.go`).
const ROBOT_PROJECT: PermissionSet = PermissionSet::from_slice(&[
    p(Resource::Log, Action::List),
    p(Resource::Project, Action::Read),
    p(Resource::Project, Action::Delete),
    p(Resource::Project, Action::Update),
    p(Resource::Metadata, Action::Read),
    p(Resource::Metadata, Action::Create),
    p(Resource::Metadata, Action::Delete),
    p(Resource::Metadata, Action::List),
    p(Resource::Metadata, Action::Update),
    p(Resource::Repository, Action::Read),
    p(Resource::Repository, Action::Update),
    p(Resource::Repository, Action::Delete),
    p(Resource::Repository, Action::List),
    p(Resource::Repository, Action::Pull),
    p(Resource::Repository, Action::Push),
    p(Resource::Artifact, Action::Read),
    p(Resource::Artifact, Action::Create),
    p(Resource::Artifact, Action::List),
    p(Resource::Artifact, Action::Delete),
    p(Resource::Scan, Action::Create),
    p(Resource::Scan, Action::Read),
    p(Resource::Scan, Action::Stop),
    p(Resource::Sbom, Action::Create),
    p(Resource::Sbom, Action::Stop),
    p(Resource::Sbom, Action::Read),
    p(Resource::Tag, Action::Create),
    p(Resource::Tag, Action::List),
    p(Resource::Tag, Action::Delete),
    p(Resource::Accessory, Action::List),
    p(Resource::ArtifactAddition, Action::Read),
    p(Resource::ArtifactLabel, Action::Create),
    p(Resource::ArtifactLabel, Action::Delete),
    p(Resource::Scanner, Action::Create),
    p(Resource::Scanner, Action::Read),
    p(Resource::PreheatPolicy, Action::Read),
    p(Resource::PreheatPolicy, Action::Create),
    p(Resource::PreheatPolicy, Action::Delete),
    p(Resource::PreheatPolicy, Action::List),
    p(Resource::PreheatPolicy, Action::Update),
    p(Resource::ImmutableTag, Action::Create),
    p(Resource::ImmutableTag, Action::Delete),
    p(Resource::ImmutableTag, Action::List),
    p(Resource::ImmutableTag, Action::Update),
    p(Resource::NotificationPolicy, Action::Read),
    p(Resource::NotificationPolicy, Action::Create),
    p(Resource::NotificationPolicy, Action::Delete),
    p(Resource::NotificationPolicy, Action::List),
    p(Resource::NotificationPolicy, Action::Update),
    p(Resource::TagRetention, Action::Read),
    p(Resource::TagRetention, Action::Create),
    p(Resource::TagRetention, Action::Delete),
    p(Resource::TagRetention, Action::List),
    p(Resource::TagRetention, Action::Update),
    p(Resource::Label, Action::Read),
    p(Resource::Label, Action::Create),
    p(Resource::Label, Action::Delete),
    p(Resource::Label, Action::List),
    p(Resource::Label, Action::Update),
    p(Resource::Quota, Action::Read),
    p(Resource::Robot, Action::Create),
    p(Resource::Robot, Action::Read),
    p(Resource::Robot, Action::List),
    p(Resource::Robot, Action::Delete),
    p(Resource::ExportCve, Action::Create),
    p(Resource::ExportCve, Action::Read),
    p(Resource::Member, Action::Create),
    p(Resource::Member, Action::Read),
    p(Resource::Member, Action::Update),
    p(Resource::Member, Action::List),
    p(Resource::Member, Action::Delete),
]);

#[cfg(test)]
mod tests {
    use super::*;

    fn role(id: i64) -> PermissionSet {
        builtin_role(id).unwrap().permissions
    }

    #[test]
    fn ids_and_names_match_harbor() {
        let roles: Vec<_> = builtin_roles().iter().map(|r| (r.id, r.name)).collect();
        assert_eq!(
            roles,
            [
                (1, "projectAdmin"),
                (2, "developer"),
                (3, "guest"),
                (4, "maintainer"),
                (5, "limitedGuest"),
            ]
        );
        assert!(builtin_role(0).is_none());
        assert!(builtin_role(6).is_none());
    }

    #[test]
    fn sizes_match_harbor_source() {
        // Entry counts of the Go lists (none of them has duplicates).
        assert_eq!(role(ROLE_PROJECT_ADMIN).len(), 75);
        assert_eq!(role(ROLE_MAINTAINER).len(), 53);
        assert_eq!(role(ROLE_DEVELOPER).len(), 36);
        assert_eq!(role(ROLE_GUEST).len(), 20);
        assert_eq!(role(ROLE_LIMITED_GUEST).len(), 14);
        assert_eq!(public_project_permissions().len(), 12);
        assert_eq!(robot_permissions(RobotLevel::System).len(), 70);
        assert_eq!(robot_permissions(RobotLevel::Project).len(), 70);
        assert_eq!(system_namespace_permissions().len(), 53);
        // Roles are nested, so the project namespace is the project admin's set.
        assert_eq!(project_namespace_permissions(), role(ROLE_PROJECT_ADMIN));
    }

    #[test]
    fn roles_are_nested() {
        let admin = role(ROLE_PROJECT_ADMIN);
        let maintainer = role(ROLE_MAINTAINER);
        let developer = role(ROLE_DEVELOPER);
        let guest = role(ROLE_GUEST);
        let limited = role(ROLE_LIMITED_GUEST);
        assert!(limited.is_subset(&guest));
        assert!(guest.is_subset(&developer));
        assert!(developer.is_subset(&maintainer));
        assert!(maintainer.is_subset(&admin));
        // Every public-project permission is available to a plain guest.
        assert!(public_project_permissions().is_subset(&guest));
    }

    #[test]
    fn key_permissions_per_role() {
        use Action::*;
        use Resource::*;
        let has = |id, r, a| role(id).contains(p(r, a));

        // projectAdmin manages members and the project itself.
        for a in [Create, Read, Update, Delete, List] {
            assert!(has(ROLE_PROJECT_ADMIN, Member, a));
        }
        assert!(has(ROLE_PROJECT_ADMIN, Project, Delete));
        assert!(has(ROLE_PROJECT_ADMIN, Configuration, Update));
        assert!(has(ROLE_PROJECT_ADMIN, Robot, Create));
        assert!(has(ROLE_PROJECT_ADMIN, Log, List));

        // maintainer deletes, but does not manage members or the project.
        assert!(has(ROLE_MAINTAINER, Repository, Delete));
        assert!(has(ROLE_MAINTAINER, Artifact, Delete));
        assert!(has(ROLE_MAINTAINER, Tag, Delete));
        assert!(has(ROLE_MAINTAINER, Member, List));
        assert!(!has(ROLE_MAINTAINER, Member, Create));
        assert!(!has(ROLE_MAINTAINER, Project, Delete));
        assert!(!has(ROLE_MAINTAINER, Log, List));

        // developer pushes but cannot delete.
        assert!(has(ROLE_DEVELOPER, Repository, Push));
        assert!(has(ROLE_DEVELOPER, Repository, Pull));
        assert!(has(ROLE_DEVELOPER, Artifact, Create));
        assert!(has(ROLE_DEVELOPER, Tag, Create));
        assert!(!has(ROLE_DEVELOPER, Repository, Delete));
        assert!(!has(ROLE_DEVELOPER, Artifact, Delete));
        assert!(!has(ROLE_DEVELOPER, Tag, Delete));
        assert!(!has(ROLE_DEVELOPER, Scan, Create));

        // guest pulls only.
        assert!(has(ROLE_GUEST, Repository, Pull));
        assert!(has(ROLE_GUEST, Member, List));
        assert!(!has(ROLE_GUEST, Repository, Push));
        assert!(!has(ROLE_GUEST, Repository, Delete));
        assert!(!has(ROLE_GUEST, Artifact, Create));

        // limitedGuest pulls, but sees no members, labels, robots or logs.
        assert!(has(ROLE_LIMITED_GUEST, Repository, Pull));
        assert!(has(ROLE_LIMITED_GUEST, Artifact, Read));
        assert!(has(ROLE_LIMITED_GUEST, Project, Read));
        assert!(!has(ROLE_LIMITED_GUEST, Repository, Push));
        assert!(!has(ROLE_LIMITED_GUEST, Member, List));
        assert!(!has(ROLE_LIMITED_GUEST, Member, Read));
        assert!(!has(ROLE_LIMITED_GUEST, Log, List));
        assert!(!has(ROLE_LIMITED_GUEST, Label, List));
        assert!(!has(ROLE_LIMITED_GUEST, Robot, List));
    }

    #[test]
    fn public_project_set() {
        let public = public_project_permissions();
        assert!(public.contains(p(Resource::Repository, Action::Pull)));
        assert!(public.contains(p(Resource::Repository, Action::List)));
        assert!(public.contains(p(Resource::Project, Action::Read)));
        assert!(public.contains(p(Resource::Artifact, Action::Read)));
        assert!(!public.contains(p(Resource::Repository, Action::Push)));
        assert!(!public.contains(p(Resource::Repository, Action::Delete)));
        assert!(!public.contains(p(Resource::Repository, Action::Read)));
        assert!(!public.contains(p(Resource::Member, Action::List)));
    }

    #[test]
    fn robot_sets() {
        let sys = robot_permissions(RobotLevel::System);
        let proj = robot_permissions(RobotLevel::Project);
        assert!(sys.contains(p(Resource::Project, Action::Create)));
        assert!(sys.contains(p(Resource::Project, Action::List)));
        assert!(sys.contains(p(Resource::AuditLog, Action::List)));
        assert!(sys.contains(p(Resource::GarbageCollection, Action::Stop)));
        assert!(sys.contains(p(Resource::User, Action::Delete)));
        assert!(sys.contains(p(Resource::Catalog, Action::Read)));
        assert!(!sys.contains(p(Resource::Repository, Action::Pull)));
        assert!(!sys.contains(p(Resource::Configuration, Action::Update)));

        assert!(proj.contains(p(Resource::Repository, Action::Pull)));
        assert!(proj.contains(p(Resource::Repository, Action::Push)));
        assert!(proj.contains(p(Resource::Repository, Action::Delete)));
        assert!(proj.contains(p(Resource::Member, Action::Create)));
        assert!(proj.contains(p(Resource::ExportCve, Action::Create)));
        assert!(proj.contains(p(Resource::Project, Action::Update)));
        assert!(!proj.contains(p(Resource::Project, Action::Create)));
        assert!(!proj.contains(p(Resource::User, Action::Create)));
        assert!(!proj.contains(p(Resource::Repository, Action::ScannerPull)));
    }
}
