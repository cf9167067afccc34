//! Robot accounts and their permissions.

use async_trait::async_trait;
use berth_meta::{
    AuditEntry, ListQuery, Listed, MetaError, NewRobot, Robot, RobotError, RobotField, RobotGrant,
    RobotLevel, RobotStore, RobotUpdate,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::audit::{audited, insert_audit};
use crate::listing::{Clauses, Column, Columns, list};
use crate::{Sequence, SqliteMetaStore, db_err, next_id, unique_violation};

const ROBOT_COLUMNS: &str = "id, name, description, secret_hash, level, project_id, duration_days,
     expires_at, disabled, creator, created_at, updated_at";

impl Columns for RobotField {
    fn column(self) -> Column {
        let (sql, numeric) = match self {
            RobotField::Name => ("name", false),
            RobotField::Level => ("level", false),
            RobotField::ProjectId => ("coalesce(project_id, 0)", true),
            RobotField::CreationTime => ("created_at", true),
            RobotField::Id => ("id", true),
        };
        Column { sql, numeric }
    }
}

fn level_name(level: RobotLevel) -> &'static str {
    match level {
        RobotLevel::System => "system",
        RobotLevel::Project => "project",
    }
}

fn robot_row(r: &Row<'_>) -> rusqlite::Result<Robot> {
    let level: String = r.get(4)?;
    Ok(Robot {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        secret_hash: r.get(3)?,
        level: if level == "system" {
            RobotLevel::System
        } else {
            RobotLevel::Project
        },
        project_id: r.get(5)?,
        duration_days: r.get(6)?,
        expires_at: r.get(7)?,
        disabled: r.get(8)?,
        creator: r.get(9)?,
        grants: Vec::new(),
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

/// Fills in the grants of a robot read without them.
fn with_grants(c: &Connection, mut robot: Robot) -> rusqlite::Result<Robot> {
    let mut s = c.prepare_cached(
        "SELECT kind, namespace, resource, action FROM robot_permissions WHERE robot_id = ?1
         ORDER BY kind, namespace, resource, action",
    )?;
    let rows = s.query_map(params![robot.id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    for row in rows {
        let (kind, namespace, resource, action) = row?;
        match robot.grants.last_mut() {
            Some(g) if g.kind == kind && g.namespace == namespace => {
                g.access.push((resource, action));
            }
            _ => robot.grants.push(RobotGrant {
                kind,
                namespace,
                access: vec![(resource, action)],
            }),
        }
    }
    Ok(robot)
}

fn replace_grants(c: &Connection, robot_id: i64, grants: &[RobotGrant]) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM robot_permissions WHERE robot_id = ?1",
        params![robot_id],
    )?;
    let mut insert = c.prepare_cached(
        "INSERT OR IGNORE INTO robot_permissions (robot_id, kind, namespace, resource, action)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for grant in grants {
        for (resource, action) in &grant.access {
            insert.execute(params![
                robot_id,
                grant.kind,
                grant.namespace,
                resource,
                action
            ])?;
        }
    }
    Ok(())
}

fn one_robot(
    c: &Connection,
    condition: &str,
    key: &dyn rusqlite::ToSql,
) -> rusqlite::Result<Option<Robot>> {
    let found = c
        .prepare_cached(&format!(
            "SELECT {ROBOT_COLUMNS} FROM robots WHERE {condition}"
        ))?
        .query_row([key], robot_row)
        .optional()?;
    found.map(|r| with_grants(c, r)).transpose()
}

#[async_trait]
impl RobotStore for SqliteMetaStore {
    async fn create_robot(
        &self,
        robot: &NewRobot,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, RobotError> {
        let (robot, audit) = (robot.clone(), audit.clone());
        self.writer
            .run(move |c| {
                let next = next_id(c, Sequence::Robots)?;
                let id: i64 = c
                    .prepare_cached(
                        "INSERT INTO robots (name, description, secret_hash, level, project_id,
                                             duration_days, expires_at, disabled, creator,
                                             created_at, updated_at, id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11) RETURNING id",
                    )
                    .and_then(|mut s| {
                        s.query_row(
                            params![
                                robot.name,
                                robot.description,
                                robot.secret_hash,
                                level_name(robot.level),
                                robot.project_id,
                                robot.duration_days,
                                robot.expires_at,
                                robot.disabled,
                                robot.creator,
                                now,
                                next
                            ],
                            |r| r.get(0),
                        )
                    })
                    .map_err(|e| match unique_violation(&e) {
                        Some(_) => RobotError::NameTaken(robot.name.clone()),
                        None => RobotError::Meta(db_err(e)),
                    })?;
                replace_grants(c, id, &robot.grants).map_err(db_err)?;
                insert_audit(c, &audit)?;
                Ok(id)
            })
            .await
    }

    async fn robot(&self, id: i64) -> Result<Option<Robot>, MetaError> {
        self.readers.with(|c| one_robot(c, "id = ?1", &id))
    }

    async fn robot_by_name(&self, name: &str) -> Result<Option<Robot>, MetaError> {
        self.readers.with(|c| one_robot(c, "name = ?1", &name))
    }

    async fn list_robots(&self, query: &ListQuery<RobotField>) -> Result<Listed<Robot>, MetaError> {
        let clauses = Clauses::new(query, "1", Vec::new(), "id");
        self.readers.with(|c| {
            let page = list(c, "robots", ROBOT_COLUMNS, &clauses, query, robot_row)?;
            page.try_map(|r| with_grants(c, r))
        })
    }

    async fn update_robot(
        &self,
        id: i64,
        update: &RobotUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let (update, audit) = (update.clone(), audit.clone());
        self.writer
            .run(move |c| {
                let found = c
                    .execute(
                        "UPDATE robots SET description = ?2, duration_days = ?3, expires_at = ?4,
                                           disabled = ?5, updated_at = ?6
                         WHERE id = ?1",
                        params![
                            id,
                            update.description,
                            update.duration_days,
                            update.expires_at,
                            update.disabled,
                            now
                        ],
                    )
                    .map_err(db_err)?
                    > 0;
                if found {
                    replace_grants(c, id, &update.grants).map_err(db_err)?;
                }
                audited(c, found, &audit)
            })
            .await
    }

    async fn set_robot_secret(
        &self,
        id: i64,
        secret_hash: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let (hash, audit) = (secret_hash.to_owned(), audit.clone());
        self.writer
            .run(move |c| {
                let changed = c
                    .execute(
                        "UPDATE robots SET secret_hash = ?2, updated_at = ?3 WHERE id = ?1",
                        params![id, hash, now],
                    )
                    .map(|n| n > 0)
                    .map_err(db_err)?;
                audited(c, changed, &audit)
            })
            .await
    }

    async fn delete_robot(&self, id: i64, audit: &AuditEntry) -> Result<bool, MetaError> {
        let audit = audit.clone();
        self.writer
            .run(move |c| {
                let deleted = c
                    .execute("DELETE FROM robots WHERE id = ?1", params![id])
                    .map(|n| n > 0)
                    .map_err(db_err)?;
                audited(c, deleted, &audit)
            })
            .await
    }
}
