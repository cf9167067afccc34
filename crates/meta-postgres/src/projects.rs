//! Projects, their metadata, members and roles.

use std::collections::BTreeMap;

use async_trait::async_trait;
use berth_meta::{
    AuditEntry, FieldFilter, ListQuery, Listed, Match, Member, MemberError, MemberKind, MetaError,
    NewProject, Project, ProjectAccessInfo, ProjectError, ProjectField, ProjectStore,
    ProjectUpdate, Role, Visibility,
};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use crate::audit::{audited, insert_audit};
use crate::listing::{Clauses, Column, Columns, Value, list};
use crate::{PgMetaStore, columns, db_err, unique_violation};

const PROJECT_FROM: &str = "projects p LEFT JOIN users u ON u.id = p.owner_id";
/// Project columns, the metadata as two arrays (names and values) in name order.
const PROJECT_COLUMNS: &str = "p.id, p.name, u.id, coalesce(u.username, ''), p.public,
     (SELECT count(*) FROM repositories r WHERE r.project_id = p.id), p.created_at, p.updated_at,
     ARRAY(SELECT name FROM project_metadata WHERE project_id = p.id ORDER BY name),
     ARRAY(SELECT value FROM project_metadata WHERE project_id = p.id ORDER BY name)";

impl Columns for ProjectField {
    fn column(self) -> Column {
        let (sql, numeric) = match self {
            ProjectField::Name => ("p.name", false),
            // Compared as the `1`/`0` a filter gives.
            ProjectField::Public => ("p.public::int", true),
            ProjectField::Owner => ("coalesce(u.username, '')", false),
            ProjectField::CreationTime => ("p.created_at", true),
            ProjectField::UpdateTime => ("p.updated_at", true),
            ProjectField::Id => ("p.id", true),
        };
        Column { sql, numeric }
    }
}

/// A project row: its columns, then its metadata's names and values.
type ProjectRow = (
    i64,
    String,
    Option<i64>,
    String,
    bool,
    i64,
    i64,
    i64,
    Vec<String>,
    Vec<String>,
);

fn project_row(r: &PgRow) -> Result<Project, MetaError> {
    let (id, name, owner_id, owner_name, public, repo_count, created_at, updated_at, names, values) =
        columns::<ProjectRow>(r)?;
    Ok(Project {
        id,
        name,
        owner_id,
        owner_name,
        public,
        metadata: names.into_iter().zip(values).collect(),
        repo_count: repo_count as u64,
        created_at,
        updated_at,
    })
}

async fn one_project(
    store: &PgMetaStore,
    condition: &str,
    key: Value,
) -> Result<Option<Project>, MetaError> {
    sqlx::query_with(
        &format!("SELECT {PROJECT_COLUMNS} FROM {PROJECT_FROM} WHERE {condition}"),
        crate::listing::arguments(&[key])?,
    )
    .fetch_optional(&store.pool)
    .await
    .map_err(db_err)?
    .as_ref()
    .map(project_row)
    .transpose()
}

async fn set_metadata(
    c: &mut PgConnection,
    project_id: i64,
    metadata: &BTreeMap<String, String>,
) -> Result<(), MetaError> {
    if metadata.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = metadata.keys().map(String::as_str).collect();
    let values: Vec<&str> = metadata.values().map(String::as_str).collect();
    sqlx::query(
        "INSERT INTO project_metadata (project_id, name, value)
         SELECT $1, name, value FROM unnest($2::text[], $3::text[]) AS m(name, value)
         ON CONFLICT (project_id, name) DO UPDATE SET value = excluded.value",
    )
    .bind(project_id)
    .bind(&names[..])
    .bind(&values[..])
    .execute(c)
    .await
    .map(drop)
    .map_err(db_err)
}

async fn role_exists(c: &mut PgConnection, role_id: i64) -> Result<bool, MetaError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM roles WHERE id = $1)")
        .bind(role_id)
        .fetch_one(c)
        .await
        .map_err(db_err)
}

async fn insert_member(
    c: &mut PgConnection,
    project_id: i64,
    kind: MemberKind,
    entity_id: i64,
    role_id: i64,
    now: i64,
) -> Result<i64, MemberError> {
    if !role_exists(c, role_id).await? {
        return Err(MemberError::UnknownRole(role_id));
    }
    if kind == MemberKind::User {
        // The account's row stays locked until the membership is committed, so a
        // concurrent deletion of the account (which then removes its memberships)
        // waits for it.
        let user: Option<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE id = $1 FOR KEY SHARE")
                .bind(entity_id)
                .fetch_optional(&mut *c)
                .await
                .map_err(db_err)?;
        if user.is_none() {
            return Err(MemberError::UnknownEntity);
        }
    }
    sqlx::query_scalar(
        "INSERT INTO project_members (project_id, entity_type, entity_id, role_id, created_at,
                                      updated_at)
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(project_id)
    .bind(entity_type(kind))
    .bind(entity_id)
    .bind(role_id)
    .bind(now)
    .fetch_one(c)
    .await
    .map_err(|e| match unique_violation(&e) {
        Some(_) => MemberError::AlreadyMember,
        None => MemberError::Meta(db_err(e)),
    })
}

