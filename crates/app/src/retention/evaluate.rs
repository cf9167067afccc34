//! What a policy keeps and deletes of a repository, as Harbor's `src/pkg/retention`
//! decides it. Pure: no I/O.
//!
//! - A repository is in a policy's scope when an enabled rule's repository selectors
//!   all select it (by its name without the project); each rule that does applies to
//!   it. A repository no rule applies to is left alone (it gets no task).
//! - Each applying rule filters the repository's candidates through all its tag and
//!   label selectors, and its template keeps some of what is left.
//! - The algorithm is `or`: a candidate is kept when any rule keeps it. Every other
//!   candidate of the repository is deleted, those no rule selected included, unless an
//!   immutable tag rule protects one of its tags (then it is kept, marked immutable).
//! - Retention works on artifacts: an artifact kept by one of its tags keeps all of
//!   them. Its push time is the latest of its own and its tags', and so is its pull
//!   time; one never pulled counts as pulled at Go's zero time (year 1), as in Harbor.
//! - Ties in `latestPushedK` and `latestPulledN` (which Harbor breaks arbitrarily) go
//!   to the artifact stored last.

use berth_meta::RetentionCandidate;

use super::policy::{ArtifactSelector, CompiledPolicy, CompiledRule, Template};
use crate::immutability::ProtectingRule;
use crate::selectors::Candidate as SelectorCandidate;

/// Go's zero time in Unix seconds: Harbor's pull time of an artifact never pulled.
const NEVER_SECS: i64 = -62_135_596_800;
const DAY_MS: i64 = 86_400_000;

/// An artifact as evaluation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The artifact's id.
    pub id: i64,
    /// Its digest.
    pub digest: String,
    /// Its tags (none: untagged).
    pub tags: Vec<String>,
    /// The names of its labels.
    pub labels: Vec<String>,
    /// The latest of its push time and its tags' (Unix milliseconds).
    pub pushed_at: i64,
    /// The latest of its pull time and its tags', if it was ever pulled.
    pub pulled_at: Option<i64>,
}

impl Candidate {
    /// The candidate a stored one is.
    pub fn of(stored: &RetentionCandidate) -> Self {
        let pushed_at = (stored.tags.iter().map(|t| t.pushed_at)).fold(stored.pushed_at, i64::max);
        let pulled_at = (stored.tags.iter().filter_map(|t| t.pulled_at))
            .chain(stored.pulled_at)
            .max();
        Candidate {
            id: stored.id,
            digest: stored.digest.to_string(),
            tags: stored.tags.iter().map(|t| t.name.to_string()).collect(),
            labels: stored.labels.clone(),
            pushed_at,
            pulled_at,
        }
    }

    fn pushed_secs(&self) -> i64 {
        self.pushed_at.div_euclid(1000)
    }

    fn pulled_secs(&self) -> i64 {
        self.pulled_at.map_or(NEVER_SECS, |p| p.div_euclid(1000))
    }
}

/// What the policy decided for a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Kept by these rules (their positions in the policy, from 0).
    Retained(Vec<usize>),
    /// Not kept by any rule, but protected by an immutable tag rule: kept.
    Immutable(ProtectingRule),
    /// Deleted.
    Delete,
}

impl CompiledRule {
    /// Whether the rule's selectors all pick `candidate`.
    fn selects(&self, candidate: &Candidate) -> bool {
        let tags: Vec<&str> = candidate.tags.iter().map(String::as_str).collect();
        let shown = SelectorCandidate {
            namespace: "",
            repository: "",
            tags: &tags,
        };
        self.selectors.iter().all(|s| match s {
            ArtifactSelector::Tags(selector) => selector.selects(&shown),
            ArtifactSelector::Labels { with, names } => {
                names.iter().all(|n| candidate.labels.contains(n) == *with)
            }
        })
    }

