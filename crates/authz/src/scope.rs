//! Docker registry token scopes (`type:name:action,action`) and their mapping to
//! Harbor permissions.

use std::fmt;

use crate::vocab::{Action, Permission, Resource};

/// The resource type of a [`Scope`]. Any `(class)` suffix is dropped: the token
/// spec deprecates classes and treats `repository(plugin)` as `repository`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    /// `repository`
    Repository,
    /// `registry` (e.g. `registry:catalog:*`)
    Registry,
    /// Any other well-formed type, without its class.
    Other(String),
}

impl ScopeKind {
    /// The type string, e.g. `repository`.
    pub fn as_str(&self) -> &str {
        match self {
            ScopeKind::Repository => "repository",
            ScopeKind::Registry => "registry",
            ScopeKind::Other(s) => s,
        }
    }
}

impl fmt::Display for ScopeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One resource scope: `resourcetype:resourcename:action[,action]*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The resource type.
    pub kind: ScopeKind,
    /// The resource name, e.g. `library/alpine` or `localhost:5000/a/b`.
    pub name: String,
    /// The requested actions as written (e.g. `pull`, `push`, `*`); may be empty.
    pub actions: Vec<String>,
}

/// Formats the canonical `type:name:actions` form (no class).
impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }
}

/// Why a scope string is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Fewer than three `:`-separated parts.
    #[error("scope {0:?} is not of the form type:name:actions")]
    Malformed(String),
    /// The resource type is empty.
    #[error("scope has an empty resource type")]
    EmptyType,
    /// The resource type (or its class) is not `[a-z0-9]+`.
    #[error("invalid scope resource type {0:?}")]
    InvalidType(String),
    /// The resource name is empty.
    #[error("scope has an empty resource name")]
    EmptyName,
    /// The resource name contains whitespace or control characters.
    #[error("invalid scope resource name {0:?}")]
    InvalidName(String),
    /// An action is empty (e.g. `pull,,push`) or not `*` / `[a-z0-9_-]+`.
    #[error("invalid scope action {0:?}")]
    InvalidAction(String),
}

/// Parses one resource scope.
///
/// The type ends at the first `:` and the actions start after the last `:`, so
/// names may contain colons (`repository:localhost:5000/a/b:pull,push`). The type
/// may carry a `(class)` suffix, which is validated and dropped. An empty action
/// list (`repository:a/b:`) parses as no actions.
pub fn parse_scope(s: &str) -> Result<Scope, ScopeError> {
    let malformed = || ScopeError::Malformed(s.to_owned());
    let (ty, rest) = s.split_once(':').ok_or_else(malformed)?;
    let (name, actions) = rest.rsplit_once(':').ok_or_else(malformed)?;

    let kind = parse_kind(ty)?;
    if name.is_empty() {
        return Err(ScopeError::EmptyName);
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ScopeError::InvalidName(name.to_owned()));
    }
    let actions = if actions.is_empty() {
        Vec::new()
    } else {
        actions
            .split(',')
            .map(|a| {
                if valid_action(a) {
                    Ok(a.to_owned())
                } else {
                    Err(ScopeError::InvalidAction(a.to_owned()))
                }
            })
            .collect::<Result<_, _>>()?
    };
    Ok(Scope {
        kind,
        name: name.to_owned(),
        actions,
    })
}

/// Parses a space-separated list of scopes (the token `POST` form); empty
/// input yields no scopes.
pub fn parse_scopes(s: &str) -> Result<Vec<Scope>, ScopeError> {
    s.split(' ')
        .filter(|p| !p.is_empty())
        .map(parse_scope)
        .collect()
}

fn parse_kind(ty: &str) -> Result<ScopeKind, ScopeError> {
    if ty.is_empty() {
        return Err(ScopeError::EmptyType);
    }
    let invalid = || ScopeError::InvalidType(ty.to_owned());
    let base = match ty.split_once('(') {
        None => ty,
        Some((base, class)) => {
            let class = class.strip_suffix(')').ok_or_else(invalid)?;
            if !valid_type_value(class) {
                return Err(invalid());
            }
            base
        }
    };
    if !valid_type_value(base) {
        return Err(invalid());
    }
    Ok(match base {
        "repository" => ScopeKind::Repository,
        "registry" => ScopeKind::Registry,
        other => ScopeKind::Other(other.to_owned()),
    })
}

fn valid_type_value(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn valid_action(s: &str) -> bool {
    s == "*"
        || (!s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'))
}

/// A registry (`/v2/`) operation on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegistryAction {
    /// `GET`/`HEAD` of manifests, blobs, tags.
    Pull,
    /// `POST`/`PUT`/`PATCH` of uploads and manifests.
    Push,
    /// `DELETE` of manifests, tags, blobs.
    Delete,
}

impl RegistryAction {
    /// All three, in order; what the scope action `*` expands to.
    pub const ALL: [RegistryAction; 3] = [
        RegistryAction::Pull,
        RegistryAction::Push,
        RegistryAction::Delete,
    ];

    /// The Harbor permission checked for this operation: `(repository, pull|push|delete)`
    /// (Harbor's `v2auth` middleware and token service `actionScopeMap`).
    pub const fn permission(self) -> Permission {
        let action = match self {
            RegistryAction::Pull => Action::Pull,
            RegistryAction::Push => Action::Push,
            RegistryAction::Delete => Action::Delete,
        };
        Permission::new(Resource::Repository, action)
    }

    /// The scope action string: `pull`, `push` or `delete`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RegistryAction::Pull => "pull",
            RegistryAction::Push => "push",
            RegistryAction::Delete => "delete",
        }
    }

    /// The operations a requested scope action covers: one for `pull`, `push`,
    /// `delete`, all three for `*`, `None` for anything else.
    pub fn from_scope_action(action: &str) -> Option<&'static [RegistryAction]> {
        match action {
            "pull" => Some(&[RegistryAction::Pull]),
            "push" => Some(&[RegistryAction::Push]),
            "delete" => Some(&[RegistryAction::Delete]),
            "*" => Some(&Self::ALL),
            _ => None,
        }
    }
}

impl fmt::Display for RegistryAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(kind: ScopeKind, name: &str, actions: &[&str]) -> Scope {
        Scope {
            kind,
            name: name.to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn simple_scopes() {
        assert_eq!(
            parse_scope("repository:library/alpine:pull"),
            Ok(scope(ScopeKind::Repository, "library/alpine", &["pull"]))
        );
        assert_eq!(
            parse_scope("repository:a/b:pull,push"),
            Ok(scope(ScopeKind::Repository, "a/b", &["pull", "push"]))
        );
        assert_eq!(
            parse_scope("registry:catalog:*"),
            Ok(scope(ScopeKind::Registry, "catalog", &["*"]))
        );
        assert_eq!(
            parse_scope("repository:a/b:*"),
            Ok(scope(ScopeKind::Repository, "a/b", &["*"]))
        );
        assert_eq!(
            parse_scope("helm:chart:read"),
            Ok(scope(ScopeKind::Other("helm".into()), "chart", &["read"]))
        );
        assert_eq!(
            parse_scope("repository:a/b:scanner-pull"),
            Ok(scope(ScopeKind::Repository, "a/b", &["scanner-pull"]))
        );
        assert_eq!(
            parse_scope("repository:a/b:"),
            Ok(scope(ScopeKind::Repository, "a/b", &[]))
        );
    }

    #[test]
    fn names_may_contain_colons() {
        assert_eq!(
            parse_scope("repository:localhost:5000/a/b:pull,push"),
            Ok(scope(
                ScopeKind::Repository,
                "localhost:5000/a/b",
                &["pull", "push"]
            ))
        );
        assert_eq!(
            parse_scope("repository:host:5000/a/b:tag:pull"),
            Ok(scope(ScopeKind::Repository, "host:5000/a/b:tag", &["pull"]))
        );
        // With no action part, the last colon is taken as the separator, and the
        // port-and-path is rejected as an action.
        assert_eq!(
            parse_scope("repository:localhost:5000/a"),
            Err(ScopeError::InvalidAction("5000/a".into()))
        );
    }

    #[test]
    fn class_suffix_is_dropped() {
        assert_eq!(
            parse_scope("repository(plugin):a/b:pull"),
            Ok(scope(ScopeKind::Repository, "a/b", &["pull"]))
        );
        assert_eq!(
            parse_scope("foo(bar):x:pull").unwrap().kind,
            ScopeKind::Other("foo".into())
        );
        for bad in [
            "repository():a:pull",
            "repository(plugin:a:pull",
            "repository(Plugin):a:pull",
            "repository(a)(b):x:pull",
            "(plugin):a:pull",
        ] {
            assert!(
                matches!(parse_scope(bad), Err(ScopeError::InvalidType(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_scopes() {
        assert_eq!(parse_scope(""), Err(ScopeError::Malformed(String::new())));
        assert_eq!(
            parse_scope("repository"),
            Err(ScopeError::Malformed("repository".into()))
        );
        assert_eq!(
            parse_scope("repository:a/b"),
            Err(ScopeError::Malformed("repository:a/b".into()))
        );
        assert_eq!(parse_scope(":a/b:pull"), Err(ScopeError::EmptyType));
        assert_eq!(parse_scope("repository::pull"), Err(ScopeError::EmptyName));
        assert_eq!(
            parse_scope("Repository:a:pull"),
            Err(ScopeError::InvalidType("Repository".into()))
        );
        assert_eq!(
            parse_scope("repository:a b:pull"),
            Err(ScopeError::InvalidName("a b".into()))
        );
        assert_eq!(
            parse_scope("repository:a:pull,,push"),
            Err(ScopeError::InvalidAction(String::new()))
        );
        assert_eq!(
            parse_scope("repository:a:PULL"),
            Err(ScopeError::InvalidAction("PULL".into()))
        );
        assert_eq!(
            parse_scope("repository:a:pull,"),
            Err(ScopeError::InvalidAction(String::new()))
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "repository:library/alpine:pull",
            "repository:localhost:5000/a/b:pull,push",
            "repository:a/b:*",
            "registry:catalog:*",
            "helm:x/y:read,write",
            "repository:a/b:",
        ] {
            let parsed = parse_scope(s).unwrap();
            assert_eq!(parsed.to_string(), s);
            assert_eq!(parse_scope(&parsed.to_string()), Ok(parsed));
        }
        assert_eq!(
            parse_scope("repository(plugin):a/b:pull")
                .unwrap()
                .to_string(),
            "repository:a/b:pull"
        );
    }

    #[test]
    fn scope_lists() {
        let scopes = parse_scopes("repository:a/b:pull  repository:c/d:push,pull").unwrap();
        assert_eq!(scopes.len(), 2);
        assert_eq!(scopes[1].name, "c/d");
        assert_eq!(parse_scopes(""), Ok(Vec::new()));
        assert!(parse_scopes("repository:a/b:pull bogus").is_err());
    }

    #[test]
    fn registry_actions_map_to_repository_permissions() {
        let pairs = [
            (RegistryAction::Pull, Action::Pull),
            (RegistryAction::Push, Action::Push),
            (RegistryAction::Delete, Action::Delete),
        ];
        for (ra, action) in pairs {
            assert_eq!(
                ra.permission(),
                Permission::new(Resource::Repository, action)
            );
            assert_eq!(
                RegistryAction::from_scope_action(ra.as_str()),
                Some(&[ra][..])
            );
            assert_eq!(ra.to_string(), action.as_str());
        }
        assert_eq!(
            RegistryAction::from_scope_action("*"),
            Some(&RegistryAction::ALL[..])
        );
        assert_eq!(RegistryAction::from_scope_action("scanner-pull"), None);
        assert_eq!(RegistryAction::from_scope_action("PULL"), None);
        assert_eq!(RegistryAction::from_scope_action(""), None);
    }
}
