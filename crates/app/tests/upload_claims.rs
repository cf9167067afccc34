//! Two registries on one metadata store and one blob store are two nodes behind a load
//! balancer: requests on one upload session take turns whichever node they reach, and
//! a node that dies holding a session blocks it for one lease term at most.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use berth_app::{
    Clock, Registry, RegistryConfig, RegistryError, SystemClock, UploadBody, UploadState,
};
use berth_blob::{ByteStream, FsBlobStore};
use berth_meta::{BlobLinkStore, UploadLease, UploadStore};
use berth_meta_sqlite::SqliteMetaStore;
use berth_oci::{Algorithm, Digest, RepositoryName, UploadRef};
use berth_testkit::{MetaFaults, faulty_meta, open_recorded_upload};
use bytes::Bytes;
use tokio::sync::mpsc;

struct Cluster {
    nodes: [Arc<Registry>; 2],
    meta: Arc<SqliteMetaStore>,
    blobs: Arc<FsBlobStore>,
    _dir: tempfile::TempDir,
}

fn cluster(lease: Duration) -> Cluster {
    cluster_with(RegistryConfig {
        upload_lease: lease,
        ..RegistryConfig::default()
    })
}

fn cluster_with(config: RegistryConfig) -> Cluster {
    cluster_on_clock(config, Arc::new(SystemClock))
}

/// Two nodes reading the time from `clock`.
fn cluster_on_clock(config: RegistryConfig, clock: Arc<dyn Clock>) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(SqliteMetaStore::open(dir.path().join("berth.db")).unwrap());
    let blobs = Arc::new(FsBlobStore::open(dir.path().join("storage")).unwrap());
    let node = || {
        Arc::new(Registry::new(
            meta.clone(),
            blobs.clone(),
            clock.clone(),
            config.clone(),
        ))
    };
    Cluster {
        nodes: [node(), node()],
        meta,
        blobs,
        _dir: dir,
    }
}

/// Two nodes on one store, whose metadata calls `faults` can cut or hold.
fn faulty_cluster(faults: Arc<MetaFaults>) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(SqliteMetaStore::open(dir.path().join("berth.db")).unwrap());
    let blobs = Arc::new(FsBlobStore::open(dir.path().join("storage")).unwrap());
    let node = || {
        Arc::new(Registry::new(
            faulty_meta(meta.clone(), faults.clone()),
            blobs.clone(),
            Arc::new(SystemClock),
            RegistryConfig::default(),
        ))
    };
    Cluster {
        nodes: [node(), node()],
        meta,
        blobs,
        _dir: dir,
    }
}

fn body(stream: ByteStream, len: u64) -> UploadBody {
    UploadBody {
        stream,
        content_length: Some(len),
        content_range: None,
        client: None,
    }
}

fn whole(bytes: &'static [u8]) -> UploadBody {
    let stream = futures_util::stream::once(async move { Ok(Bytes::from_static(bytes)) });
    body(Box::pin(stream), bytes.len() as u64)
}

/// A body whose chunks arrive when the test sends them.
fn trickled(len: u64) -> (mpsc::Sender<Bytes>, UploadBody) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok(chunk), rx))
    });
    (tx, body(Box::pin(stream), len))
}

/// Completes the upload at `url` on `node` with `body`, in a task of its own.
fn spawn_completion(
    node: &Arc<Registry>,
    repo: &RepositoryName,
    url: &UploadRef,
    digest: &Digest,
    body: UploadBody,
) -> tokio::task::JoinHandle<Result<Digest, RegistryError>> {
    let (node, repo, url, digest) = (node.clone(), repo.clone(), url.clone(), digest.clone());
    tokio::spawn(async move {
        node.complete_upload(&repo, &url, Some(digest.as_str()), body)
            .await
    })
}

