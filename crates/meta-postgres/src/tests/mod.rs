//! The PostgreSQL adapter against a real server: the shared conformance suite, the
//! SQLite adapter's own checks that apply here, the same answers as SQLite for the
//! management stores (`parity`), and races between nodes (`nodes`: two stores on one
//! database are two nodes).

mod leases;
mod nodes;
mod parity;
mod plans;
mod version_reads;

use std::sync::Arc;

use berth_meta::{BlobLinkStore, NewUser, ProjectStore, UploadStore, UserStore};
use berth_oci::{Algorithm, Digest, RepositoryName};
use berth_testkit_postgres::TempDatabase;

use super::{PgConfig, PgMetaStore};

pub(crate) fn config(db: &TempDatabase) -> PgConfig {
    PgConfig {
        url: db.url().to_owned(),
        // Room for the race tests' held transactions beside the connections lent to pushes.
        pool_size: 12,
        statement_timeout: std::time::Duration::from_secs(30),
    }
}

/// A node on `db`.
async fn node(db: &TempDatabase) -> PgMetaStore {
    PgMetaStore::connect(&config(db)).await.unwrap()
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn digest(text: &str) -> Digest {
    Digest::compute(Algorithm::Sha256, text.as_bytes())
}

fn new_user(username: &str, sysadmin: bool) -> NewUser {
    NewUser {
        username: username.into(),
        email: String::new(),
        realname: String::new(),
        comment: String::new(),
        password_hash: "x".into(),
        sysadmin,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let config = config(&db);
    let starts = (0..4).map(|_| {
        let config = config.clone();
        tokio::spawn(async move { PgMetaStore::connect(&config).await.map(drop) })
    });
    for start in starts {
        start.await.unwrap().unwrap();
    }
    let store = node(&db).await;
    let version: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(version as usize, super::migrate::MIGRATION_COUNT);
}

/// A node migrating while a node of the release before is inside a write transaction
/// (a repository's row locked, its manifests next, longer than a migration waits for a
/// lock): the migration gives way and tries again, and both commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_gives_way_to_a_write_in_flight() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    use super::migrate::{MIGRATIONS, apply_pending};
    use sqlx::Connection;
    let before = MIGRATIONS.len() - 1;
    let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
    apply_pending(&mut conn, &MIGRATIONS[..before])
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO projects (name, created_at, updated_at) VALUES ('p', 1, 1);
         INSERT INTO repositories (project_id, name, created_at, updated_at)
         SELECT id, 'p/app', 1, 1 FROM projects WHERE name = 'p'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let mut writer = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let mut write = writer.begin().await.unwrap();
    sqlx::query("SELECT id FROM repositories WHERE name = 'p/app' FOR UPDATE")
        .execute(&mut *write)
        .await
        .unwrap();
    let migrating = tokio::spawn(async move { apply_pending(&mut conn, MIGRATIONS).await });
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    sqlx::query(
        "DELETE FROM manifests
         WHERE repository_id = (SELECT id FROM repositories WHERE name = 'p/app')",
    )
    .execute(&mut *write)
    .await
    .unwrap();
    write.commit().await.unwrap();
    migrating.await.unwrap().unwrap();
    let version: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_one(&mut writer)
        .await
        .unwrap();
    assert_eq!(version as usize, MIGRATIONS.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_conformance_suite() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    berth_meta::conformance::run(Arc::new(node(&db).await)).await;
}

#[tokio::test]
async fn reconnecting_keeps_data_and_skips_applied_migrations() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let d = digest("x");
    node(&db)
        .await
        .link_blob(&repo("p/r"), &d, 1, 1)
        .await
        .unwrap();
    let again = node(&db).await;
    assert_eq!(again.linked_blob(&repo("p/r"), &d).await.unwrap(), Some(1));
}

/// A database migrated from another runtime serves a lazily connected store created in
/// this one; the lazy store applies no migrations of its own.
#[tokio::test]
async fn a_lazy_store_uses_a_database_migrated_elsewhere() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let config = config(&db);
    let unmigrated = PgMetaStore::connect_lazy(&config).unwrap();
    assert!(
        unmigrated
            .linked_blob(&repo("p/r"), &digest("x"))
            .await
            .is_err(),
        "no tables before the migration"
    );
    let migrating = config.clone();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(PgMetaStore::migrate(&migrating))
    })
    .join()
    .unwrap()
    .unwrap();
    let store = PgMetaStore::connect_lazy(&config).unwrap();
    store
        .link_blob(&repo("p/r"), &digest("x"), 1, 1)
        .await
        .unwrap();
    assert_eq!(
        store.linked_blob(&repo("p/r"), &digest("x")).await.unwrap(),
        Some(1)
    );
}

