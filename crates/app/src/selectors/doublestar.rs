//! Doublestar glob patterns, as Harbor's `doublestar` selectors match them (the Go
//! package `github.com/bmatcuk/doublestar` v1): paths are split at `/`; in a pattern,
//! a component that is exactly `**` matches any number of components (none included),
//! `*` any run of characters within a component, `?` any one character but `/`,
//! `[abc]`, `[a-z]` and `[^…]` a character of (or not of) a class, `{a,b}` any of the
//! comma-separated alternatives (which may nest and hold `/`), and `\` takes the next
//! character literally. `**` within a component is `*`. As there, a `**` ending the
//! pattern needs at least one more component (`team/**` does not match `team`), and a
//! class is closed by its first unescaped `]`, must not be empty, and has no `-` but
//! between the ends of a range.

/// Why a pattern cannot be matched (Go's `ErrBadPattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A `[` or `{` is not closed, or a pattern ends with `\`.
    #[error("syntax error in pattern {0:?}")]
    Syntax(String),
    /// Its `{…}` alternatives expand to more patterns than a matcher tries.
    #[error("pattern {0:?} has more than {MAX_ALTERNATIVES} alternatives")]
    TooManyAlternatives(String),
}

/// Most patterns the `{…}` alternatives of one pattern may expand to.
pub const MAX_ALTERNATIVES: usize = 256;

/// A checked pattern: its alternatives expanded, each split into components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    alternatives: Vec<Vec<Vec<char>>>,
}

impl Pattern {
    /// Checks `pattern` and prepares it for matching.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let chars: Vec<char> = pattern.chars().collect();
        let expanded = expand(&chars).ok_or_else(|| PatternError::Syntax(pattern.into()))?;
        if expanded.len() > MAX_ALTERNATIVES {
            return Err(PatternError::TooManyAlternatives(pattern.into()));
        }
        let alternatives: Vec<Vec<Vec<char>>> = expanded
            .iter()
            .map(|a| a.split(|&c| c == '/').map(<[char]>::to_vec).collect())
            .collect();
        let well_formed = alternatives
            .iter()
            .flatten()
            .all(|component| component_is_well_formed(component));
        if !well_formed {
            return Err(PatternError::Syntax(pattern.into()));
        }
        Ok(Pattern { alternatives })
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let components: Vec<Vec<char>> = name.split('/').map(|c| c.chars().collect()).collect();
        self.alternatives
            .iter()
            .any(|pattern| match_path(pattern, &components))
    }
}

/// Whether `name` matches `pattern` (a pattern that cannot be parsed is an error).
pub fn matches(pattern: &str, name: &str) -> Result<bool, PatternError> {
    Ok(Pattern::parse(pattern)?.matches(name))
}

/// The patterns `{…}` alternatives stand for, or `None` for an unclosed brace or a
/// trailing `\`. Stops expanding past [`MAX_ALTERNATIVES`] (the caller refuses those).
fn expand(pattern: &[char]) -> Option<Vec<Vec<char>>> {
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            '\\' => {
                if i + 1 == pattern.len() {
                    return None;
                }
                i += 2;
            }
            '[' => i = class_end(pattern, i)? + 1,
            '{' => {
                let (end, options) = brace_options(pattern, i)?;
                let rest = expand(&pattern[end + 1..])?;
                let mut out = Vec::new();
                for option in options {
                    for head in expand(option)? {
                        for tail in &rest {
                            if out.len() > MAX_ALTERNATIVES {
                                return Some(out);
                            }
                            let mut p = pattern[..i].to_vec();
                            p.extend_from_slice(&head);
                            p.extend_from_slice(tail);
                            out.push(p);
                        }
                    }
                }
                return Some(out);
            }
            _ => i += 1,
        }
    }
    Some(vec![pattern.to_vec()])
}

