//! Tag immutability rules.

use async_trait::async_trait;
use berth_meta::{
    AuditEntry, GuardFailure, ImmutableRule, ImmutableRuleError, ImmutableRuleStore, Listed,
    MetaError, NewManifest, ProjectRules, PutManifestError, TagGuard,
};
use berth_oci::{Digest, RepositoryName, Tag};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::audit::audited;
use crate::{SqliteMetaStore, db_err, unique_violation};

const RULE_COLUMNS: &str = "id, project_id, disabled, definition";

fn rule_row(r: &Row<'_>) -> rusqlite::Result<ImmutableRule> {
    Ok(ImmutableRule {
        id: r.get(0)?,
        project_id: r.get(1)?,
        disabled: r.get(2)?,
        definition: r.get(3)?,
    })
}

/// A unique violation is a project's second rule of the same definition.
fn write_error(e: rusqlite::Error) -> ImmutableRuleError {
    match unique_violation(&e) {
        Some(_) => ImmutableRuleError::Duplicate,
        None => db_err(e).into(),
    }
}

/// Moves a project's rule revision, in the transaction of a change to its rules.
fn bump_revision(c: &Connection, project_id: i64) -> Result<(), MetaError> {
    c.prepare_cached(
        "UPDATE projects SET immutable_rules_revision = immutable_rules_revision + 1
         WHERE id = ?1",
    )
    .and_then(|mut s| s.execute(params![project_id]))
    .map(drop)
    .map_err(db_err)
}

