use std::sync::Arc;

use berth_testkit_postgres::TempDatabase;

use super::{PgConfig, PgMetaStore};

fn config(db: &TempDatabase) -> PgConfig {
    PgConfig {
        url: db.url().to_owned(),
        pool_size: 8,
        statement_timeout: std::time::Duration::from_secs(30),
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
    let store = PgMetaStore::connect(&config).await.unwrap();
    let version: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(version as usize, super::migrate::MIGRATION_COUNT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_conformance_suite() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let store = PgMetaStore::connect(&config(&db)).await.unwrap();
    berth_meta::conformance::run(Arc::new(store)).await;
}
