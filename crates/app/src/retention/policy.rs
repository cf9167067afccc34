//! Harbor's retention policy as its API writes it (`RetentionPolicy`), what makes one
//! valid, and the checked form evaluation applies. Pure: no I/O.

use std::collections::BTreeMap;

use berth_meta::CronSchedule;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::selectors::{Decoration, KIND_DOUBLESTAR, PatternError, Selector};

/// Most rules a policy holds (Harbor's API refuses more).
pub const MAX_RULES: usize = 15;
/// The one algorithm Harbor has: a candidate is kept when any rule keeps it.
pub const ALGORITHM_OR: &str = "or";
/// The one action a rule has.
pub const ACTION_RETAIN: &str = "retain";
/// The one trigger kind.
pub const TRIGGER_SCHEDULE: &str = "Schedule";
/// The trigger setting holding the cron.
pub const SETTING_CRON: &str = "cron";
/// The trigger setting Harbor adds when it shows a policy.
pub const SETTING_NEXT: &str = "next_scheduled_time";
/// The one scope level.
pub const SCOPE_PROJECT: &str = "project";
/// The scope selector key naming repositories.
pub const REPOSITORY_SCOPE: &str = "repository";
/// The selector kind matching labels.
pub const KIND_LABEL: &str = "label";

/// Reads `null` as the default, as Go reads a JSON null into a value.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A selector as Harbor's JSON gives it (`RetentionSelector`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorSpec {
    /// `doublestar` or `label`.
    #[serde(default, deserialize_with = "nullable")]
    pub kind: String,
    /// `matches`, `excludes` (tags), `repoMatches`, `repoExcludes` (repositories),
    /// `withLabels`, `withoutLabels` (labels).
    #[serde(default, deserialize_with = "nullable")]
    pub decoration: String,
    /// The doublestar pattern, or the label names separated by commas.
    #[serde(default, deserialize_with = "nullable")]
    pub pattern: String,
    /// JSON text; a tag selector's `{"untagged": bool}` says whether it selects
    /// untagged artifacts.
    #[serde(default, deserialize_with = "nullable")]
    pub extras: String,
}

/// A rule as Harbor's JSON gives it (`RetentionRule`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// Kept as given; it orders nothing.
    #[serde(default, deserialize_with = "nullable")]
    pub id: i64,
    /// Kept as given; it orders nothing.
    #[serde(default, deserialize_with = "nullable")]
    pub priority: i64,
    /// A disabled rule keeps nothing and selects no repository.
    #[serde(default, deserialize_with = "nullable")]
    pub disabled: bool,
    /// `retain`.
    #[serde(default, deserialize_with = "nullable")]
    pub action: String,
    /// The template: `latestPushedK`, `latestPulledN`, `nDaysSinceLastPush`,
    /// `nDaysSinceLastPull` or `always`.
    #[serde(default, deserialize_with = "nullable")]
    pub template: String,
    /// The template's parameter, under the template's name.
    #[serde(default, deserialize_with = "nullable")]
    pub params: BTreeMap<String, Value>,
    /// Which artifacts of a repository the rule considers; all of them must select.
    #[serde(default, deserialize_with = "nullable")]
    pub tag_selectors: Vec<SelectorSpec>,
    /// Which repositories the rule applies to, under the key `repository`; all of them
    /// must select (none: every repository).
    #[serde(default, deserialize_with = "nullable")]
    pub scope_selectors: BTreeMap<String, Vec<SelectorSpec>>,
}

/// When a policy runs by itself (`RetentionRuleTrigger`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerSpec {
    /// `Schedule`.
    #[serde(default, deserialize_with = "nullable")]
    pub kind: String,
    /// `cron`: Harbor's six-field cron, empty for none.
    #[serde(default, deserialize_with = "nullable")]
    pub settings: Map<String, Value>,
}

/// What a policy covers (`RetentionPolicyScope`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeSpec {
    /// `project`.
    #[serde(default, deserialize_with = "nullable")]
    pub level: String,
    /// The project's id.
    #[serde(rename = "ref", default, deserialize_with = "nullable")]
    pub reference: i64,
}

