//! Repository names, checked against the distribution-spec grammar.

use std::fmt;

/// Longest repository name accepted (the limit Distribution and common clients use).
pub const MAX_NAME_LEN: usize = 255;

/// Why a repository name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Longer than [`MAX_NAME_LEN`].
    #[error("repository name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    /// Does not match `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
    #[error("invalid repository name")]
    Invalid,
}

/// A validated repository name such as `library/busybox`.
///
/// The first path component names the project the repository belongs to, as in Harbor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Parses a name, refusing anything outside the spec grammar.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if s.is_empty() || !s.split('/').all(valid_component) {
            return Err(NameError::Invalid);
        }
        Ok(RepositoryName(s.to_owned()))
    }

    /// The project this repository belongs to: its first path component.
    pub fn project(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    /// The full name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let dashes = sep.bytes().all(|b| b == b'-');
        if !(sep == "." || sep == "_" || sep == "__" || dashes) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_spec_grammar() {
        for ok in [
            "a",
            "library/busybox",
            "a.b",
            "a_b",
            "a__b",
            "a---b",
            "x/y/z0",
            "0",
        ] {
            assert!(RepositoryName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Foo",
            "a..b",
            "a___b",
            "a_-b",
            "a.-b",
            "-a",
            "a-",
            "_a",
            "a/",
            "a//b",
            "/a",
            "host:5000/x",
            "a/../b",
            "a%2Fb",
            "a\0b",
            "a b",
        ] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}/{}", "a".repeat(200), "b".repeat(55));
        assert_eq!(RepositoryName::parse(&long), Err(NameError::TooLong));
        assert_eq!(
            RepositoryName::parse("team/app/api").unwrap().project(),
            "team"
        );
    }
}
