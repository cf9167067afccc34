//! Robot accounts and their permissions.

use async_trait::async_trait;
use berth_meta::{
    AuditEntry, ListQuery, Listed, MetaError, NewRobot, Robot, RobotError, RobotField, RobotGrant,
    RobotLevel, RobotStore, RobotUpdate,
};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use crate::audit::{audited, insert_audit};
use crate::listing::{Clauses, Column, Columns, Value, arguments, list};
use crate::{PgMetaStore, columns, db_err, unique_violation};

/// Robot columns, the grants as four arrays (kind, namespace, resource, action) in that
/// order.
const ROBOT_COLUMNS: &str = "id, name, description, secret_hash, level, project_id,
     duration_days, expires_at, disabled, creator, created_at, updated_at,
     ARRAY(SELECT kind FROM robot_permissions WHERE robot_id = robots.id
           ORDER BY kind, namespace, resource, action),
     ARRAY(SELECT namespace FROM robot_permissions WHERE robot_id = robots.id
           ORDER BY kind, namespace, resource, action),
     ARRAY(SELECT resource FROM robot_permissions WHERE robot_id = robots.id
           ORDER BY kind, namespace, resource, action),
     ARRAY(SELECT action FROM robot_permissions WHERE robot_id = robots.id
           ORDER BY kind, namespace, resource, action)";

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

/// A robot row: its columns, then its grants' four arrays.
type RobotRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<i64>,
    i64,
    i64,
    bool,
    String,
    i64,
    i64,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
);

fn robot_row(r: &PgRow) -> Result<Robot, MetaError> {
    let (
        id,
        name,
        description,
        secret_hash,
        level,
        project_id,
        duration_days,
        expires_at,
        disabled,
        creator,
        created_at,
        updated_at,
        kinds,
        namespaces,
        resources,
        actions,
    ) = columns::<RobotRow>(r)?;
    Ok(Robot {
        id,
        name,
        description,
        secret_hash,
        level: if level == "system" {
            RobotLevel::System
        } else {
            RobotLevel::Project
        },
        project_id,
        duration_days,
        expires_at,
        disabled,
        creator,
        grants: grants(kinds, namespaces, resources, actions),
        created_at,
        updated_at,
    })
}

/// Permission rows, sorted by kind and namespace, grouped into grants.
fn grants(
    kinds: Vec<String>,
    namespaces: Vec<String>,
    resources: Vec<String>,
    actions: Vec<String>,
) -> Vec<RobotGrant> {
    let mut grants: Vec<RobotGrant> = Vec::new();
    let rows = kinds
        .into_iter()
        .zip(namespaces)
        .zip(resources.into_iter().zip(actions));
    for ((kind, namespace), (resource, action)) in rows {
        match grants.last_mut() {
            Some(g) if g.kind == kind && g.namespace == namespace => {
                g.access.push((resource, action));
            }
            _ => grants.push(RobotGrant {
                kind,
                namespace,
                access: vec![(resource, action)],
            }),
        }
    }
    grants
}

async fn replace_grants(
    c: &mut PgConnection,
    robot_id: i64,
    grants: &[RobotGrant],
) -> Result<(), MetaError> {
    sqlx::query("DELETE FROM robot_permissions WHERE robot_id = $1")
        .bind(robot_id)
        .execute(&mut *c)
        .await
        .map_err(db_err)?;
    let rows = grants.iter().flat_map(|g| {
        g.access
            .iter()
            .map(move |(r, a)| (g, r.as_str(), a.as_str()))
    });
    let (mut kinds, mut namespaces, mut resources, mut actions) = (vec![], vec![], vec![], vec![]);
    for (grant, resource, action) in rows {
        kinds.push(grant.kind.as_str());
        namespaces.push(grant.namespace.as_str());
        resources.push(resource);
        actions.push(action);
    }
    sqlx::query(
        "INSERT INTO robot_permissions (robot_id, kind, namespace, resource, action)
         SELECT $1, kind, namespace, resource, action
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])
             AS p(kind, namespace, resource, action)
         ON CONFLICT DO NOTHING",
    )
    .bind(robot_id)
    .bind(&kinds[..])
    .bind(&namespaces[..])
    .bind(&resources[..])
    .bind(&actions[..])
    .execute(c)
    .await
    .map(drop)
    .map_err(db_err)
}

async fn one_robot(
    store: &PgMetaStore,
    condition: &str,
    key: Value,
) -> Result<Option<Robot>, MetaError> {
    sqlx::query_with(
        &format!("SELECT {ROBOT_COLUMNS} FROM robots WHERE {condition}"),
        arguments(&[key])?,
    )
    .fetch_optional(&store.pool)
    .await
    .map_err(db_err)?
    .as_ref()
    .map(robot_row)
    .transpose()
}

#[async_trait]
impl RobotStore for PgMetaStore {
    async fn create_robot(
        &self,
        robot: &NewRobot,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, RobotError> {
        let mut tx = self.durable().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO robots (name, description, secret_hash, level, project_id,
                                 duration_days, expires_at, disabled, creator, created_at,
                                 updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
        )
        .bind(&robot.name)
        .bind(&robot.description)
        .bind(&robot.secret_hash)
        .bind(level_name(robot.level))
        .bind(robot.project_id)
        .bind(robot.duration_days)
        .bind(robot.expires_at)
        .bind(robot.disabled)
        .bind(&robot.creator)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => RobotError::NameTaken(robot.name.clone()),
            None => RobotError::Meta(db_err(e)),
        })?;
        replace_grants(&mut tx, id, &robot.grants).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(id)
    }

    async fn robot(&self, id: i64) -> Result<Option<Robot>, MetaError> {
        one_robot(self, "id = $1", Value::Int(id)).await
    }

    async fn robot_by_name(&self, name: &str) -> Result<Option<Robot>, MetaError> {
        one_robot(self, "name = $1", Value::Text(name.to_owned())).await
    }

    async fn list_robots(&self, query: &ListQuery<RobotField>) -> Result<Listed<Robot>, MetaError> {
        let clauses = Clauses::new(query, "TRUE", Vec::new(), "id");
        list(
            &self.pool,
            "robots",
            ROBOT_COLUMNS,
            &clauses,
            query,
            robot_row,
        )
        .await
    }

    async fn update_robot(
        &self,
        id: i64,
        update: &RobotUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        // The update locks the robot's row, so two updates replace its grants in turn.
        let found = sqlx::query(
            "UPDATE robots SET description = $2, duration_days = $3, expires_at = $4,
                               disabled = $5, updated_at = $6
             WHERE id = $1",
        )
        .bind(id)
        .bind(&update.description)
        .bind(update.duration_days)
        .bind(update.expires_at)
        .bind(update.disabled)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            > 0;
        if found {
            replace_grants(&mut tx, id, &update.grants).await?;
        }
        audited(&mut tx, found, audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(found)
    }

    async fn set_robot_secret(
        &self,
        id: i64,
        secret_hash: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let changed =
            sqlx::query("UPDATE robots SET secret_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(secret_hash)
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

    async fn delete_robot(&self, id: i64, audit: &AuditEntry) -> Result<bool, MetaError> {
        let mut tx = self.durable().await?;
        let deleted = sqlx::query("DELETE FROM robots WHERE id = $1")
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
}
