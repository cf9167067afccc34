//! Tag immutability rules: per project, each a stored definition (Harbor's rule JSON:
//! selectors, template, action) and an enabled flag. What a definition means is the
//! application's business; the store keeps it as the text it was given.

use async_trait::async_trait;
use berth_oci::Tag;

use crate::audit::AuditEntry;
use crate::listing::Listed;
use crate::store::MetaError;

/// A stored immutability rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutableRule {
    /// Stable id, never reused.
    pub id: i64,
    /// Its project.
    pub project_id: i64,
    /// Whether the rule is switched off.
    pub disabled: bool,
    /// The definition as JSON text.
    pub definition: String,
}

/// A project's rules as one read saw them, with the revision they had then.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectRules {
    /// The project, `None` when there is no such project (then it has no rules).
    pub project_id: Option<i64>,
    /// The project's rule revision: it changes with every change to its rules.
    pub revision: i64,
    /// The rules, in id order.
    pub rules: Vec<ImmutableRule>,
}

/// What an immutability decision about a write assumed, checked by the store in the
/// write's own transaction, so that no rule change or tag move slips in between: the
/// project's rules were those of `revision` (on PostgreSQL the project's row is held in
/// share mode until the write commits, which a rule change waits for), and `tags`
/// stand as the decision saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagGuard {
    /// The repository's project, `None` when it did not exist: such a guard holds for a
    /// project whose rules never changed (revision 0, no rules), as one the write itself
    /// creates.
    pub project_id: Option<i64>,
    /// Its rule revision.
    pub revision: i64,
    /// On a push: the tags the rules protect, which may not be moved to another manifest
    /// (their creation, or a push of the manifest they point at, is allowed). On a delete
    /// by digest: every tag the manifest had, none protected; a tag besides makes the
    /// decision stale. Unused by a delete by tag.
    pub tags: Vec<Tag>,
}

impl TagGuard {
    /// Why this guard no longer allows a delete that would now remove `tags`, if it does
    /// not: they include a tag the decision did not look at (then `tags` are all of them).
    pub fn uncovered(&self, tags: Vec<Tag>) -> Option<GuardFailure> {
        let guarded: std::collections::HashSet<&Tag> = self.tags.iter().collect();
        let covered = tags.iter().all(|t| guarded.contains(t));
        (!covered).then_some(GuardFailure::TagsChanged(tags))
    }
}

/// Why a guarded write found its decision stale; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardFailure {
    /// The project's rules changed (or the project was created or deleted).
    #[error("the project's immutability rules changed")]
    RulesChanged,
    /// The manifest or repository to delete has tags the decision did not cover: these
    /// are all of its tags now.
    #[error("the tags to delete changed")]
    TagsChanged(Vec<Tag>),
}

/// Why a rule could not be written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImmutableRuleError {
    /// The project already has a rule with this definition.
    #[error("immutable rule already exists")]
    Duplicate,
    /// The project already has as many rules as allowed.
    #[error("a project has at most {0} immutable tag rules")]
    TooMany(u64),
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// A project's immutability rules. Each change records its `audit` entry and moves the
/// project's rule revision in its own transaction, when it changed something; deleting
/// a project deletes its rules.
#[async_trait]
pub trait ImmutableRuleStore: Send + Sync {
    /// Adds an enabled rule to a project that has fewer than `max_rules` (counted in the
    /// same transaction); returns its id.
    async fn create_immutable_rule(
        &self,
        project_id: i64,
        definition: &str,
        max_rules: u64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, ImmutableRuleError>;
    /// One rule of a project.
    async fn immutable_rule(
        &self,
        project_id: i64,
        id: i64,
    ) -> Result<Option<ImmutableRule>, MetaError>;
    /// A page of a project's rules in id order; `limit` `None` for all of them.
    async fn list_immutable_rules(
        &self,
        project_id: i64,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<Listed<ImmutableRule>, MetaError>;
    /// The rules of the project that repositories named `project/…` belong to, with
    /// the project's id and rule revision, read together.
    async fn immutable_rules_of(&self, project_name: &str) -> Result<ProjectRules, MetaError>;
    /// Replaces a rule's definition; returns whether the project has the rule.
    async fn update_immutable_rule(
        &self,
        project_id: i64,
        id: i64,
        definition: &str,
        audit: &AuditEntry,
    ) -> Result<bool, ImmutableRuleError>;
    /// Switches a rule off or on; returns whether the project has the rule.
    async fn set_immutable_rule_disabled(
        &self,
        project_id: i64,
        id: i64,
        disabled: bool,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>;
    /// Deletes a rule; returns whether the project had it.
    async fn delete_immutable_rule(
        &self,
        project_id: i64,
        id: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guard check of a repository delete runs inside the delete's transaction, so
    /// it must stay linear in the repository's tags.
    #[test]
    fn a_guard_covering_many_tags_is_checked_in_linear_time() {
        let tags: Vec<Tag> = (0..40_000)
            .map(|i| Tag::parse(&format!("build-2026-12-06-{i:08}")).unwrap())
            .collect();
        let guard = TagGuard {
            project_id: Some(1),
            revision: 0,
            tags: tags.clone(),
        };
        let mut current = tags;
        current.reverse();
        let started = std::time::Instant::now();
        assert_eq!(guard.uncovered(current), None);
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_millis(200),
            "checking 40 000 tags took {took:?}"
        );
    }
}
