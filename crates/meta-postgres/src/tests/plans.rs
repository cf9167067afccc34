//! The hot listings walk an index in the order they return, as on SQLite.

use sqlx::Arguments;
use sqlx::postgres::PgArguments;

use super::node;
use crate::PgMetaStore;
use crate::queries::{REFERRERS, REFERRERS_OF_TYPE, TAGS_AFTER};
use berth_testkit_postgres::TempDatabase;

/// The plan of `sql` with `args`, one line per step. Sequential scans are off: on a
/// tiny table one would win, and the question is whether an index serves the query.
async fn plan(store: &PgMetaStore, sql: &str, args: PgArguments) -> Vec<String> {
    let mut tx = store.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query_scalar_with(&format!("EXPLAIN {sql}"), args)
        .fetch_all(&mut *tx)
        .await
        .unwrap()
}

fn args(values: impl FnOnce(&mut PgArguments)) -> PgArguments {
    let mut args = PgArguments::default();
    values(&mut args);
    args
}

fn sorts(plan: &[String]) -> bool {
    plan.iter()
        .any(|step| step.trim_start().starts_with("Sort") || step.contains("-> Sort"))
}

#[tokio::test]
async fn tag_pages_walk_the_listing_index() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let store = node(&db).await;
    let plan = plan(
        &store,
        TAGS_AFTER,
        args(|a| {
            a.add(1_i64).unwrap();
            a.add("v1").unwrap();
            a.add(10_i64).unwrap();
        }),
    )
    .await;
    // A range on the index, not a scan of the repository's tags, and no sort.
    assert!(
        plan.iter()
            .any(|s| s.contains("Scan using tags_listing on tags")),
        "{plan:#?}"
    );
    assert!(!sorts(&plan), "{plan:#?}");
}

#[tokio::test]
async fn referrer_pages_walk_an_index_in_digest_order() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let store = node(&db).await;
    let all = plan(
        &store,
        REFERRERS,
        args(|a| {
            a.add("p/r").unwrap();
            a.add("sha256:ab").unwrap();
            a.add("").unwrap();
            a.add(11_i64).unwrap();
        }),
    )
    .await;
    let of_type = plan(
        &store,
        REFERRERS_OF_TYPE,
        args(|a| {
            a.add("p/r").unwrap();
            a.add("sha256:ab").unwrap();
            a.add("application/spdx+json").unwrap();
            a.add("").unwrap();
            a.add(11_i64).unwrap();
        }),
    )
    .await;
    for (plan, index) in [
        (all, "using manifests_subject on"),
        (of_type, "using manifests_subject_type on"),
    ] {
        // The page comes in digest order from the index: no scan of the subject's other
        // referrers and no sort.
        assert!(plan.iter().any(|s| s.contains(index)), "{plan:#?}");
        assert!(!sorts(&plan), "{plan:#?}");
    }
}