/// The index of the `}` closing the brace at `open`, and the alternatives between.
fn brace_options(pattern: &[char], open: usize) -> Option<(usize, Vec<&[char]>)> {
    let mut depth = 0;
    let mut start = open + 1;
    let mut options = Vec::new();
    let mut i = open + 1;
    while i < pattern.len() {
        match pattern[i] {
            '\\' => i += 1,
            '[' => i = class_end(pattern, i)?,
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            '}' => {
                options.push(&pattern[start..i]);
                return Some((i, options));
            }
            ',' if depth == 0 => {
                options.push(&pattern[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the first unescaped `]` after the `[` at `open`, or `None`.
fn class_end(pattern: &[char], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < pattern.len() {
        match pattern[i] {
            '\\' => i += 2,
            ']' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Whether a component's classes are closed and well formed and no `\` ends it (a
/// class cannot hold `/`, so one split by a separator is unclosed).
fn component_is_well_formed(component: &[char]) -> bool {
    let mut i = 0;
    while i < component.len() {
        match component[i] {
            '\\' if i + 1 == component.len() => return false,
            '\\' => i += 2,
            '[' => match class_end(component, i) {
                Some(end) if class_ranges(&component[i + 1..end]).is_some() => i = end + 1,
                _ => return false,
            },
            _ => i += 1,
        }
    }
    true
}

/// A class body's negation and its ranges, or `None` when it is malformed: empty, a `-`
/// where a range would start or end, or a `\\` ending it.
fn class_ranges(body: &[char]) -> Option<(bool, Vec<(char, char)>)> {
    if body.is_empty() {
        return None;
    }
    let (negated, mut i) = if body[0] == '^' {
        (true, 1)
    } else {
        (false, 0)
    };
    let mut ranges = Vec::new();
    while i < body.len() {
        let (low, next) = class_char(body, i)?;
        let (high, after) = if body.get(next) == Some(&'-') {
            class_char(body, next + 1)?
        } else {
            (low, next)
        };
        ranges.push((low, high));
        i = after;
    }
    Some((negated, ranges))
}

/// The class character at `i` (taking an escape into account) and the index after it;
/// `None` for a `-`, a missing character or a `\\` ending the body.
fn class_char(body: &[char], i: usize) -> Option<(char, usize)> {
    match *body.get(i)? {
        '-' => None,
        '\\' => Some((*body.get(i + 1)?, i + 2)),
        c => Some((c, i + 1)),
    }
}

/// Whether the path components match the pattern's, a `**` component standing for any
/// number of them.
fn match_path(pattern: &[Vec<char>], name: &[Vec<char>]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        // A last `**` takes whatever is left, but something must be.
        Some((first, rest)) if first.as_slice() == ['*', '*'] && rest.is_empty() => {
            !name.is_empty()
        }
        Some((first, rest)) if first.as_slice() == ['*', '*'] => {
            (0..name.len()).any(|skip| match_path(rest, &name[skip..]))
        }
        Some((first, rest)) => match name.split_first() {
            Some((component, others)) => {
                match_component(first, component) && match_path(rest, others)
            }
            None => false,
        },
    }
}

/// Whether one component matches a pattern component without `/` or braces.
fn match_component(pattern: &[char], name: &[char]) -> bool {
    let Some(&first) = pattern.first() else {
        return name.is_empty();
    };
    match first {
        '*' => {
            let rest = &pattern[1..];
            (0..=name.len()).any(|skip| match_component(rest, &name[skip..]))
        }
        '?' => !name.is_empty() && match_component(&pattern[1..], &name[1..]),
        '[' => {
            let end = class_end(pattern, 0).expect("classes are checked when parsed");
            match name.split_first() {
                Some((&c, rest)) => {
                    in_class(&pattern[1..end], c) && match_component(&pattern[end + 1..], rest)
                }
                None => false,
            }
        }
        '\\' => name.first() == pattern.get(1) && match_component(&pattern[2..], &name[1..]),
        literal => name.first() == Some(&literal) && match_component(&pattern[1..], &name[1..]),
    }
}

/// Whether `c` belongs to a (well-formed) class body, between `[` and `]`.
fn in_class(body: &[char], c: char) -> bool {
    let (negated, ranges) = class_ranges(body).expect("classes are checked when parsed");
    ranges.iter().any(|&(low, high)| low <= c && c <= high) != negated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yes(pattern: &str, name: &str) {
        assert!(
            matches(pattern, name).unwrap(),
            "{pattern:?} matches {name:?}"
        );
    }

    fn no(pattern: &str, name: &str) {
        assert!(
            !matches(pattern, name).unwrap(),
            "{pattern:?} does not match {name:?}"
        );
    }

    #[test]
    fn literals_match_only_themselves() {
        yes("latest", "latest");
        no("latest", "latest2");
        no("latest", "Latest");
        yes("", "");
        no("", "x");
        yes("a/b", "a/b");
        no("a/b", "a/c");
    }

    #[test]
    fn a_star_stays_within_a_component() {
        yes("*", "anything-at-all");
        yes("*", "");
        no("*", "a/b");
        yes("v*", "v1.2.3");
        no("v*", "release-v1");
        yes("*-rc", "1.0-rc");
        yes("a*b*c", "aXbYc");
        no("a*b*c", "aXbY");
        yes("library/*", "library/nginx");
        no("library/*", "library/team/nginx");
        // `**` inside a component is a single star.
        yes("v**", "v1");
        no("v**", "v1/x");
    }

    #[test]
    fn a_double_star_spans_components() {
        yes("**", "nginx");
        yes("**", "team/a/b");
        yes("**", "");
        yes("team/**", "team/a/b");
        yes("team/**", "team/a");
        no("team/**", "team");
        no("team/**", "other/a");
        yes("**/nginx", "nginx");
        yes("**/nginx", "a/b/nginx");
        no("**/nginx", "a/b/nginx2");
        yes("a/**/z", "a/z");
        yes("a/**/z", "a/b/c/z");
        no("a/**/z", "a/b/c/y");
    }

    #[test]
    fn a_question_mark_is_one_character() {
        yes("v?", "v1");
        no("v?", "v10");
        no("v?", "v");
        no("a?b", "a/b");
        yes("?é", "xé");
    }

    #[test]
    fn classes_match_one_character() {
        yes("v[0-9]", "v7");
        no("v[0-9]", "vx");
        yes("[abc]x", "bx");
        no("[abc]x", "dx");
        yes("[^abc]x", "dx");
        no("[^abc]x", "ax");
        yes("[!x]", "!");
        no("[!x]", "y");
        yes("[a-cx-z]", "y");
        no("[a-cx-z]", "m");
        yes("[\\]]", "]");
        no("[a]", "");
    }

    #[test]
    fn braces_give_alternatives() {
        yes("{latest,stable}", "latest");
        yes("{latest,stable}", "stable");
        no("{latest,stable}", "beta");
        yes("v{1,2}.*", "v2.9");
        no("v{1,2}.*", "v3.0");
        yes("{a,b/c}/d", "b/c/d");
        yes("{a,{b,c}x}", "cx");
        yes("x{,-dev}", "x");
        yes("x{,-dev}", "x-dev");
        yes("{[0-9],z}", "5");
    }

    #[test]
    fn escapes_take_the_next_character_literally() {
        yes("\\*", "*");
        no("\\*", "x");
        yes("a\\?", "a?");
        no("a\\?", "ab");
        yes("\\{a,b\\}", "{a,b}");
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for bad in [
            "[abc", "a{b,c", "x\\", "[a/b]", "{a,[b}", "[]", "[-a]", "[a-]", "[a--]",
        ] {
            assert!(
                matches!(Pattern::parse(bad), Err(PatternError::Syntax(_))),
                "{bad:?}"
            );
        }
        let explosive = "{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}";
        assert!(matches!(
            Pattern::parse(explosive),
            Err(PatternError::TooManyAlternatives(_))
        ));
    }
}
