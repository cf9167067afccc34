//! Who a request comes from.

use std::sync::Arc;

use berth_authz::{Principal, UserGrants};

use super::tokens::VerifiedToken;

/// An authenticated account: a user or a robot, with its grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its name as audit rows and tokens name it (a robot's with its prefix).
    pub name: String,
    /// What it may do.
    pub principal: Principal,
}

/// The user id of the system account: no stored user has it (row ids start at 1).
const SYSTEM_USER_ID: i64 = 0;

impl Account {
    /// The system itself, acting for an operator of the machine (the offline command
    /// line): a system administrator that is no stored user, named `name` in the audit
    /// log.
    pub fn system(name: impl Into<String>) -> Self {
        Account {
            name: name.into(),
            principal: Principal::User(UserGrants {
                user_id: SYSTEM_USER_ID,
                sysadmin: true,
                projects: Default::default(),
            }),
        }
    }

    /// The id of the stored user behind it: none for a robot or the system account.
    pub fn user_id(&self) -> Option<i64> {
        match &self.principal {
            Principal::User(u) if u.user_id != SYSTEM_USER_ID => Some(u.user_id),
            _ => None,
        }
    }
}

/// The caller of a request, as its credentials establish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// A user or robot that sent its password or secret (or a session cookie).
    Account(Arc<Account>),
    /// A bearer token: what it grants was decided when it was issued.
    Token(Arc<VerifiedToken>),
}

impl Caller {
    /// The name audit rows record.
    pub fn name(&self) -> &str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Account(a) => &a.name,
            Caller::Token(t) if t.subject.is_empty() => "anonymous",
            Caller::Token(t) => &t.subject,
        }
    }

    /// Whether the caller presented no credentials (an anonymous token counts as none).
    pub fn is_anonymous(&self) -> bool {
        match self {
            Caller::Anonymous => true,
            Caller::Account(_) => false,
            Caller::Token(t) => t.subject.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_account_is_an_administrator_but_no_user() {
        let system = Account::system("cli:root");
        assert!(system.principal.is_sysadmin());
        assert_eq!(system.user_id(), None);
        assert_eq!(system.name, "cli:root");
    }
}
