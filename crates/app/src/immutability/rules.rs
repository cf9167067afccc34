//! Harbor's immutable tag rules: the JSON a rule is written as, what makes one valid,
//! and which tags a project's rules protect. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;

use berth_meta::{ImmutableRule, ProjectRules, TagGuard};
use berth_oci::{RepositoryName, Tag};
use serde::{Deserialize, Serialize};

use crate::selectors::{Candidate, Decoration, KIND_DOUBLESTAR, PatternError, Selector};

/// The one action an immutable tag rule has.
pub const ACTION: &str = "immutable";
/// The one template an immutable tag rule has.
pub const TEMPLATE: &str = "immutable_template";
/// Most rules a project holds (Harbor's portal offers no more).
pub const MAX_RULES: u64 = 15;
/// The scope selector key naming repositories.
const REPOSITORY_SCOPE: &str = "repository";

/// A selector as Harbor's rule JSON gives it (`ImmutableSelector`; `extras` is not kept,
/// as Harbor does not keep it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorSpec {
    /// `doublestar`.
    #[serde(default)]
    pub kind: String,
    /// `matches`, `excludes`, `repoMatches`, `repoExcludes`, `nsMatches`, `nsExcludes`.
    #[serde(default)]
    pub decoration: String,
    /// The doublestar pattern.
    #[serde(default)]
    pub pattern: String,
}

/// What an immutable tag rule says (Harbor's `ImmutableRule` without its id and its
/// switch, which the store keeps beside it; `params` is not kept, as Harbor does not
/// keep it). Stored as the JSON text [`RuleDefinition::to_json`] gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDefinition {
    /// Harbor stores and shows it; it orders nothing.
    #[serde(default)]
    pub priority: i64,
    /// `immutable`.
    #[serde(default)]
    pub action: String,
    /// `immutable_template`.
    #[serde(default)]
    pub template: String,
    /// The tags the rule covers; Harbor applies the first.
    #[serde(default)]
    pub tag_selectors: Vec<SelectorSpec>,
    /// The repositories the rule covers, under the key `repository`; Harbor applies the
    /// first.
    #[serde(default)]
    pub scope_selectors: BTreeMap<String, Vec<SelectorSpec>>,
}

/// Why a rule definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRule {
    /// `action` is not `immutable`.
    #[error("the action must be {ACTION:?}, not {0:?}")]
    Action(String),
    /// `template` is not `immutable_template`.
    #[error("the template must be {TEMPLATE:?}, not {0:?}")]
    Template(String),
    /// No tag selector.
    #[error("a rule needs a tag selector")]
    NoTagSelector,
    /// No repository selector.
    #[error("a rule needs a repository selector (scope_selectors.repository)")]
    NoRepositorySelector,
    /// A selector of another kind than `doublestar`.
    #[error("selector kind {0:?} is not supported; use \"doublestar\"")]
    Kind(String),
    /// An unknown decoration.
    #[error(
        "selector decoration {0:?} is not one of matches, excludes, repoMatches, repoExcludes, nsMatches, nsExcludes"
    )]
    Decoration(String),
    /// An empty pattern.
    #[error("a selector needs a pattern")]
    NoPattern,
    /// A pattern that does not parse.
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

impl RuleDefinition {
    /// Reads a stored definition.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The text the definition is stored as; equal definitions give equal texts.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a definition serializes")
    }

    /// Checks what Harbor's rule model requires: the action and template, at least one
    /// tag and one repository selector, each of kind `doublestar` with a known
    /// decoration and a pattern that parses.
    pub fn validate(&self) -> Result<(), InvalidRule> {
        if self.action != ACTION {
            return Err(InvalidRule::Action(self.action.clone()));
        }
        if self.template != TEMPLATE {
            return Err(InvalidRule::Template(self.template.clone()));
        }
        if self.tag_selectors.is_empty() {
            return Err(InvalidRule::NoTagSelector);
        }
        if self.repository_selectors().is_empty() {
            return Err(InvalidRule::NoRepositorySelector);
        }
        self.tag_selectors
            .iter()
            .chain(self.scope_selectors.values().flatten())
            .try_for_each(|s| s.compile().map(drop))
    }

    fn repository_selectors(&self) -> &[SelectorSpec] {
        self.scope_selectors
            .get(REPOSITORY_SCOPE)
            .map_or(&[], Vec::as_slice)
    }
}

impl SelectorSpec {
    /// The selector, checked. Harbor applies immutability's tag selectors to tagged
    /// candidates only (`{"untagged": false}`).
    fn compile(&self) -> Result<Selector, InvalidRule> {
        if self.kind != KIND_DOUBLESTAR {
            return Err(InvalidRule::Kind(self.kind.clone()));
        }
        let decoration = Decoration::parse(&self.decoration)
            .ok_or_else(|| InvalidRule::Decoration(self.decoration.clone()))?;
        if self.pattern.is_empty() {
            return Err(InvalidRule::NoPattern);
        }
        Ok(Selector::new(decoration, &self.pattern, false)?)
    }
}

