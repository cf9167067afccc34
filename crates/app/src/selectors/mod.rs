//! Harbor's artifact selectors, as tag immutability and tag retention apply them: a
//! selector of kind `doublestar` picks a candidate (an artifact's repository, without
//! its project, and its tags) by a pattern on its tags (`matches`, `excludes`), on its
//! repository (`repoMatches`, `repoExcludes`) or on its namespace (`nsMatches`,
//! `nsExcludes`). Pure: no I/O.

pub mod doublestar;

pub use doublestar::{Pattern, PatternError};

/// The only selector kind Harbor has.
pub const KIND_DOUBLESTAR: &str = "doublestar";

/// What a selector looks at, and whether it keeps what matches or what does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoration {
    /// `matches`: a candidate with a tag the pattern matches.
    Matches,
    /// `excludes`: a candidate with a tag the pattern does not match.
    Excludes,
    /// `repoMatches`: a candidate whose repository the pattern matches.
    RepoMatches,
    /// `repoExcludes`: a candidate whose repository the pattern does not match.
    RepoExcludes,
    /// `nsMatches`: a candidate whose namespace the pattern matches.
    NsMatches,
    /// `nsExcludes`: a candidate whose namespace the pattern does not match.
    NsExcludes,
}

impl Decoration {
    /// The decoration Harbor names `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "matches" => Decoration::Matches,
            "excludes" => Decoration::Excludes,
            "repoMatches" => Decoration::RepoMatches,
            "repoExcludes" => Decoration::RepoExcludes,
            "nsMatches" => Decoration::NsMatches,
            "nsExcludes" => Decoration::NsExcludes,
            _ => return None,
        })
    }
}

/// What selectors are applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The namespace (project) name, or empty when unknown.
    pub namespace: &'a str,
    /// The repository name without its project.
    pub repository: &'a str,
    /// The artifact's tags (empty: untagged).
    pub tags: &'a [&'a str],
}

/// One checked `doublestar` selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    decoration: Decoration,
    /// `None` for an empty pattern, which matches everything (as in Harbor).
    pattern: Option<Pattern>,
    untagged: bool,
}

impl Selector {
    /// A selector; `untagged` says whether a tag decoration selects an untagged
    /// candidate (Harbor's `{"untagged": …}` extras).
    pub fn new(
        decoration: Decoration,
        pattern: &str,
        untagged: bool,
    ) -> Result<Self, PatternError> {
        let pattern = (!pattern.is_empty())
            .then(|| Pattern::parse(pattern))
            .transpose()?;
        Ok(Selector {
            decoration,
            pattern,
            untagged,
        })
    }

    /// Whether `name` matches the pattern.
    fn matches(&self, name: &str) -> bool {
        self.pattern.as_ref().is_none_or(|p| p.matches(name))
    }

    /// Whether the selector picks `candidate`. A name-based decoration never picks a
    /// candidate whose name it looks at is empty.
    pub fn selects(&self, candidate: &Candidate<'_>) -> bool {
        let (value, excludes) = match self.decoration {
            Decoration::Matches if candidate.tags.is_empty() => return self.untagged,
            Decoration::Excludes if candidate.tags.is_empty() => return !self.untagged,
            Decoration::Matches => return candidate.tags.iter().any(|t| self.matches(t)),
            Decoration::Excludes => return candidate.tags.iter().any(|t| !self.matches(t)),
            Decoration::RepoMatches => (candidate.repository, false),
            Decoration::RepoExcludes => (candidate.repository, true),
            Decoration::NsMatches => (candidate.namespace, false),
            Decoration::NsExcludes => (candidate.namespace, true),
        };
        !value.is_empty() && self.matches(value) != excludes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(decoration: &str, pattern: &str) -> Selector {
        Selector::new(Decoration::parse(decoration).unwrap(), pattern, false).unwrap()
    }

    const APP: Candidate<'static> = Candidate {
        namespace: "library",
        repository: "team/app",
        tags: &["v1.0", "latest"],
    };

    #[test]
    fn tag_decorations_look_at_every_tag() {
        assert!(selector("matches", "v*").selects(&APP));
        assert!(!selector("matches", "release-*").selects(&APP));
        // `excludes` picks a candidate with any tag outside the pattern.
        assert!(selector("excludes", "v*").selects(&APP));
        assert!(!selector("excludes", "{v*,latest}").selects(&APP));
    }

    #[test]
    fn repository_and_namespace_decorations_look_at_names() {
        assert!(selector("repoMatches", "team/**").selects(&APP));
        assert!(!selector("repoMatches", "app").selects(&APP));
        assert!(selector("repoExcludes", "other/**").selects(&APP));
        assert!(!selector("repoExcludes", "**").selects(&APP));
        assert!(selector("nsMatches", "lib*").selects(&APP));
        assert!(!selector("nsExcludes", "lib*").selects(&APP));
        let nameless = Candidate {
            namespace: "",
            ..APP
        };
        assert!(!selector("nsExcludes", "x").selects(&nameless));
    }

    #[test]
    fn an_empty_pattern_matches_everything() {
        assert!(selector("matches", "").selects(&APP));
        assert!(!selector("excludes", "").selects(&APP));
        assert!(selector("repoMatches", "").selects(&APP));
    }

    #[test]
    fn untagged_candidates_follow_the_extras() {
        let untagged = Candidate { tags: &[], ..APP };
        let with = |d: &str, flag| Selector::new(Decoration::parse(d).unwrap(), "*", flag).unwrap();
        assert!(with("matches", true).selects(&untagged));
        assert!(!with("matches", false).selects(&untagged));
        assert!(with("excludes", false).selects(&untagged));
        assert!(!with("excludes", true).selects(&untagged));
    }

    #[test]
    fn unknown_decorations_are_not_parsed() {
        assert_eq!(Decoration::parse("regex"), None);
        assert_eq!(Decoration::parse("Matches"), None);
    }
}
