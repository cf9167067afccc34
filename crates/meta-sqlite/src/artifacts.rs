//! Repositories and artifacts as Harbor's API shows and changes them.

use async_trait::async_trait;
use berth_meta::{
    AddTagError, ArtifactField, ArtifactInfo, ArtifactStore, AuditEntry, Deletion, ListQuery,
    Listed, Match, MetaError, RepositoryField, RepositoryInfo, TagGuard, TagInfo,
};
use berth_oci::{Digest, Reference, RepositoryName, Tag};
use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::audit::{audited, insert_audit};
use crate::immutable::deletion_stale;
use crate::listing::{Clauses, Column, Columns, like_pattern, list};
use crate::{SqliteMetaStore, db_err};

const REPOSITORY_COLUMNS: &str = "r.id, r.project_id, r.name, r.description,
     (SELECT count(*) FROM manifests m WHERE m.repository_id = r.id), r.pull_count,
     r.created_at, r.updated_at";

impl Columns for RepositoryField {
    fn column(self) -> Column {
        let (sql, numeric) = match self {
            RepositoryField::Name => ("r.name", false),
            RepositoryField::CreationTime => ("r.created_at", true),
            RepositoryField::UpdateTime => ("r.updated_at", true),
            RepositoryField::PullCount => ("r.pull_count", true),
            RepositoryField::Id => ("r.id", true),
        };
        Column { sql, numeric }
    }
}

