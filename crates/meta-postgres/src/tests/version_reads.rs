//! The repository-version reader under the conditions it meets in service: a busy
//! runtime, and its one connection dropped while the database stays up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use berth_meta::BlobLinkStore;
use berth_oci::{Digest, RepositoryName};
use berth_testkit_postgres::TempDatabase;

use super::{digest, node, repo};
use crate::{PgMetaStore, queries, versions};

/// A task that always has work ready, as a node serving many requests has: each poll
/// works for `slice`, then asks to run again.
struct Busy {
    stop: Arc<AtomicBool>,
    slice: Duration,
}

impl Future for Busy {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Poll::Ready(());
        }
        let until = Instant::now() + self.slice;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The median time `read` takes, run in a task of the runtime, over `rounds` rounds.
async fn median<F, Fut>(rounds: usize, read: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let work = read();
        let started = Instant::now();
        tokio::spawn(work).await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    times[rounds / 2]
}

/// A node on a fresh database whose repository `p/r` links blob `x`, read once so that
/// the link is cached; `None` without a database.
async fn store_with_a_cached_link()
-> Option<(TempDatabase, Arc<PgMetaStore>, RepositoryName, Digest)> {
    let db = TempDatabase::create().await?;
    let store = Arc::new(node(&db).await);
    let (r, d) = (repo("p/r"), digest("x"));
    store.link_blob(&r, &d, 1, 1).await.unwrap();
    assert_eq!(store.linked_blob(&r, &d).await.unwrap(), Some(1));
    Some((db, store, r, d))
}