fn entity_type(kind: MemberKind) -> &'static str {
    match kind {
        MemberKind::User => "u",
        MemberKind::Group => "g",
    }
}

const MEMBER_FROM: &str = "project_members m JOIN roles ro ON ro.id = m.role_id
     LEFT JOIN users u ON m.entity_type = 'u' AND u.id = m.entity_id";
const MEMBER_COLUMNS: &str =
    "m.id, m.project_id, m.entity_type, m.entity_id, coalesce(u.username, ''), m.role_id, ro.name";

fn member_row(r: &PgRow) -> Result<Member, MetaError> {
    let (id, project_id, kind, entity_id, entity_name, role_id, role_name) =
        columns::<(i64, i64, String, i64, String, i64, String)>(r)?;
    Ok(Member {
        id,
        project_id,
        kind: if kind == "g" {
            MemberKind::Group
        } else {
            MemberKind::User
        },
        entity_id,
        entity_name,
        role_id,
        role_name,
    })
}

/// The `WHERE` condition on projects `p` of a visibility, and its parameters, which
/// are numbered from `first`.
pub fn visibility_condition(visibility: &Visibility, first: usize) -> (String, Vec<Value>) {
    match visibility {
        Visibility::All => ("TRUE".into(), Vec::new()),
        Visibility::PublicOnly => ("p.public".into(), Vec::new()),
        Visibility::PublicOrMemberOf(user) => (
            format!(
                "(p.public OR p.id IN (SELECT project_id FROM project_members
                                       WHERE entity_type = 'u' AND entity_id = ${first}))"
            ),
            vec![Value::Int(*user)],
        ),
        Visibility::PublicOr(ids) => (
            format!("(p.public OR p.id = ANY(${first}))"),
            vec![Value::Ints(ids.clone())],
        ),
    }
}

