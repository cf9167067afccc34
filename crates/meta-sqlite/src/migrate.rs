//! Schema migrations, tracked with `PRAGMA user_version`.

use berth_meta::MetaError;
use rusqlite::Connection;

use crate::db_err;

/// Every migration in order; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_core.sql"),
    include_str!("../migrations/0002_tag_version.sql"),
    include_str!("../migrations/0003_upload_verification.sql"),
    include_str!("../migrations/0004_tag_listing_order.sql"),
    include_str!("../migrations/0005_referrers_by_digest.sql"),
    include_str!("../migrations/0006_upload_verified_digest.sql"),
    include_str!("../migrations/0007_referrers_by_type.sql"),
    include_str!("../migrations/0008_identity.sql"),
    include_str!("../migrations/0009_repository_details.sql"),
    include_str!("../migrations/0010_sessions.sql"),
    include_str!("../migrations/0011_id_sequences.sql"),
    include_str!("../migrations/0012_jobs.sql"),
    include_str!("../migrations/0013_upload_leases.sql"),
    include_str!("../migrations/0014_upload_pins.sql"),
];

/// Applies the migrations the database has not seen yet, each in its own transaction.
pub fn run(conn: &mut Connection) -> Result<(), MetaError> {
    let applied: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    if applied > MIGRATIONS.len() {
        return Err(MetaError(format!(
            "database schema version {applied} is newer than this Berth ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(db_err)?;
        tx.execute_batch(sql).map_err(db_err)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        tracing::info!(version = i + 1, "applied metadata migration");
    }
    Ok(())
}
