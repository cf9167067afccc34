//! Connections lent for one statement at a time (`leases`): given back as they are only
//! after a statement that ran to its end, never more than their number at once (on the
//! server too), and waited for within the lease's timeout, connecting included.

use std::time::{Duration, Instant};

use berth_testkit_postgres::TempDatabase;
use sqlx::PgConnection;

use berth_meta::{BlobLinkStore, ManifestStore, PutManifestError};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::{TcpListener, TcpStream};

use super::nodes::manifest;
use super::{config, digest, node, repo};
use crate::connect_options;
use crate::leases::{Connections, IDLE_TIMEOUT, MAX_LIFETIME};

/// How long the leases of these tests wait for a connection.
const TIMEOUT: Duration = Duration::from_secs(5);

async fn connections(db: &TempDatabase, size: u32) -> Connections {
    Connections::new(
        connect_options(&config(db)).unwrap(),
        size,
        TIMEOUT,
        TIMEOUT,
    )
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
    let sleep = sqlx::raw_sql("SELECT pg_sleep(1)").execute(lease.connection());
    assert!(
        tokio::time::timeout(Duration::from_millis(200), sleep)
            .await
            .is_err()
    );
    drop(lease);
    // The next lease waits for the server to finish the cancelled statement, then gets
    // another connection.
    let started = Instant::now();
    assert_ne!(leased_backend(&lender, true).await, cancelled);
    assert!(started.elapsed() >= Duration::from_millis(500));
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

#[tokio::test]
async fn a_push_refused_for_what_it_sent_keeps_its_connection() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let store = node(&db).await;
    store
        .link_blob(&repo("lent/a"), &digest("layer"), 1, 1)
        .await
        .unwrap();
    store
        .put_manifest(&manifest("lent/a", "first", &[("layer", 1)], &[]))
        .await
        .unwrap();
    let before = leased_backend(&store.leased, true).await;
    let refused = store
        .put_manifest(&manifest("lent/a", "second", &[("missing", 1)], &[]))
        .await;
    assert!(
        matches!(refused, Err(PutManifestError::BlobUnknown(_))),
        "{refused:?}"
    );
    assert_eq!(leased_backend(&store.leased, true).await, before);
}

#[tokio::test]
async fn cancelled_leases_never_leave_the_server_more_statements_than_their_number() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let lender = connections(&db, 1).await;
    for _ in 0..3 {
        let mut lease = lender.lease().await.unwrap();
        let sleep = sqlx::raw_sql("SELECT pg_sleep(1)").execute(lease.connection());
        assert!(
            tokio::time::timeout(Duration::from_millis(200), sleep)
                .await
                .is_err()
        );
    }
    let mut probe = connect_options(&config(&db))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND query = 'SELECT pg_sleep(1)'
           AND state = 'active'",
    )
    .fetch_one(&mut probe)
    .await
    .unwrap();
    assert!(
        running <= 1,
        "{running} statements of a lender of one still run"
    );
}

#[tokio::test]
async fn a_lease_gives_up_on_a_server_that_never_answers_within_its_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres");
    let lender = Connections::new(options, 1, Duration::from_secs(1), TIMEOUT);
    let started = Instant::now();
    let leased = tokio::time::timeout(Duration::from_secs(5), lender.lease()).await;
    let Ok(Err(e)) = leased else {
        panic!("the lease outwaited its timeout");
    };
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_waits_for_a_server_that_starts_listening_as_the_pool_does() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    // A port nothing listens on for half a second, then a proxy to the server.
    let port = {
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        unused.local_addr().unwrap().port()
    };
    let server = connect_options(&config(&db)).unwrap();
    let target = format!("{}:{}", server.get_host(), server.get_port());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let mut outbound = TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let options = server.host("127.0.0.1").port(port);
    let lender = Connections::new(options.clone(), 1, TIMEOUT, TIMEOUT);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(TIMEOUT)
        .connect_lazy_with(options);
    let (leased, pooled) = tokio::join!(lender.lease(), pool.acquire());
    let (leased, pooled) = (leased.map(drop), pooled.map(drop));
    assert!(leased.is_ok() && pooled.is_ok(), "{leased:?} {pooled:?}");
}
