//! Management use cases behind Harbor's API, one module per aggregate. Each checks the
//! caller's permission with `berth_authz::allowed` and writes its change together
//! with its audit entry.

mod artifacts;
mod audit;
mod collections;
mod error;
mod immutable;
mod labels;
mod projects;
pub(crate) mod quotas;
mod retention;
mod robots;
mod system;
mod users;

use std::net::IpAddr;
use std::sync::Arc;

pub use artifacts::{Accessory, ArtifactDetail, ArtifactView, Artifacts, ChildReference};
pub use audit::AuditLog;
pub use collections::{Collections, GcSchedule, ScheduleRequest, ScheduleType, parameters_of};
pub use error::ManageError;
pub use immutable::{ImmutableRules, RuleChange, RuleView};
pub use labels::{LabelDraft, LabelFilter, Labels};
pub use projects::{ProjectDraft, ProjectRequest, ProjectSummary, Projects};
pub use quotas::Quotas;
pub use retention::{PolicyView, Retentions};
pub use robots::{CreatedRobot, RobotRequest, Robots, level_name};
pub use system::{SearchResult, Statistics, System};
pub use users::{NewAccount, PasswordChange, Users};

use crate::identity::{Account, Actor, Caller};

/// Who calls a management operation: an account, or nobody (anonymous).
#[derive(Debug, Clone)]
pub struct Requester {
    /// The account, when the caller logged in.
    pub account: Option<Arc<Account>>,
    /// The client's address.
    pub client: Option<IpAddr>,
}

impl Requester {
    /// The requester behind a caller (a registry token counts as anonymous here).
    pub fn new(caller: &Caller, client: Option<IpAddr>) -> Self {
        let account = match caller {
            Caller::Account(a) => Some(a.clone()),
            Caller::Anonymous | Caller::Token(_) => None,
        };
        Requester { account, client }
    }

    /// The system itself acting for an operator of the machine (the offline command
    /// line): a system administrator that is no stored user, recorded in the audit log
    /// as `name` (e.g. `cli:root`).
    pub fn system(name: impl Into<String>) -> Self {
        Requester {
            account: Some(Arc::new(Account::system(name))),
            client: None,
        }
    }

    /// The account, or `Unauthenticated`.
    pub fn account(&self) -> Result<&Arc<Account>, ManageError> {
        self.account.as_ref().ok_or(ManageError::Unauthenticated)
    }

    /// Whether this is a system administrator.
    pub fn is_sysadmin(&self) -> bool {
        self.account
            .as_ref()
            .is_some_and(|a| a.principal.is_sysadmin())
    }

    /// The principal checks run against.
    pub fn principal(&self) -> &berth_authz::Principal {
        static ANONYMOUS: berth_authz::Principal = berth_authz::Principal::Anonymous;
        self.account.as_ref().map_or(&ANONYMOUS, |a| &a.principal)
    }

    /// The actor audit entries name.
    pub fn actor(&self) -> Actor {
        Actor::new(
            self.account
                .as_ref()
                .map_or("anonymous", |a| a.name.as_str()),
            self.client,
        )
    }

    /// Refuses a system-level operation the caller may not perform.
    pub fn require_system(&self, permission: berth_authz::Permission) -> Result<(), ManageError> {
        let account = self.account()?;
        if berth_authz::allowed(&account.principal, None, permission) {
            Ok(())
        } else {
            Err(ManageError::Forbidden(
                "only a system administrator may do this".into(),
            ))
        }
    }
}