#[tokio::test]
async fn upload_progress_alone_commits_without_waiting_for_a_flush() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let store = node(&db).await;
    let progress: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&store.progress_pool)
        .await
        .unwrap();
    assert_eq!(progress, "off");
    let mut tx = store.durable().await.unwrap();
    let durable: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(durable, "on");
    let after: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(after, "on", "the setting ends with its transaction");
    // The connections lent to pushes, whose one-request completions may link: flushed.
    let mut lease = store.leased.lease().await.unwrap();
    let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(lease.connection())
        .await
        .unwrap();
    lease.finish();
    assert_eq!(setting, "on");
}

#[tokio::test]
async fn projects_from_before_accounts_go_to_the_first_administrator() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let store = node(&db).await;
    let d = digest("x");
    for name in ["legacy/app", "library/app"] {
        store.link_blob(&repo(name), &d, 1, 1).await.unwrap();
    }
    let legacy = store.project_by_name("legacy").await.unwrap().unwrap();
    assert_eq!((legacy.owner_id, legacy.public), (None, false));
    let admin = new_user("admin", true);
    assert!(store.create_first_admin(&admin, 2).await.unwrap());
    assert!(
        !store.create_first_admin(&admin, 3).await.unwrap(),
        "only once"
    );
    let id = store.user_by_name("admin").await.unwrap().unwrap().id;
    let legacy = store.project_by_name("legacy").await.unwrap().unwrap();
    assert_eq!((legacy.owner_id, legacy.public), (Some(id), false));
    let library = store.project_by_name("library").await.unwrap().unwrap();
    assert!(library.public);
    // Projects a push makes later belong to the administrator from the start.
    store.link_blob(&repo("later/app"), &d, 1, 4).await.unwrap();
    let later = store.project_by_name("later").await.unwrap().unwrap();
    assert_eq!(later.owner_id, Some(id));
}

#[tokio::test]
async fn connections_carry_the_configured_timeouts() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let store = PgMetaStore::connect(&PgConfig {
        statement_timeout: std::time::Duration::from_millis(1500),
        ..config(&db)
    })
    .await
    .unwrap();
    for setting in ["statement_timeout", "idle_in_transaction_session_timeout"] {
        let value: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(value, "1500ms", "{setting}");
    }
    let slow = sqlx::query("SELECT pg_sleep(3)").execute(&store.pool).await;
    assert!(slow.is_err(), "the statement is cancelled");
}