/// A policy as Harbor's API writes it, without its id. Stored as the JSON text
/// [`PolicyDefinition::to_json`] gives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyDefinition {
    /// `or`.
    #[serde(default, deserialize_with = "nullable")]
    pub algorithm: String,
    /// The rules.
    #[serde(default, deserialize_with = "nullable")]
    pub rules: Vec<RuleSpec>,
    /// The schedule.
    #[serde(default, deserialize_with = "nullable")]
    pub trigger: Option<TriggerSpec>,
    /// The project.
    #[serde(default, deserialize_with = "nullable")]
    pub scope: Option<ScopeSpec>,
}

/// Why a policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPolicy {
    /// The algorithm is not `or`.
    #[error("the algorithm must be \"or\", not {0:?}")]
    Algorithm(String),
    /// More rules than allowed.
    #[error("only {MAX_RULES} rules are allowed at most")]
    TooManyRules,
    /// Two rules say the same (ids aside): Harbor answers `409`.
    #[error("rule {0} is conflict with rule {1}")]
    Conflict(usize, usize),
    /// A rule's action is not `retain`.
    #[error("rule {0}: the action must be \"retain\", not {1:?}")]
    Action(usize, String),
    /// An unknown template.
    #[error(
        "rule {0}: the template {1:?} is not one of latestPushedK, latestPulledN, nDaysSinceLastPush, nDaysSinceLastPull, always"
    )]
    Template(usize, String),
    /// A template's parameter is missing or wrong.
    #[error("rule {0}: {1}")]
    Parameter(usize, String),
    /// A rule without a tag selector.
    #[error("rule {0} needs a tag selector")]
    NoTagSelector(usize),
    /// A selector Harbor has not.
    #[error("rule {0}: {1}")]
    Selector(usize, String),
    /// A pattern that does not parse.
    #[error("rule {0}: {1}")]
    Pattern(usize, PatternError),
    /// No trigger, or one Harbor has not.
    #[error("{0}")]
    Trigger(String),
    /// No scope, or not a project.
    #[error("{0}")]
    Scope(String),
}

impl InvalidPolicy {
    /// Whether Harbor answers this with `409 Conflict` (else `400`).
    pub fn is_conflict(&self) -> bool {
        matches!(self, InvalidPolicy::Conflict(..))
    }
}

/// What a template keeps of the artifacts its rule selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// `latestPushedK`: the `k` pushed last.
    LatestPushedK(usize),
    /// `latestPulledN`: the `n` pulled last (never pulled: the oldest).
    LatestPulledN(usize),
    /// `nDaysSinceLastPush`: those pushed within the last `n` days.
    NDaysSinceLastPush(i64),
    /// `nDaysSinceLastPull`: those pulled within the last `n` days.
    NDaysSinceLastPull(i64),
    /// `always`: all of them.
    Always,
}

impl Template {
    /// The template's id, which names its parameter too.
    pub fn id(self) -> &'static str {
        match self {
            Template::LatestPushedK(_) => "latestPushedK",
            Template::LatestPulledN(_) => "latestPulledN",
            Template::NDaysSinceLastPush(_) => "nDaysSinceLastPush",
            Template::NDaysSinceLastPull(_) => "nDaysSinceLastPull",
            Template::Always => "always",
        }
    }

    /// Harbor's display text, with the parameter filled in.
    pub fn describe(self) -> String {
        match self {
            Template::LatestPushedK(k) => format!("the most recently pushed {k} artifacts"),
            Template::LatestPulledN(n) => format!("the most recently pulled {n} artifacts"),
            Template::NDaysSinceLastPush(n) => format!("pushed within the last {n} days"),
            Template::NDaysSinceLastPull(n) => format!("pulled within the last {n} days"),
            Template::Always => "always".into(),
        }
    }

    /// The template a rule names, with its parameter checked as Harbor's validators
    /// check it: an integer (a JSON number, read as Go reads one into an int), not
    /// negative, a count below 32767, days at most 20190904.
    fn parse(id: &str, params: &BTreeMap<String, Value>) -> Result<Self, String> {
        let parameter = |limit: i64, inclusive: bool| -> Result<i64, String> {
            let value = params
                .get(id)
                .ok_or_else(|| format!("missing required parameter {id} for rule {id}"))?;
            let n = match value {
                Value::Number(n) => n
                    .as_i64()
                    .or_else(|| n.as_f64().map(|f| f.trunc() as i64))
                    .ok_or_else(|| format!("{id} type error"))?,
                _ => return Err(format!("{id} type error")),
            };
            if n < 0 {
                return Err(format!("{id} is less than zero"));
            }
            if (inclusive && n > limit) || (!inclusive && n >= limit) {
                return Err(format!("{id} is too large"));
            }
            Ok(n)
        };
        const COUNT_LIMIT: i64 = i16::MAX as i64;
        const DAYS_LIMIT: i64 = 20_190_904;
        Ok(match id {
            "latestPushedK" => Template::LatestPushedK(parameter(COUNT_LIMIT, false)? as usize),
            "latestPulledN" => Template::LatestPulledN(parameter(COUNT_LIMIT, false)? as usize),
            "nDaysSinceLastPush" => Template::NDaysSinceLastPush(parameter(DAYS_LIMIT, true)?),
            "nDaysSinceLastPull" => Template::NDaysSinceLastPull(parameter(DAYS_LIMIT, true)?),
            "always" => Template::Always,
            _ => return Err(String::new()),
        })
    }
}

