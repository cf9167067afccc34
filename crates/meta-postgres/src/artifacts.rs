//! Repositories and artifacts as Harbor's API shows and changes them.

use async_trait::async_trait;
use berth_meta::{
    AddTagError, ArtifactField, ArtifactInfo, ArtifactStore, AuditEntry, Deletion, ListQuery,
    Listed, Match, MetaError, RepositoryField, RepositoryInfo, TagGuard, TagInfo,
};
use berth_oci::{Digest, Reference, RepositoryName, Tag};
use bytes::Bytes;
use sqlx::postgres::PgRow;

use crate::audit::{audited, insert_audit};
use crate::immutable::deletion_stale;
use crate::listing::{Clauses, Column, Columns, Value, contains, list};
use crate::queries::{lock_repository, parse_digest, parse_repository};
use crate::{PgMetaStore, columns, corrupt, db_err};

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

fn repository_row(r: &PgRow) -> Result<RepositoryInfo, MetaError> {
    let (id, project_id, name, description, artifact_count, pull_count, created_at, updated_at) =
        columns::<(i64, i64, String, String, i64, i64, i64, i64)>(r)?;
    Ok(RepositoryInfo {
        id,
        project_id,
        name: parse_repository(&name)?,
        description,
        artifact_count: artifact_count as u64,
        pull_count: pull_count as u64,
        created_at,
        updated_at,
    })
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

/// Artifact columns (`$1` is the content limit); the total size adds the blobs' sizes
/// and, for an index, each child's size and blobs; the tags come as three arrays (name,
/// push and pull times) in name order.
const ARTIFACT_COLUMNS: &str = concat!(
    "m.id, m.repository_id, m.digest, m.media_type, m.artifact_type, m.annotations,
     m.subject, CASE WHEN m.size <= $1 THEN m.content END, (m.size + ",
    blob_sizes!("m"),
    " + coalesce((SELECT sum(c.size + ",
    blob_sizes!("c"),
    ") FROM manifest_references rc JOIN manifests c
                     ON c.repository_id = m.repository_id AND c.digest = rc.digest
                     WHERE rc.manifest_id = m.id AND rc.kind = 'manifest'), 0))::BIGINT,
     m.pushed_at, m.pulled_at,
     ARRAY(SELECT t.name FROM tags t WHERE t.manifest_id = m.id ORDER BY t.name),
     ARRAY(SELECT t.pushed_at FROM tags t WHERE t.manifest_id = m.id ORDER BY t.name),
     ARRAY(SELECT t.pulled_at FROM tags t WHERE t.manifest_id = m.id ORDER BY t.name)"
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

/// An artifact row: its columns, then its tags' three arrays.
type ArtifactRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    i64,
    i64,
    Option<i64>,
    Vec<String>,
    Vec<i64>,
    Vec<Option<i64>>,
);

fn artifact_row(r: &PgRow) -> Result<ArtifactInfo, MetaError> {
    let (
        id,
        repository_id,
        digest,
        media_type,
        artifact_type,
        annotations,
        subject,
        content,
        total_size,
        pushed_at,
        pulled_at,
        tag_names,
        tags_pushed,
        tags_pulled,
    ) = columns::<ArtifactRow>(r)?;
    let tags = tag_names
        .iter()
        .zip(tags_pushed)
        .zip(tags_pulled)
        .map(|((name, pushed_at), pulled_at)| {
            Ok(TagInfo {
                name: Tag::parse(name).map_err(|e| corrupt("tag", e))?,
                artifact_id: id,
                pushed_at,
                pulled_at,
            })
        })
        .collect::<Result<_, MetaError>>()?;
    Ok(ArtifactInfo {
        id,
        repository_id,
        digest: parse_digest(&digest)?,
        media_type,
        artifact_type,
        annotations,
        subject: subject.as_deref().map(parse_digest).transpose()?,
        content: content.map(Bytes::from),
        total_size: total_size as u64,
        pushed_at,
        pulled_at,
        tags,
    })
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
            ArtifactField::Labels => conditions.push(label_condition(&f.matching, &mut values)),
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
            tag_exists(&format!(" AND t.name = ${}", values.len() + 2))
        }
        Match::Fuzzy(t) => {
            values.push(Value::Text(t.clone()));
            let slot = format!("${}", values.len() + 2);
            tag_exists(&format!(" AND {}", contains("t.name", &slot)))
        }
        _ => "FALSE".into(),
    }
}

/// The condition of a `labels=` filter: the artifact carries each label named.
fn label_condition(matching: &Match, values: &mut Vec<Value>) -> String {
    let ids = match matching {
        Match::Exact(id) => std::slice::from_ref(id),
        Match::AllOf(ids) => ids.as_slice(),
        _ => return "FALSE".into(),
    };
    let Ok(mut ids) = ids
        .iter()
        .map(|id| id.parse::<i64>())
        .collect::<Result<Vec<_>, _>>()
    else {
        return "FALSE".into();
    };
    ids.sort_unstable();
    ids.dedup();
    let count = ids.len();
    values.push(Value::Ints(ids));
    format!(
        "(SELECT count(*) FROM label_references lr
          WHERE lr.manifest_id = m.id AND lr.label_id = ANY(${})) = {count}",
        values.len() + 2
    )
}

