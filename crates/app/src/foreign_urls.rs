//! Which external URLs a descriptor may carry, after Distribution's
//! `validation.manifests.urls`.
//!
//! A layer with URLs (a foreign layer) is accepted without its bytes being in the
//! registry, and clients fetch it from those URLs; so the registry vouches for where they
//! point. Only absolute `http` and `https` URLs without a fragment are considered, and of
//! those only the ones an allow pattern matches and no deny pattern does. With no allow
//! pattern nothing is admitted: by default no manifest may send clients elsewhere.

use regex_automata::meta::Regex;

/// The URLs admitted in descriptors. The default admits none.
#[derive(Debug, Clone, Default)]
pub struct ForeignUrlPolicy {
    /// A URL must match one of these (searched anywhere in it, as in Distribution).
    allow: Vec<Regex>,
    /// A URL matching one of these is refused even when allowed.
    deny: Vec<Regex>,
}

/// A pattern of the policy that is not a valid regular expression.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid regular expression {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as configured.
    pub pattern: String,
    /// Why it does not compile.
    pub reason: String,
}

impl ForeignUrlPolicy {
    /// Compiles the allow and deny patterns (regular expressions, as in the `regex` crate).
    pub fn new(allow: &[String], deny: &[String]) -> Result<Self, PatternError> {
        let compile = |patterns: &[String]| {
            patterns
                .iter()
                .map(|p| {
                    Regex::new(p).map_err(|e| PatternError {
                        pattern: p.clone(),
                        reason: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(ForeignUrlPolicy {
            allow: compile(allow)?,
            deny: compile(deny)?,
        })
    }

    /// Why `url` is refused, if it is.
    pub(crate) fn check(&self, url: &str) -> Result<(), String> {
        check_http_url(url)?;
        if !self.allow.iter().any(|r| r.is_match(url)) {
            return Err(if self.allow.is_empty() {
                "external URLs are not allowed here (see validation.foreign_layer_urls_allow)"
                    .into()
            } else {
                "it matches no pattern of validation.foreign_layer_urls_allow".into()
            });
        }
        if self.deny.iter().any(|r| r.is_match(url)) {
            return Err("it matches a pattern of validation.foreign_layer_urls_deny".into());
        }
        Ok(())
    }
}

/// Refuses anything but an absolute `http`/`https` URL with a host and no fragment, and
/// any URL with spaces or control characters (which clients would parse differently).
fn check_http_url(url: &str) -> Result<(), String> {
    let only_http = || "only http and https URLs are allowed".to_owned();
    let (scheme, rest) = url.split_once("://").ok_or_else(only_http)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(only_http());
    }
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err("the URL contains spaces or control characters".into());
    }
    if url.contains('#') {
        return Err("the URL has a fragment".into());
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err("the URL has no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> ForeignUrlPolicy {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ForeignUrlPolicy::new(&owned(allow), &owned(deny)).unwrap()
    }

    #[test]
    fn only_http_urls_an_allow_pattern_admits() {
        let any = policy(&[".*"], &[]);
        for bad in [
            "file:///etc/passwd",
            "FILE:///etc/passwd",
            "ftp://example.com/layer",
            "gopher://example.com/",
            "javascript:alert(1)",
            "/relative/path",
            "example.com/layer",
            "https://",
            "https:///path",
            "https://user@/path",
            "https://example.com/layer#frag",
            "https://example.com/a b",
            "https://example.com/\nx",
            "",
        ] {
            assert!(any.check(bad).is_err(), "{bad:?}");
        }
        for good in [
            "https://example.com/layer.tar.gz",
            "HTTP://example.com:8080/l?x=1",
            "https://user:pw@example.com/l",
        ] {
            assert_eq!(any.check(good), Ok(()), "{good:?}");
        }
        assert!(
            ForeignUrlPolicy::default()
                .check("https://example.com/l")
                .is_err(),
            "nothing is admitted by default"
        );
        let mcr = policy(&[r"^https://mcr\.microsoft\.com/"], &[r"/private/"]);
        assert_eq!(mcr.check("https://mcr.microsoft.com/layer"), Ok(()));
        assert!(
            mcr.check("https://mcr.microsoft.com/private/layer")
                .is_err()
        );
        assert!(mcr.check("https://example.com/layer").is_err());
        assert!(
            mcr.check("https://mcr.microsoft.com.evil.example/")
                .is_err()
        );
    }

    #[test]
    fn bad_patterns_are_reported() {
        let err = ForeignUrlPolicy::new(&["(".into()], &[]).unwrap_err();
        assert_eq!(err.pattern, "(");
    }
}