/// A checked tag or label selector.
#[derive(Debug, Clone)]
pub enum ArtifactSelector {
    /// A doublestar pattern on the artifact's tags.
    Tags(Selector),
    /// The artifact carries every one of the labels (`withLabels`), or none of them
    /// (`withoutLabels`).
    Labels {
        /// `withLabels`.
        with: bool,
        /// The label names.
        names: Vec<String>,
    },
}

/// A rule, checked and ready to apply.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// Its position in the policy, from 0 (logs show it from 1).
    pub index: usize,
    /// Whether it is switched off.
    pub disabled: bool,
    /// What it keeps.
    pub template: Template,
    /// Which artifacts it considers.
    pub selectors: Vec<ArtifactSelector>,
    /// Which repositories it applies to.
    pub repositories: Vec<Selector>,
    /// How logs describe it.
    pub summary: String,
}

/// A policy's rules, checked.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// In the policy's order.
    pub rules: Vec<CompiledRule>,
}

impl PolicyDefinition {
    /// Reads a stored definition.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The text the definition is stored as.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a definition serializes")
    }

    /// The schedule's cron, when it has one (an empty cron is none).
    pub fn cron(&self) -> Option<&str> {
        let trigger = self.trigger.as_ref()?;
        (trigger.kind == TRIGGER_SCHEDULE)
            .then(|| trigger.settings.get(SETTING_CRON)?.as_str())
            .flatten()
            .map(str::trim)
            .filter(|c| !c.is_empty())
    }

    /// The project the policy covers.
    pub fn project_id(&self) -> Option<i64> {
        self.scope.as_ref().map(|s| s.reference)
    }

    /// Drops what Harbor adds when it shows a policy (the next fire time), so that a
    /// policy read and written back stores what was given.
    pub fn without_shown_fields(mut self) -> Self {
        if let Some(trigger) = &mut self.trigger {
            trigger.settings.remove(SETTING_NEXT);
        }
        self
    }

    /// Checks the policy and compiles its rules: the algorithm, at most 15 rules and
    /// no two alike, each rule's action, template, parameter and selectors, the trigger
    /// (kind `Schedule`, a cron that parses with 0 seconds, or none) and the scope (a
    /// project).
    pub fn validate(&self) -> Result<CompiledPolicy, InvalidPolicy> {
        if self.algorithm != ALGORITHM_OR {
            return Err(InvalidPolicy::Algorithm(self.algorithm.clone()));
        }
        if self.rules.len() > MAX_RULES {
            return Err(InvalidPolicy::TooManyRules);
        }
        // Harbor's `checkRuleConflict`: rules compared as JSON with their ids cleared.
        let mut seen: Vec<Value> = Vec::new();
        for (n, rule) in self.rules.iter().enumerate() {
            let mut anonymous = rule.clone();
            anonymous.id = 0;
            let value = serde_json::to_value(&anonymous).expect("a rule serializes");
            if let Some(old) = seen.iter().position(|v| *v == value) {
                return Err(InvalidPolicy::Conflict(n, old));
            }
            seen.push(value);
        }
        self.check_trigger()?;
        match &self.scope {
            Some(scope) if scope.level == SCOPE_PROJECT && scope.reference > 0 => {}
            Some(scope) if scope.level == SCOPE_PROJECT => {
                return Err(InvalidPolicy::Scope(format!(
                    "invalid Project id {}",
                    scope.reference
                )));
            }
            Some(scope) => {
                return Err(InvalidPolicy::Scope(format!(
                    "scope {} is not support",
                    scope.level
                )));
            }
            None => return Err(InvalidPolicy::Scope("a policy needs a scope".into())),
        }
        self.compile()
    }

    fn check_trigger(&self) -> Result<(), InvalidPolicy> {
        let Some(trigger) = &self.trigger else {
            return Err(InvalidPolicy::Trigger("a policy needs a trigger".into()));
        };
        if trigger.kind != TRIGGER_SCHEDULE {
            return Err(InvalidPolicy::Trigger(format!(
                "not support Trigger {}",
                trigger.kind
            )));
        }
        match trigger.settings.get(SETTING_CRON) {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(_)) => match self.cron() {
                None => Ok(()),
                Some(cron) => check_cron(cron).map_err(InvalidPolicy::Trigger),
            },
            Some(_) => Err(InvalidPolicy::Trigger(
                "invalid cron type for scheduled tag retention: must be a string".into(),
            )),
        }
    }

    /// The rules, compiled; fails on a rule that does not check.
    pub fn compile(&self) -> Result<CompiledPolicy, InvalidPolicy> {
        let rules = (self.rules.iter().enumerate())
            .map(|(index, rule)| compile_rule(index, rule))
            .collect::<Result<_, _>>()?;
        Ok(CompiledPolicy { rules })
    }
}