/// A cached blob-link read needs one version read, which should cost about what the
/// one query of an uncached read costs, also when other tasks keep the runtime busy
/// (request handling, upload hashing): batching must not multiply the wait.
#[tokio::test(flavor = "current_thread")]
async fn a_busy_runtime_delays_a_cached_read_no_more_than_a_query() {
    let Some((_db, store, r, d)) = store_with_a_cached_link().await else {
        return;
    };

    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..8 {
        tokio::spawn(Busy {
            stop: stop.clone(),
            slice: Duration::from_micros(200),
        });
    }
    let direct = median(5, || {
        let store = store.clone();
        let d = d.clone();
        async move {
            let found = queries::linked_blob(&store.pool, "p/r", d.as_str())
                .await
                .unwrap();
            assert_eq!(found.map(|(size, _)| size), Some(1));
        }
    })
    .await;
    let cached = median(5, || {
        let (store, r, d) = (store.clone(), r.clone(), d.clone());
        async move {
            assert_eq!(store.linked_blob(&r, &d).await.unwrap(), Some(1));
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    assert!(
        cached <= direct * 3,
        "a cached read took {cached:?}, the query it saves {direct:?}"
    );
}

/// A busy node sends a version query only once a gap has passed (or a full batch of
/// reads waits): the reads that arrive meanwhile share it, rather than each round
/// trip's few. Readers fewer than a full batch never fill one, so each query waits
/// for the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_node_sends_one_version_query_per_gap() {
    let Some((_db, store, r, d)) = store_with_a_cached_link().await else {
        return;
    };
    let before = store.version_queries();
    let started = Instant::now();
    let readers: Vec<_> = (0..versions::FULL_BATCH / 4)
        .map(|_| {
            let (store, r, d) = (store.clone(), r.clone(), d.clone());
            tokio::spawn(async move {
                let mut reads = 0u64;
                while started.elapsed() < Duration::from_millis(300) {
                    assert_eq!(store.linked_blob(&r, &d).await.unwrap(), Some(1));
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.unwrap();
    }
    let elapsed = started.elapsed();
    let queries = store.version_queries() - before;
    let most = (elapsed.as_micros() / versions::QUERY_GAP.as_micros()) as u64 + 2;
    assert!(
        queries <= most,
        "{queries} version queries for {reads} reads in {elapsed:?}: more than {most}"
    );
}

/// The version reader's connection alone is dropped (an idle timeout of the server or
/// of a proxy on the way, a failover): the requests that find it gone may fail, as a
/// pooled connection dropped while idle fails the one statement that finds it, but not
/// every request that happened to arrive together. (On one thread, the requests are all
/// queued before the reader runs, as they are on a busy node.)
#[tokio::test(flavor = "current_thread")]
async fn a_dropped_version_connection_fails_one_request_at_most() {
    let Some((_db, store, r, d)) = store_with_a_cached_link().await else {
        return;
    };

    let reader_pid: i32 = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND query LIKE '%tag_version FROM repositories WHERE name = ANY%'",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(reader_pid)
        .execute(&store.pool)
        .await
        .unwrap();
    // Gone once the server no longer lists it.
    loop {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(reader_pid)
                .fetch_one(&store.pool)
                .await
                .unwrap();
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let reads: Vec<_> = (0..32)
        .map(|_| {
            let (store, r, d) = (store.clone(), r.clone(), d.clone());
            tokio::spawn(async move { store.linked_blob(&r, &d).await })
        })
        .collect();
    let mut failed = 0;
    for read in reads {
        if read.await.unwrap().is_err() {
            failed += 1;
        }
    }
    assert!(
        failed <= 1,
        "{failed} of 32 concurrent reads failed for one dropped idle connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_recover_when_the_server_ends_every_connection() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let store = node(&db).await;
    let (r, d) = (repo("p/r"), digest("x"));
    store.link_blob(&r, &d, 1, 1).await.unwrap();
    assert_eq!(store.linked_blob(&r, &d).await.unwrap(), Some(1));
    // The server ends every connection of the store (a restart, a failover).
    let admin = crate::PgMetaStore::connect_lazy(&super::config(&db)).unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&admin.pool)
    .await
    .unwrap();
    // The first read may fail with the broken connection; the next ones reconnect.
    let _ = store.linked_blob(&r, &d).await;
    let _ = store.linked_blob(&r, &d).await;
    assert_eq!(store.linked_blob(&r, &d).await.unwrap(), Some(1));
}

/// A store dropped (a node shutting down, a test ending) ends its version reader: the
/// thread stops once the last request is answered, and its connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_store_ends_its_version_reader() {
    let Some((db, store, _, _)) = store_with_a_cached_link().await else {
        return;
    };
    let admin = PgMetaStore::connect_lazy(&super::config(&db)).unwrap();
    let reader_pid: i32 = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND query LIKE '%tag_version FROM repositories WHERE name = ANY%'",
    )
    .fetch_one(&admin.pool)
    .await
    .unwrap();
    drop(Arc::into_inner(store).expect("no other owner of the store"));
    let started = Instant::now();
    loop {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(reader_pid)
                .fetch_one(&admin.pool)
                .await
                .unwrap();
        if !alive {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the version reader's connection outlived its store"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The request that fills a batch wakes the reader before the gap is over, and a lone
/// request waits the gap out: a busy node's requests do not idle behind a full batch,
/// and a quiet one sends no more queries than the gap allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_wakes_the_reader_before_the_gap_is_over() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let gap = Duration::from_secs(2);
    PgMetaStore::migrate(&super::config(&db)).await.unwrap();
    let options = crate::connect_options(&super::config(&db)).unwrap();
    let reader =
        Arc::new(versions::VersionReader::spawn(options, Duration::from_secs(30), gap).unwrap());
    // The first query starts the gap.
    assert_eq!(reader.of("p/none").await.unwrap(), None);

    // Half a batch arrives, and the reader parks for the rest of the gap; the other
    // half arrives while it is parked.
    let started = Instant::now();
    let read = |i: usize| {
        let reader = reader.clone();
        tokio::spawn(async move { reader.of(&format!("p/r{i}")).await })
    };
    let mut batch: Vec<_> = (0..versions::FULL_BATCH / 2).map(read).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    batch.extend((versions::FULL_BATCH / 2..versions::FULL_BATCH).map(read));
    for read in batch {
        assert_eq!(read.await.unwrap().unwrap(), None);
    }
    let full = started.elapsed();
    assert!(full < gap / 2, "a full batch waited {full:?}");

    let started = Instant::now();
    assert_eq!(reader.of("p/alone").await.unwrap(), None);
    let alone = started.elapsed();
    assert!(alone > gap / 2, "a lone request waited only {alone:?}");
}
