//! Limits on work in progress: open upload sessions, bytes in open uploads, bodies
//! streaming at once and buffered bytes. Past each, the client gets `429
//! TOOMANYREQUESTS` with `Retry-After`, and nothing stored is touched.

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth_app::RegistryConfig;
use common::*;

fn expect_too_many(r: &TestResponse, ctx: &str) {
    expect_error(r, 429, "TOOMANYREQUESTS", ctx);
    assert_eq!(r.header("retry-after"), "1", "{ctx}: Retry-After");
}

/// Opens a session in `repo` and sends it its first (empty) chunk, which records it:
/// the answer to that chunk.
async fn open_session(reg: &TestRegistry, repo: &str) -> TestResponse {
    let location = start_upload(reg, repo).await;
    reg.send(
        Method::PATCH,
        &location,
        &[("content-length", "0")],
        Body::empty(),
    )
    .await
}

/// Sessions count against the limits once recorded, by their first request: a `POST`
/// alone records nothing.
#[tokio::test]
async fn open_sessions_are_limited_per_repository_and_in_all() {
    let reg = TestRegistry::with_config(RegistryConfig {
        max_upload_sessions: 5,
        max_upload_sessions_per_repository: 3,
        ..RegistryConfig::default()
    });
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(start_recorded_upload(&reg, "p/a").await);
    }
    expect_too_many(&open_session(&reg, "p/a").await, "fourth session in p/a");
    start_recorded_upload(&reg, "p/b").await;
    start_recorded_upload(&reg, "p/b").await;
    expect_too_many(&open_session(&reg, "p/c").await, "sixth session in all");
    // Opening more is free: only recording them is refused.
    for _ in 0..10 {
        start_upload(&reg, "p/c").await;
    }
    // Finishing a session makes room again.
    let d = sha256(b"done");
    expect_status(
        &put_upload(&reg, &first[0], d.as_str(), None, b"done").await,
        201,
        "finish",
    );
    expect_status(
        &open_session(&reg, "p/c").await,
        202,
        "room after a completion",
    );
    // A blob sent whole completes its session in its request, so it is not refused.
    reg.push_blob("p/a", b"whole").await;
    let location = start_upload(&reg, "p/a").await;
    let d = sha256(b"also whole");
    expect_status(
        &put_upload(&reg, &location, d.as_str(), None, b"also whole").await,
        201,
        "POST and PUT of a whole blob past the limit",
    );
}

/// Concurrent first chunks never record more sessions than allowed, in all or in one
/// repository, and the refused ones leave no upload bytes behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sessions_never_open_more_than_allowed() {
    let reg = Arc::new(TestRegistry::with_config(RegistryConfig {
        max_upload_sessions: 6,
        max_upload_sessions_per_repository: 4,
        ..RegistryConfig::default()
    }));
    let posts: Vec<_> = (0..64)
        .map(|i| {
            let reg = reg.clone();
            let repo = if i % 2 == 0 { "p/even" } else { "p/odd" };
            tokio::spawn(async move { (repo, open_session(&reg, repo).await) })
        })
        .collect();
    let (mut even, mut odd) = (0, 0);
    for post in posts {
        let (repo, r) = post.await.unwrap();
        if r.status == StatusCode::ACCEPTED {
            *if repo == "p/even" {
                &mut even
            } else {
                &mut odd
            } += 1;
        } else {
            expect_too_many(&r, "a session past a limit");
        }
    }
    assert!(
        even <= 4 && odd <= 4,
        "{even} and {odd} sessions per repository"
    );
    assert_eq!(even + odd, 6, "sessions in all");
    let uploads = reg.blobs.list_uploads().await.unwrap();
    assert_eq!(uploads.len(), 6, "uploads with bytes at rest");
}