/// A node moved from SQLite keeps handing out new job ids: SQLite's AUTOINCREMENT counts
/// the purged jobs too, and none of their ids comes back (a job's id names its history
/// in Harbor's API).
#[tokio::test]
async fn migrating_from_sqlite_never_hands_out_a_purged_job_id_again() {
    use berth_meta::{JobSpec, JobStore, NewJob, RetryPolicy};

    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let job = |n: u32| NewJob {
        spec: JobSpec {
            kind: "test".into(),
            payload: n.to_string(),
            retry: RetryPolicy {
                max_attempts: 1,
                backoff_ms: 1,
            },
        },
        run_after: 0,
        dedup_key: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let single = berth_meta_sqlite::SqliteMetaStore::open(&path).unwrap();
    for n in 1..=3 {
        assert_eq!(single.enqueue(&job(n), 1).await.unwrap().id(), i64::from(n));
    }
    drop(single);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM jobs WHERE id = 3", [])
        .unwrap();

    crate::import_sqlite(&path, &config(&db)).await.unwrap();
    let moved = node(&db).await;
    assert_eq!(moved.enqueue(&job(4), 1).await.unwrap().id(), 4);
}

/// An execution's end waits for a run adding its tasks (which holds the execution's
/// row) and then ends those tasks too: its task update sees what was committed while
/// it waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_ended_while_its_tasks_are_added_ends_them() {
    use berth_meta::{ExecutionStatus, RetentionStore, TaskStatus};
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let store = Arc::new(node(&db).await);
    let mut c = store.pool.acquire().await.unwrap();
    let execution: i64 = sqlx::query_scalar(
        "WITH p AS (INSERT INTO projects (name, created_at, updated_at)
                    VALUES ('ended-tasks', 0, 0) RETURNING id),
              r AS (INSERT INTO retention_policies (project_id, definition, created_at,
                                                    updated_at)
                    SELECT id, '{}', 0, 0 FROM p RETURNING id)
         INSERT INTO retention_executions (policy_id, trigger, dry_run, operator, status,
                                           policy, started_at)
         SELECT id, 'MANUAL', false, 'runner', 'Running', '{}', 0 FROM r RETURNING id",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    // A run adding tasks, as add_retention_tasks does, holds the row meanwhile.
    let mut adding = sqlx::Connection::begin(&mut *c).await.unwrap();
    sqlx::query("SELECT 1 FROM retention_executions WHERE id = $1 FOR NO KEY UPDATE")
        .bind(execution)
        .execute(&mut *adding)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO retention_tasks (execution_id, repository, status)
         VALUES ($1, 'ended-tasks/a', 'Pending')",
    )
    .bind(execution)
    .execute(&mut *adding)
    .await
    .unwrap();
    let ending = tokio::spawn({
        let store = store.clone();
        async move { (store.end_retention_execution(execution, ExecutionStatus::Error, 5)).await }
    });
    // The end waits for the row.
    let mut probe = store.pool.acquire().await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                            WHERE datname = current_database() AND wait_event_type = 'Lock')",
        )
        .fetch_one(&mut *probe)
        .await
        .unwrap();
        if waiting {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the end never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    adding.commit().await.unwrap();
    assert!(ending.await.unwrap().unwrap());
    let tasks = store
        .list_retention_tasks(execution, 0, None)
        .await
        .unwrap();
    let states: Vec<_> = tasks.items.iter().map(|t| (t.status, t.ended_at)).collect();
    assert_eq!(states, [(TaskStatus::Error, Some(5))]);
}

/// The upload purge forgets the tombstones of blobs swept longer ago than
/// `SWEPT_BLOBS_KEPT_FOR` by the database's clock, and keeps the others; a blob row's
/// delete writes one.
#[tokio::test]
async fn the_purge_forgets_only_tombstones_older_than_a_day() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let store = node(&db).await;
    let kept = berth_meta::SWEPT_BLOBS_KEPT_FOR.as_millis() as i64;
    sqlx::query(
        "INSERT INTO swept_blobs (digest, swept_at)
         VALUES ('old', clock_ms() - $1 - 60000), ('recent', clock_ms() - $1 + 60000)",
    )
    .bind(kept)
    .execute(&store.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO blobs (digest, size, created_at) VALUES ('deleted', 1, 1)")
        .execute(&store.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM blobs WHERE digest = 'deleted'")
        .execute(&store.pool)
        .await
        .unwrap();
    store.purge_ended_uploads(0).await.unwrap();
    let left: Vec<String> = sqlx::query_scalar("SELECT digest FROM swept_blobs ORDER BY digest")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    assert_eq!(left, ["deleted", "recent"]);
}
