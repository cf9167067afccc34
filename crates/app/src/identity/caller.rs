//! Who a request comes from.

use std::sync::Arc;

use berth_authz::Principal;

use super::tokens::VerifiedToken;

/// An authenticated account: a user or a robot, with its grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its name as audit rows and tokens name it (a robot's with its prefix).
    pub name: String,
    /// What it may do.
    pub principal: Principal,
}

impl Account {
    /// The user id, for a user.
    pub fn user_id(&self) -> Option<i64> {
        match &self.principal {
            Principal::User(u) => Some(u.user_id),
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