#[tokio::test]
async fn bytes_in_open_uploads_are_limited() {
    let reg = TestRegistry::with_config(RegistryConfig {
        max_open_upload_bytes: 1000,
        ..RegistryConfig::default()
    });
    let a = start_upload(&reg, "p/bytes").await;
    let data = pattern(800);
    expect_status(
        &patch(&reg, &a, Some("0-799"), &data).await,
        202,
        "800 bytes",
    );
    let b = start_upload(&reg, "p/bytes").await;
    expect_too_many(
        &patch(&reg, &b, Some("0-299"), &pattern(300)).await,
        "300 more bytes than the budget has",
    );
    expect_upload_at(&reg, &b, 0, "the refused chunk left nothing").await;
    expect_status(
        &patch(&reg, &b, Some("0-199"), &pattern(200)).await,
        202,
        "200 fit",
    );
    // Completing the first upload frees its bytes.
    let d = sha256(&data);
    expect_status(
        &put_upload(&reg, &a, d.as_str(), None, b"").await,
        201,
        "finish a",
    );
    expect_status(
        &patch(&reg, &b, Some("200-899"), &pattern(700)).await,
        202,
        "room after a completion",
    );
}

#[tokio::test]
async fn bodies_streaming_at_once_are_limited() {
    let reg = Arc::new(TestRegistry::with_config(RegistryConfig {
        max_upload_bodies: 1,
        overload_wait: Duration::from_millis(50),
        ..RegistryConfig::default()
    }));
    let held = start_upload(&reg, "p/slots").await;
    let (tx, body) = fed_body();
    let streaming = {
        let (reg, held) = (reg.clone(), held.clone());
        tokio::spawn(async move { reg.send(Method::PATCH, &held, &[], body).await })
    };
    tx.send(Ok(Bytes::from_static(b"slow"))).await.unwrap();
    // A body is read only once it holds a slot.
    taken(&tx).await;
    let other = start_upload(&reg, "p/slots").await;
    expect_too_many(
        &patch(&reg, &other, Some("0-2"), b"abc").await,
        "second body",
    );
    drop(tx);
    expect_status(&streaming.await.unwrap(), 202, "the first body");
    expect_status(
        &patch(&reg, &other, Some("0-2"), b"abc").await,
        202,
        "the slot is free",
    );
}

/// A body fed through a channel, so a test decides when each frame arrives.
fn fed_body() -> (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    Body,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    (tx, body)
}

