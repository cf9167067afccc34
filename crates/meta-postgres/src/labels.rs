//! Labels and the labels artifacts carry.

use async_trait::async_trait;
use berth_meta::{
    AddLabelError, AuditEntry, Label, LabelError, LabelField, LabelScope, LabelStore, LabelUpdate,
    ListQuery, Listed, MetaError, NewLabel,
};
use sqlx::postgres::PgRow;

use crate::audit::{audited, insert_audit};
use crate::listing::{Clauses, Column, Columns, list};
use crate::{PgMetaStore, columns, db_err, unique_violation};

const LABEL_COLUMNS: &str =
    "l.id, l.name, l.description, l.color, l.project_id, l.created_at, l.updated_at";

impl Columns for LabelField {
    fn column(self) -> Column {
        let (sql, numeric) = match self {
            LabelField::Name => ("l.name", false),
            LabelField::Description => ("l.description", false),
            LabelField::Color => ("l.color", false),
            LabelField::Scope => ("l.scope", false),
            LabelField::ProjectId => ("coalesce(l.project_id, 0)", true),
            LabelField::CreationTime => ("l.created_at", true),
            LabelField::UpdateTime => ("l.updated_at", true),
            LabelField::Id => ("l.id", true),
        };
        Column { sql, numeric }
    }
}

/// A label's [`LABEL_COLUMNS`].
type LabelRow = (i64, String, String, String, Option<i64>, i64, i64);

fn label(row: LabelRow) -> Label {
    let (id, name, description, color, project, created_at, updated_at) = row;
    Label {
        id,
        name,
        description,
        color,
        scope: project.map_or(LabelScope::Global, LabelScope::Project),
        created_at,
        updated_at,
    }
}

fn label_row(r: &PgRow) -> Result<Label, MetaError> {
    columns::<LabelRow>(r).map(label)
}

/// Whether `e` is a foreign-key violation.
fn foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

/// A label write's error: a taken name, a missing project, or the backend's.
fn label_error(e: sqlx::Error, name: &str) -> LabelError {
    if unique_violation(&e).is_some() {
        LabelError::NameTaken(name.to_owned())
    } else if foreign_key_violation(&e) {
        LabelError::NoProject
    } else {
        LabelError::Meta(db_err(e))
    }
}

#[async_trait]
impl LabelStore for PgMetaStore {
    async fn create_label(
        &self,
        label: &NewLabel,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, LabelError> {
        let mut tx = self.durable().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO labels (name, description, color, scope, project_id, created_at,
                                 updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        )
        .bind(&label.name)
        .bind(&label.description)
        .bind(&label.color)
        .bind(label.scope.letter())
        .bind(label.scope.project_id())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| label_error(e, &label.name))?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(id)
    }

    async fn label(&self, id: i64) -> Result<Option<Label>, MetaError> {
        sqlx::query(&format!(
            "SELECT {LABEL_COLUMNS} FROM labels l WHERE l.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(label_row)
        .transpose()
    }

    async fn list_labels(&self, query: &ListQuery<LabelField>) -> Result<Listed<Label>, MetaError> {
        let clauses = Clauses::new(query, "TRUE", Vec::new(), "l.id");
        list(
            &self.pool,
            "labels l",
            LABEL_COLUMNS,
            &clauses,
            query,
            label_row,
        )
        .await
    }

    async fn update_label(
        &self,
        id: i64,
        update: &LabelUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, LabelError> {
        let mut tx = self.durable().await?;
        let found = sqlx::query(
            "UPDATE labels SET name = $2, description = $3, color = $4, updated_at = $5
             WHERE id = $1",
        )
        .bind(id)
        .bind(&update.name)
        .bind(&update.description)
        .bind(&update.color)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| label_error(e, &update.name))?
        .rows_affected()
            > 0;
        audited(&mut tx, found, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(found)
    }

    async fn delete_label(&self, id: i64, audit: &AuditEntry) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        // Its references go by the foreign key's cascade, in the same statement.
        let deleted = sqlx::query("DELETE FROM labels WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected()
            > 0;
        audited(&mut tx, deleted, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(deleted)
    }

    async fn add_artifact_label(
        &self,
        artifact_id: i64,
        label_id: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<(), AddLabelError> {
        let not_found = AddLabelError::NotFound {
            label: label_id,
            artifact: artifact_id,
        };
        let mut tx = self.durable().await?;
        // A label or artifact deleted meanwhile fails the foreign keys' checks.
        let added = sqlx::query(
            "INSERT INTO label_references (manifest_id, label_id, created_at)
             SELECT m.id, l.id, $3 FROM manifests m, labels l WHERE m.id = $1 AND l.id = $2
             ON CONFLICT (manifest_id, label_id) DO NOTHING",
        )
        .bind(artifact_id)
        .bind(label_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if foreign_key_violation(&e) {
                not_found.clone()
            } else {
                AddLabelError::Meta(db_err(e))
            }
        })?
        .rows_affected()
            > 0;
        if added {
            insert_audit(&mut tx, audit).await?;
            tx.commit().await.map_err(db_err)?;
            return Ok(());
        }
        let carried: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM label_references
                            WHERE manifest_id = $1 AND label_id = $2)",
        )
        .bind(artifact_id)
        .bind(label_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        Err(if carried {
            AddLabelError::AlreadyAdded {
                label: label_id,
                artifact: artifact_id,
            }
        } else {
            not_found
        })
    }

    async fn remove_artifact_label(
        &self,
        artifact_id: i64,
        label_id: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let removed =
            sqlx::query("DELETE FROM label_references WHERE manifest_id = $1 AND label_id = $2")
                .bind(artifact_id)
                .bind(label_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected()
                > 0;
        audited(&mut tx, removed, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(removed)
    }

    async fn artifact_labels(&self, artifact_ids: &[i64]) -> Result<Vec<(i64, Label)>, MetaError> {
        let rows: Vec<(i64, i64, String, String, String, Option<i64>, i64, i64)> =
            sqlx::query_as(&format!(
                "SELECT r.manifest_id, {LABEL_COLUMNS} FROM label_references r
                 JOIN labels l ON l.id = r.label_id
                 WHERE r.manifest_id = ANY($1)
                 ORDER BY r.manifest_id, l.id"
            ))
            .bind(artifact_ids)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(
                |(artifact, id, name, description, color, project, created, updated)| {
                    (
                        artifact,
                        label((id, name, description, color, project, created, updated)),
                    )
                },
            )
            .collect())
    }
}
