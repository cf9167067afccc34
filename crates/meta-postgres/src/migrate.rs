//! Schema migrations, applied in order under a PostgreSQL advisory lock so that nodes
//! starting together apply each one exactly once.

use berth_meta::MetaError;
use sqlx::{Connection, Executor, PgConnection};

use crate::db_err;

/// Every migration in order; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_core.sql"),
    include_str!("../migrations/0002_jobs.sql"),
    include_str!("../migrations/0003_repository_version.sql"),
    include_str!("../migrations/0004_open_upload_session.sql"),
    include_str!("../migrations/0005_put_manifest.sql"),
    include_str!("../migrations/0006_collection.sql"),
    include_str!("../migrations/0007_mark_skips_pins.sql"),
    include_str!("../migrations/0008_job_control.sql"),
    include_str!("../migrations/0009_sweep_claims.sql"),
    include_str!("../migrations/0010_labels.sql"),
    include_str!("../migrations/0011_immutable_tag_rules.sql"),
    include_str!("../migrations/0012_retention.sql"),
    include_str!("../migrations/0013_quotas.sql"),
    include_str!("../migrations/0014_quota_shards.sql"),
    include_str!("../migrations/0015_revive_on_pin.sql"),
    include_str!("../migrations/0016_quota_usage_lock.sql"),
    include_str!("../migrations/0017_quota_lock_order.sql"),
    include_str!("../migrations/0018_pin_completing_upload.sql"),
    include_str!("../migrations/0019_count_in_push.sql"),
    include_str!("../migrations/0020_untagged_at.sql"),
    include_str!("../migrations/0021_ended_uploads.sql"),
    include_str!("../migrations/0022_push_statements.sql"),
    include_str!("../migrations/0023_swept_blobs.sql"),
    include_str!("../migrations/0024_lighter_pushes.sql"),
];

/// The schema version of a fully migrated database.
#[cfg(test)]
pub const MIGRATION_COUNT: usize = MIGRATIONS.len();

/// The advisory-lock key every Berth node takes while migrating ("berth" in ASCII).
const MIGRATION_LOCK: i64 = 0x0062_6572_7468;

/// Applies the migrations the database has not seen yet, each in its own transaction,
/// holding the migration lock for the whole run: a node that starts while another
/// migrates waits, then finds nothing left to do.
pub async fn run(conn: &mut PgConnection) -> Result<(), MetaError> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let outcome = apply_pending(conn).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_err);
    outcome.and(unlocked.map(drop))
}

async fn apply_pending(conn: &mut PgConnection) -> Result<(), MetaError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_version (
             singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
             version BIGINT NOT NULL
         )",
    )
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    let applied: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .unwrap_or(0);
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(MetaError(format!(
            "database schema version {applied} is newer than this Berth ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().copied().enumerate().skip(applied) {
        let mut tx = conn.begin().await.map_err(db_err)?;
        // A query without arguments runs as a simple query: several statements at once.
        tx.execute(sql).await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO schema_version (version) VALUES ($1)
             ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
        )
        .bind(i as i64 + 1)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        tracing::info!(version = i + 1, "applied metadata migration");
    }
    Ok(())
}