/// An append of `len` bytes on `node`, running while the test sends its chunks.
fn append_trickled(
    node: &Arc<Registry>,
    repo: &RepositoryName,
    url: &UploadRef,
    len: u64,
) -> (
    mpsc::Sender<Bytes>,
    tokio::task::JoinHandle<Result<UploadState, RegistryError>>,
) {
    let (tx, body) = trickled(len);
    let (node, repo, url) = (node.clone(), repo.clone(), url.clone());
    let appending = tokio::spawn(async move { node.append_chunk(&repo, &url, body).await });
    (tx, appending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_reaching_two_nodes_take_turns() {
    let c = cluster(Duration::from_secs(30));
    let [a, b] = &c.nodes;
    let repo = RepositoryName::parse("p/r").unwrap();
    let session = open_recorded_upload(a, &repo).await;
    let (tx, on_a) = append_trickled(a, &repo, &session.url, 6);
    tx.send(Bytes::from_static(b"abc")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Node B's append waits while node A writes.
    let on_b = tokio::spawn({
        let (b, repo, url) = (b.clone(), repo.clone(), session.url.clone());
        async move { b.append_chunk(&repo, &url, whole(b"XYZ")).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !on_b.is_finished(),
        "node B wrote while node A held the session"
    );
    tx.send(Bytes::from_static(b"def")).await.unwrap();
    drop(tx);
    assert_eq!(on_a.await.unwrap().unwrap().session.offset, 6);
    assert_eq!(on_b.await.unwrap().unwrap().session.offset, 9);
    let digest = Digest::compute(Algorithm::Sha256, b"abcdefXYZ");
    let completed = b
        .complete_upload(&repo, &session.url, Some(digest.as_str()), whole(b""))
        .await
        .unwrap();
    assert_eq!(completed, digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_claim_lapses_after_its_term() {
    let term = Duration::from_secs(1);
    let c = cluster(term);
    let [a, b] = &c.nodes;
    let repo = RepositoryName::parse("p/r").unwrap();
    let session = open_recorded_upload(a, &repo).await;
    // A node claimed the session, then died without renewing or releasing it.
    let now = SystemClock.now_ms();
    let claimed = c
        .meta
        .lease_upload(&session.id, 42, now, now + 1000)
        .await
        .unwrap();
    assert!(matches!(claimed, UploadLease::Granted(_)));
    let started = Instant::now();
    let appended = b
        .append_chunk(&repo, &session.url, whole(b"abc"))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(appended.session.offset, 3);
    assert!(
        waited >= Duration::from_millis(800) && waited < 2 * term,
        "waited {waited:?} for a claim with 1 s left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_held_for_two_terms_is_refused_not_waited_on_for_ever() {
    let term = Duration::from_millis(500);
    let c = cluster(term);
    let [a, b] = &c.nodes;
    let repo = RepositoryName::parse("p/r").unwrap();
    let session = open_recorded_upload(a, &repo).await;
    // A live node holds the session and keeps renewing its claim.
    let now = SystemClock.now_ms();
    let held = c.meta.lease_upload(&session.id, 42, now, now + 500).await;
    assert!(matches!(held.unwrap(), UploadLease::Granted(_)));
    let renewing = tokio::spawn({
        let (meta, id) = (c.meta.clone(), session.id.clone());
        async move {
            loop {
                let now = SystemClock.now_ms();
                meta.lease_upload(&id, 42, now, now + 500).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let refused = b.append_chunk(&repo, &session.url, whole(b"abc")).await;
    renewing.abort();
    assert!(
        matches!(refused, Err(RegistryError::TooManyRequests(_))),
        "{:?}",
        refused.map(|s| s.session.offset)
    );
    // Nothing was written.
    let status = b.upload_status(&repo, &session.url).await.unwrap();
    assert_eq!(status.session.offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_skips_a_session_another_node_writes() {
    // Long enough for the URL just opened to record its session, however slow the
    // machine; then the session is left to go stale.
    let max_age = Duration::from_secs(1);
    let c = cluster_with(RegistryConfig {
        upload_max_age: max_age,
        ..RegistryConfig::default()
    });
    let [a, b] = &c.nodes;
    let repo = RepositoryName::parse("p/r").unwrap();
    let session = open_recorded_upload(a, &repo).await;
    tokio::time::sleep(max_age + Duration::from_millis(50)).await;
    let now = SystemClock.now_ms();
    c.meta
        .lease_upload(&session.id, 42, now, now + 30_000)
        .await
        .unwrap();
    assert_eq!(b.purge_stale_uploads().await.unwrap(), 0);
    assert!(b.upload_status(&repo, &session.url).await.is_ok());
    // Once released, the stale session goes.
    c.meta.release_upload(&session.id, 42).await.unwrap();
    assert_eq!(b.purge_stale_uploads().await.unwrap(), 1);
    assert!(b.upload_status(&repo, &session.url).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_cut_on_one_node_is_finished_by_a_retry_on_another() {
    use berth_blob::BlobStore;
    let c = cluster(Duration::from_secs(30));
    let [a, b] = &c.nodes;
    let repo = RepositoryName::parse("p/r").unwrap();
    let session = open_recorded_upload(a, &repo).await;
    a.append_chunk(&repo, &session.url, whole(b"abcdef"))
        .await
        .unwrap();
    let digest = Digest::compute(Algorithm::Sha256, b"abcdef");
    // Node A published the bytes, then died before linking them.
    c.blobs
        .commit_upload(&session.id, 6, &digest)
        .await
        .unwrap();
    // The client's retry reaches node B, which links the published blob.
    let completed = b
        .complete_upload(&repo, &session.url, Some(digest.as_str()), whole(b""))
        .await
        .unwrap();
    assert_eq!(completed, digest);
    assert_eq!(c.meta.linked_blob(&repo, &digest).await.unwrap(), Some(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_body_whose_claim_was_lost_before_its_end_is_refused() {
    let c = cluster(Duration::from_secs(1));
    let [a, b] = &c.nodes;
    let repo = RepositoryName::parse("p/r").unwrap();
    let session = open_recorded_upload(a, &repo).await;
    let (tx, on_a) = append_trickled(a, &repo, &session.url, 6);
    tx.send(Bytes::from_static(b"abc")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Node A's claim is taken over (it missed its renewals), and node B appends.
    let later = SystemClock.now_ms() + 120_000;
    c.meta
        .lease_upload(&session.id, 42, later, later + 1)
        .await
        .unwrap();
    c.meta.release_upload(&session.id, 42).await.unwrap();
    assert_eq!(
        b.append_chunk(&repo, &session.url, whole(b"XYZ"))
            .await
            .unwrap()
            .session
            .offset,
        3
    );
    // The rest of node A's body arrives well after its claim was last known held: its
    // end is not passed on before the claim is checked, and found lost.
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(Bytes::from_static(b"def")).await.unwrap();
    drop(tx);
    assert!(
        on_a.await.unwrap().is_err(),
        "a body was acknowledged after its claim was lost"
    );
    let digest = Digest::compute(Algorithm::Sha256, b"XYZ");
    let completed = b
        .complete_upload(&repo, &session.url, Some(digest.as_str()), whole(b""))
        .await
        .unwrap();
    assert_eq!(completed, digest);
}

/// A wall clock that can be moved on, as it has moved on when a node resumes from a
/// suspend (of its machine or virtual machine) during which its monotonic clock, what
/// `Instant` reads on Linux, stood still.
#[derive(Default)]
struct MovedOn(AtomicI64);

impl Clock for MovedOn {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.0.load(Ordering::Relaxed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_body_whose_node_was_suspended_past_its_claim_is_refused() {
    use berth_blob::BlobStore;
    use futures_util::StreamExt;
    // An eighth of the term is a second: the whole race fits well within it.
    let term = Duration::from_secs(8);
    let clock = Arc::new(MovedOn::default());
    let config = RegistryConfig {
        upload_lease: term,
        ..RegistryConfig::default()
    };
    let c = cluster_on_clock(config, clock.clone());
    let [a, b] = &c.nodes;
    let repo = RepositoryName::parse("p/r").unwrap();
    let session = open_recorded_upload(a, &repo).await;
    let (tx, on_a) = append_trickled(a, &repo, &session.url, 6);
    tx.send(Bytes::from_static(b"abc")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Node A is suspended for three terms: when it resumes, the wall clock has moved on
    // by as much, its monotonic clock has not. Meanwhile its claim lapsed, and node B
    // took the session over and appended.
    let three_terms = i64::try_from(3 * term.as_millis()).unwrap();
    clock.0.store(three_terms, Ordering::Relaxed);
    assert_eq!(
        b.append_chunk(&repo, &session.url, whole(b"XYZ"))
            .await
            .unwrap()
            .session
            .offset,
        3
    );
    // The rest of node A's body arrives at once after it resumed.
    tx.send(Bytes::from_static(b"def")).await.unwrap();
    drop(tx);
    let on_a = on_a.await.unwrap();
    assert!(
        matches!(on_a, Err(RegistryError::BlobUploadInvalid(_))),
        "node A's body was passed on after its claim lapsed: {:?}",
        on_a.map(|s| s.session.offset)
    );
    let digest = Digest::compute(Algorithm::Sha256, b"XYZ");
    let completed = b
        .complete_upload(&repo, &session.url, Some(digest.as_str()), whole(b""))
        .await
        .unwrap();
    assert_eq!(completed, digest);
    let mut stored = Vec::new();
    let mut read = c.blobs.read(&digest, None).await.unwrap().body;
    while let Some(chunk) = read.next().await {
        stored.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(stored, b"XYZ", "the blob holds node A's bytes");
}

/// Two nodes on one store with injectable faults, an upload opened on the first in
/// `repo` (its URL), and the digest of `good`.
async fn opened_on_faulty_nodes(
    repo: &str,
    good: &[u8],
) -> (Arc<MetaFaults>, Cluster, RepositoryName, UploadRef, Digest) {
    let faults = Arc::new(MetaFaults::default());
    let c = faulty_cluster(faults.clone());
    let repo = RepositoryName::parse(repo).unwrap();
    let opened = c.nodes[0]
        .start_upload(&repo, Algorithm::Sha256)
        .await
        .unwrap();
    let digest = Digest::compute(Algorithm::Sha256, good);
    (faults, c, repo, opened.url, digest)
}

/// A whole blob of bytes that do not hash to its digest, refused on one node, while the
/// whole blob of that digest sent to the same new URL completes on the other: the
/// refusal ends the id only if no request recorded it, and the other node never links
/// the blob of an id the refusal ended (which would report the id ended while its blob
/// is linked).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_whole_blob_never_ends_a_session_another_node_completes() {
    let good: &'static [u8] = b"the bytes of the digest";
    let (faults, c, repo, url, digest) = opened_on_faulty_nodes("p/refused", good).await;

    // Node 1 refuses other bytes and is held just before it ends the id…
    let end = faults.hold_next_upload_end();
    let refused = {
        let (node, repo, url, digest) = (
            c.nodes[1].clone(),
            repo.clone(),
            url.clone(),
            digest.clone(),
        );
        tokio::spawn(async move {
            node.complete_upload(
                &repo,
                &url,
                Some(digest.as_str()),
                whole(b"some other bytes"),
            )
            .await
        })
    };
    let held_end = tokio::time::timeout(Duration::from_secs(10), end.reached)
        .await
        .is_ok();
    // … while node 0 completes the blob, held just before it links.
    let completion = faults.hold_next_completion();
    let completing = spawn_completion(&c.nodes[0], &repo, &url, &digest, whole(good));
    let reached = tokio::time::timeout(Duration::from_secs(2), completion.reached)
        .await
        .is_ok();
    let _ = end.release.send(());
    let refused = tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .expect("the refusal ends")
        .unwrap();
    assert!(refused.is_err(), "other bytes refused: {refused:?}");
    if reached {
        // Node 0 completes in one step, which records nothing before it: it finds the id
        // ended by the refusal, or the refusal found it linked.
        let _ = completion.release.send(());
    } else {
        drop(completion.release);
    }
    let completed = completing.await.unwrap();
    assert!(
        !(held_end && completed.is_ok()),
        "node 0 linked the blob of an id node 1's refusal ended ({refused:?})"
    );
    if completed.is_ok() {
        assert_eq!(
            c.meta.linked_blob(&repo, &digest).await.unwrap(),
            Some(good.len() as u64)
        );
    }
}

/// A `DELETE` of a new URL on one node, held just before it ends the id, while the
/// whole blob sent to that URL completes on the other: the two never both succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_on_one_node_never_ends_a_session_another_node_completes() {
    let good: &'static [u8] = b"the bytes of the blob";
    let (faults, c, repo, url, digest) = opened_on_faulty_nodes("p/cancelled", good).await;

    let end = faults.hold_next_upload_end();
    let cancelled = {
        let (node, repo, url) = (c.nodes[1].clone(), repo.clone(), url.clone());
        tokio::spawn(async move { node.cancel_upload(&repo, &url).await })
    };
    tokio::time::timeout(Duration::from_secs(10), end.reached)
        .await
        .expect("the DELETE reaches the end of the id")
        .unwrap();
    let completion = faults.hold_next_completion();
    let completing = spawn_completion(&c.nodes[0], &repo, &url, &digest, whole(good));
    let reached = tokio::time::timeout(Duration::from_secs(2), completion.reached)
        .await
        .is_ok();
    let _ = end.release.send(());
    let cancelled = tokio::time::timeout(Duration::from_secs(10), cancelled)
        .await
        .expect("the DELETE ends")
        .unwrap();
    if reached {
        let _ = completion.release.send(());
    } else {
        drop(completion.release);
    }
    let completed = completing.await.unwrap();
    assert!(
        !(cancelled.is_ok() && completed.is_ok()),
        "both the DELETE and the PUT of one URL succeeded"
    );
    if completed.is_ok() {
        assert_eq!(
            c.meta.linked_blob(&repo, &digest).await.unwrap(),
            Some(good.len() as u64)
        );
    }
}