    /// What the rule's template keeps of `selected`.
    fn keep<'a>(&self, mut selected: Vec<&'a Candidate>, now_ms: i64) -> Vec<&'a Candidate> {
        // Harbor compares Unix seconds: the cut-off is `now - n days`, truncated.
        let since = |days: i64| {
            now_ms
                .saturating_sub(days.saturating_mul(DAY_MS))
                .div_euclid(1000)
        };
        match self.template {
            Template::Always => selected,
            Template::LatestPushedK(k) => {
                selected.sort_by_key(|c| std::cmp::Reverse((c.pushed_secs(), c.id)));
                selected.truncate(k);
                selected
            }
            Template::LatestPulledN(n) => {
                selected.sort_by_key(|c| std::cmp::Reverse((c.pulled_secs(), c.id)));
                selected.truncate(n);
                selected
            }
            Template::NDaysSinceLastPush(days) => {
                let min = since(days);
                selected.retain(|c| c.pushed_secs() >= min);
                selected
            }
            Template::NDaysSinceLastPull(days) => {
                let min = since(days);
                selected.retain(|c| c.pulled_secs() >= min);
                selected
            }
        }
    }
}

impl CompiledPolicy {
    /// The enabled rules that apply to repository `name` (without its project), by
    /// position; none when the policy leaves the repository alone.
    pub fn rules_for(&self, name: &str) -> Vec<usize> {
        let shown = SelectorCandidate {
            namespace: "",
            repository: name,
            tags: &[],
        };
        (self.rules.iter())
            .filter(|r| !r.disabled && r.repositories.iter().all(|s| s.selects(&shown)))
            .map(|r| r.index)
            .collect()
    }

