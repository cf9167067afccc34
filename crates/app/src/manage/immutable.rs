//! A project's immutable tag rules (Harbor's `/projects/{p}/immutabletagrules`):
//! listed, created, changed, switched off and on, and deleted. What they protect is
//! enforced by the registry's writes (`crate::immutability`).

use std::sync::Arc;

use berth_authz::{Action, Resource};
use berth_meta::{AuditEntry, ImmutableRule, ImmutableRuleError, Listed, MetaError, Project};

use super::projects::Projects;
use super::{ManageError, Requester};
use crate::Registry;
use crate::identity::Identity;
use crate::immutability::{MAX_RULES, RuleDefinition};

/// A stored rule as Harbor shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleView {
    /// Its id.
    pub id: i64,
    /// Whether it is switched off.
    pub disabled: bool,
    /// What it says.
    pub definition: RuleDefinition,
}

/// A change to a rule, as Harbor's `PUT` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleChange {
    /// The wanted switch: when it differs from the stored one, only the switch changes
    /// (as in Harbor); otherwise the definition is replaced.
    pub disabled: bool,
    /// The new definition.
    pub definition: RuleDefinition,
}

/// The immutable tag rule use cases.
pub struct ImmutableRules {
    identity: Arc<Identity>,
    registry: Arc<Registry>,
}

impl ImmutableRules {
    /// The use cases over `identity` (who may) and `registry` (its store holds the rules).
    pub fn new(identity: Arc<Identity>, registry: Arc<Registry>) -> Self {
        ImmutableRules { identity, registry }
    }

    async fn project(
        &self,
        who: &Requester,
        project: &str,
        by_name: bool,
        action: Action,
    ) -> Result<Project, ManageError> {
        Projects::new(self.identity.clone())
            .with_permission(who, project, by_name, Resource::ImmutableTag, action)
            .await
    }

    fn audit(
        &self,
        who: &Requester,
        operation: &str,
        project: &Project,
        rule: Option<i64>,
    ) -> AuditEntry {
        let resource = match rule {
            Some(id) => format!("{}/immutabletagrules/{id}", project.name),
            None => format!("{}/immutabletagrules", project.name),
        };
        let now = self.identity.clock.now_ms();
        who.actor().audit(
            operation,
            "immutable_tag_rule",
            &resource,
            Some(project.id),
            now,
        )
    }

    /// A page of a project's rules, in id order.
    pub async fn list(
        &self,
        who: &Requester,
        project: &str,
        by_name: bool,
        offset: u64,
        limit: u64,
    ) -> Result<Listed<RuleView>, ManageError> {
        let project = self.project(who, project, by_name, Action::List).await?;
        let listed = self
            .registry
            .meta
            .list_immutable_rules(project.id, offset, Some(limit))
            .await?;
        Ok(Listed {
            items: listed.items.iter().map(view).collect::<Result<_, _>>()?,
            total: listed.total,
        })
    }

    /// Adds an enabled rule; returns its id.
    pub async fn create(
        &self,
        who: &Requester,
        project: &str,
        by_name: bool,
        definition: &RuleDefinition,
    ) -> Result<i64, ManageError> {
        let project = self.project(who, project, by_name, Action::Create).await?;
        definition
            .validate()
            .map_err(|e| ManageError::Invalid(e.to_string()))?;
        let audit = self.audit(who, "create", &project, None);
        let now = self.identity.clock.now_ms();
        self.registry
            .meta
            .create_immutable_rule(project.id, &definition.to_json(), MAX_RULES, now, &audit)
            .await
            .map_err(rule_error)
    }

    /// Switches a rule off or on, or replaces its definition (see [`RuleChange`]).
    pub async fn update(
        &self,
        who: &Requester,
        project: &str,
        by_name: bool,
        id: i64,
        change: &RuleChange,
    ) -> Result<(), ManageError> {
        let project = self.project(who, project, by_name, Action::Update).await?;
        let store = &self.registry.meta;
        let stored = store
            .immutable_rule(project.id, id)
            .await?
            .ok_or_else(|| rule_not_found(id))?;
        let audit = self.audit(who, "update", &project, Some(id));
        let found = if stored.disabled != change.disabled {
            store
                .set_immutable_rule_disabled(project.id, id, change.disabled, &audit)
                .await?
        } else {
            change
                .definition
                .validate()
                .map_err(|e| ManageError::Invalid(e.to_string()))?;
            store
                .update_immutable_rule(project.id, id, &change.definition.to_json(), &audit)
                .await
                .map_err(rule_error)?
        };
        found.then_some(()).ok_or_else(|| rule_not_found(id))
    }

    /// Deletes a rule.
    pub async fn delete(
        &self,
        who: &Requester,
        project: &str,
        by_name: bool,
        id: i64,
    ) -> Result<(), ManageError> {
        let project = self.project(who, project, by_name, Action::Delete).await?;
        let audit = self.audit(who, "delete", &project, Some(id));
        let found = self
            .registry
            .meta
            .delete_immutable_rule(project.id, id, &audit)
            .await?;
        found.then_some(()).ok_or_else(|| rule_not_found(id))
    }
}

fn view(rule: &ImmutableRule) -> Result<RuleView, MetaError> {
    let definition = RuleDefinition::from_json(&rule.definition).map_err(|e| {
        MetaError(format!(
            "stored immutable tag rule {} is invalid: {e}",
            rule.id
        ))
    })?;
    Ok(RuleView {
        id: rule.id,
        disabled: rule.disabled,
        definition,
    })
}

fn rule_not_found(id: i64) -> ManageError {
    ManageError::NotFound(format!("immutable rule {id} not found"))
}

fn rule_error(e: ImmutableRuleError) -> ManageError {
    match e {
        ImmutableRuleError::Duplicate => ManageError::Conflict(e.to_string()),
        ImmutableRuleError::TooMany(_) => ManageError::Invalid(e.to_string()),
        ImmutableRuleError::Meta(e) => ManageError::Meta(e),
    }
}