/// Whether `guard`'s rules are still those of `repository`'s project (the writer
/// thread runs one write at a time, so nothing changes them before the caller commits).
pub(crate) fn rules_changed(
    c: &Connection,
    repository: &RepositoryName,
    guard: &TagGuard,
) -> Result<bool, MetaError> {
    let current: Option<(i64, i64)> = c
        .prepare_cached("SELECT id, immutable_rules_revision FROM projects WHERE name = ?1")
        .and_then(|mut s| {
            s.query_row([repository.project()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
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

/// Checks a push's guard: the rules are unchanged and no tag it protects would move.
pub(crate) fn check_push(c: &Connection, m: &NewManifest) -> Result<(), PutManifestError> {
    let Some(guard) = &m.guard else {
        return Ok(());
    };
    if rules_changed(c, &m.repository, guard)? {
        return Err(PutManifestError::Stale(GuardFailure::RulesChanged));
    }
    let mut s = c
        .prepare_cached(
            "SELECT m.digest FROM repositories r
             JOIN tags t ON t.repository_id = r.id
             JOIN manifests m ON m.id = t.manifest_id
             WHERE r.name = ?1 AND t.name = ?2",
        )
        .map_err(db_err)?;
    for tag in &guard.tags {
        let target: Option<String> = s
            .query_row([m.repository.as_str(), tag.as_str()], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        if target.is_some_and(|t| t != m.digest.as_str()) {
            return Err(PutManifestError::TagProtected(tag.clone()));
        }
    }
    Ok(())
}

/// Why `guard` no longer allows deleting manifest `digest` of `repository` (or, without
/// a digest, the whole repository), if it does not: the rules changed, or what would be
/// deleted has tags the guard does not cover.
pub(crate) fn deletion_stale(
    c: &Connection,
    repository: &RepositoryName,
    digest: Option<&Digest>,
    guard: &TagGuard,
) -> Result<Option<GuardFailure>, MetaError> {
    if rules_changed(c, repository, guard)? {
        return Ok(Some(GuardFailure::RulesChanged));
    }
    let names: Vec<String> = match digest {
        Some(digest) => c
            .prepare_cached(
                "SELECT t.name FROM repositories r
                 JOIN manifests m ON m.repository_id = r.id
                 JOIN tags t ON t.manifest_id = m.id
                 WHERE r.name = ?1 AND m.digest = ?2 ORDER BY t.name",
            )
            .and_then(|mut s| {
                s.query_map([repository.as_str(), digest.as_str()], |r| r.get(0))?
                    .collect()
            }),
        None => c
            .prepare_cached(
                "SELECT t.name FROM repositories r JOIN tags t ON t.repository_id = r.id
                 WHERE r.name = ?1 ORDER BY t.name",
            )
            .and_then(|mut s| s.query_map([repository.as_str()], |r| r.get(0))?.collect()),
    }
    .map_err(db_err)?;
    let tags = names
        .iter()
        .map(|t| Tag::parse(t).map_err(|e| MetaError(format!("stored tag {t:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    Ok(guard.uncovered(tags))
}

#[async_trait]
impl ImmutableRuleStore for SqliteMetaStore {
    async fn create_immutable_rule(
        &self,
        project_id: i64,
        definition: &str,
        max_rules: u64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, ImmutableRuleError> {
        let (definition, audit) = (definition.to_owned(), audit.clone());
        self.writer
            .run(move |c| {
                let count: u64 = c
                    .prepare_cached(
                        "SELECT count(*) FROM immutable_tag_rules WHERE project_id = ?1",
                    )
                    .and_then(|mut s| s.query_row(params![project_id], |r| r.get(0)))
                    .map_err(db_err)?;
                if count >= max_rules {
                    return Err(ImmutableRuleError::TooMany(max_rules));
                }
                let id = c
                    .prepare_cached(
                        "INSERT INTO immutable_tag_rules (project_id, definition, created_at)
                         VALUES (?1, ?2, ?3) RETURNING id",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![project_id, definition, now], |r| r.get(0))
                    })
                    .map_err(write_error)?;
                bump_revision(c, project_id)?;
                audited(c, true, &audit)?;
                Ok(id)
            })
            .await
    }

    async fn immutable_rule(
        &self,
        project_id: i64,
        id: i64,
    ) -> Result<Option<ImmutableRule>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {RULE_COLUMNS} FROM immutable_tag_rules WHERE project_id = ?1 AND id = ?2"
            ))?
            .query_row(params![project_id, id], rule_row)
            .optional()
        })
    }

    async fn list_immutable_rules(
        &self,
        project_id: i64,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<Listed<ImmutableRule>, MetaError> {
        // SQLite reads a negative LIMIT as none.
        let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        self.readers.with(|c| {
            let total: u64 = c
                .prepare_cached("SELECT count(*) FROM immutable_tag_rules WHERE project_id = ?1")?
                .query_row(params![project_id], |r| r.get(0))?;
            let items = c
                .prepare_cached(&format!(
                    "SELECT {RULE_COLUMNS} FROM immutable_tag_rules WHERE project_id = ?1
                     ORDER BY id LIMIT ?2 OFFSET ?3"
                ))?
                .query_map(params![project_id, limit, offset as i64], rule_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Listed { items, total })
        })
    }

    async fn immutable_rules_of(&self, project_name: &str) -> Result<ProjectRules, MetaError> {
        self.readers.with(|c| {
            // One read transaction: the revision and the rules belong together.
            let tx = c.unchecked_transaction()?;
            let Some((id, revision)) = tx
                .prepare_cached(
                    "SELECT id, immutable_rules_revision FROM projects WHERE name = ?1",
                )?
                .query_row([project_name], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
            else {
                return Ok(ProjectRules::default());
            };
            let rules = tx
                .prepare_cached(&format!(
                    "SELECT {RULE_COLUMNS} FROM immutable_tag_rules WHERE project_id = ?1
                     ORDER BY id"
                ))?
                .query_map(params![id], rule_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(ProjectRules {
                project_id: Some(id),
                revision,
                rules,
            })
        })
    }

    async fn update_immutable_rule(
        &self,
        project_id: i64,
        id: i64,
        definition: &str,
        audit: &AuditEntry,
    ) -> Result<bool, ImmutableRuleError> {
        let (definition, audit) = (definition.to_owned(), audit.clone());
        self.writer
            .run(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE immutable_tag_rules SET definition = ?3
                         WHERE project_id = ?1 AND id = ?2",
                    )
                    .and_then(|mut s| s.execute(params![project_id, id, definition]))
                    .map_err(write_error)?
                    > 0;
                if changed {
                    bump_revision(c, project_id)?;
                }
                Ok(audited(c, changed, &audit)?)
            })
            .await
    }

    async fn set_immutable_rule_disabled(
        &self,
        project_id: i64,
        id: i64,
        disabled: bool,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE immutable_tag_rules SET disabled = ?3
                         WHERE project_id = ?1 AND id = ?2",
                    )
                    .and_then(|mut s| s.execute(params![project_id, id, disabled]))
                    .map_err(db_err)?
                    > 0;
                if changed {
                    bump_revision(c, project_id)?;
                }
                audited(c, changed, &audit)
            })
            .await
    }

    async fn delete_immutable_rule(
        &self,
        project_id: i64,
        id: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                let deleted = c
                    .prepare_cached(
                        "DELETE FROM immutable_tag_rules WHERE project_id = ?1 AND id = ?2",
                    )
                    .and_then(|mut s| s.execute(params![project_id, id]))
                    .map_err(db_err)?
                    > 0;
                if deleted {
                    bump_revision(c, project_id)?;
                }
                audited(c, deleted, &audit)
            })
            .await
    }
}
