//! Tag immutability rules.

use async_trait::async_trait;
use berth_meta::{
    AuditEntry, GuardFailure, ImmutableRule, ImmutableRuleError, ImmutableRuleStore, Listed,
    MetaError, ProjectRules, TagGuard,
};
use berth_oci::{Digest, RepositoryName, Tag};
use sqlx::PgConnection;

use crate::audit::audited;
use crate::queries::lock_repository;
use crate::{PgMetaStore, corrupt, db_err, unique_violation};

const RULE_COLUMNS: &str = "id, project_id, disabled, definition";

type RuleRow = (i64, i64, bool, String);

fn rule((id, project_id, disabled, definition): RuleRow) -> ImmutableRule {
    ImmutableRule {
        id,
        project_id,
        disabled,
        definition,
    }
}

/// A unique violation is a project's second rule of the same definition.
fn write_error(e: sqlx::Error) -> ImmutableRuleError {
    match unique_violation(&e) {
        Some(_) => ImmutableRuleError::Duplicate,
        None => db_err(e).into(),
    }
}

/// Moves a project's rule revision, in the transaction of a change to its rules. The
/// update holds the project's row until the change commits, so it waits for guarded
/// writes holding the row in share mode, and they wait for it.
async fn bump_revision(c: &mut PgConnection, project_id: i64) -> Result<(), MetaError> {
    sqlx::query(
        "UPDATE projects SET immutable_rules_revision = immutable_rules_revision + 1
         WHERE id = $1",
    )
    .bind(project_id)
    .execute(c)
    .await
    .map(drop)
    .map_err(db_err)
}

/// Whether `guard`'s rules are no longer those of `repository`'s project. The project's
/// row is held in share mode until the caller's transaction ends, so no rule change
/// commits before the guarded write does.
async fn rules_changed(
    c: &mut PgConnection,
    repository: &RepositoryName,
    guard: &TagGuard,
) -> Result<bool, MetaError> {
    let current: Option<(i64, i64)> = sqlx::query_as(
        "SELECT id, immutable_rules_revision FROM projects WHERE name = $1 FOR SHARE",
    )
    .bind(repository.project())
    .fetch_optional(c)
    .await
    .map_err(db_err)?;
    Ok(match current {
        // A guard decided on no project at all holds for a project whose rules never
        // changed (revision 0: it has none), such as one its write creates.
        Some((id, revision)) => {
            guard.project_id.is_some_and(|g| g != id) || guard.revision != revision
        }
        None => guard.project_id.is_some(),
    })
}

/// Why `guard` no longer allows a delete by tag in `repository`, if it does not. The
/// repository's row is locked first, as by every write into it.
pub(crate) async fn tag_deletion_stale(
    c: &mut PgConnection,
    repository: &RepositoryName,
    guard: &TagGuard,
) -> Result<Option<GuardFailure>, MetaError> {
    lock_repository(c, repository.as_str()).await?;
    Ok(rules_changed(c, repository, guard)
        .await?
        .then_some(GuardFailure::RulesChanged))
}

/// Why `guard` no longer allows deleting manifest `digest` of `repository` (or, without
/// a digest, the whole repository), if it does not: the rules changed, or what would be
/// deleted has tags the guard does not cover. The repository's row is locked first, so
/// its tags stay as read until the delete commits.
pub(crate) async fn deletion_stale(
    c: &mut PgConnection,
    repository: &RepositoryName,
    digest: Option<&Digest>,
    guard: &TagGuard,
) -> Result<Option<GuardFailure>, MetaError> {
    if let Some(stale) = tag_deletion_stale(c, repository, guard).await? {
        return Ok(Some(stale));
    }
    let names: Vec<String> = match digest {
        Some(digest) => sqlx::query_scalar(
            "SELECT t.name FROM repositories r
             JOIN manifests m ON m.repository_id = r.id
             JOIN tags t ON t.manifest_id = m.id
             WHERE r.name = $1 AND m.digest = $2 ORDER BY t.name",
        )
        .bind(repository.as_str())
        .bind(digest.as_str()),
        None => sqlx::query_scalar(
            "SELECT t.name FROM repositories r JOIN tags t ON t.repository_id = r.id
             WHERE r.name = $1 ORDER BY t.name",
        )
        .bind(repository.as_str()),
    }
    .fetch_all(c)
    .await
    .map_err(db_err)?;
    let tags = names
        .iter()
        .map(|t| Tag::parse(t).map_err(|e| corrupt("tag", e)))
        .collect::<Result<_, _>>()?;
    Ok(guard.uncovered(tags))
}