/// Waits until the registry has taken whatever it was sent.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Waits until the registry has taken the frame sent on `feed` (and so counted it: a
/// frame is counted as it is taken), however long the stores take to start reading.
async fn taken(feed: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>) {
    for _ in 0..500 {
        if feed.capacity() == feed.max_capacity() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the registry did not take the frame within 5 s");
}

/// Bodies without a declared length are counted as their bytes arrive: streamed side by
/// side, they cannot hold more than the budget for bytes in open uploads.
#[tokio::test]
async fn bodies_of_unknown_length_are_counted_as_they_stream() {
    let reg = Arc::new(TestRegistry::with_config(RegistryConfig {
        max_open_upload_bytes: 1000,
        ..RegistryConfig::default()
    }));
    let (a, b) = (
        start_upload(&reg, "p/meter").await,
        start_upload(&reg, "p/meter").await,
    );
    let (feed_a, body_a) = fed_body();
    let (feed_b, body_b) = fed_body();
    let send = |location: &String, body: Body| {
        let (reg, location) = (reg.clone(), location.clone());
        tokio::spawn(async move { reg.send(Method::PATCH, &location, &[], body).await })
    };
    let (patch_a, patch_b) = (send(&a, body_a), send(&b, body_b));
    feed_a.send(Ok(pattern(400).into())).await.unwrap();
    feed_b.send(Ok(pattern(400).into())).await.unwrap();
    taken(&feed_a).await;
    taken(&feed_b).await;
    feed_a.send(Ok(pattern(200).into())).await.unwrap();
    taken(&feed_a).await;
    // 1000 bytes are in flight: B's next 200 have no room.
    let _ = feed_b.send(Ok(pattern(200).into())).await;
    drop((feed_a, feed_b));
    expect_status(&patch_a.await.unwrap(), 202, "A's 600 bytes fit");
    expect_too_many(&patch_b.await.unwrap(), "B's bytes past the budget");
    expect_upload_at(&reg, &a, 600, "A").await;
    expect_upload_at(&reg, &b, 0, "B's refused body left nothing").await;
}

/// Sends GETs of `uri` whose responses are never read until one is refused; returns how
/// many were held, and lets them go.
async fn held_until_refused(reg: &TestRegistry, uri: &str, accept: &str) -> usize {
    use tower::ServiceExt;
    let mut unread = Vec::new();
    loop {
        let request = http::Request::get(uri)
            .header("host", "berth.test")
            .header("accept", accept)
            .body(Body::empty())
            .unwrap();
        let r = reg.router.clone().oneshot(request).await.unwrap();
        if r.status() == 429 {
            break;
        }
        assert_eq!(r.status(), 200, "{uri}");
        unread.push(r);
        assert!(unread.len() < 1000, "the budget never ran out for {uri}");
    }
    expect_too_many(&reg.get(uri).await, &format!("{uri} past the budget"));
    let held = unread.len();
    drop(unread);
    expect_status(&reg.get(uri).await, 200, "room once the responses are gone");
    held
}

/// Pushes a manifest of about `padding` bytes (its annotation) to `repo:tag`.
async fn push_padded(reg: &TestRegistry, repo: &str, tag: &str, padding: usize) -> Digest {
    let config = reg.push_blob(repo, b"{}").await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": config.as_str(), "size": 2},
        "layers": [],
        "annotations": {"padding": "x".repeat(padding)},
    }))
    .unwrap();
    let r = reg
        .put_manifest(repo, tag, media_type::OCI_MANIFEST, &manifest)
        .await;
    expect_status(&r, 201, "push a padded manifest");
    sha256(&manifest)
}

/// Unread responses of one large manifest share its buffer, so they hold its room once;
/// each distinct manifest held holds its own.
#[tokio::test]
async fn unread_responses_of_one_manifest_hold_its_room_once() {
    use tower::ServiceExt;
    let reg = TestRegistry::with_config(RegistryConfig {
        max_buffered_bytes: 1 << 20,
        overload_wait: Duration::from_millis(50),
        ..RegistryConfig::default()
    });
    let mut digests = Vec::new();
    for (i, tag) in ["a", "b", "c", "d"].into_iter().enumerate() {
        digests.push(push_padded(&reg, "p/shared", tag, (300 << 10) + i).await);
    }
    let get = |digest: &Digest| {
        http::Request::get(format!("/v2/p/shared/manifests/{digest}"))
            .header("host", "berth.test")
            .body(Body::empty())
            .unwrap()
    };
    let mut unread = Vec::new();
    for _ in 0..500 {
        let r = reg.router.clone().oneshot(get(&digests[0])).await.unwrap();
        assert_eq!(r.status(), 200, "unread responses of one manifest");
        unread.push(r);
    }
    for digest in &digests[1..3] {
        let r = reg.router.clone().oneshot(get(digest)).await.unwrap();
        assert_eq!(
            r.status(),
            200,
            "another manifest while 500 responses are unread"
        );
        unread.push(r);
    }
    // Three 300 KiB buffers are held: a fourth does not fit in 1 MiB.
    let uri = format!("/v2/p/shared/manifests/{}", digests[3]);
    expect_too_many(&reg.get(&uri).await, "a fourth manifest past the budget");
    drop(unread);
    expect_status(
        &reg.get(&uri).await,
        200,
        "room once the responses are gone",
    );
}

