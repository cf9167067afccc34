//! Labels and the labels artifacts carry.

use async_trait::async_trait;
use berth_meta::{
    AddLabelError, AuditEntry, Label, LabelError, LabelField, LabelScope, LabelStore, LabelUpdate,
    ListQuery, Listed, MetaError, NewLabel,
};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, params};

use crate::audit::{audited, insert_audit};
use crate::listing::{Clauses, Column, Columns, list};
use crate::{SqliteMetaStore, db_err, unique_violation};

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

fn label_row(r: &Row<'_>) -> rusqlite::Result<Label> {
    label_at(r, 0)
}

/// The label whose [`LABEL_COLUMNS`] start at column `first`.
fn label_at(r: &Row<'_>, first: usize) -> rusqlite::Result<Label> {
    let project: Option<i64> = r.get(first + 4)?;
    Ok(Label {
        id: r.get(first)?,
        name: r.get(first + 1)?,
        description: r.get(first + 2)?,
        color: r.get(first + 3)?,
        scope: project.map_or(LabelScope::Global, LabelScope::Project),
        created_at: r.get(first + 5)?,
        updated_at: r.get(first + 6)?,
    })
}

/// Whether `e` is a foreign-key violation.
fn foreign_key_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

/// A label write's error: a taken name, a missing project, or the backend's.
fn label_error(e: rusqlite::Error, name: &str) -> LabelError {
    if unique_violation(&e).is_some() {
        LabelError::NameTaken(name.to_owned())
    } else if foreign_key_violation(&e) {
        LabelError::NoProject
    } else {
        LabelError::Meta(db_err(e))
    }
}

#[async_trait]
impl LabelStore for SqliteMetaStore {
    async fn create_label(
        &self,
        label: &NewLabel,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, LabelError> {
        let (label, audit) = (label.clone(), audit.clone());
        self.writer
            .run(move |c| {
                let id = c
                    .query_row(
                        "INSERT INTO labels (name, description, color, scope, project_id,
                                             created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) RETURNING id",
                        params![
                            label.name,
                            label.description,
                            label.color,
                            label.scope.letter(),
                            label.scope.project_id(),
                            now
                        ],
                        |r| r.get(0),
                    )
                    .map_err(|e| label_error(e, &label.name))?;
                insert_audit(c, &audit)?;
                Ok(id)
            })
            .await
    }

    async fn label(&self, id: i64) -> Result<Option<Label>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {LABEL_COLUMNS} FROM labels l WHERE l.id = ?1"
            ))?
            .query_row(params![id], label_row)
            .optional()
        })
    }

    async fn list_labels(&self, query: &ListQuery<LabelField>) -> Result<Listed<Label>, MetaError> {
        let clauses = Clauses::new(query, "1", Vec::new(), "l.id");
        self.readers
            .with(|c| list(c, "labels l", LABEL_COLUMNS, &clauses, query, label_row))
    }

    async fn update_label(
        &self,
        id: i64,
        update: &LabelUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, LabelError> {
        let (update, audit) = (update.clone(), audit.clone());
        self.writer
            .run(move |c| {
                let found = c
                    .execute(
                        "UPDATE labels SET name = ?2, description = ?3, color = ?4, updated_at = ?5
                         WHERE id = ?1",
                        params![id, update.name, update.description, update.color, now],
                    )
                    .map_err(|e| label_error(e, &update.name))?
                    > 0;
                Ok(audited(c, found, &audit)?)
            })
            .await
    }

    async fn delete_label(&self, id: i64, audit: &AuditEntry) -> Result<bool, MetaError> {
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                c.execute(
                    "DELETE FROM label_references WHERE label_id = ?1",
                    params![id],
                )
                .map_err(db_err)?;
                let deleted = c
                    .execute("DELETE FROM labels WHERE id = ?1", params![id])
                    .map_err(db_err)?
                    > 0;
                audited(c, deleted, &audit)
            })
            .await
    }

    async fn add_artifact_label(
        &self,
        artifact_id: i64,
        label_id: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<(), AddLabelError> {
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                let added = c
                    .execute(
                        "INSERT INTO label_references (manifest_id, label_id, created_at)
                         SELECT m.id, l.id, ?3 FROM manifests m, labels l
                         WHERE m.id = ?1 AND l.id = ?2
                         ON CONFLICT (manifest_id, label_id) DO NOTHING",
                        params![artifact_id, label_id, now],
                    )
                    .map_err(db_err)?
                    > 0;
                if added {
                    insert_audit(c, &audit)?;
                    return Ok(());
                }
                let carried: bool = c
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM label_references
                                        WHERE manifest_id = ?1 AND label_id = ?2)",
                        params![artifact_id, label_id],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                Err(if carried {
                    AddLabelError::AlreadyAdded {
                        label: label_id,
                        artifact: artifact_id,
                    }
                } else {
                    AddLabelError::NotFound {
                        label: label_id,
                        artifact: artifact_id,
                    }
                })
            })
            .await
    }

    async fn remove_artifact_label(
        &self,
        artifact_id: i64,
        label_id: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                let removed = c
                    .execute(
                        "DELETE FROM label_references WHERE manifest_id = ?1 AND label_id = ?2",
                        params![artifact_id, label_id],
                    )
                    .map_err(db_err)?
                    > 0;
                audited(c, removed, &audit)
            })
            .await
    }

    async fn artifact_labels(&self, artifact_ids: &[i64]) -> Result<Vec<(i64, Label)>, MetaError> {
        if artifact_ids.is_empty() {
            return Ok(Vec::new());
        }
        let slots: Vec<String> = (1..=artifact_ids.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "SELECT r.manifest_id, {LABEL_COLUMNS} FROM label_references r
             JOIN labels l ON l.id = r.label_id
             WHERE r.manifest_id IN ({})
             ORDER BY r.manifest_id, l.id",
            slots.join(", ")
        );
        let ids: Vec<Value> = artifact_ids.iter().map(|&id| Value::Integer(id)).collect();
        self.readers.with(|c| {
            c.prepare(&sql)?
                .query_map(rusqlite::params_from_iter(ids), |r| {
                    Ok((r.get(0)?, label_at(r, 1)?))
                })?
                .collect()
        })
    }
}
