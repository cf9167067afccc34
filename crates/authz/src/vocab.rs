//! Harbor's resource and action vocabulary (`src/common/rbac/const.go`).

use std::fmt;
use std::str::FromStr;

/// Declares a fieldless enum whose variants map one-to-one onto wire strings.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $err:ident, $count:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $s:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order (which is also the `Ord` order).
            pub const ALL: [$name; $count] = [$($name::$variant),+];

            /// The Harbor wire string.
            pub const fn as_str(&self) -> &'static str {
                match self {
                    $( $name::$variant => $s, )+
                }
            }

            /// Position of the variant in [`Self::ALL`].
            pub(crate) const fn index(self) -> usize {
                self as usize
            }
        }

        impl FromStr for $name {
            type Err = $err;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $s => Ok($name::$variant), )+
                    _ => Err($err(s.to_owned())),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Number of [`Resource`] variants.
pub const RESOURCE_COUNT: usize = 39;
/// Number of [`Action`] variants.
pub const ACTION_COUNT: usize = 10;

string_enum! {
    /// A Harbor RBAC resource.
    ///
    /// Harbor's wildcard resource `*` is deliberately not representable. Harbor's
    /// "self" resource (the empty string, meaning the project itself inside a
    /// project namespace) is represented by [`Resource::Project`]; Harbor makes the
    /// same identification for project-scoped robot permissions (`src/common/security/robot/context.go`,
    /// `getPolicyResource`).
    Resource, UnknownResource, RESOURCE_COUNT {
        /// `configuration`
        Configuration => "configuration",
        /// `label`
        Label => "label",
        /// `log` (project audit log)
        Log => "log",
        /// `ldap-user`
        LdapUser => "ldap-user",
        /// `member`
        Member => "member",
        /// `metadata`
        Metadata => "metadata",
        /// `quota`
        Quota => "quota",
        /// `repository`
        Repository => "repository",
        /// `tag-retention`
        TagRetention => "tag-retention",
        /// `immutable-tag`
        ImmutableTag => "immutable-tag",
        /// `robot`
        Robot => "robot",
        /// `notification-policy`
        NotificationPolicy => "notification-policy",
        /// `scan`
        Scan => "scan",
        /// `sbom`
        Sbom => "sbom",
        /// `scanner`
        Scanner => "scanner",
        /// `artifact`
        Artifact => "artifact",
        /// `tag`
        Tag => "tag",
        /// `accessory`
        Accessory => "accessory",
        /// `artifact-addition`
        ArtifactAddition => "artifact-addition",
        /// `artifact-label`
        ArtifactLabel => "artifact-label",
        /// `preheat-policy`
        PreheatPolicy => "preheat-policy",
        /// `preheat-instance`
        PreheatInstance => "preheat-instance",
        /// `audit-log`
        AuditLog => "audit-log",
        /// `catalog`
        Catalog => "catalog",
        /// `project`; inside a project this is also Harbor's "self" resource.
        Project => "project",
        /// `user`
        User => "user",
        /// `user-group`
        UserGroup => "user-group",
        /// `registry` (replication endpoints)
        Registry => "registry",
        /// `replication`
        Replication => "replication",
        /// `distribution`
        Distribution => "distribution",
        /// `garbage-collection`
        GarbageCollection => "garbage-collection",
        /// `replication-adapter`
        ReplicationAdapter => "replication-adapter",
        /// `replication-policy`
        ReplicationPolicy => "replication-policy",
        /// `scan-all`
        ScanAll => "scan-all",
        /// `system-volumes`
        SystemVolumes => "system-volumes",
        /// `purge-audit`
        PurgeAudit => "purge-audit",
        /// `export-cve`
        ExportCve => "export-cve",
        /// `jobservice-monitor`
        JobserviceMonitor => "jobservice-monitor",
        /// `security-hub`
        SecurityHub => "security-hub",
    }
}

string_enum! {
    /// A Harbor RBAC action. Harbor's wildcard action `*` is not representable.
    Action, UnknownAction, ACTION_COUNT {
        /// `pull`
        Pull => "pull",
        /// `push`
        Push => "push",
        /// `create`
        Create => "create",
        /// `read`
        Read => "read",
        /// `update`
        Update => "update",
        /// `delete`
        Delete => "delete",
        /// `list`
        List => "list",
        /// `operate`
        Operate => "operate",
        /// `scanner-pull` (scanner robots pulling regardless of policy checks)
        ScannerPull => "scanner-pull",
        /// `stop`
        Stop => "stop",
    }
}

/// A string that names no [`Resource`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown resource {0:?}")]
pub struct UnknownResource(pub String);

/// A string that names no [`Action`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action {0:?}")]
pub struct UnknownAction(pub String);

/// One `(resource, action)` pair. Ordered by resource, then action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    /// What is acted upon.
    pub resource: Resource,
    /// What is done to it.
    pub action: Action,
}

impl Permission {
    /// Builds a permission.
    pub const fn new(resource: Resource, action: Action) -> Self {
        Self { resource, action }
    }
}

/// Formats as `resource:action`.
impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource, self.action)
    }
}