#[async_trait]
impl ProjectStore for PgMetaStore {
    async fn create_project(
        &self,
        project: &NewProject,
        owner_role: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, ProjectError> {
        let mut tx = self.durable().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO projects (name, public, owner_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(&project.name)
        .bind(project.public)
        .bind(project.owner_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => ProjectError::NameTaken(project.name.clone()),
            None => ProjectError::Meta(db_err(e)),
        })?;
        set_metadata(&mut tx, id, &project.metadata).await?;
        if let Some(limit) = project.storage_limit {
            sqlx::query("UPDATE quotas SET hard = $2 WHERE project_id = $1")
                .bind(id)
                .bind(limit)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        if let Some(owner) = project.owner_id {
            insert_member(&mut tx, id, MemberKind::User, owner, owner_role, now)
                .await
                .map_err(|e| match e {
                    MemberError::Meta(e) => ProjectError::Meta(e),
                    other => ProjectError::Meta(MetaError(other.to_string())),
                })?;
        }
        let audit = AuditEntry {
            project_id: Some(id),
            ..audit.clone()
        };
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(id)
    }

    async fn project(&self, id: i64) -> Result<Option<Project>, MetaError> {
        one_project(self, "p.id = $1", Value::Int(id)).await
    }

    async fn project_by_name(&self, name: &str) -> Result<Option<Project>, MetaError> {
        one_project(self, "p.name = $1", Value::Text(name.to_owned())).await
    }

    async fn project_access(&self, name: &str) -> Result<Option<ProjectAccessInfo>, MetaError> {
        let row: Option<(i64, bool)> =
            sqlx::query_as("SELECT id, public FROM projects WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(row.map(|(id, public)| ProjectAccessInfo { id, public }))
    }

    async fn list_projects(
        &self,
        visibility: &Visibility,
        query: &ListQuery<ProjectField>,
    ) -> Result<Listed<Project>, MetaError> {
        let (fixed, params) = visibility_condition(visibility, 1);
        let clauses = Clauses::new(query, &fixed, params, "p.id");
        list(
            &self.pool,
            PROJECT_FROM,
            PROJECT_COLUMNS,
            &clauses,
            query,
            project_row,
        )
        .await
    }

    async fn update_project(
        &self,
        id: i64,
        update: &ProjectUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let found = sqlx::query(
            "UPDATE projects SET public = coalesce($2, public), updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(update.public)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            > 0;
        if found {
            set_metadata(&mut tx, id, &update.metadata).await?;
        }
        audited(&mut tx, found, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(found)
    }

    async fn delete_project_metadata(
        &self,
        id: i64,
        key: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let removed =
            sqlx::query("DELETE FROM project_metadata WHERE project_id = $1 AND name = $2")
                .bind(id)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected()
                > 0;
        if removed {
            sqlx::query("UPDATE projects SET updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        audited(&mut tx, removed, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(removed)
    }

    async fn delete_project(&self, id: i64, audit: &AuditEntry) -> Result<bool, ProjectError> {
        let mut tx = self.durable().await?;
        // Locked first: a push into the project holds its row until its repository is
        // committed, so the count below sees it, or the push waits and makes the project
        // again.
        let name: Option<String> =
            sqlx::query_scalar("SELECT name FROM projects WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let Some(name) = name else {
            return Ok(false);
        };
        let repositories: i64 =
            sqlx::query_scalar("SELECT count(*) FROM repositories WHERE project_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        if repositories > 0 {
            return Err(ProjectError::NotEmpty(repositories as u64));
        }
        // Robots' grants name projects; a later project of the same name must not
        // inherit them.
        sqlx::query("DELETE FROM robot_permissions WHERE kind = 'project' AND namespace = $1")
            .bind(&name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn add_member(
        &self,
        project_id: i64,
        kind: MemberKind,
        entity_id: i64,
        role_id: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, MemberError> {
        let mut tx = self.durable().await?;
        let id = insert_member(&mut tx, project_id, kind, entity_id, role_id, now).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(id)
    }

    async fn list_members(
        &self,
        project_id: i64,
        name: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<Listed<Member>, MetaError> {
        let query = ListQuery {
            filters: name
                .map(|n| FieldFilter {
                    field: MemberName,
                    matching: Match::Fuzzy(n.to_owned()),
                })
                .into_iter()
                .collect(),
            sort: Vec::new(),
            offset,
            limit,
        };
        let clauses = Clauses::new(
            &query,
            "m.project_id = $1",
            vec![Value::Int(project_id)],
            "m.id",
        );
        list(
            &self.pool,
            MEMBER_FROM,
            MEMBER_COLUMNS,
            &clauses,
            &query,
            member_row,
        )
        .await
    }

    async fn member(&self, project_id: i64, member_id: i64) -> Result<Option<Member>, MetaError> {
        sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM {MEMBER_FROM} WHERE m.project_id = $1 AND m.id = $2"
        ))
        .bind(project_id)
        .bind(member_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(member_row)
        .transpose()
    }

    async fn set_member_role(
        &self,
        project_id: i64,
        member_id: i64,
        role_id: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MemberError> {
        let mut tx = self.durable().await?;
        if !role_exists(&mut tx, role_id).await? {
            return Err(MemberError::UnknownRole(role_id));
        }
        let changed = sqlx::query(
            "UPDATE project_members SET role_id = $3, updated_at = $4
             WHERE project_id = $1 AND id = $2",
        )
        .bind(project_id)
        .bind(member_id)
        .bind(role_id)
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

    async fn remove_member(
        &self,
        project_id: i64,
        member_id: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let removed = sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND id = $2")
            .bind(project_id)
            .bind(member_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected()
            > 0;
        audited(&mut tx, removed, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(removed)
    }

    async fn user_roles(&self, user_id: i64) -> Result<Vec<(i64, i64)>, MetaError> {
        sqlx::query_as(
            "SELECT project_id, role_id FROM project_members
             WHERE entity_type = 'u' AND entity_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn seed_roles(&self, roles: &[Role]) -> Result<(), MetaError> {
        let mut tx = self.durable().await?;
        for role in roles {
            // The upsert locks the role's row, so nodes seeding at once take turns.
            sqlx::query(
                "INSERT INTO roles (id, name) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            )
            .bind(role.id)
            .bind(&role.name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query("DELETE FROM role_permissions WHERE role_id = $1")
                .bind(role.id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let resources: Vec<&str> = role.permissions.iter().map(|p| p.0.as_str()).collect();
            let actions: Vec<&str> = role.permissions.iter().map(|p| p.1.as_str()).collect();
            sqlx::query(
                "INSERT INTO role_permissions (role_id, resource, action)
                 SELECT $1, resource, action FROM unnest($2::text[], $3::text[])
                     AS p(resource, action)",
            )
            .bind(role.id)
            .bind(&resources[..])
            .bind(&actions[..])
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn roles(&self) -> Result<Vec<Role>, MetaError> {
        let rows: Vec<(i64, String, Vec<String>, Vec<String>)> = sqlx::query_as(
            "SELECT r.id, r.name,
                    ARRAY(SELECT resource FROM role_permissions WHERE role_id = r.id
                          ORDER BY resource, action),
                    ARRAY(SELECT action FROM role_permissions WHERE role_id = r.id
                          ORDER BY resource, action)
             FROM roles r ORDER BY r.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(id, name, resources, actions)| Role {
                id,
                name,
                permissions: resources.into_iter().zip(actions).collect(),
            })
            .collect())
    }
}

/// The one field members are filtered by: the member's name.
#[derive(Debug, Clone, Copy)]
struct MemberName;

impl Columns for MemberName {
    fn column(self) -> Column {
        Column {
            sql: "coalesce(u.username, '')",
            numeric: false,
        }
    }
}
