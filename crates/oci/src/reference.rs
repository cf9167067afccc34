//! Tags and manifest references (a tag or a digest).

use std::fmt;

use crate::{Digest, DigestError};

/// Longest tag the spec allows.
pub const MAX_TAG_LEN: usize = 128;

/// Why a tag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tag: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
pub struct TagError;

/// A validated tag such as `latest` or `v1.2.3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Parses a tag against `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    pub fn parse(s: &str) -> Result<Self, TagError> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_');
        let rest_ok = b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
        if first_ok && rest_ok && b.len() <= MAX_TAG_LEN {
            Ok(Tag(s.to_owned()))
        } else {
            Err(TagError)
        }
    }

    /// The tag text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The order of `tags/list`: the spec's "lexical order (i.e. case-insensitive
/// alphanumeric order)", ASCII letters compared as lower case; names that differ only in
/// case are ordered by their bytes (`A` before `a`), so the order is total and a `last`
/// that differs from a tag only in case still pages without skipping or repeating.
///
/// This is SQLite's `ORDER BY name COLLATE NOCASE, name`; the metadata store and the tag
/// list cache both rely on the two agreeing.
pub fn tag_listing_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn folded(s: &str) -> impl Iterator<Item = u8> + '_ {
        s.bytes().map(|c| c.to_ascii_lowercase())
    }
    folded(a).cmp(folded(b)).then_with(|| a.cmp(b))
}

/// What follows `/manifests/` in a URL: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A mutable name.
    Tag(Tag),
    /// Immutable content address.
    Digest(Digest),
}

/// Why a reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Looked like a digest (contains `:`) but is not a valid one.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// Not a valid tag.
    #[error(transparent)]
    Tag(#[from] TagError),
}

impl Reference {
    /// Parses a reference: anything with a colon must be a digest, anything else a tag.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.contains(':') {
            Ok(Reference::Digest(Digest::parse(s)?))
        } else {
            Ok(Reference::Tag(Tag::parse(s)?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_list_case_insensitively_then_by_bytes() {
        let mut tags = [
            "b", "B", "a", "A", "_x", "Z", "10", "aB", "Ab", "ab", "a-b", "a_b",
        ];
        tags.sort_by(|a, b| tag_listing_order(a, b));
        assert_eq!(
            tags,
            [
                "10", "_x", "A", "a", "a-b", "a_b", "Ab", "aB", "ab", "B", "b", "Z"
            ]
        );
        assert_eq!(tag_listing_order("A", "a"), std::cmp::Ordering::Less);
        assert_eq!(tag_listing_order("a", "a"), std::cmp::Ordering::Equal);
        assert_eq!(tag_listing_order("a", "AB"), std::cmp::Ordering::Less);
    }

    #[test]
    fn tags_follow_the_spec_grammar() {
        for ok in ["latest", "v1.2.3", "_x", "A-b_c.d", &"a".repeat(128)] {
            assert!(Tag::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            ".hidden",
            "-x",
            "a:b",
            "a@b",
            "a/b",
            "a+b",
            "é",
            "",
            &"a".repeat(129),
        ] {
            assert!(Tag::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn colon_means_digest() {
        assert!(matches!(
            Reference::parse("sha256:baddigeststring"),
            Err(ReferenceError::Digest(_))
        ));
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
    }
}