#[async_trait]
impl ImmutableRuleStore for PgMetaStore {
    async fn create_immutable_rule(
        &self,
        project_id: i64,
        definition: &str,
        max_rules: u64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, ImmutableRuleError> {
        let mut tx = self.durable().await?;
        // First: the project's row, held until commit, keeps concurrent creations in the
        // project from counting past the limit together.
        bump_revision(&mut tx, project_id).await?;
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM immutable_tag_rules WHERE project_id = $1")
                .bind(project_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        if count as u64 >= max_rules {
            return Err(ImmutableRuleError::TooMany(max_rules));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO immutable_tag_rules (project_id, definition, created_at)
             VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(project_id)
        .bind(definition)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(write_error)?;
        audited(&mut tx, true, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(id)
    }

    async fn immutable_rule(
        &self,
        project_id: i64,
        id: i64,
    ) -> Result<Option<ImmutableRule>, MetaError> {
        let row: Option<RuleRow> = sqlx::query_as(&format!(
            "SELECT {RULE_COLUMNS} FROM immutable_tag_rules WHERE project_id = $1 AND id = $2"
        ))
        .bind(project_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(rule))
    }

    async fn list_immutable_rules(
        &self,
        project_id: i64,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<Listed<ImmutableRule>, MetaError> {
        let total: i64 =
            sqlx::query_scalar("SELECT count(*) FROM immutable_tag_rules WHERE project_id = $1")
                .bind(project_id)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        let rows: Vec<RuleRow> = sqlx::query_as(&format!(
            "SELECT {RULE_COLUMNS} FROM immutable_tag_rules WHERE project_id = $1
             ORDER BY id LIMIT $2 OFFSET $3"
        ))
        .bind(project_id)
        .bind(limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX)))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(Listed {
            items: rows.into_iter().map(rule).collect(),
            total: total as u64,
        })
    }

    async fn immutable_rules_of(&self, project_name: &str) -> Result<ProjectRules, MetaError> {
        // One statement, one snapshot: the revision and the rules belong together.
        let rows: Vec<(i64, i64, Option<i64>, Option<bool>, Option<String>)> = sqlx::query_as(
            "SELECT p.id, p.immutable_rules_revision, i.id, i.disabled, i.definition
             FROM projects p LEFT JOIN immutable_tag_rules i ON i.project_id = p.id
             WHERE p.name = $1 ORDER BY i.id",
        )
        .bind(project_name)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(&(project_id, revision, ..)) = rows.first() else {
            return Ok(ProjectRules::default());
        };
        let rules = rows
            .into_iter()
            .filter_map(|(_, _, id, disabled, definition)| {
                Some(rule((id?, project_id, disabled?, definition?)))
            })
            .collect();
        Ok(ProjectRules {
            project_id: Some(project_id),
            revision,
            rules,
        })
    }

    async fn update_immutable_rule(
        &self,
        project_id: i64,
        id: i64,
        definition: &str,
        audit: &AuditEntry,
    ) -> Result<bool, ImmutableRuleError> {
        let mut tx = self.durable().await?;
        let changed = sqlx::query(
            "UPDATE immutable_tag_rules SET definition = $3 WHERE project_id = $1 AND id = $2",
        )
        .bind(project_id)
        .bind(id)
        .bind(definition)
        .execute(&mut *tx)
        .await
        .map_err(write_error)?
        .rows_affected()
            > 0;
        if changed {
            bump_revision(&mut tx, project_id).await?;
        }
        audited(&mut tx, changed, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(changed)
    }

    async fn set_immutable_rule_disabled(
        &self,
        project_id: i64,
        id: i64,
        disabled: bool,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let changed = sqlx::query(
            "UPDATE immutable_tag_rules SET disabled = $3 WHERE project_id = $1 AND id = $2",
        )
        .bind(project_id)
        .bind(id)
        .bind(disabled)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            > 0;
        if changed {
            bump_revision(&mut tx, project_id).await?;
        }
        audited(&mut tx, changed, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(changed)
    }

    async fn delete_immutable_rule(
        &self,
        project_id: i64,
        id: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let deleted =
            sqlx::query("DELETE FROM immutable_tag_rules WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected()
                > 0;
        if deleted {
            bump_revision(&mut tx, project_id).await?;
        }
        audited(&mut tx, deleted, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(deleted)
    }
}
