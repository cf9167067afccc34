//! Connections lent for one statement at a time (`leases`): given back as they are only
//! after a statement that ran to its end, and never more than their number at once.

use std::time::{Duration, Instant};

use berth_testkit_postgres::TempDatabase;
use sqlx::PgConnection;

use super::config;
use crate::connect_options;
use crate::leases::{Connections, IDLE_TIMEOUT, MAX_LIFETIME};

async fn connections(db: &TempDatabase, size: u32) -> Connections {
    Connections::new(connect_options(&config(db)).unwrap(), size)
}

async fn backend(c: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(c)
        .await
        .unwrap()
}

/// The server process of a fresh lease, given back finished or not.
async fn leased_backend(lender: &Connections, finish: bool) -> i32 {
    let mut lease = lender.lease().await.unwrap();
    let pid = backend(lease.connection()).await;
    if finish {
        lease.finish();
    }
    pid
}

#[tokio::test]
async fn a_finished_lease_lends_its_connection_again() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let lender = connections(&db, 2).await;
    let first = leased_backend(&lender, true).await;
    assert_eq!(leased_backend(&lender, true).await, first);
}

#[tokio::test]
async fn an_unfinished_lease_closes_its_connection() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let lender = connections(&db, 2).await;
    let dropped = leased_backend(&lender, false).await;
    assert_ne!(leased_backend(&lender, true).await, dropped);
}

#[tokio::test]
async fn a_lease_cancelled_mid_statement_is_never_lent_again() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let lender = connections(&db, 1).await;
    let mut lease = lender.lease().await.unwrap();
    let cancelled = backend(lease.connection()).await;
    let sleep = sqlx::query("SELECT pg_sleep(5)").execute(lease.connection());
    assert!(
        tokio::time::timeout(Duration::from_millis(200), sleep)
            .await
            .is_err()
    );
    drop(lease);
    // The next lease answers at once, on another connection than the one still busy.
    let started = Instant::now();
    assert_ne!(leased_backend(&lender, true).await, cancelled);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn no_more_leases_than_connections_run_at_once() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let lender = connections(&db, 2).await;
    let first = lender.lease().await.unwrap();
    let _second = lender.lease().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), lender.lease())
            .await
            .is_err()
    );
    first.finish();
    let mut third = tokio::time::timeout(Duration::from_secs(5), lender.lease())
        .await
        .unwrap()
        .unwrap();
    backend(third.connection()).await;
}

#[tokio::test]
async fn connections_idle_or_open_too_long_are_not_lent() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let lender = connections(&db, 1).await;
    leased_backend(&lender, true).await;
    let now = Instant::now();
    assert!(lender.fresh_idle(now + IDLE_TIMEOUT).is_none());
    leased_backend(&lender, true).await;
    assert!(lender.fresh_idle(now + MAX_LIFETIME).is_none());
    leased_backend(&lender, true).await;
    assert!(lender.fresh_idle(Instant::now()).is_some());
}
