//! Two nodes on PostgreSQL and one S3 bucket (`s3s-fs`), one of them still writing an
//! upload after its claim on the session lapsed (a node paused, or cut off from the
//! database, past its lease term): what it writes must never reach a blob published under
//! the digest the other node's bytes hash to.

use std::sync::Arc;
use std::time::Duration;

use berth_app::{BlobReply, Clock, Registry, RegistryConfig, SystemClock, UploadBody};
use berth_blob_object::{
    Backend, MIN_PART_SIZE, ObjectBlobStore, S3Settings, Secret, StoreOptions,
};
use berth_meta::UploadStore;
use berth_meta_postgres::{PgConfig, PgMetaStore};
use berth_oci::{Algorithm, Digest, RepositoryName};
use berth_testkit_postgres::TempDatabase;
use berth_testkit_s3::S3Server;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

const PART: usize = MIN_PART_SIZE;

fn bytes_of(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn whole(bytes: Vec<u8>) -> UploadBody {
    let len = bytes.len() as u64;
    let stream = futures_util::stream::once(async move { Ok(Bytes::from(bytes)) });
    UploadBody {
        stream: Box::pin(stream),
        content_length: Some(len),
        content_range: None,
        client: None,
    }
}

/// A body whose frames arrive when the test sends them.
fn trickled(len: u64) -> (mpsc::Sender<Bytes>, UploadBody) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok(chunk), rx))
    });
    let body = UploadBody {
        stream: Box::pin(stream),
        content_length: Some(len),
        content_range: None,
        client: None,
    };
    (tx, body)
}

/// Two nodes on one PostgreSQL database and one bucket, with the servers they use.
struct Cluster {
    nodes: [Arc<Registry>; 2],
    meta: Arc<PgMetaStore>,
    _db: TempDatabase,
    _s3: S3Server,
}

/// Two nodes configured with `config`, or `None` when PostgreSQL or S3 is missing.
async fn cluster(config: RegistryConfig) -> Option<Cluster> {
    let db = TempDatabase::create().await?;
    let s3 = S3Server::start()?;
    let meta = Arc::new(
        PgMetaStore::connect(&PgConfig {
            url: db.url().to_owned(),
            pool_size: 16,
            statement_timeout: Duration::from_secs(30),
        })
        .await
        .unwrap(),
    );
    let backend = Backend::S3(S3Settings {
        endpoint: Some(s3.endpoint().to_owned()),
        region: Some(berth_testkit_s3::REGION.to_owned()),
        bucket: s3.bucket().to_owned(),
        access_key_id: Some(s3.access_key_id().to_owned()),
        secret_access_key: Some(Secret::new(s3.secret_access_key())),
        path_style: true,
    });
    let node = || {
        let blobs = ObjectBlobStore::open(
            &backend,
            StoreOptions {
                part_size: PART,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        Arc::new(Registry::new(
            meta.clone(),
            Arc::new(blobs),
            Arc::new(SystemClock),
            config.clone(),
        ))
    };
    Some(Cluster {
        nodes: [node(), node()],
        meta,
        _db: db,
        _s3: s3,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_upload_claim_lapsed_cannot_change_the_bytes_published_under_a_digest() {
    let Some(c) = cluster(RegistryConfig::default()).await else {
        return;
    };
    let ([a, b], meta) = (&c.nodes, &c.meta);
    let repo = RepositoryName::parse("p/r").unwrap();
    let session = a.start_upload(&repo, Algorithm::Sha256).await.unwrap();

    // A first chunk fills one part and leaves 100 bytes staged.
    let head = bytes_of(1, PART + 100);
    a.append_chunk(&repo, &session.url, whole(head.clone()))
        .await
        .unwrap();

    // Node A takes the session for the next chunk and starts receiving it.
    let stale_len = PART + 50;
    let (tx, slow) = trickled(stale_len as u64);
    let on_a = tokio::spawn({
        let (a, repo, url) = (a.clone(), repo.clone(), session.url.clone());
        async move { a.append_chunk(&repo, &url, slow).await }
    });
    let stale = bytes_of(2, stale_len);
    tx.send(Bytes::copy_from_slice(&stale[..1024]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Node A's claim lapses (it missed its renewals: paused, or cut off from the
    // database), and the client's chunk goes to node B, which is acknowledged.
    let later = SystemClock.now_ms() + 120_000;
    meta.lease_upload(&session.session.id, 42, later, later + 1)
        .await
        .unwrap();
    meta.release_upload(&session.session.id, 42).await.unwrap();
    let fresh = bytes_of(3, PART);
    let appended = b
        .append_chunk(&repo, &session.url, whole(fresh.clone()))
        .await
        .unwrap();
    assert_eq!(appended.session.offset, (2 * PART + 100) as u64);

    // Node A wakes up and goes on receiving its chunk: it finds its claim lost and
    // stops reading (or is refused at the end), as the session moved on.
    for frame in stale[1024..].chunks(64 << 10) {
        if tx.send(Bytes::copy_from_slice(frame)).await.is_err() {
            break;
        }
    }
    drop(tx);
    assert!(
        on_a.await.unwrap().is_err(),
        "the stale chunk was acknowledged"
    );

    // The client completes with the digest of what it was told is stored.
    let expected = [head, fresh].concat();
    let digest = Digest::compute(Algorithm::Sha256, &expected);
    let completed = b
        .complete_upload(
            &repo,
            &session.url,
            Some(digest.as_str()),
            whole(Vec::new()),
        )
        .await;
    if completed.is_err() {
        // Refusing the upload is safe; publishing other bytes is not.
        return;
    }
    let BlobReply::Content(content) = b.read_blob(&repo, &digest, None).await.unwrap() else {
        panic!("no redirect was configured");
    };
    let mut served = Vec::new();
    let mut body = content.read.body;
    while let Some(piece) = body.next().await {
        served.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(served.len(), expected.len());
    assert!(
        Digest::compute(Algorithm::Sha256, &served) == digest,
        "the blob served under {digest} hashes to {}: a lapsed node's bytes were spliced in",
        Digest::compute(Algorithm::Sha256, &served)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_purge_never_removes_a_monolithic_upload_still_arriving() {
    // Every upload idle for a moment counts as stale, as one arriving for longer than
    // `limits.upload_max_age` (an hour by default) does.
    let Some(c) = cluster(RegistryConfig {
        upload_max_age: Duration::from_millis(100),
        ..RegistryConfig::default()
    })
    .await
    else {
        return;
    };
    let [a, b] = &c.nodes;
    let repo = RepositoryName::parse("p/r").unwrap();
    let content = bytes_of(4, 2 * PART + 10);
    let digest = Digest::compute(Algorithm::Sha256, &content);
    let (tx, slow) = trickled(content.len() as u64);
    let on_a = tokio::spawn({
        let (a, repo, digest) = (a.clone(), repo.clone(), digest.clone());
        async move { a.upload_monolithic(&repo, &digest, slow).await }
    });
    // Node A receives the first part's worth, and puts it while the rest arrives.
    tx.send(Bytes::copy_from_slice(&content[..PART + 1]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Node B's purge runs meanwhile; node A is still receiving and writing the upload.
    b.purge_stale_uploads().await.unwrap();
    tx.send(Bytes::copy_from_slice(&content[PART + 1..]))
        .await
        .unwrap();
    drop(tx);
    on_a.await.unwrap().expect("the push in progress failed");
    assert_eq!(
        a.blob_size(&repo, &digest).await.unwrap(),
        content.len() as u64
    );
}