/// A content limit as a statement parameter.
fn content_bound(limit: u64) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl ArtifactStore for PgMetaStore {
    async fn list_repositories(
        &self,
        projects: &[i64],
        query: &ListQuery<RepositoryField>,
    ) -> Result<Listed<RepositoryInfo>, MetaError> {
        let clauses = Clauses::new(
            query,
            "r.project_id = ANY($1)",
            vec![Value::Ints(projects.to_vec())],
            "r.id",
        );
        list(
            &self.pool,
            "repositories r",
            REPOSITORY_COLUMNS,
            &clauses,
            query,
            repository_row,
        )
        .await
    }

    async fn repository_info(
        &self,
        name: &RepositoryName,
    ) -> Result<Option<RepositoryInfo>, MetaError> {
        sqlx::query(&format!(
            "SELECT {REPOSITORY_COLUMNS} FROM repositories r WHERE r.name = $1"
        ))
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(repository_row)
        .transpose()
    }

    async fn set_repository_description(
        &self,
        name: &RepositoryName,
        description: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let changed = sqlx::query(
            "UPDATE repositories SET description = $2, updated_at = $3 WHERE name = $1",
        )
        .bind(name.as_str())
        .bind(description)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            > 0;
        audited(&mut tx, changed, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(changed)
    }

    async fn delete_repository(
        &self,
        name: &RepositoryName,
        guard: Option<&TagGuard>,
        audit: &AuditEntry,
    ) -> Result<Deletion, MetaError> {
        let mut tx = self.durable().await?;
        if let Some(guard) = guard
            && let Some(stale) = deletion_stale(&mut tx, name, None, guard).await?
        {
            return Ok(Deletion::Stale(stale));
        }
        let Some(id) = lock_repository(&mut tx, name.as_str()).await? else {
            return Ok(Deletion::NotFound);
        };
        for sql in [
            "DELETE FROM tags WHERE repository_id = $1",
            "DELETE FROM manifests WHERE repository_id = $1",
            "DELETE FROM repository_blobs WHERE repository_id = $1",
            "DELETE FROM repositories WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Deletion::Deleted)
    }

    async fn list_artifacts(
        &self,
        repository: &RepositoryName,
        query: &ListQuery<ArtifactField>,
        content_limit: u64,
    ) -> Result<Listed<ArtifactInfo>, MetaError> {
        let (rest, relations, relation_values) = relation_conditions(query);
        // `$1` (the content limit) is only in the columns; a count on its own names it
        // in a condition that always holds.
        let mut fixed = String::from(
            "$1::BIGINT IS NOT NULL
             AND m.repository_id = (SELECT id FROM repositories WHERE name = $2)",
        );
        for condition in &relations {
            fixed += " AND ";
            fixed += condition;
        }
        let mut values = vec![
            Value::Int(content_bound(content_limit)),
            Value::Text(repository.as_str().to_owned()),
        ];
        values.extend(relation_values);
        let clauses = Clauses::new(&rest, &fixed, values, "m.id");
        list(
            &self.pool,
            "manifests m",
            ARTIFACT_COLUMNS,
            &clauses,
            &rest,
            artifact_row,
        )
        .await
    }

    async fn artifact(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        content_limit: u64,
    ) -> Result<Option<ArtifactInfo>, MetaError> {
        let (condition, key) = match reference {
            Reference::Digest(d) => ("m.digest = $3", d.as_str()),
            Reference::Tag(t) => (
                "m.id = (SELECT t.manifest_id FROM tags t WHERE t.repository_id = m.repository_id
                         AND t.name = $3)",
                t.as_str(),
            ),
        };
        sqlx::query(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM manifests m
             WHERE m.repository_id = (SELECT id FROM repositories WHERE name = $2)
               AND {condition}"
        ))
        .bind(content_bound(content_limit))
        .bind(repository.as_str())
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(artifact_row)
        .transpose()
    }

    async fn referring_artifacts(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        content_limit: u64,
    ) -> Result<Vec<ArtifactInfo>, MetaError> {
        sqlx::query(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM manifests m
             WHERE m.repository_id = (SELECT id FROM repositories WHERE name = $2)
               AND m.subject = $3
             ORDER BY m.digest LIMIT 1000"
        ))
        .bind(content_bound(content_limit))
        .bind(repository.as_str())
        .bind(subject.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(artifact_row)
        .collect()
    }

    async fn stored_bytes(&self, projects: &[i64]) -> Result<u64, MetaError> {
        sqlx::query_scalar::<_, i64>(
            "SELECT coalesce(sum(b.size), 0)::BIGINT FROM blobs b WHERE b.digest IN (
                 SELECT rb.digest FROM repository_blobs rb
                 JOIN repositories r ON r.id = rb.repository_id
                 WHERE r.project_id = ANY($1))",
        )
        .bind(projects)
        .fetch_one(&self.pool)
        .await
        .map(|n| n as u64)
        .map_err(db_err)
    }

    async fn add_tag(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        tag: &Tag,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<(), AddTagError> {
        let mut tx = self.durable().await?;
        let Some(repo_id) = lock_repository(&mut tx, repository.as_str()).await? else {
            return Err(AddTagError::NoArtifact);
        };
        let manifest_id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM manifests WHERE repository_id = $1 AND digest = $2")
                .bind(repo_id)
                .bind(digest.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let manifest_id = manifest_id.ok_or(AddTagError::NoArtifact)?;
        let inserted = sqlx::query(
            "INSERT INTO tags (repository_id, name, manifest_id, pushed_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (repository_id, name) DO NOTHING",
        )
        .bind(repo_id)
        .bind(tag.as_str())
        .bind(manifest_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if inserted == 0 {
            return Err(AddTagError::Exists);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }
}
