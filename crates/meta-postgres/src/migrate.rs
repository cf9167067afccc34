//! Schema migrations, applied in order under a PostgreSQL advisory lock so that nodes
//! starting together apply each one exactly once. A migration runs beside the nodes of
//! the release before: it waits a bounded time for the table locks their transactions
//! hold, and gives way and tries again when it waits longer or deadlocks with one.

use std::time::Duration;

use berth_meta::MetaError;
use sqlx::{Connection, Executor, PgConnection};

use crate::db_err;

/// Every migration in order; the schema version is the number applied.
pub(crate) const MIGRATIONS: &[&str] = &[
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

/// Longest a migration's statement waits for a table lock (`lock_timeout`): the
/// statements of other nodes queue behind the lock it waits for, so it gives way and
/// tries again rather than stall them.
const LOCK_WAIT: &str = "2s";

/// How often a migration is tried that found its tables locked, or deadlocked with a
/// transaction of another node, and how long it pauses before trying again.
const ATTEMPTS: u32 = 30;
const PAUSE: Duration = Duration::from_secs(1);

/// Applies the migrations the database has not seen yet, each in its own transaction,
/// holding the migration lock for the whole run: a node that starts while another
/// migrates waits, then finds nothing left to do.
pub async fn run(conn: &mut PgConnection) -> Result<(), MetaError> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let outcome = apply_pending(conn, MIGRATIONS).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_err);
    outcome.and(unlocked.map(drop))
}

/// Applies those of `migrations` the database has not seen yet, in order.
pub(crate) async fn apply_pending(
    conn: &mut PgConnection,
    migrations: &[&str],
) -> Result<(), MetaError> {
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
    if applied > migrations.len() {
        return Err(MetaError(format!(
            "database schema version {applied} is newer than this Berth ({})",
            migrations.len()
        )));
    }
    for (i, sql) in migrations.iter().copied().enumerate().skip(applied) {
        let mut attempt = 1;
        loop {
            match apply(conn, i + 1, sql).await {
                Ok(()) => break,
                Err(e) if gave_way(&e) && attempt < ATTEMPTS => {
                    tracing::warn!(version = i + 1, attempt, error = %e,
                        "a metadata migration gave way to other nodes' transactions");
                    attempt += 1;
                    tokio::time::sleep(PAUSE).await;
                }
                Err(e) => return Err(db_err(e)),
            }
        }
        tracing::info!(version = i + 1, "applied metadata migration");
    }
    Ok(())
}

/// Applies one migration and records the schema `version` it makes, in one transaction.
async fn apply(conn: &mut PgConnection, version: usize, sql: &str) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    tx.execute(format!("SET LOCAL lock_timeout = '{LOCK_WAIT}'").as_str())
        .await?;
    // A query without arguments runs as a simple query: several statements at once.
    tx.execute(sql).await?;
    sqlx::query(
        "INSERT INTO schema_version (version) VALUES ($1)
         ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
    )
    .bind(version as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Whether a migration failed because it waited too long for a lock (SQLSTATE 55P03)
/// or deadlocked with another transaction (40P01): nothing of it was applied, and it
/// may be tried again.
fn gave_way(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d)
        if matches!(d.code().as_deref(), Some("55P03" | "40P01")))
}
