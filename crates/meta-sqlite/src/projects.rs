//! Projects, their metadata, members and roles.

use std::collections::BTreeMap;

use async_trait::async_trait;
use berth_meta::{
    AuditEntry, ListQuery, Listed, Member, MemberError, MemberKind, MetaError, NewProject, Project,
    ProjectAccessInfo, ProjectError, ProjectField, ProjectStore, ProjectUpdate, Role, Visibility,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::audit::{audited, insert_audit};
use crate::listing::{Clauses, Column, Columns, list};
use crate::{Sequence, SqliteMetaStore, db_err, next_id, unique_violation};

const PROJECT_FROM: &str = "projects p LEFT JOIN users u ON u.id = p.owner_id";
/// The owner is read from `users`, so a deleted owner's id is not shown.
const PROJECT_COLUMNS: &str = "p.id, p.name, u.id, coalesce(u.username, ''), p.public,
     (SELECT count(*) FROM repositories r WHERE r.project_id = p.id), p.created_at, p.updated_at";

impl Columns for ProjectField {
    fn column(self) -> Column {
        let (sql, numeric) = match self {
            ProjectField::Name => ("p.name", false),
            ProjectField::Public => ("p.public", true),
            ProjectField::Owner => ("coalesce(u.username, '')", false),
            ProjectField::CreationTime => ("p.created_at", true),
            ProjectField::UpdateTime => ("p.updated_at", true),
            ProjectField::Id => ("p.id", true),
        };
        Column { sql, numeric }
    }
}

fn project_row(r: &Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        owner_id: r.get(2)?,
        owner_name: r.get(3)?,
        public: r.get(4)?,
        metadata: BTreeMap::new(),
        repo_count: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

/// Fills in the metadata of projects read without it.
fn with_metadata(c: &Connection, mut project: Project) -> rusqlite::Result<Project> {
    let mut s =
        c.prepare_cached("SELECT name, value FROM project_metadata WHERE project_id = ?1")?;
    project.metadata = s
        .query_map(params![project.id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(project)
}

fn one_project(
    c: &Connection,
    condition: &str,
    key: &dyn rusqlite::ToSql,
) -> rusqlite::Result<Option<Project>> {
    let found = c
        .prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM {PROJECT_FROM} WHERE {condition}"
        ))?
        .query_row([key], project_row)
        .optional()?;
    found.map(|p| with_metadata(c, p)).transpose()
}

fn set_metadata(
    c: &Connection,
    project_id: i64,
    metadata: &BTreeMap<String, String>,
) -> rusqlite::Result<()> {
    let mut s = c.prepare_cached(
        "INSERT INTO project_metadata (project_id, name, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (project_id, name) DO UPDATE SET value = excluded.value",
    )?;
    for (name, value) in metadata {
        s.execute(params![project_id, name, value])?;
    }
    Ok(())
}

fn insert_member(
    c: &Connection,
    project_id: i64,
    kind: MemberKind,
    entity_id: i64,
    role_id: i64,
    now: i64,
) -> Result<i64, MemberError> {
    let role_exists: bool = c
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM roles WHERE id = ?1)",
            params![role_id],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    if !role_exists {
        return Err(MemberError::UnknownRole(role_id));
    }
    if kind == MemberKind::User {
        let user_exists: bool = c
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)",
                params![entity_id],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        if !user_exists {
            return Err(MemberError::UnknownEntity);
        }
    }
    c.prepare_cached(
        "INSERT INTO project_members (project_id, entity_type, entity_id, role_id, created_at,
                                      updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING id",
    )
    .and_then(|mut s| {
        s.query_row(
            params![project_id, entity_type(kind), entity_id, role_id, now],
            |r| r.get(0),
        )
    })
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

fn member_row(r: &Row<'_>) -> rusqlite::Result<Member> {
    let kind: String = r.get(2)?;
    Ok(Member {
        id: r.get(0)?,
        project_id: r.get(1)?,
        kind: if kind == "g" {
            MemberKind::Group
        } else {
            MemberKind::User
        },
        entity_id: r.get(3)?,
        entity_name: r.get(4)?,
        role_id: r.get(5)?,
        role_name: r.get(6)?,
    })
}

/// The `WHERE` condition on projects `p` of a visibility, and its parameters, which
/// are numbered from `first`.
pub fn visibility_condition(visibility: &Visibility, first: usize) -> (String, Vec<Value>) {
    match visibility {
        Visibility::All => ("1".into(), Vec::new()),
        Visibility::PublicOnly => ("p.public".into(), Vec::new()),
        Visibility::PublicOrMemberOf(user) => (
            format!(
                "(p.public OR p.id IN (SELECT project_id FROM project_members
                                       WHERE entity_type = 'u' AND entity_id = ?{first}))"
            ),
            vec![Value::Integer(*user)],
        ),
        Visibility::PublicOr(ids) => {
            let slots: Vec<String> = (first..first + ids.len())
                .map(|i| format!("?{i}"))
                .collect();
            (
                format!("(p.public OR p.id IN ({}))", slots.join(", ")),
                ids.iter().map(|&id| Value::Integer(id)).collect(),
            )
        }
    }
}