fn repository_row(r: &Row<'_>) -> rusqlite::Result<RepositoryInfo> {
    let name: String = r.get(2)?;
    Ok(RepositoryInfo {
        id: r.get(0)?,
        project_id: r.get(1)?,
        name: RepositoryName::parse(&name).map_err(|e| conversion(2, e))?,
        description: r.get(3)?,
        artifact_count: r.get(4)?,
        pull_count: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

fn conversion(column: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}

/// The sum of the sizes of the blobs a manifest (`alias.id`) references.
macro_rules! blob_sizes {
    ($alias:literal) => {
        concat!(
            "coalesce((SELECT sum(b.size) FROM manifest_references mr JOIN blobs b
                        ON b.digest = mr.digest
                        WHERE mr.manifest_id = ",
            $alias,
            ".id AND mr.kind = 'blob'), 0)"
        )
    };
}

/// Artifact columns; the total size adds the blobs' sizes and, for an index, each
/// child's size and blobs.
const ARTIFACT_COLUMNS: &str = concat!(
    "m.id, m.repository_id, m.digest, m.media_type, m.artifact_type, m.annotations,
     m.subject, CASE WHEN m.size <= ?1 THEN m.content END, m.size + ",
    blob_sizes!("m"),
    " + coalesce((SELECT sum(c.size + ",
    blob_sizes!("c"),
    ") FROM manifest_references rc JOIN manifests c
                     ON c.repository_id = m.repository_id AND c.digest = rc.digest
                     WHERE rc.manifest_id = m.id AND rc.kind = 'manifest'), 0),
     m.pushed_at, m.pulled_at"
);

impl Columns for ArtifactField {
    fn column(self) -> Column {
        let (sql, numeric) = match self {
            ArtifactField::Digest => ("m.digest", false),
            ArtifactField::MediaType => ("m.media_type", false),
            ArtifactField::PushTime => ("m.pushed_at", true),
            ArtifactField::PullTime => ("coalesce(m.pulled_at, 0)", true),
            // Filtered by `relation_conditions`; sorting by tags or labels sorts by id.
            ArtifactField::Tags | ArtifactField::Labels => ("m.id", true),
            ArtifactField::Id => ("m.id", true),
        };
        Column { sql, numeric }
    }
}

fn artifact_row(r: &Row<'_>) -> rusqlite::Result<ArtifactInfo> {
    let digest: String = r.get(2)?;
    let subject: Option<String> = r.get(6)?;
    let content: Option<Vec<u8>> = r.get(7)?;
    Ok(ArtifactInfo {
        id: r.get(0)?,
        repository_id: r.get(1)?,
        digest: Digest::parse(&digest).map_err(|e| conversion(2, e))?,
        media_type: r.get(3)?,
        artifact_type: r.get(4)?,
        annotations: r.get(5)?,
        subject: subject
            .map(|s| Digest::parse(&s).map_err(|e| conversion(6, e)))
            .transpose()?,
        content: content.map(Bytes::from),
        total_size: r.get(8)?,
        pushed_at: r.get(9)?,
        pulled_at: r.get(10)?,
        tags: Vec::new(),
    })
}

/// Fills in an artifact's tags.
fn with_tags(c: &Connection, mut artifact: ArtifactInfo) -> rusqlite::Result<ArtifactInfo> {
    let mut s = c.prepare_cached(
        "SELECT name, pushed_at, pulled_at FROM tags WHERE manifest_id = ?1 ORDER BY name",
    )?;
    artifact.tags = s
        .query_map(params![artifact.id], |r| {
            let name: String = r.get(0)?;
            Ok(TagInfo {
                name: Tag::parse(&name).map_err(|e| conversion(0, e))?,
                artifact_id: artifact.id,
                pushed_at: r.get(1)?,
                pulled_at: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(artifact)
}

/// Moves `tags=` and `labels=` filters out of the query into conditions on the tags
/// and label tables, whose parameters follow the listing's first two.
fn relation_conditions(
    query: &ListQuery<ArtifactField>,
) -> (ListQuery<ArtifactField>, Vec<String>, Vec<Value>) {
    let mut rest = query.clone();
    let (mut conditions, mut values) = (Vec::new(), Vec::new());
    rest.filters.retain(|f| {
        match f.field {
            ArtifactField::Tags => conditions.push(tag_condition(&f.matching, &mut values)),
            ArtifactField::Labels => label_conditions(&f.matching, &mut conditions, &mut values),
            _ => return true,
        }
        false
    });
    (rest, conditions, values)
}

/// The condition of a `tags=` filter; its parameters are added to `values`.
fn tag_condition(matching: &Match, values: &mut Vec<Value>) -> String {
    let tag_exists = |condition: &str| {
        format!("EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id{condition})")
    };
    match matching {
        Match::Exact(t) if t == "*" => tag_exists(""),
        Match::Exact(t) if t == "nil" => format!("NOT {}", tag_exists("")),
        Match::Exact(t) => {
            values.push(Value::Text(t.clone()));
            tag_exists(&format!(" AND t.name = ?{}", values.len() + 2))
        }
        Match::Fuzzy(t) => {
            values.push(Value::Text(like_pattern(t)));
            tag_exists(&format!(
                " AND t.name LIKE ?{} ESCAPE '\\'",
                values.len() + 2
            ))
        }
        _ => "0".into(),
    }
}

/// The conditions of a `labels=` filter: the artifact carries each label named.
fn label_conditions(matching: &Match, conditions: &mut Vec<String>, values: &mut Vec<Value>) {
    let ids = match matching {
        Match::Exact(id) => std::slice::from_ref(id),
        Match::AllOf(ids) => ids.as_slice(),
        _ => {
            conditions.push("0".into());
            return;
        }
    };
    for id in ids {
        let Ok(id) = id.parse::<i64>() else {
            conditions.push("0".into());
            return;
        };
        values.push(Value::Integer(id));
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM label_references lr
                     WHERE lr.manifest_id = m.id AND lr.label_id = ?{})",
            values.len() + 2
        ));
    }
}

#[async_trait]
impl ArtifactStore for SqliteMetaStore {
    async fn list_repositories(
        &self,
        projects: &[i64],
        query: &ListQuery<RepositoryField>,
    ) -> Result<Listed<RepositoryInfo>, MetaError> {
        let slots: Vec<String> = (1..=projects.len()).map(|i| format!("?{i}")).collect();
        let clauses = Clauses::new(
            query,
            &format!("r.project_id IN ({})", slots.join(", ")),
            projects.iter().map(|&id| Value::Integer(id)).collect(),
            "r.id",
        );
        self.readers.with(|c| {
            list(
                c,
                "repositories r",
                REPOSITORY_COLUMNS,
                &clauses,
                query,
                repository_row,
            )
        })
    }

    async fn repository_info(
        &self,
        name: &RepositoryName,
    ) -> Result<Option<RepositoryInfo>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {REPOSITORY_COLUMNS} FROM repositories r WHERE r.name = ?1"
            ))?
            .query_row(params![name.as_str()], repository_row)
            .optional()
        })
    }

    async fn set_repository_description(
        &self,
        name: &RepositoryName,
        description: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let (name, description, audit) = (name.clone(), description.to_owned(), audit.clone());
        self.writer
            .run(move |c| {
                let changed = c
                    .execute(
                        "UPDATE repositories SET description = ?2, updated_at = ?3 WHERE name = ?1",
                        params![name.as_str(), description, now],
                    )
                    .map_err(db_err)?
                    > 0;
                audited(c, changed, &audit)
            })
            .await
    }

    async fn delete_repository(
        &self,
        name: &RepositoryName,
        guard: Option<&TagGuard>,
        audit: &AuditEntry,
    ) -> Result<Deletion, MetaError> {
        let (name, guard, audit) = (name.clone(), guard.cloned(), audit.clone());
        self.writer
            .run(move |c| {
                if let Some(guard) = &guard
                    && let Some(stale) = deletion_stale(c, &name, None, guard)?
                {
                    return Ok(Deletion::Stale(stale));
                }
                let Some(id) = c
                    .query_row(
                        "SELECT id FROM repositories WHERE name = ?1",
                        params![name.as_str()],
                        |r| r.get::<_, i64>(0),
                    )
                    .optional()
                    .map_err(db_err)?
                else {
                    return Ok(Deletion::NotFound);
                };
                for sql in [
                    "DELETE FROM tags WHERE repository_id = ?1",
                    "DELETE FROM manifests WHERE repository_id = ?1",
                    "DELETE FROM repository_blobs WHERE repository_id = ?1",
                    "DELETE FROM repositories WHERE id = ?1",
                ] {
                    c.execute(sql, params![id]).map_err(db_err)?;
                }
                insert_audit(c, &audit)?;
                Ok(Deletion::Deleted)
            })
            .await
    }

    async fn list_artifacts(
        &self,
        repository: &RepositoryName,
        query: &ListQuery<ArtifactField>,
        content_limit: u64,
    ) -> Result<Listed<ArtifactInfo>, MetaError> {
        let (rest, relations, relation_values) = relation_conditions(query);
        let mut fixed =
            String::from("m.repository_id = (SELECT id FROM repositories WHERE name = ?2)");
        for condition in &relations {
            fixed += " AND ";
            fixed += condition;
        }
        let mut values = vec![
            Value::Integer(i64::try_from(content_limit).unwrap_or(i64::MAX)),
            Value::Text(repository.as_str().to_owned()),
        ];
        values.extend(relation_values);
        let clauses = Clauses::new(&rest, &fixed, values, "m.id");
        self.readers.with(|c| {
            // `?1` (the content limit) is only in the columns: the count needs it too,
            // so it is named in a condition that always holds.
            let counted = Clauses {
                conditions: format!("?1 = ?1 AND {}", clauses.conditions),
                order: clauses.order.clone(),
                params: clauses.params.clone(),
            };
            let page = list(
                c,
                "manifests m",
                ARTIFACT_COLUMNS,
                &counted,
                &rest,
                artifact_row,
            )?;
            page.try_map(|a| with_tags(c, a))
        })
    }

    async fn artifact(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        content_limit: u64,
    ) -> Result<Option<ArtifactInfo>, MetaError> {
        let condition = match reference {
            Reference::Digest(_) => "m.digest = ?3",
            Reference::Tag(_) => {
                "m.id = (SELECT t.manifest_id FROM tags t WHERE t.repository_id = m.repository_id
                         AND t.name = ?3)"
            }
        };
        let key = match reference {
            Reference::Digest(d) => d.as_str().to_owned(),
            Reference::Tag(t) => t.as_str().to_owned(),
        };
        let limit = i64::try_from(content_limit).unwrap_or(i64::MAX);
        self.readers.with(|c| {
            let found = c
                .prepare_cached(&format!(
                    "SELECT {ARTIFACT_COLUMNS} FROM manifests m
                     WHERE m.repository_id = (SELECT id FROM repositories WHERE name = ?2)
                       AND {condition}"
                ))?
                .query_row(params![limit, repository.as_str(), key], artifact_row)
                .optional()?;
            found.map(|a| with_tags(c, a)).transpose()
        })
    }

    async fn referring_artifacts(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        content_limit: u64,
    ) -> Result<Vec<ArtifactInfo>, MetaError> {
        let limit = i64::try_from(content_limit).unwrap_or(i64::MAX);
        self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {ARTIFACT_COLUMNS} FROM manifests m
                 WHERE m.repository_id = (SELECT id FROM repositories WHERE name = ?2)
                   AND m.subject = ?3
                 ORDER BY m.digest LIMIT 1000"
            ))?
            .query_map(
                params![limit, repository.as_str(), subject.as_str()],
                artifact_row,
            )?
            .collect()
        })
    }

    async fn stored_bytes(&self, projects: &[i64]) -> Result<u64, MetaError> {
        let slots: Vec<String> = (1..=projects.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "SELECT coalesce(sum(b.size), 0) FROM blobs b WHERE b.digest IN (
                 SELECT rb.digest FROM repository_blobs rb
                 JOIN repositories r ON r.id = rb.repository_id
                 WHERE r.project_id IN ({}))",
            slots.join(", ")
        );
        self.readers
            .with(|c| c.query_row(&sql, rusqlite::params_from_iter(projects), |r| r.get(0)))
    }

    async fn add_tag(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        tag: &Tag,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<(), AddTagError> {
        let (repository, digest, tag, audit) = (
            repository.clone(),
            digest.clone(),
            tag.clone(),
            audit.clone(),
        );
        self.writer
            .run(move |c| {
                let manifest: Option<(i64, i64)> = c
                    .query_row(
                        "SELECT m.id, m.repository_id FROM manifests m
                         JOIN repositories r ON r.id = m.repository_id
                         WHERE r.name = ?1 AND m.digest = ?2",
                        params![repository.as_str(), digest.as_str()],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(db_err)?;
                let (manifest_id, repo_id) = manifest.ok_or(AddTagError::NoArtifact)?;
                let inserted = c
                    .execute(
                        "INSERT INTO tags (repository_id, name, manifest_id, pushed_at)
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (repository_id, name) DO NOTHING",
                        params![repo_id, tag.as_str(), manifest_id, now],
                    )
                    .map_err(db_err)?;
                if inserted == 0 {
                    return Err(AddTagError::Exists);
                }
                insert_audit(c, &audit)?;
                Ok(())
            })
            .await
    }
}