/// The rule that makes a tag immutable, as refusals name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectingRule {
    /// The rule's id.
    pub id: i64,
    /// Its repository selector, as `decoration "pattern"`.
    pub repositories: String,
    /// Its tag selector, as `decoration "pattern"`.
    pub tags: String,
}

impl fmt::Display for ProtectingRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "immutable tag rule {}: repositories {}, tags {}",
            self.id, self.repositories, self.tags
        )
    }
}

/// An enabled rule, ready to apply.
#[derive(Debug, Clone)]
struct ActiveRule {
    described: ProtectingRule,
    repositories: Selector,
    tags: Selector,
}

impl ActiveRule {
    /// The rule a stored one applies as: `None` for a disabled rule, and for one
    /// without the selectors Harbor applies (the first of each) or whose selectors do
    /// not compile (neither is ever stored, both are validated first).
    fn of(rule: &ImmutableRule) -> Option<Self> {
        if rule.disabled {
            return None;
        }
        let definition = RuleDefinition::from_json(&rule.definition).ok()?;
        let repositories = definition.repository_selectors().first()?;
        let tags = definition.tag_selectors.first()?;
        let shown = |s: &SelectorSpec| format!("{} {:?}", s.decoration, s.pattern);
        Some(ActiveRule {
            described: ProtectingRule {
                id: rule.id,
                repositories: shown(repositories),
                tags: shown(tags),
            },
            repositories: repositories.compile().ok()?,
            tags: tags.compile().ok()?,
        })
    }

    /// Whether the rule protects this tag of a repository (named without its project),
    /// as Harbor's matcher decides: the repository selector, then the tag selector, each
    /// picks the candidate.
    fn protects(&self, repository: &str, tag: &str) -> bool {
        let tags = [tag];
        let candidate = Candidate {
            namespace: "",
            repository,
            tags: &tags,
        };
        self.repositories.selects(&candidate) && self.tags.selects(&candidate)
    }
}

/// A project's enabled rules as one read saw them.
#[derive(Debug, Clone)]
pub struct Protection {
    project_id: Option<i64>,
    revision: i64,
    rules: Vec<ActiveRule>,
}

impl Protection {
    /// The protection a project's stored rules give.
    pub fn new(stored: &ProjectRules) -> Self {
        Protection {
            project_id: stored.project_id,
            revision: stored.revision,
            rules: stored.rules.iter().filter_map(ActiveRule::of).collect(),
        }
    }

    /// The first rule (by id) that makes `tag` of `repository` immutable, if any.
    pub fn rule_for(&self, repository: &RepositoryName, tag: &Tag) -> Option<&ProtectingRule> {
        let name = repository
            .as_str()
            .split_once('/')
            .map_or(repository.as_str(), |(_, rest)| rest);
        self.rules
            .iter()
            .find(|r| r.protects(name, tag.as_str()))
            .map(|r| &r.described)
    }