/// Referrers pages that are not read hold their room in the budget.
#[tokio::test]
async fn unread_referrers_pages_hold_their_room() {
    let reg = TestRegistry::with_config(RegistryConfig {
        max_buffered_bytes: 64 << 10,
        max_manifest_bytes: 4 << 10,
        overload_wait: Duration::from_millis(50),
        ..RegistryConfig::default()
    });
    let (digest, _) = reg.push_image("p/buffered", "v1", &[b"layer"]).await;
    let uri = format!("/v2/p/buffered/referrers/{digest}");
    // A page sets its bound (4 KiB) aside while it is built, then holds 1 KiB: the
    // last three KiB are never enough for another page.
    assert_eq!(
        held_until_refused(&reg, &uri, media_type::OCI_INDEX).await,
        61
    );
}

/// Blob responses that are not read hold room for the chunks they have in flight, so no
/// number of clients that stop reading can hold more than the budget.
#[tokio::test]
async fn unread_blob_responses_hold_their_chunks_room() {
    let reg = TestRegistry::with_config(RegistryConfig {
        max_buffered_bytes: 4 << 20,
        overload_wait: Duration::from_millis(50),
        ..RegistryConfig::default()
    });
    let digest = reg.push_blob("p/chunks", &pattern(1 << 20)).await;
    let uri = format!("/v2/p/chunks/blobs/{digest}");
    // Two chunks a response (256 KiB each on the filesystem store: 4 MiB hold eight).
    let per_response = 2 * reg.blobs.read_chunk_bytes();
    assert_eq!(
        held_until_refused(&reg, &uri, "application/octet-stream").await,
        (4 << 20) / per_response
    );
}

/// A manifest body of unknown length holds room for what it sent, not for the largest
/// manifest: clients that trickle such bodies cannot lock others out of the budget.
#[tokio::test]
async fn trickling_manifest_bodies_hold_only_what_they_sent() {
    let reg = Arc::new(TestRegistry::with_config(RegistryConfig {
        max_buffered_bytes: 4 << 20,
        overload_wait: Duration::from_millis(50),
        ..RegistryConfig::default()
    }));
    let digest = push_padded(&reg, "p/trickle", "v1", 300 << 10).await;
    let mut feeds = Vec::new();
    let mut puts = Vec::new();
    for i in 0..10 {
        let (feed, body) = fed_body();
        feed.send(Ok(Bytes::from_static(b"{"))).await.unwrap();
        let reg = reg.clone();
        puts.push(tokio::spawn(async move {
            let uri = format!("/v2/p/trickle/manifests/t{i}");
            let headers = [("content-type", media_type::OCI_MANIFEST)];
            reg.send(Method::PUT, &uri, &headers, body).await
        }));
        feeds.push(feed);
    }
    settle().await;
    let uri = format!("/v2/p/trickle/manifests/{digest}");
    expect_status(
        &reg.get(&uri).await,
        200,
        "a GET while 10 manifest bodies trickle",
    );
    drop(feeds);
    for put in puts {
        expect_status(&put.await.unwrap(), 400, "a cut manifest body");
    }
}

/// Bytes another append stored while a body streams count against that body: the total
/// it is checked against is not the one read when it began.
#[tokio::test]
async fn a_streaming_body_counts_bytes_stored_since_it_began() {
    let reg = Arc::new(TestRegistry::with_config(RegistryConfig {
        max_open_upload_bytes: 1000,
        ..RegistryConfig::default()
    }));
    let (a, b) = (
        start_upload(&reg, "p/moved").await,
        start_upload(&reg, "p/moved").await,
    );
    let (feed, body) = fed_body();
    let streaming = {
        let (reg, a) = (reg.clone(), a.clone());
        tokio::spawn(async move { reg.send(Method::PATCH, &a, &[], body).await })
    };
    feed.send(Ok(pattern(100).into())).await.unwrap();
    settle().await;
    expect_status(
        &patch(&reg, &b, Some("0-599"), &pattern(600)).await,
        202,
        "B stores 600 bytes while A streams",
    );
    let _ = feed.send(Ok(pattern(400).into())).await;
    drop(feed);
    expect_too_many(&streaming.await.unwrap(), "A's 500 bytes on top of B's 600");
    expect_upload_at(&reg, &a, 0, "A's refused body left nothing").await;
}
