//! Harbor-compatible authorization as data plus one pure check.
//!
//! Roles are named sets of `(resource, action)` [`Permission`]s that the
//! application stores in its database. This crate defines the vocabulary
//! ([`Resource`], [`Action`]), a bitset [`PermissionSet`], Harbor's built-in
//! roles (to seed that database), the public-project and robot-grantable sets,
//! the [`allowed`] check, and Docker registry token [`Scope`]s.
//!
//! Architecture invariant: this crate is pure. It performs no I/O and depends on no
//! runtime (no tokio, no SQL, no HTTP, no async).
//!
//! # Sources
//!
//! Transcribed from goharbor/harbor at commit
//! `c50c7ddd6ea4e335a480b49c618281882ab7eec9` (main, v2.x):
//! - `src/common/rbac/const.go`: resources, actions, robot-grantable lists;
//! - `src/common/rbac/project/rbac_role.go`: per-role permission sets;
//! - `src/common/rbac/project/rbac_util.go`, `rbac_user.go`: public-project set,
//!   applied to every caller (members, robots, anonymous);
//! - `src/common/security/robot/context.go`: robot evaluation (system vs project
//!   namespaces, `*` namespace, push implies pull, `project` = the project itself);
//! - `src/common/const.go`, `make/migrations/postgresql/*.sql`: role ids and names;
//! - `src/server/v2.0/handler/robot.go`, `permissions.go`: robot permission validation;
//! - `src/server/middleware/v2auth/access.go`, `src/core/service/token/creator.go`:
//!   registry operations → `(repository, pull|push|delete)`.

mod principal;
mod roles;
mod scope;
mod set;
mod vocab;

pub use principal::{
    Principal, ProjectRef, RobotGrants, UserGrants, allowed, effective_permissions,
};
pub use roles::{
    ROLE_DEVELOPER, ROLE_GUEST, ROLE_LIMITED_GUEST, ROLE_MAINTAINER, ROLE_PROJECT_ADMIN,
    RobotLevel, RoleDefinition, builtin_role, builtin_roles, project_namespace_permissions,
    public_project_permissions, robot_permissions, system_namespace_permissions,
};
pub use scope::{RegistryAction, Scope, ScopeError, ScopeKind, parse_scope, parse_scopes};
pub use set::{Iter, PermissionSet};
pub use vocab::{
    ACTION_COUNT, Action, Permission, RESOURCE_COUNT, Resource, UnknownAction, UnknownResource,
};