    /// A guard for a write decided on these rules (see [`TagGuard`] for `tags`).
    pub fn guard(&self, tags: Vec<Tag>) -> TagGuard {
        TagGuard {
            project_id: self.project_id,
            revision: self.revision,
            tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(decoration: &str, pattern: &str) -> SelectorSpec {
        SelectorSpec {
            kind: KIND_DOUBLESTAR.into(),
            decoration: decoration.into(),
            pattern: pattern.into(),
        }
    }

    fn definition(repositories: SelectorSpec, tags: SelectorSpec) -> RuleDefinition {
        RuleDefinition {
            priority: 0,
            action: ACTION.into(),
            template: TEMPLATE.into(),
            tag_selectors: vec![tags],
            scope_selectors: BTreeMap::from([(REPOSITORY_SCOPE.into(), vec![repositories])]),
        }
    }

    fn stored(id: i64, disabled: bool, d: &RuleDefinition) -> ImmutableRule {
        ImmutableRule {
            id,
            project_id: 1,
            disabled,
            definition: d.to_json(),
        }
    }

    fn protection(rules: Vec<ImmutableRule>) -> Protection {
        Protection::new(&ProjectRules {
            project_id: Some(1),
            revision: 7,
            rules,
        })
    }

    fn rule_for(p: &Protection, repository: &str, tag: &str) -> Option<i64> {
        let repository = RepositoryName::parse(repository).unwrap();
        let tag = Tag::parse(tag).unwrap();
        p.rule_for(&repository, &tag).map(|r| r.id)
    }

    #[test]
    fn harbor_rule_json_round_trips_without_what_harbor_drops() {
        let body = r#"{"id":0,"priority":0,"disabled":false,"action":"immutable",
            "template":"immutable_template","params":{"x":1},
            "tag_selectors":[{"kind":"doublestar","decoration":"matches","pattern":"v*","extras":""}],
            "scope_selectors":{"repository":[{"kind":"doublestar","decoration":"repoMatches","pattern":"**"}]}}"#;
        let d = RuleDefinition::from_json(body).unwrap();
        d.validate().unwrap();
        assert_eq!(
            d,
            definition(selector("repoMatches", "**"), selector("matches", "v*"))
        );
        assert_eq!(RuleDefinition::from_json(&d.to_json()).unwrap(), d);
    }

    #[test]
    fn invalid_definitions_say_why() {
        let good = definition(selector("repoMatches", "**"), selector("matches", "v*"));
        let cases: Vec<(RuleDefinition, InvalidRule)> = vec![
            (
                RuleDefinition {
                    action: "retain".into(),
                    ..good.clone()
                },
                InvalidRule::Action("retain".into()),
            ),
            (
                RuleDefinition {
                    template: "always".into(),
                    ..good.clone()
                },
                InvalidRule::Template("always".into()),
            ),
            (
                RuleDefinition {
                    tag_selectors: Vec::new(),
                    ..good.clone()
                },
                InvalidRule::NoTagSelector,
            ),
            (
                RuleDefinition {
                    scope_selectors: BTreeMap::new(),
                    ..good.clone()
                },
                InvalidRule::NoRepositorySelector,
            ),
            (
                definition(
                    selector("repoMatches", "**"),
                    SelectorSpec {
                        kind: "regex".into(),
                        ..selector("matches", "v*")
                    },
                ),
                InvalidRule::Kind("regex".into()),
            ),
            (
                definition(selector("startsWith", "**"), selector("matches", "v*")),
                InvalidRule::Decoration("startsWith".into()),
            ),
            (
                definition(selector("repoMatches", ""), selector("matches", "v*")),
                InvalidRule::NoPattern,
            ),
            (
                definition(selector("repoMatches", "**"), selector("matches", "v[")),
                InvalidRule::Pattern(PatternError::Syntax("v[".into())),
            ),
        ];
        for (d, why) in cases {
            assert_eq!(d.validate(), Err(why));
        }
    }

    #[test]
    fn rules_protect_tags_of_repositories_named_without_their_project() {
        let p = protection(vec![
            stored(
                1,
                false,
                &definition(
                    selector("repoMatches", "team/**"),
                    selector("matches", "v*"),
                ),
            ),
            stored(
                2,
                false,
                &definition(
                    selector("repoMatches", "**"),
                    selector("matches", "{latest,stable}"),
                ),
            ),
            stored(
                3,
                true,
                &definition(selector("repoMatches", "**"), selector("matches", "**")),
            ),
            stored(
                4,
                false,
                &definition(
                    selector("repoExcludes", "tmp*"),
                    selector("excludes", "dev-*"),
                ),
            ),
        ]);
        assert_eq!(rule_for(&p, "lib/team/app", "v1"), Some(1));
        assert_eq!(rule_for(&p, "lib/app", "v1"), Some(4));
        assert_eq!(rule_for(&p, "lib/team/app", "stable"), Some(2));
        assert_eq!(
            rule_for(&p, "lib/tmp-x", "dev-1"),
            None,
            "disabled rule 3 protects nothing"
        );
        assert_eq!(rule_for(&p, "lib/tmp-x", "latest"), Some(2));
        assert_eq!(rule_for(&p, "lib/app", "dev-1"), None);
        // The project is no part of the name the repository selector sees.
        let q = protection(vec![stored(
            5,
            false,
            &definition(selector("repoMatches", "lib/*"), selector("matches", "*")),
        )]);
        assert_eq!(rule_for(&q, "lib/app", "v1"), None);
        assert_eq!(rule_for(&q, "x/lib/app", "v1"), Some(5));
    }

    #[test]
    fn only_the_first_selector_of_each_list_applies() {
        let mut d = definition(selector("repoMatches", "**"), selector("matches", "v*"));
        d.tag_selectors.push(selector("matches", "latest"));
        let p = protection(vec![stored(1, false, &d)]);
        assert_eq!(rule_for(&p, "lib/app", "v2"), Some(1));
        assert_eq!(rule_for(&p, "lib/app", "latest"), None);
    }

    #[test]
    fn refusals_name_the_rule() {
        let p = protection(vec![stored(
            9,
            false,
            &definition(selector("repoMatches", "**"), selector("matches", "v*")),
        )]);
        let repository = RepositoryName::parse("lib/app").unwrap();
        let rule = p.rule_for(&repository, &Tag::parse("v1").unwrap()).unwrap();
        assert_eq!(
            rule.to_string(),
            r#"immutable tag rule 9: repositories repoMatches "**", tags matches "v*""#
        );
        let guard = p.guard(vec![Tag::parse("v1").unwrap()]);
        assert_eq!((guard.project_id, guard.revision), (Some(1), 7));
    }
}