#[async_trait]
impl ProjectStore for SqliteMetaStore {
    async fn create_project(
        &self,
        project: &NewProject,
        owner_role: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, ProjectError> {
        let (project, mut audit) = (project.clone(), audit.clone());
        self.writer
            .run(move |c| {
                let next = next_id(c, Sequence::Projects)?;
                let id: i64 = c
                    .prepare_cached(
                        "INSERT INTO projects (name, public, owner_id, created_at, updated_at, id)
                         VALUES (?1, ?2, ?3, ?4, ?4, ?5) RETURNING id",
                    )
                    .and_then(|mut s| {
                        s.query_row(
                            params![project.name, project.public, project.owner_id, now, next],
                            |r| r.get(0),
                        )
                    })
                    .map_err(|e| match unique_violation(&e) {
                        Some(_) => ProjectError::NameTaken(project.name.clone()),
                        None => ProjectError::Meta(db_err(e)),
                    })?;
                set_metadata(c, id, &project.metadata).map_err(db_err)?;
                if let Some(limit) = project.storage_limit {
                    c.execute(
                        "UPDATE quotas SET hard = ?2 WHERE project_id = ?1",
                        params![id, limit],
                    )
                    .map_err(db_err)?;
                }
                if let Some(owner) = project.owner_id {
                    insert_member(c, id, MemberKind::User, owner, owner_role, now).map_err(
                        |e| match e {
                            MemberError::Meta(e) => ProjectError::Meta(e),
                            other => ProjectError::Meta(MetaError(other.to_string())),
                        },
                    )?;
                }
                audit.project_id = Some(id);
                insert_audit(c, &audit)?;
                Ok(id)
            })
            .await
    }

    async fn project(&self, id: i64) -> Result<Option<Project>, MetaError> {
        self.readers.with(|c| one_project(c, "p.id = ?1", &id))
    }

    async fn project_by_name(&self, name: &str) -> Result<Option<Project>, MetaError> {
        self.readers.with(|c| one_project(c, "p.name = ?1", &name))
    }

    async fn project_access(&self, name: &str) -> Result<Option<ProjectAccessInfo>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached("SELECT id, public FROM projects WHERE name = ?1")?
                .query_row(params![name], |r| {
                    Ok(ProjectAccessInfo {
                        id: r.get(0)?,
                        public: r.get(1)?,
                    })
                })
                .optional()
        })
    }

    async fn list_projects(
        &self,
        visibility: &Visibility,
        query: &ListQuery<ProjectField>,
    ) -> Result<Listed<Project>, MetaError> {
        let (fixed, params) = visibility_condition(visibility, 1);
        let clauses = Clauses::new(query, &fixed, params, "p.id");
        self.readers.with(|c| {
            let page = list(
                c,
                PROJECT_FROM,
                PROJECT_COLUMNS,
                &clauses,
                query,
                project_row,
            )?;
            page.try_map(|p| with_metadata(c, p))
        })
    }

    async fn update_project(
        &self,
        id: i64,
        update: &ProjectUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let (update, audit) = (update.clone(), audit.clone());
        self.writer
            .run(move |c| {
                let found = c
                    .execute(
                        "UPDATE projects SET public = coalesce(?2, public), updated_at = ?3
                         WHERE id = ?1",
                        params![id, update.public, now],
                    )
                    .map_err(db_err)?
                    > 0;
                if found {
                    set_metadata(c, id, &update.metadata).map_err(db_err)?;
                }
                audited(c, found, &audit)
            })
            .await
    }

    async fn delete_project_metadata(
        &self,
        id: i64,
        key: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let (key, audit) = (key.to_owned(), audit.clone());
        self.writer
            .run(move |c| {
                let removed = c
                    .execute(
                        "DELETE FROM project_metadata WHERE project_id = ?1 AND name = ?2",
                        params![id, key],
                    )
                    .map_err(db_err)?
                    > 0;
                if removed {
                    c.execute(
                        "UPDATE projects SET updated_at = ?2 WHERE id = ?1",
                        params![id, now],
                    )
                    .map_err(db_err)?;
                }
                audited(c, removed, &audit)
            })
            .await
    }

    async fn delete_project(&self, id: i64, audit: &AuditEntry) -> Result<bool, ProjectError> {
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                let repositories: u64 = c
                    .query_row(
                        "SELECT count(*) FROM repositories WHERE project_id = ?1",
                        params![id],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                if repositories > 0 {
                    return Err(ProjectError::NotEmpty(repositories));
                }
                // Robots' grants name projects; a later project of the same name must
                // not inherit them.
                c.execute(
                    "DELETE FROM robot_permissions WHERE kind = 'project'
                       AND namespace = (SELECT name FROM projects WHERE id = ?1)",
                    params![id],
                )
                .map_err(db_err)?;
                let deleted = c
                    .execute("DELETE FROM projects WHERE id = ?1", params![id])
                    .map_err(db_err)?
                    > 0;
                Ok(audited(c, deleted, &audit)?)
            })
            .await
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
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                let id = insert_member(c, project_id, kind, entity_id, role_id, now)?;
                insert_audit(c, &audit)?;
                Ok(id)
            })
            .await
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
                .map(|n| berth_meta::FieldFilter {
                    field: MemberName,
                    matching: berth_meta::Match::Fuzzy(n.to_owned()),
                })
                .into_iter()
                .collect(),
            sort: Vec::new(),
            offset,
            limit,
        };
        let clauses = Clauses::new(
            &query,
            "m.project_id = ?1",
            vec![Value::Integer(project_id)],
            "m.id",
        );
        self.readers
            .with(|c| list(c, MEMBER_FROM, MEMBER_COLUMNS, &clauses, &query, member_row))
    }

    async fn member(&self, project_id: i64, member_id: i64) -> Result<Option<Member>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {MEMBER_COLUMNS} FROM {MEMBER_FROM} WHERE m.project_id = ?1 AND m.id = ?2"
            ))?
            .query_row(params![project_id, member_id], member_row)
            .optional()
        })
    }

    async fn set_member_role(
        &self,
        project_id: i64,
        member_id: i64,
        role_id: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MemberError> {
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                let role_exists: bool = c
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM roles WHERE id = ?1)",
                        params![role_id],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                if !role_exists {
                    return Err(MemberError::UnknownRole(role_id));
                }
                let changed = c
                    .execute(
                        "UPDATE project_members SET role_id = ?3, updated_at = ?4
                         WHERE project_id = ?1 AND id = ?2",
                        params![project_id, member_id, role_id, now],
                    )
                    .map_err(db_err)?
                    > 0;
                Ok(audited(c, changed, &audit)?)
            })
            .await
    }

    async fn remove_member(
        &self,
        project_id: i64,
        member_id: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                let removed = c
                    .execute(
                        "DELETE FROM project_members WHERE project_id = ?1 AND id = ?2",
                        params![project_id, member_id],
                    )
                    .map(|n| n > 0)
                    .map_err(db_err)?;
                audited(c, removed, &audit)
            })
            .await
    }

    async fn user_roles(&self, user_id: i64) -> Result<Vec<(i64, i64)>, MetaError> {
        self.readers.with(|c| {
            c.prepare_cached(
                "SELECT project_id, role_id FROM project_members
                 WHERE entity_type = 'u' AND entity_id = ?1",
            )?
            .query_map(params![user_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
        })
    }

    async fn seed_roles(&self, roles: &[Role]) -> Result<(), MetaError> {
        let roles = roles.to_vec();
        self.writer
            .run(move |c| {
                for role in &roles {
                    c.execute(
                        "INSERT INTO roles (id, name) VALUES (?1, ?2)
                         ON CONFLICT (id) DO UPDATE SET name = excluded.name",
                        params![role.id, role.name],
                    )
                    .map_err(db_err)?;
                    c.execute(
                        "DELETE FROM role_permissions WHERE role_id = ?1",
                        params![role.id],
                    )
                    .map_err(db_err)?;
                    let mut insert = c
                        .prepare_cached(
                            "INSERT INTO role_permissions (role_id, resource, action)
                             VALUES (?1, ?2, ?3)",
                        )
                        .map_err(db_err)?;
                    for (resource, action) in &role.permissions {
                        insert
                            .execute(params![role.id, resource, action])
                            .map_err(db_err)?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn roles(&self) -> Result<Vec<Role>, MetaError> {
        self.readers.with(|c| {
            let mut roles: Vec<Role> = c
                .prepare_cached("SELECT id, name FROM roles ORDER BY id")?
                .query_map([], |r| {
                    Ok(Role {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        permissions: Vec::new(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut s = c.prepare_cached(
                "SELECT resource, action FROM role_permissions WHERE role_id = ?1
                 ORDER BY resource, action",
            )?;
            for role in &mut roles {
                role.permissions = s
                    .query_map(params![role.id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
            }
            Ok(roles)
        })
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