/// Checks a cron as Harbor does for retention: six fields (or five), and when six, a
/// seconds field of `0`.
fn check_cron(cron: &str) -> Result<(), String> {
    cron.parse::<CronSchedule>().map_err(|e| {
        format!("invalid cron string for scheduled tag retention: {cron}, error: {e}")
    })?;
    let fields: Vec<&str> = cron.split_whitespace().collect();
    if fields.len() == 6 && fields[0] != "0" {
        return Err(format!(
            "invalid cron string for scheduled tag retention: {cron}, error: the 1st field \
             (indicating Seconds of time) of the cron setting must be 0"
        ));
    }
    Ok(())
}

fn compile_rule(index: usize, rule: &RuleSpec) -> Result<CompiledRule, InvalidPolicy> {
    if rule.action != ACTION_RETAIN {
        return Err(InvalidPolicy::Action(index, rule.action.clone()));
    }
    let template = Template::parse(&rule.template, &rule.params).map_err(|e| {
        if e.is_empty() {
            InvalidPolicy::Template(index, rule.template.clone())
        } else {
            InvalidPolicy::Parameter(index, e)
        }
    })?;
    if rule.tag_selectors.is_empty() {
        return Err(InvalidPolicy::NoTagSelector(index));
    }
    let selectors = (rule.tag_selectors.iter())
        .map(|s| artifact_selector(index, s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut repositories = Vec::new();
    for (scope, list) in &rule.scope_selectors {
        if scope != REPOSITORY_SCOPE {
            return Err(InvalidPolicy::Selector(
                index,
                format!("scope selectors {scope:?} are not supported; use \"repository\""),
            ));
        }
        for s in list {
            repositories.push(repository_selector(index, s)?);
        }
    }
    let shown = |s: &SelectorSpec| format!("{} {:?}", s.decoration, s.pattern);
    let mut parts = vec![template.describe()];
    parts.extend(rule.tag_selectors.iter().map(shown));
    let repository_specs = rule.scope_selectors.get(REPOSITORY_SCOPE);
    parts.extend(repository_specs.into_iter().flatten().map(shown));
    Ok(CompiledRule {
        index,
        disabled: rule.disabled,
        template,
        selectors,
        repositories,
        summary: parts.join(", "),
    })
}

fn artifact_selector(index: usize, s: &SelectorSpec) -> Result<ArtifactSelector, InvalidPolicy> {
    match s.kind.as_str() {
        KIND_DOUBLESTAR => {
            let decoration = match Decoration::parse(&s.decoration) {
                Some(d @ (Decoration::Matches | Decoration::Excludes)) => d,
                _ => {
                    return Err(InvalidPolicy::Selector(
                        index,
                        format!(
                            "tag selector decoration {:?} is not one of matches, excludes",
                            s.decoration
                        ),
                    ));
                }
            };
            let untagged = untagged(decoration, &s.extras);
            let selector = Selector::new(decoration, &s.pattern, untagged)
                .map_err(|e| InvalidPolicy::Pattern(index, e))?;
            Ok(ArtifactSelector::Tags(selector))
        }
        KIND_LABEL => {
            let with = match s.decoration.as_str() {
                "withLabels" => true,
                "withoutLabels" => false,
                other => {
                    return Err(InvalidPolicy::Selector(
                        index,
                        format!(
                            "label selector decoration {other:?} is not one of withLabels, withoutLabels"
                        ),
                    ));
                }
            };
            let names = (s.pattern.split(','))
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
            Ok(ArtifactSelector::Labels { with, names })
        }
        other => Err(InvalidPolicy::Selector(
            index,
            format!("tag selector kind {other:?} is not one of doublestar, label"),
        )),
    }
}

fn repository_selector(index: usize, s: &SelectorSpec) -> Result<Selector, InvalidPolicy> {
    if s.kind != KIND_DOUBLESTAR {
        return Err(InvalidPolicy::Selector(
            index,
            format!("repository selector kind {:?} is not doublestar", s.kind),
        ));
    }
    let decoration = match Decoration::parse(&s.decoration) {
        Some(d @ (Decoration::RepoMatches | Decoration::RepoExcludes)) => d,
        _ => {
            return Err(InvalidPolicy::Selector(
                index,
                format!(
                    "repository selector decoration {:?} is not one of repoMatches, repoExcludes",
                    s.decoration
                ),
            ));
        }
    };
    Selector::new(decoration, &s.pattern, false).map_err(|e| InvalidPolicy::Pattern(index, e))
}

/// Whether a tag selector selects untagged artifacts: Harbor's `{"untagged": …}`
/// extras when they read as such, else yes for `matches` and no for `excludes`.
fn untagged(decoration: Decoration, extras: &str) -> bool {
    #[derive(Deserialize)]
    struct Extras {
        #[serde(default)]
        untagged: bool,
    }
    match serde_json::from_str::<Extras>(extras) {
        Ok(e) if !extras.is_empty() => e.untagged,
        _ => decoration == Decoration::Matches,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy(rules: Value) -> PolicyDefinition {
        serde_json::from_value(json!({
            "algorithm": "or",
            "rules": rules,
            "trigger": {"kind": "Schedule", "settings": {"cron": ""}},
            "scope": {"level": "project", "ref": 1},
        }))
        .unwrap()
    }

    fn rule(template: &str, params: Value) -> Value {
        json!({
            "action": "retain", "template": template, "params": params,
            "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "**"}],
            "scope_selectors": {"repository": [
                {"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
        })
    }

    fn refused(rules: Value) -> String {
        policy(rules).validate().unwrap_err().to_string()
    }

    #[test]
    fn templates_check_their_parameter_as_harbor_does() {
        let ok = policy(json!([
            rule("latestPushedK", json!({"latestPushedK": 3})),
            rule("latestPulledN", json!({"latestPulledN": 2.9})),
            rule(
                "nDaysSinceLastPush",
                json!({"nDaysSinceLastPush": 20190904})
            ),
            rule("nDaysSinceLastPull", json!({"nDaysSinceLastPull": 0})),
            rule("always", json!({})),
        ]))
        .validate()
        .unwrap();
        let templates: Vec<Template> = ok.rules.iter().map(|r| r.template).collect();
        assert_eq!(
            templates,
            [
                Template::LatestPushedK(3),
                Template::LatestPulledN(2),
                Template::NDaysSinceLastPush(20_190_904),
                Template::NDaysSinceLastPull(0),
                Template::Always
            ]
        );
        let missing = refused(json!([rule("latestPushedK", json!({}))]));
        assert!(missing.contains("missing required parameter"), "{missing}");
        let negative = refused(json!([rule("latestPulledN", json!({"latestPulledN": -1}))]));
        assert!(negative.contains("less than zero"), "{negative}");
        let large = refused(json!([rule(
            "latestPushedK",
            json!({"latestPushedK": 32767})
        )]));
        assert!(large.contains("too large"), "{large}");
        let text = refused(json!([rule(
            "nDaysSinceLastPush",
            json!({"nDaysSinceLastPush": "3"})
        )]));
        assert!(text.contains("type error"), "{text}");
        let unknown = refused(json!([rule("latestActiveK", json!({"latestActiveK": 3}))]));
        assert!(unknown.contains("latestActiveK"), "{unknown}");
    }

    #[test]
    fn rules_are_limited_and_told_apart() {
        let many: Vec<Value> = (0..16)
            .map(|k| rule("latestPushedK", json!({"latestPushedK": k})))
            .collect();
        assert_eq!(refused(json!(many)), "only 15 rules are allowed at most");
        let mut first = rule("always", json!({}));
        first["id"] = json!(1);
        let mut second = first.clone();
        second["id"] = json!(2);
        let conflict = policy(json!([first, second])).validate().unwrap_err();
        assert!(conflict.is_conflict());
        assert_eq!(conflict.to_string(), "rule 1 is conflict with rule 0");
    }

    #[test]
    fn selectors_are_those_harbor_has() {
        let mut bad_tag = rule("always", json!({}));
        bad_tag["tag_selectors"][0]["decoration"] = json!("repoMatches");
        assert!(refused(json!([bad_tag])).contains("not one of matches, excludes"));
        let mut bad_pattern = rule("always", json!({}));
        bad_pattern["tag_selectors"][0]["pattern"] = json!("{a");
        assert!(refused(json!([bad_pattern])).contains("syntax error"));
        let mut no_tags = rule("always", json!({}));
        no_tags["tag_selectors"] = json!([]);
        assert_eq!(refused(json!([no_tags])), "rule 0 needs a tag selector");
        let mut labels = rule("always", json!({}));
        labels["tag_selectors"] = json!([
            {"kind": "label", "decoration": "withLabels", "pattern": "a,b"},
            {"kind": "label", "decoration": "withoutLabels", "pattern": "c"},
        ]);
        let compiled = policy(json!([labels])).validate().unwrap();
        assert!(matches!(
            &compiled.rules[0].selectors[0],
            ArtifactSelector::Labels { with: true, names } if names == &["a", "b"]
        ));
        let mut project = rule("always", json!({}));
        project["scope_selectors"] = json!({"project": []});
        assert!(refused(json!([project])).contains("\"project\""));
        let mut action = rule("always", json!({}));
        action["action"] = json!("immutable");
        assert!(refused(json!([action])).contains("retain"));
    }

    #[test]
    fn untagged_artifacts_follow_the_extras() {
        assert!(untagged(Decoration::Matches, ""));
        assert!(!untagged(Decoration::Excludes, ""));
        assert!(!untagged(Decoration::Matches, r#"{"untagged":false}"#));
        assert!(untagged(Decoration::Excludes, r#"{"untagged":true}"#));
        assert!(untagged(Decoration::Matches, "not json"));
    }

    #[test]
    fn triggers_and_scopes_are_checked() {
        let mut p = policy(json!([]));
        p.trigger.as_mut().unwrap().settings =
            Map::from_iter([(SETTING_CRON.to_owned(), json!("0 0 0 * * *"))]);
        p.validate().unwrap();
        assert_eq!(p.cron(), Some("0 0 0 * * *"));
        p.trigger.as_mut().unwrap().settings[SETTING_CRON] = json!("5 0 0 * * *");
        assert!(p.validate().unwrap_err().to_string().contains("must be 0"));
        p.trigger.as_mut().unwrap().settings[SETTING_CRON] = json!("not a cron");
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("invalid cron")
        );
        p.trigger.as_mut().unwrap().settings[SETTING_CRON] = json!(5);
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("must be a string")
        );
        p.trigger.as_mut().unwrap().kind = "Event".into();
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("not support Trigger")
        );
        p.trigger = None;
        assert!(p.validate().is_err());
        let mut p = policy(json!([]));
        p.scope = Some(ScopeSpec {
            level: "system".into(),
            reference: 0,
        });
        assert_eq!(
            p.validate().unwrap_err().to_string(),
            "scope system is not support"
        );
        p.scope.as_mut().unwrap().level = "project".into();
        assert_eq!(
            p.validate().unwrap_err().to_string(),
            "invalid Project id 0"
        );
        let mut p = policy(json!([]));
        p.algorithm = "and".into();
        assert!(p.validate().is_err());
    }

    #[test]
    fn a_policy_shown_and_written_back_stores_what_was_given() {
        let mut p = policy(json!([rule("always", json!({}))]));
        let stored = p.to_json();
        p.trigger
            .as_mut()
            .unwrap()
            .settings
            .insert(SETTING_NEXT.into(), json!("2030-01-01T00:00:00Z"));
        assert_eq!(p.without_shown_fields().to_json(), stored);
        let nulls: PolicyDefinition = serde_json::from_value(json!({
            "algorithm": "or", "rules": [{"params": null, "tag_selectors": null,
                "scope_selectors": null, "id": null, "disabled": null}],
            "trigger": null, "scope": null,
        }))
        .unwrap();
        assert_eq!(nulls.rules[0], RuleSpec::default());
    }
}