    /// Decides each of a repository's candidates under the rules at positions `rules`
    /// (those [`CompiledPolicy::rules_for`] gave), at `now_ms`; `protected` names the
    /// immutable tag rule protecting one of a candidate's tags, if any. A rule without
    /// a tag selector is not evaluated, as in Harbor; when no rule is, nothing is
    /// deleted.
    pub fn evaluate(
        &self,
        rules: &[usize],
        candidates: &[Candidate],
        now_ms: i64,
        protected: impl Fn(&Candidate) -> Option<ProtectingRule>,
    ) -> Vec<Verdict> {
        let mut kept_by: Vec<Vec<usize>> = vec![Vec::new(); candidates.len()];
        let mut evaluated = false;
        for rule in rules.iter().filter_map(|&i| self.rules.get(i)) {
            if rule.selectors.is_empty() {
                continue;
            }
            evaluated = true;
            let selected: Vec<&Candidate> = candidates.iter().filter(|c| rule.selects(c)).collect();
            for kept in rule.keep(selected, now_ms) {
                let position = candidates
                    .iter()
                    .position(|c| std::ptr::eq(c, kept))
                    .expect("kept from the candidates");
                kept_by[position].push(rule.index);
            }
        }
        (candidates.iter().zip(kept_by))
            .map(|(candidate, by)| {
                if !by.is_empty() || !evaluated {
                    return Verdict::Retained(by);
                }
                match protected(candidate) {
                    Some(rule) => Verdict::Immutable(rule),
                    None => Verdict::Delete,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    //! The scenario table: tags × push and pull times × rules × immutability, with the
    //! kept and deleted sets Harbor's documentation ("Create Tag Retention Rules") and
    //! its `src/pkg/retention` give.

    use std::collections::BTreeSet;

    use berth_meta::{ImmutableRule, ProjectRules};
    use berth_oci::{RepositoryName, Tag};
    use serde_json::{Value, json};

    use super::*;
    use crate::immutability::Protection;
    use crate::retention::PolicyDefinition;

    const NOW: i64 = 1_800_000_000_000;

    /// An artifact: its tags (`-` for none), pushed and (maybe) pulled so many hours
    /// ago, and its labels.
    struct A {
        tags: &'static str,
        pushed_h: i64,
        pulled_h: Option<i64>,
        labels: &'static [&'static str],
    }

    const fn a(tags: &'static str, pushed_h: i64, pulled_h: Option<i64>) -> A {
        A {
            tags,
            pushed_h,
            pulled_h,
            labels: &[],
        }
    }

    const fn labelled(tags: &'static str, pushed_h: i64, labels: &'static [&'static str]) -> A {
        A {
            tags,
            pushed_h,
            pulled_h: None,
            labels,
        }
    }

    fn candidates(artifacts: &[A]) -> Vec<Candidate> {
        (artifacts.iter().enumerate())
            .map(|(i, a)| Candidate {
                id: i as i64 + 1,
                digest: format!("sha256:{:064x}", i + 1),
                tags: match a.tags {
                    "-" => Vec::new(),
                    t => t.split(',').map(str::to_owned).collect(),
                },
                labels: a.labels.iter().map(|l| l.to_string()).collect(),
                pushed_at: NOW - a.pushed_h * 3_600_000,
                pulled_at: a.pulled_h.map(|h| NOW - h * 3_600_000),
            })
            .collect()
    }

    /// How a candidate is named in the expected sets: its tags, or `#id` untagged.
    fn name(c: &Candidate) -> String {
        if c.tags.is_empty() {
            format!("#{}", c.id)
        } else {
            c.tags.join(",")
        }
    }

    /// A rule: template and parameter, tag selector (`matches:**`,
    /// `excludes:latest`, `matches:**:untagged=false`, `label:withLabels:a,b`, …) and
    /// repository pattern.
    fn rule(template: &str, param: i64, tags: &[&str], repositories: &str) -> Value {
        let tag_selectors: Vec<Value> = tags
            .iter()
            .map(|s| {
                let parts: Vec<&str> = s.splitn(3, ':').collect();
                match parts[..] {
                    ["label", decoration, pattern] => {
                        json!({"kind": "label", "decoration": decoration, "pattern": pattern})
                    }
                    [decoration, pattern, extras] => json!({
                        "kind": "doublestar", "decoration": decoration, "pattern": pattern,
                        "extras": format!(
                            r#"{{"untagged":{}}}"#,
                            extras.trim_start_matches("untagged=")
                        ),
                    }),
                    [decoration, pattern] => {
                        json!({"kind": "doublestar", "decoration": decoration, "pattern": pattern})
                    }
                    _ => unreachable!("{s}"),
                }
            })
            .collect();
        json!({
            "action": "retain", "template": template, "params": {template: param},
            "tag_selectors": tag_selectors,
            "scope_selectors": {"repository": [
                {"kind": "doublestar", "decoration": "repoMatches", "pattern": repositories}]},
        })
    }

    fn policy(rules: &[Value]) -> CompiledPolicy {
        let definition: PolicyDefinition = serde_json::from_value(json!({
            "algorithm": "or", "rules": rules,
            "trigger": {"kind": "Schedule", "settings": {"cron": ""}},
            "scope": {"level": "project", "ref": 1},
        }))
        .unwrap();
        definition.validate().unwrap()
    }

    /// Immutable tag rules (tag pattern, repository pattern) of the project.
    fn protection(rules: &[(&str, &str)]) -> Protection {
        let stored = rules
            .iter()
            .enumerate()
            .map(|(i, (tags, repositories))| ImmutableRule {
                id: i as i64 + 1,
                project_id: 1,
                disabled: false,
                definition: json!({
                    "action": "immutable", "template": "immutable_template",
                    "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": tags}],
                    "scope_selectors": {"repository": [
                        {"kind": "doublestar", "decoration": "repoMatches", "pattern": repositories}]},
                })
                .to_string(),
            })
            .collect();
        Protection::new(&ProjectRules {
            project_id: Some(1),
            revision: 1,
            rules: stored,
        })
    }

    struct Scenario {
        name: &'static str,
        repository: &'static str,
        artifacts: Vec<A>,
        rules: Vec<Value>,
        immutable: Vec<(&'static str, &'static str)>,
        kept: &'static [&'static str],
        immutable_kept: &'static [&'static str],
        deleted: &'static [&'static str],
    }

    fn run(s: &Scenario) {
        let compiled = policy(&s.rules);
        let candidates = candidates(&s.artifacts);
        let protection = protection(&s.immutable);
        let repository = RepositoryName::parse(&format!("p/{}", s.repository)).unwrap();
        let rules = compiled.rules_for(s.repository);
        let verdicts = compiled.evaluate(&rules, &candidates, NOW, |c| {
            c.tags.iter().find_map(|t| {
                protection
                    .rule_for(&repository, &Tag::parse(t).unwrap())
                    .cloned()
            })
        });
        let mut kept = BTreeSet::new();
        let mut immutable = BTreeSet::new();
        let mut deleted = BTreeSet::new();
        for (c, v) in candidates.iter().zip(&verdicts) {
            match v {
                Verdict::Retained(_) => kept.insert(name(c)),
                Verdict::Immutable(_) => immutable.insert(name(c)),
                Verdict::Delete => deleted.insert(name(c)),
            };
        }
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            (kept, immutable, deleted),
            (set(s.kept), set(s.immutable_kept), set(s.deleted)),
            "{}",
            s.name
        );
    }

    /// Twelve tags pulled within the week (`a1` the latest), as repository A of the
    /// documentation's examples (scaled down from 100).
    fn busy_repository() -> Vec<A> {
        const TAGS: [&str; 12] = [
            "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "a11", "a12",
        ];
        (0..12)
            .map(|i| a(TAGS[i], 500 + i as i64, Some(1 + i as i64)))
            .collect()
    }

    /// Six tags pulled more than a month ago, as repositories B to E.
    fn idle_repository() -> Vec<A> {
        ["b1", "b2", "b3", "b4", "b5", "b6"]
            .into_iter()
            .enumerate()
            .map(|(i, t)| a(t, 2000 + i as i64, Some(800 + i as i64)))
            .collect()
    }

    fn scenarios() -> Vec<Scenario> {
        let all = &["matches:**"][..];
        vec![
            Scenario {
                name: "documentation example 1: the 10 most recently pulled, per repository (A)",
                repository: "a",
                artifacts: busy_repository(),
                rules: vec![rule("latestPulledN", 10, all, "**")],
                immutable: vec![],
                kept: &["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10"],
                immutable_kept: &[],
                deleted: &["a11", "a12"],
            },
            Scenario {
                name: "documentation example 1: a repository of fewer keeps them all (B)",
                repository: "b",
                artifacts: idle_repository(),
                rules: vec![rule("latestPulledN", 10, all, "**")],
                immutable: vec![],
                kept: &["b1", "b2", "b3", "b4", "b5", "b6"],
                immutable_kept: &[],
                deleted: &[],
            },
            Scenario {
                name: "documentation example 2: pulled in the last 7 days (A keeps all)",
                repository: "a",
                artifacts: busy_repository(),
                rules: vec![rule("nDaysSinceLastPull", 7, all, "**")],
                immutable: vec![],
                kept: &[
                    "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "a11", "a12",
                ],
                immutable_kept: &[],
                deleted: &[],
            },
            Scenario {
                name: "documentation example 2: pulled in the last 7 days (B keeps none)",
                repository: "b",
                artifacts: idle_repository(),
                rules: vec![rule("nDaysSinceLastPull", 7, all, "**")],
                immutable: vec![],
                kept: &[],
                immutable_kept: &[],
                deleted: &["b1", "b2", "b3", "b4", "b5", "b6"],
            },
            Scenario {
                name: "latestPushedK keeps the k pushed last",
                repository: "app",
                artifacts: vec![
                    a("v1", 40, None),
                    a("v2", 30, None),
                    a("v3", 20, None),
                    a("v4", 10, None),
                ],
                rules: vec![rule("latestPushedK", 2, all, "**")],
                immutable: vec![],
                kept: &["v3", "v4"],
                immutable_kept: &[],
                deleted: &["v1", "v2"],
            },
            Scenario {
                name: "latestPushedK counts artifacts: one with two tags is one of the k",
                repository: "app",
                artifacts: vec![
                    A {
                        tags: "old,moved",
                        pushed_h: 50,
                        pulled_h: None,
                        labels: &[],
                    },
                    a("v2", 30, None),
                    a("v3", 20, None),
                ],
                rules: vec![rule("latestPushedK", 1, all, "**")],
                immutable: vec![],
                kept: &["v3"],
                immutable_kept: &[],
                deleted: &["old,moved", "v2"],
            },
            Scenario {
                name: "latestPulledN: never pulled sorts last, ties go to the newest",
                repository: "app",
                artifacts: vec![
                    a("n1", 40, None),
                    a("p1", 30, Some(5)),
                    a("n2", 20, None),
                    a("p2", 10, Some(1)),
                ],
                rules: vec![rule("latestPulledN", 3, all, "**")],
                immutable: vec![],
                kept: &["p2", "p1", "n2"],
                immutable_kept: &[],
                deleted: &["n1"],
            },
            Scenario {
                name: "nDaysSinceLastPush keeps those pushed within n days",
                repository: "app",
                artifacts: vec![
                    a("old", 24 * 10, None),
                    a("edge", 24 * 3, None),
                    a("new", 1, None),
                ],
                rules: vec![rule("nDaysSinceLastPush", 3, all, "**")],
                immutable: vec![],
                kept: &["edge", "new"],
                immutable_kept: &[],
                deleted: &["old"],
            },
            Scenario {
                name: "nDaysSinceLastPull: never pulled is not kept",
                repository: "app",
                artifacts: vec![
                    a("never", 1, None),
                    a("stale", 1000, Some(24 * 8)),
                    a("fresh", 1000, Some(24 * 6)),
                ],
                rules: vec![rule("nDaysSinceLastPull", 7, all, "**")],
                immutable: vec![],
                kept: &["fresh"],
                immutable_kept: &[],
                deleted: &["never", "stale"],
            },
            Scenario {
                name: "always, on some tags: what no rule keeps is deleted, unselected too",
                repository: "app",
                artifacts: vec![
                    a("release-1", 10, None),
                    a("dev-1", 10, None),
                    a("release-2", 10, None),
                ],
                rules: vec![rule("always", 0, &["matches:release-*"], "**")],
                immutable: vec![],
                kept: &["release-1", "release-2"],
                immutable_kept: &[],
                deleted: &["dev-1"],
            },
            Scenario {
                name: "rules are ORed: kept by either",
                repository: "app",
                artifacts: vec![
                    a("v1", 100, Some(1)),
                    a("v2", 90, None),
                    a("v3", 80, None),
                    a("latest", 70, None),
                    a("stable", 200, None),
                ],
                rules: vec![
                    rule("latestPushedK", 1, &["matches:v*"], "**"),
                    rule("nDaysSinceLastPull", 1, all, "**"),
                    rule("always", 0, &["matches:{latest,stable}"], "**"),
                ],
                immutable: vec![],
                kept: &["v3", "v1", "latest", "stable"],
                immutable_kept: &[],
                deleted: &["v2"],
            },
            Scenario {
                name: "an artifact kept by one tag keeps all its tags",
                repository: "app",
                artifacts: vec![
                    A {
                        tags: "1.0,latest",
                        pushed_h: 50,
                        pulled_h: None,
                        labels: &[],
                    },
                    a("0.9", 60, None),
                ],
                rules: vec![rule("always", 0, &["matches:latest"], "**")],
                immutable: vec![],
                kept: &["1.0,latest"],
                immutable_kept: &[],
                deleted: &["0.9"],
            },
            Scenario {
                name: "excludes selects an artifact with any tag outside the pattern",
                repository: "app",
                artifacts: vec![
                    a("latest", 10, None),
                    A {
                        tags: "v1,latest",
                        pushed_h: 20,
                        pulled_h: None,
                        labels: &[],
                    },
                    a("v2", 30, None),
                ],
                rules: vec![rule("always", 0, &["excludes:latest"], "**")],
                immutable: vec![],
                kept: &["v1,latest", "v2"],
                immutable_kept: &[],
                deleted: &["latest"],
            },
            Scenario {
                name: "untagged artifacts: matches selects them by default",
                repository: "app",
                artifacts: vec![a("v1", 30, None), a("-", 20, None), a("-", 10, None)],
                rules: vec![rule("latestPushedK", 2, all, "**")],
                immutable: vec![],
                kept: &["#2", "#3"],
                immutable_kept: &[],
                deleted: &["v1"],
            },
            Scenario {
                name: "untagged artifacts: {\"untagged\":false} leaves them out, so they go",
                repository: "app",
                artifacts: vec![a("v1", 30, None), a("-", 20, None), a("-", 10, None)],
                rules: vec![rule(
                    "latestPushedK",
                    2,
                    &["matches:**:untagged=false"],
                    "**",
                )],
                immutable: vec![],
                kept: &["v1"],
                immutable_kept: &[],
                deleted: &["#2", "#3"],
            },
            Scenario {
                name: "untagged artifacts: excludes selects them by default (Harbor's inversion)",
                repository: "app",
                artifacts: vec![a("v1", 30, None), a("-", 20, None)],
                rules: vec![rule(
                    "always",
                    0,
                    &["excludes:nothing:untagged=false"],
                    "**",
                )],
                immutable: vec![],
                kept: &["v1", "#2"],
                immutable_kept: &[],
                deleted: &[],
            },
            Scenario {
                name: "untagged artifacts: excludes with {\"untagged\":true} leaves them out",
                repository: "app",
                artifacts: vec![a("v1", 30, None), a("-", 20, None)],
                rules: vec![rule("always", 0, &["excludes:nothing:untagged=true"], "**")],
                immutable: vec![],
                kept: &["v1"],
                immutable_kept: &[],
                deleted: &["#2"],
            },
            Scenario {
                name: "label selectors: with all the labels, or with none of them",
                repository: "app",
                artifacts: vec![
                    labelled("both", 10, &["prod", "keep"]),
                    labelled("prod", 10, &["prod"]),
                    labelled("none", 10, &[]),
                    labelled("skip", 10, &["skip"]),
                ],
                rules: vec![
                    rule(
                        "always",
                        0,
                        &["matches:**", "label:withLabels:prod,keep"],
                        "**",
                    ),
                    rule("always", 0, &["label:withoutLabels:prod,skip"], "**"),
                ],
                immutable: vec![],
                kept: &["both", "none"],
                immutable_kept: &[],
                deleted: &["prod", "skip"],
            },
            Scenario {
                name: "an immutable tag is never deleted",
                repository: "app",
                artifacts: vec![a("v1", 30, None), a("v2", 20, None), a("v3", 10, None)],
                rules: vec![rule("latestPushedK", 1, all, "**")],
                immutable: vec![("v1", "**")],
                kept: &["v3"],
                immutable_kept: &["v1"],
                deleted: &["v2"],
            },
            Scenario {
                name: "immutability of another repository protects nothing here",
                repository: "app",
                artifacts: vec![a("v1", 30, None), a("v2", 20, None)],
                rules: vec![rule("latestPushedK", 1, all, "**")],
                immutable: vec![("**", "other")],
                kept: &["v2"],
                immutable_kept: &[],
                deleted: &["v1"],
            },
            Scenario {
                name: "a repository no rule selects is left alone",
                repository: "tools/lint",
                artifacts: vec![a("v1", 30, None), a("v2", 20, None)],
                rules: vec![rule("latestPushedK", 0, all, "team/**")],
                immutable: vec![],
                kept: &["v1", "v2"],
                immutable_kept: &[],
                deleted: &[],
            },
            Scenario {
                name: "rules apply only to the repositories they select",
                repository: "team/app",
                artifacts: vec![a("v1", 30, None), a("v2", 20, None), a("v3", 10, None)],
                rules: vec![
                    rule("latestPushedK", 1, all, "team/**"),
                    rule("always", 0, all, "tools/**"),
                ],
                immutable: vec![],
                kept: &["v3"],
                immutable_kept: &[],
                deleted: &["v1", "v2"],
            },
            Scenario {
                name: "k = 0 keeps nothing",
                repository: "app",
                artifacts: vec![a("v1", 30, None), a("-", 20, None)],
                rules: vec![rule("latestPushedK", 0, all, "**")],
                immutable: vec![],
                kept: &[],
                immutable_kept: &[],
                deleted: &["v1", "#2"],
            },
        ]
    }

    #[test]
    fn the_scenario_table_keeps_and_deletes_as_harbor() {
        for scenario in scenarios() {
            run(&scenario);
        }
    }

    #[test]
    fn repositories_are_selected_by_every_selector_of_enabled_rules() {
        let mut excluded = rule("always", 0, &["matches:**"], "**");
        excluded["scope_selectors"]["repository"]
            .as_array_mut()
            .unwrap()
            .push(
                json!({"kind": "doublestar", "decoration": "repoExcludes", "pattern": "**/cache"}),
            );
        let mut disabled = rule("always", 0, &["matches:**"], "legacy/**");
        disabled["disabled"] = json!(true);
        let mut everywhere = rule("latestPushedK", 5, &["matches:**"], "**");
        everywhere["scope_selectors"] = json!({});
        let compiled = policy(&[excluded, disabled, everywhere]);
        assert_eq!(compiled.rules_for("app"), [0, 2]);
        assert_eq!(compiled.rules_for("team/cache"), [2]);
        assert_eq!(compiled.rules_for("legacy/app"), [0, 2]);
        let none = policy(&[]);
        assert!(none.rules_for("app").is_empty());
    }

    #[test]
    fn verdicts_name_every_rule_that_kept_a_candidate() {
        let compiled = policy(&[
            rule("always", 0, &["matches:v*"], "**"),
            rule("latestPushedK", 1, &["matches:**"], "**"),
        ]);
        let candidates = candidates(&[a("v1", 20, None), a("v2", 10, None), a("x", 30, None)]);
        let verdicts = compiled.evaluate(&[0, 1], &candidates, NOW, |_| None);
        assert_eq!(
            verdicts,
            [
                Verdict::Retained(vec![0]),
                Verdict::Retained(vec![0, 1]),
                Verdict::Delete
            ]
        );
        // With no rule evaluated, nothing is deleted.
        let kept = compiled.evaluate(&[], &candidates, NOW, |_| None);
        assert!(kept.iter().all(|v| *v == Verdict::Retained(Vec::new())));
    }

    #[test]
    fn candidates_take_their_tags_latest_times() {
        let stored = RetentionCandidate {
            id: 7,
            digest: berth_oci::Digest::parse(&format!("sha256:{:064x}", 7)).unwrap(),
            pushed_at: 100,
            pulled_at: Some(150),
            tags: vec![
                berth_meta::TagInfo {
                    name: Tag::parse("a").unwrap(),
                    artifact_id: 7,
                    pushed_at: 300,
                    pulled_at: None,
                },
                berth_meta::TagInfo {
                    name: Tag::parse("b").unwrap(),
                    artifact_id: 7,
                    pushed_at: 200,
                    pulled_at: Some(400),
                },
            ],
            labels: vec!["l".into()],
        };
        let c = Candidate::of(&stored);
        assert_eq!(
            (c.tags, c.labels, c.pushed_at, c.pulled_at),
            (
                vec!["a".to_owned(), "b".to_owned()],
                vec!["l".to_owned()],
                300,
                Some(400)
            )
        );
    }
}
