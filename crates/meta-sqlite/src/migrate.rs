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
    include_str!("../migrations/0015_job_control.sql"),
    include_str!("../migrations/0016_labels.sql"),
    include_str!("../migrations/0017_immutable_tag_rules.sql"),
    include_str!("../migrations/0018_retention.sql"),
    include_str!("../migrations/0019_quotas.sql"),
    include_str!("../migrations/0020_untagged_at.sql"),
    include_str!("../migrations/0021_ended_uploads.sql"),
    include_str!("../migrations/0022_swept_blobs.sql"),
];

/// Applies the migrations the database has not seen yet, each in its own transaction.
pub fn run(conn: &mut Connection) -> Result<(), MetaError> {
    apply(conn, MIGRATIONS)
}

/// Applies those of `migrations` (the first of [`MIGRATIONS`]) the database has not seen
/// yet.
fn apply(conn: &mut Connection, migrations: &[&str]) -> Result<(), MetaError> {
    let applied: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    if applied > MIGRATIONS.len() {
        return Err(MetaError(format!(
            "database schema version {applied} is newer than this Berth ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in migrations.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(db_err)?;
        tx.execute_batch(sql).map_err(db_err)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        tracing::info!(version = i + 1, "applied metadata migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;
    use crate::writer::open_writer_connection;

    /// The first column of every row `sql` returns, as text.
    fn texts(conn: &Connection, sql: &str) -> Vec<String> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Migration 0015 rebuilds the jobs table: rows, ids, the AUTOINCREMENT position and
    /// the indexes survive it.
    #[test]
    fn job_control_keeps_jobs_ids_and_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer_connection(&dir.path().join("meta.db")).unwrap();
        apply(&mut conn, &MIGRATIONS[..14]).unwrap();
        let insert = "INSERT INTO jobs (id, kind, payload, max_attempts, backoff_ms, dedup_key,
                                        state, attempts, due_at, lease_token, created_at,
                                        finished_at, last_error)
                      VALUES (?1, 'k', '{}', 3, 10, ?2, ?3, 1, 5, ?4, 1, ?5, ?6)";
        conn.execute(
            insert,
            params![1, "a@1", "running", "t", None::<i64>, None::<&str>],
        )
        .unwrap();
        conn.execute(
            insert,
            params![2, None::<&str>, "failed", None::<&str>, 7, "boom"],
        )
        .unwrap();
        conn.execute(
            insert,
            params![3, None::<&str>, "succeeded", None::<&str>, 8, None::<&str>],
        )
        .unwrap();
        // The newest job was purged: its id must not come back.
        conn.execute("DELETE FROM jobs WHERE id = 3", []).unwrap();

        run(&mut conn).unwrap();
        let rows = texts(
            &conn,
            "SELECT id || ' ' || coalesce(dedup_key, '-') || ' ' || state || ' '
                    || coalesce(lease_token, '-') || ' ' || coalesce(finished_at, '-')
                    || ' ' || coalesce(last_error, '-') || ' ' || stop_requested
             FROM jobs ORDER BY id",
        );
        assert_eq!(rows, ["1 a@1 running t - - 0", "2 - failed - 7 boom 0"]);
        let next: i64 = conn
            .query_row(
                "INSERT INTO jobs (kind, payload, max_attempts, backoff_ms, state, due_at,
                                   created_at)
                 VALUES ('k', '{}', 1, 1, 'stopped', 1, 1) RETURNING id",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(next, 4, "ids continue after the purged job's");
        let indexes = texts(
            &conn,
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'
               AND sql IS NOT NULL ORDER BY name",
        );
        assert_eq!(indexes, ["jobs_finished", "jobs_kind", "jobs_live"]);
        assert_eq!(
            texts(
                &conn,
                "SELECT name FROM sqlite_sequence WHERE name LIKE 'jobs%'"
            ),
            ["jobs"]
        );
    }
}
