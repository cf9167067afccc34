//! The object-store adapter against a real S3 server (`s3s-fs`, started per test).

mod fault_proxy;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_blob::{AppendOutcome, BlobError, BlobStore, BodyLength, ByteStream, Committed};
use berth_blob_object::{
    Backend, MIN_PART_SIZE, ObjectBlobStore, S3Settings, Secret, StoreOptions,
};
use berth_oci::{Algorithm, Digest, ResumableHasher, UploadId};
use berth_testkit_s3::S3Server;
use bytes::Bytes;
use fault_proxy::{Fault, FaultProxy, Logged, Seen};
use futures_util::StreamExt;
use http::{Method, StatusCode};
use md5::Digest as _;

/// Parts as small as S3 allows, so tests cross part boundaries with little data.
const PART: usize = MIN_PART_SIZE;

/// A store on `server`'s bucket: another call gives another instance, as another node
/// would have.
fn store_on(server: &S3Server, options: StoreOptions) -> ObjectBlobStore {
    store_at(server, server.endpoint(), options)
}

/// A store on `server`'s bucket, reached at `endpoint` (a proxy in front of it).
fn store_at(server: &S3Server, endpoint: &str, options: StoreOptions) -> ObjectBlobStore {
    let backend = Backend::S3(S3Settings {
        endpoint: Some(endpoint.to_owned()),
        region: Some(berth_testkit_s3::REGION.to_owned()),
        bucket: server.bucket().to_owned(),
        access_key_id: Some(server.access_key_id().to_owned()),
        secret_access_key: Some(Secret::new(server.secret_access_key())),
        path_style: true,
    });
    ObjectBlobStore::open(&backend, options).expect("store")
}

fn store(server: &S3Server) -> ObjectBlobStore {
    store_on(
        server,
        StoreOptions {
            part_size: PART,
            ..StoreOptions::default()
        },
    )
}

/// A store on `server`'s bucket through `proxy`.
fn store_via(server: &S3Server, proxy: &FaultProxy) -> ObjectBlobStore {
    store_at(
        server,
        &proxy.endpoint(),
        StoreOptions {
            part_size: PART,
            ..StoreOptions::default()
        },
    )
}

/// `len` bytes that do not repeat with any short period, different for each `seed`.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A body sending `bytes` in frames of at most `frame` bytes.
fn body(bytes: &[u8], frame: usize) -> ByteStream {
    let frames: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(frame.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(frames))
}

fn new_id() -> UploadId {
    UploadId::from_random(rand::random())
}

/// Appends `bytes`, declaring their length, after `before`, the bytes already there.
async fn append(store: &dyn BlobStore, id: &UploadId, before: &[u8], bytes: &[u8]) {
    let declared = BodyLength::Declared(bytes.len() as u64);
    let out = append_as(store, id, before, body(bytes, 64 << 10), declared).await;
    assert_eq!(out.unwrap().written, bytes.len() as u64);
}

/// Appends `body`, of `length`, after `before`, the bytes already there.
async fn append_as(
    store: &dyn BlobStore,
    id: &UploadId,
    before: &[u8],
    body: ByteStream,
    length: BodyLength,
) -> Result<AppendOutcome, BlobError> {
    let mut hasher = ResumableHasher::new(Algorithm::Sha256);
    hasher.update(before);
    store
        .append_upload(id, before.len() as u64, hasher, body, length)
        .await
}

async fn read_all(store: &dyn BlobStore, digest: &Digest) -> Vec<u8> {
    let read = store.read(digest, None).await.unwrap();
    let mut out = Vec::new();
    let mut body = read.body;
    while let Some(piece) = body.next().await {
        out.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(out.len() as u64, read.len);
    out
}

/// Commits `expected`, the upload's whole content, and checks what was published.
async fn commit_and_check(store: &dyn BlobStore, id: &UploadId, expected: &[u8]) -> Digest {
    let digest = Digest::compute(Algorithm::Sha256, expected);
    let committed = store
        .commit_upload(id, expected.len() as u64, &digest)
        .await;
    assert_eq!(committed.unwrap(), Committed::Published);
    assert_eq!(
        store.size(&digest).await.unwrap(),
        Some(expected.len() as u64)
    );
    assert!(
        read_all(store, &digest).await == expected,
        "published bytes differ"
    );
    assert!(
        store.list_uploads().await.unwrap().is_empty(),
        "nothing of the upload is left"
    );
    digest
}

/// Files the server holds for the bucket: objects, and parts of multipart uploads
/// (`s3s-fs` keeps the metadata files of deleted objects: they hold no bytes).
fn files_in(server: &S3Server) -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                walk(&path, out);
            } else if !(name.ends_with(".metadata.json") || name.ends_with(".internal.json")) {
                out.push(path.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(server.bucket_dir().parent().unwrap(), &mut out);
    out
}

#[tokio::test]
async fn passes_the_blob_conformance_suite() {
    let Some(server) = S3Server::start() else {
        return;
    };
    berth_blob::conformance::run(Arc::new(store(&server))).await;
}

#[tokio::test]
async fn small_patches_accumulate_into_parts() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let store = store(&server);
    let id = new_id();
    store.create_upload(&id).await.unwrap();
    // 300 patches of 1 KiB, then 100 KiB ones past two part boundaries.
    let content = data(1, 300 * 1024 + 110 * 100 * 1024);
    let mut at = 0;
    for size in std::iter::repeat_n(1024, 300).chain(std::iter::repeat_n(100 * 1024, 110)) {
        append(&store, &id, &content[..at], &content[at..at + size]).await;
        at += size;
        if at == 300 * 1024 {
            // Merged chunks, and only the latest states (older ones are deleted by the
            // next append), not 300 of each.
            let objects = files_in(&server).len();
            assert!(objects <= 16, "{objects} objects for 300 small patches");
        }
    }
    assert!(content.len() > 2 * PART);
    commit_and_check(&store, &id, &content).await;
}

#[tokio::test]
async fn a_body_of_unknown_length_fills_parts_as_it_arrives() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let store = store(&server);
    let id = new_id();
    store.create_upload(&id).await.unwrap();
    let content = data(12, 2 * PART + 4321);
    let (head, tail) = content.split_at(1000);
    let unknown = BodyLength::AtMost(u64::MAX);
    append_as(&store, &id, &[], body(head, 333), unknown)
        .await
        .unwrap();
    append_as(&store, &id, head, body(tail, 70_001), unknown)
        .await
        .unwrap();
    commit_and_check(&store, &id, &content).await;
}

#[tokio::test]
async fn a_body_that_stops_short_of_its_declared_length_leaves_no_part() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let store = store(&server);
    let id = new_id();
    store.create_upload(&id).await.unwrap();
    let content = data(13, 2 * PART + 10);
    let (head, tail) = content.split_at(100);
    append(&store, &id, &[], head).await;
    // The declared length fills two parts, but the body ends inside the first, and then
    // fails inside the second.
    let declared = BodyLength::Declared(tail.len() as u64);
    let short = append_as(&store, &id, head, body(&tail[..PART / 2], 65_536), declared).await;
    assert!(
        matches!(short, Err(BlobError::Body(_))),
        "{:?}",
        short.err()
    );
    let mut frames: Vec<std::io::Result<Bytes>> = tail[..PART + 5000]
        .chunks(100_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    frames.push(Err(std::io::Error::other("the client went away")));
    let failing: ByteStream = Box::pin(futures_util::stream::iter(frames));
    let failed = append_as(&store, &id, head, failing, declared).await;
    assert!(
        matches!(failed, Err(BlobError::Body(_))),
        "{:?}",
        failed.err()
    );
    // The acknowledged state is untouched: the upload resumes from it.
    append(&store, &id, head, tail).await;
    commit_and_check(&store, &id, &content).await;
}

#[tokio::test]
async fn another_instance_continues_an_upload() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let (first, second) = (store(&server), store(&server));
    let id = new_id();
    let content = data(2, 2 * PART + 12345);
    first.create_upload(&id).await.unwrap();
    let cut = PART + 777;
    append(&first, &id, &[], &content[..cut]).await;
    append(&second, &id, &content[..cut], &content[cut..]).await;
    // Either node may complete it.
    commit_and_check(&first, &id, &content).await;
}

#[tokio::test]
async fn a_retry_at_the_same_offset_replaces_an_unacknowledged_append() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let store = store(&server);
    let id = new_id();
    store.create_upload(&id).await.unwrap();
    let head = data(3, PART / 2);
    append(&store, &id, &[], &head).await;
    // Two parts and a chunk are written, but the new offset is never acknowledged.
    append(&store, &id, &head, &data(4, 2 * PART + 99)).await;
    // The client retries from the acknowledged offset with other bytes.
    let retry = data(5, PART + 5);
    append(&store, &id, &head, &retry).await;
    let content = [head, retry].concat();
    commit_and_check(&store, &id, &content).await;
}

#[tokio::test]
async fn an_append_may_resume_inside_a_part_never_acknowledged() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let store = store(&server);
    let id = new_id();
    store.create_upload(&id).await.unwrap();
    let written = data(6, 2 * PART + 10);
    append(&store, &id, &[], &written).await;
    // Only part of the first part was acknowledged: the parts are completed, read back
    // and put again from there.
    let kept = &written[..PART / 3];
    let rest = data(7, PART + 1);
    append(&store, &id, kept, &rest).await;
    let content = [kept, &rest[..]].concat();
    let sha512 = store
        .hash_upload(&id, content.len() as u64, Algorithm::Sha512)
        .await
        .unwrap();
    assert_eq!(sha512, Digest::compute(Algorithm::Sha512, &content));
    commit_and_check(&store, &id, &content).await;
}

#[tokio::test]
async fn a_commit_of_fewer_bytes_than_written_publishes_exactly_those() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let store = store(&server);
    let id = new_id();
    store.create_upload(&id).await.unwrap();
    let written = data(8, 3 * PART);
    append(&store, &id, &[], &written).await;
    // More than a part, cut inside one: streamed through into a new multipart upload.
    let kept = &written[..2 * PART - 3];
    commit_and_check(&store, &id, kept).await;
}

#[tokio::test]
async fn an_abandoned_upload_is_purged_without_a_trace() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let store = store(&server);
    let before = files_in(&server);
    let id = new_id();
    store.create_upload(&id).await.unwrap();
    append(&store, &id, &[], &data(9, 2 * PART + 1)).await;
    let listed = store.list_uploads().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, id);
    let age = listed[0].1.elapsed().unwrap_or_default();
    assert!(age.as_secs() < 60, "last written just now, not {age:?} ago");
    assert!(files_in(&server).len() > before.len());
    store.delete_upload(&id).await.unwrap();
    assert!(store.list_uploads().await.unwrap().is_empty());
    assert_eq!(
        files_in(&server),
        before,
        "parts, chunks and states are gone"
    );
}

#[tokio::test]
async fn concurrent_commits_of_one_digest_publish_it_once() {
    let Some(server) = S3Server::start() else {
        return;
    };
    for size in [1000, PART + 1] {
        let store = Arc::new(store(&server));
        let content = data(10, size);
        let digest = Digest::compute(Algorithm::Sha256, &content);
        let mut commits = Vec::new();
        for _ in 0..4 {
            let id = new_id();
            store.create_upload(&id).await.unwrap();
            append(&*store, &id, &[], &content).await;
            let (store, digest) = (store.clone(), digest.clone());
            commits.push(tokio::spawn(async move {
                store.commit_upload(&id, size as u64, &digest).await
            }));
        }
        for commit in commits {
            let committed = commit.await.unwrap().unwrap();
            assert!(matches!(
                committed,
                Committed::Published | Committed::AlreadyPresent
            ));
        }
        assert!(read_all(&*store, &digest).await == content);
        assert!(store.list_uploads().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn an_append_from_a_state_it_did_not_write_is_refused() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let store = store(&server);
    let id = new_id();
    store.create_upload(&id).await.unwrap();
    append(&store, &id, &[], b"acknowledged").await;
    // A caller whose hash state is of other bytes of the same length.
    let mut other = ResumableHasher::new(Algorithm::Sha256);
    other.update(b"other bytes!");
    let refused = store
        .append_upload(&id, 12, other, body(b"more", 4), BodyLength::AtMost(100))
        .await;
    assert!(matches!(refused, Err(BlobError::UploadTruncated)));
    let wrong = Digest::compute(Algorithm::Sha256, b"other bytes!");
    let refused = store.commit_upload(&id, 12, &wrong).await;
    assert!(matches!(refused, Err(BlobError::UploadTruncated)));
    assert_eq!(store.size(&wrong).await.unwrap(), None);
}

#[tokio::test]
async fn presigned_urls_serve_blobs_and_ranges() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let plain = store(&server);
    let id = new_id();
    let content = data(11, 4096);
    plain.create_upload(&id).await.unwrap();
    append(&plain, &id, &[], &content).await;
    let digest = commit_and_check(&plain, &id, &content).await;
    assert_eq!(plain.redirect_url(&digest).await.unwrap(), None);
    let redirecting = store_on(
        &server,
        StoreOptions {
            redirect_expiry: Some(std::time::Duration::from_secs(60)),
            ..StoreOptions::default()
        },
    );
    let url = redirecting.redirect_url(&digest).await.unwrap().unwrap();
    assert!(url.contains("X-Amz-Expires=60"), "{url}");
    let client = reqwest::Client::new();
    let whole = client.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert!(whole.bytes().await.unwrap() == content);
    let part = client
        .get(&url)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert!(part.bytes().await.unwrap() == content[100..200]);
}

/// The conditional reads of state objects `log` holds: (status, whether asked with an
/// entity tag).
fn state_reads(log: &[Logged]) -> Vec<(StatusCode, bool)> {
    log.iter()
        .filter(|l| l.seen.method == Method::GET && l.seen.path.contains("/state-"))
        .map(|l| {
            let conditional = l.seen.headers.contains_key(http::header::IF_NONE_MATCH);
            (l.status.expect("answered"), conditional)
        })
        .collect()
}

/// The `UploadPart` requests `log` holds, by part number: (part number, unsigned,
/// status).
fn part_puts(log: &[Logged]) -> Vec<(u32, bool, Option<StatusCode>)> {
    let mut puts: Vec<_> = log
        .iter()
        .filter_map(|l| Some((l.seen.part_number()?, l.seen.is_unsigned_part(), l.status)))
        .collect();
    puts.sort_by_key(|p| (p.0, !p.1));
    puts
}

/// Two nodes on one bucket through one logging proxy, and an upload node A created.
struct TwoNodes {
    _server: S3Server,
    proxy: FaultProxy,
    a: ObjectBlobStore,
    b: ObjectBlobStore,
    id: UploadId,
}

/// [`TwoNodes`], or `None` without an S3 server.
async fn two_nodes_and_an_upload() -> Option<TwoNodes> {
    let server = S3Server::start()?;
    let proxy = FaultProxy::passing(server.endpoint()).await;
    let (a, b) = (store_via(&server, &proxy), store_via(&server, &proxy));
    let id = new_id();
    a.create_upload(&id).await.unwrap();
    Some(TwoNodes {
        _server: server,
        proxy,
        a,
        b,
        id,
    })
}

#[tokio::test]
async fn a_state_another_node_rewrote_is_read_again_not_recalled() {
    let Some(TwoNodes {
        _server,
        proxy,
        a,
        b,
        id,
    }) = two_nodes_and_an_upload().await
    else {
        return;
    };
    // Node A appends, but its acknowledgement is lost; node B serves the retry, with
    // other bytes of the same length, and B's append is the acknowledged one.
    let (mine, theirs) = (data(20, PART + 100), data(21, PART + 100));
    append(&a, &id, &[], &mine).await;
    append(&b, &id, &[], &theirs).await;
    // The next PATCH lands on A, which remembers the state it wrote at that offset.
    let tail = data(22, 3000);
    append(&a, &id, &theirs, &tail).await;
    let so_far = [&theirs[..], &tail].concat();
    // And the one after that on A again: this time the state is the one A wrote.
    let more = data(23, PART);
    append(&a, &id, &so_far, &more).await;
    let reads = state_reads(&proxy.log());
    assert!(
        reads.contains(&(StatusCode::OK, true)),
        "the rewritten state was read again: {reads:?}"
    );
    assert!(
        reads.contains(&(StatusCode::NOT_MODIFIED, true)),
        "the unchanged state was recalled: {reads:?}"
    );
    commit_and_check(&a, &id, &[&so_far[..], &more].concat()).await;
}

#[tokio::test]
async fn a_state_another_node_completed_is_read_again_not_recalled() {
    let Some(TwoNodes {
        _server,
        proxy,
        a,
        b,
        id,
    }) = two_nodes_and_an_upload().await
    else {
        return;
    };
    let head = data(40, 2 * PART + 10);
    append(&a, &id, &[], &head).await;
    // Node B hashes the upload, which completes its multipart upload and rewrites the
    // state A remembers at that offset.
    let sha512 = b.hash_upload(&id, head.len() as u64, Algorithm::Sha512);
    assert_eq!(
        sha512.await.unwrap(),
        Digest::compute(Algorithm::Sha512, &head)
    );
    let tail = data(41, PART + 3);
    append(&a, &id, &head, &tail).await;
    let reads = state_reads(&proxy.log());
    assert_eq!(
        reads.last(),
        Some(&(StatusCode::OK, true)),
        "the completed state was read again: {reads:?}"
    );
    commit_and_check(&a, &id, &[&head[..], &tail].concat()).await;
}

#[tokio::test]
async fn patches_alternating_between_nodes_stay_correct() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = FaultProxy::passing(server.endpoint()).await;
    let nodes = [store_via(&server, &proxy), store_via(&server, &proxy)];
    let id = new_id();
    nodes[0].create_upload(&id).await.unwrap();
    let sizes = [1000, PART, 7, PART + 3, 2 * PART - 1, 5000, PART];
    let content = data(24, sizes.iter().sum());
    let mut at = 0;
    for (i, size) in sizes.into_iter().enumerate() {
        let node = &nodes[i % 2];
        append(node, &id, &content[..at], &content[at..at + size]).await;
        at += size;
    }
    commit_and_check(&nodes[1], &id, &content).await;
}

/// A proxy applying `fault` to every streamed part.
async fn on_streamed_parts(server: &S3Server, fault: Fault) -> FaultProxy {
    let rule = move |seen: &Seen| match seen.is_unsigned_part() {
        true => fault.clone(),
        false => Fault::Pass,
    };
    FaultProxy::start(server.endpoint(), Arc::new(rule)).await
}

/// Appends three parts and a bit, declaring their length, through a proxy applying
/// `fault` to every streamed part, commits, and returns the part requests made.
async fn three_parts_through(fault: Fault) -> Option<Vec<(u32, bool, Option<StatusCode>)>> {
    let server = S3Server::start()?;
    let proxy = on_streamed_parts(&server, fault).await;
    let store = store_via(&server, &proxy);
    let id = new_id();
    store.create_upload(&id).await.unwrap();
    let content = data(25, 3 * PART + 100);
    append(&store, &id, &[], &content).await;
    commit_and_check(&store, &id, &content).await;
    Some(part_puts(&proxy.log()))
}

#[tokio::test]
async fn a_part_altered_on_the_way_is_put_again_whole() {
    let Some(puts) = three_parts_through(Fault::CorruptBody).await else {
        return;
    };
    // Each of the three streamed parts was stored altered, refused for its entity
    // tag, and put again signed; then the last part at commit.
    let streamed = puts.iter().filter(|p| p.1).count();
    let signed: Vec<u32> = puts.iter().filter(|p| !p.1).map(|p| p.0).collect();
    assert_eq!(streamed, 3, "{puts:?}");
    assert_eq!(signed, [1, 2, 3, 4], "{puts:?}");
}

#[tokio::test]
async fn a_part_answered_with_another_entity_tag_is_put_again_whole() {
    let fault = Fault::ReplaceETag("\"d41d8cd98f00b204e9800998ecf8427e\"".into());
    let Some(puts) = three_parts_through(fault).await else {
        return;
    };
    let signed: Vec<u32> = puts.iter().filter(|p| !p.1).map(|p| p.0).collect();
    assert_eq!(signed, [1, 2, 3, 4], "{puts:?}");
}

#[tokio::test]
async fn an_upper_case_entity_tag_is_still_the_md5_of_the_part() {
    // Aliyun OSS gives entity tags in upper-case hex.
    let Some(puts) = three_parts_through(Fault::UpperCaseETag).await else {
        return;
    };
    let streamed: Vec<u32> = puts.iter().filter(|p| p.1).map(|p| p.0).collect();
    let signed: Vec<u32> = puts.iter().filter(|p| !p.1).map(|p| p.0).collect();
    assert_eq!(streamed, [1, 2, 3], "{puts:?}");
    assert_eq!(signed, [4], "only the last part is put signed: {puts:?}");
}

/// The parts' entity tags the state stored at `offset` names, as s3s-fs keeps it.
fn stored_part_tags(server: &S3Server, id: &UploadId, offset: usize) -> Vec<String> {
    let path = server
        .bucket_dir()
        .join("uploads")
        .join(id.as_str())
        .join(format!("state-{offset:020}"));
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    state["multipart"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_state_put_alongside_its_parts_is_put_again_with_the_tags_they_got() {
    let Some(server) = S3Server::start() else {
        return;
    };
    // The parts' entity tags are their MD5, but not written as expected.
    let proxy = on_streamed_parts(&server, Fault::UpperCaseETag).await;
    let store = store_via(&server, &proxy);
    let id = new_id();
    store.create_upload(&id).await.unwrap();
    let content = data(28, 2 * PART + 100);
    append(&store, &id, &[], &content).await;
    let md5 = |part: &[u8]| hex::encode(md5::Md5::digest(part));
    let expected: Vec<String> = content
        .chunks(PART)
        .take(2)
        .map(|part| format!("\"{}\"", md5(part).to_ascii_uppercase()))
        .collect();
    assert_eq!(stored_part_tags(&server, &id, content.len()), expected);
    commit_and_check(&store, &id, &content).await;
}

#[tokio::test]
async fn an_error_answer_to_a_streamed_part_falls_back_to_a_whole_part() {
    // An error body of more than 512 bytes, in a script of several bytes a character.
    let body = Bytes::from("€".repeat(300));
    let Some(puts) = three_parts_through(Fault::Answer(StatusCode::FORBIDDEN, body)).await else {
        return;
    };
    let signed: Vec<u32> = puts.iter().filter(|p| !p.1).map(|p| p.0).collect();
    assert_eq!(signed, [1, 2, 3, 4], "{puts:?}");
}

/// A body sending `bytes`, then nothing for `stall`, then failing.
fn stalling_body(bytes: &[u8], stall: Duration) -> ByteStream {
    let frames: Vec<std::io::Result<Bytes>> = bytes
        .chunks(64 << 10)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let failure = async move {
        tokio::time::sleep(stall).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client sent nothing for too long",
        ))
    };
    Box::pin(futures_util::stream::iter(frames).chain(futures_util::stream::once(failure)))
}

#[tokio::test]
async fn a_client_that_stalls_mid_part_leaves_no_part_and_the_upload_continues() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = FaultProxy::passing(server.endpoint()).await;
    let store = store_via(&server, &proxy);
    let id = new_id();
    store.create_upload(&id).await.unwrap();
    let content = data(26, 2 * PART + 10);
    let (head, tail) = content.split_at(1000);
    append(&store, &id, &[], head).await;
    let declared = BodyLength::Declared(tail.len() as u64);
    // A body that stalls inside its second part, then fails (the server's body timeout).
    let stalled = stalling_body(&tail[..PART + PART / 2], Duration::from_millis(500));
    let failed = append_as(&store, &id, head, stalled, declared).await;
    assert!(
        matches!(failed, Err(BlobError::Body(_))),
        "{:?}",
        failed.err()
    );
    // One whose append is dropped while it stalls (its task cancelled).
    let forever = stalling_body(&tail[..PART / 2], Duration::from_secs(3600));
    let cancelled = append_as(&store, &id, head, forever, declared);
    assert!(
        tokio::time::timeout(Duration::from_secs(2), cancelled)
            .await
            .is_err()
    );
    // The cancelled part's request ends, cut short, without waiting for anything.
    let cut_short = |log: &[Logged]| {
        part_puts(log)
            .iter()
            .filter(|p| p.1 && p.2.is_none())
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cut_short(&proxy.log()) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let puts = part_puts(&proxy.log());
    assert_eq!(cut_short(&proxy.log()), 2, "{puts:?}");
    // The first part of the stalled body was stored, but no state names it.
    append(&store, &id, head, tail).await;
    commit_and_check(&store, &id, &content).await;
}

/// A party on the way that alters a streamed part and answers the entity tag of the
/// bytes it was sent defeats the part's check (its payload is not signed). S3 and Garage
/// still refuse to complete the multipart upload, whose part's entity tag is then not
/// the one recorded; s3s-fs checks nothing at completion, and publishes the altered
/// bytes under the digest: commit compares the digest with the hash of the bytes
/// received, not of the bytes at rest.
#[tokio::test]
#[ignore = "s3s-fs does not check the parts' entity tags at completion"]
async fn a_part_altered_on_the_way_with_a_forged_entity_tag_is_never_published() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = on_streamed_parts(&server, Fault::CorruptBodyForgeETag).await;
    let store = store_via(&server, &proxy);
    let id = new_id();
    store.create_upload(&id).await.unwrap();
    let content = data(27, 3 * PART + 100);
    append(&store, &id, &[], &content).await;
    let digest = Digest::compute(Algorithm::Sha256, &content);
    let committed = store
        .commit_upload(&id, content.len() as u64, &digest)
        .await;
    if committed.is_ok() {
        let published = read_all(&store, &digest).await;
        let differ = published
            .iter()
            .zip(&content)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differ, 0,
            "published bytes differ from the digest's in {differ} places"
        );
    }
}

/// Body bytes alive, and the most ever alive at once.
#[derive(Default)]
struct Alive {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// A frame that counts itself in [`Alive`] while it lives.
struct Counted {
    bytes: Vec<u8>,
    alive: Arc<Alive>,
}

impl Counted {
    fn frame(bytes: &[u8], alive: &Arc<Alive>) -> Bytes {
        let now = alive.now.fetch_add(bytes.len(), Ordering::SeqCst) + bytes.len();
        alive.peak.fetch_max(now, Ordering::SeqCst);
        Bytes::from_owner(Counted {
            bytes: bytes.to_vec(),
            alive: alive.clone(),
        })
    }
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.alive.now.fetch_sub(self.bytes.len(), Ordering::SeqCst);
    }
}

/// A body sending `bytes` in frames of `frame` bytes made only when asked for, counted
/// in `alive`.
fn counted_body(bytes: Arc<Vec<u8>>, frame: usize, alive: Arc<Alive>) -> ByteStream {
    let frames = futures_util::stream::unfold(0, move |at| {
        let (bytes, alive) = (bytes.clone(), alive.clone());
        async move {
            let end = (at + frame).min(bytes.len());
            (at < end).then(|| (Ok(Counted::frame(&bytes[at..end], &alive)), end))
        }
    });
    Box::pin(frames)
}

#[tokio::test]
async fn appends_hold_at_most_three_parts_of_their_body_each() {
    let Some(server) = S3Server::start() else {
        return;
    };
    // A store slower than the clients: parts pile up unless the appends wait.
    let rule = |seen: &Seen| match seen.part_number() {
        Some(_) => Fault::Delay(Duration::from_millis(300)),
        None => Fault::Pass,
    };
    let proxy = FaultProxy::start(server.endpoint(), Arc::new(rule)).await;
    let store = Arc::new(store_via(&server, &proxy));
    let alive = Arc::new(Alive::default());
    let frame = 64 << 10;
    let mut appends = Vec::new();
    for (i, declared) in [true, true, false].into_iter().enumerate() {
        let (store, alive) = (store.clone(), alive.clone());
        appends.push(tokio::spawn(async move {
            let id = new_id();
            store.create_upload(&id).await.unwrap();
            let content = Arc::new(data(30 + i as u64, 8 * PART + 10));
            let len = content.len() as u64;
            let length = match declared {
                true => BodyLength::Declared(len),
                false => BodyLength::AtMost(len),
            };
            let body = counted_body(content.clone(), frame, alive);
            let out = append_as(&*store, &id, &[], body, length).await.unwrap();
            assert_eq!(out.written, len);
            (id, content)
        }));
    }
    for append in appends {
        let (id, content) = append.await.unwrap();
        let digest = Digest::compute(Algorithm::Sha256, &content);
        let committed = store.commit_upload(&id, content.len() as u64, &digest);
        assert_eq!(committed.await.unwrap(), Committed::Published);
        assert!(read_all(&*store, &digest).await == *content);
    }
    let peak = alive.peak.load(Ordering::SeqCst);
    let bound = 3 * (3 * PART + frame);
    eprintln!("peak {peak} bytes of bodies alive, bound {bound}");
    assert!(peak <= bound, "{peak} bytes of bodies alive at once");
    assert_eq!(
        alive.now.load(Ordering::SeqCst),
        0,
        "every frame was let go"
    );
}

/// On an object store a retire is two requests (a copy to the retired key, then the
/// delete of the blob). A node stalled between the two (its delete held in flight past
/// its lease) deletes the blob that a push published after another sweep took the row
/// over, even after a collection's recovery found its copy of a live blob and restored
/// it (the blob present, nothing to do): that copy is kept, and the stalled node's own
/// restore puts the bytes back from it. Metadata steps are played by hand; the byte
/// calls are the ones `sweep_blob` and `recover_retired` make.
#[tokio::test]
async fn a_retire_stalled_between_its_copy_and_its_delete_loses_no_pushed_bytes() {
    let Some(server) = S3Server::start() else {
        return;
    };
    // Node A: its deletions are held in flight for 4 s; node B: direct.
    let hold: fault_proxy::Rule = Arc::new(|seen: &Seen| match seen.method {
        Method::POST | Method::DELETE => Fault::Hold(Duration::from_secs(4)),
        _ => Fault::Pass,
    });
    let proxy = FaultProxy::start(server.endpoint(), hold).await;
    let (a, b) = (store_via(&server, &proxy), store(&server));
    let bytes = data(31, 1000);
    let id = new_id();
    b.create_upload(&id).await.unwrap();
    append(&b, &id, &[], &bytes).await;
    let digest = commit_and_check(&b, &id, &bytes).await;

    // A claims the marked row (token stalled1) and retires: the copy lands, the delete
    // of the blob is held.
    let stalled = {
        let (a, digest) = (a.clone(), digest.clone());
        tokio::spawn(async move { a.retire(&digest, "stalled1", &|_| {}).await })
    };
    for _ in 0..100 {
        let copies = b.list_retired(None, 1000).await.unwrap();
        if copies.iter().any(|c| c.token == "stalled1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A's lease lapses; a push takes the row over: sweeps it (token push2), then
    // publishes its own bytes; the row is live again.
    b.retire(&digest, "push2", &|_| {}).await.unwrap();
    b.discard_retired(&digest, "push2").await.unwrap();
    let id = new_id();
    b.create_upload(&id).await.unwrap();
    append(&b, &id, &[], &bytes).await;
    commit_and_check(&b, &id, &bytes).await;
    // A collection's recovery finds A's copy of a live blob and restores it: the blob
    // is present, so the copy is deleted.
    b.restore_retired(&digest, "stalled1").await.unwrap();
    // A's held delete lands; its row delete under stalled1 deletes nothing; it restores.
    stalled.await.unwrap().unwrap();
    a.restore_retired(&digest, "stalled1").await.unwrap();

    assert_eq!(
        b.size(&digest).await.unwrap(),
        Some(bytes.len() as u64),
        "the bytes of a blob pushed and acknowledged after the stalled sweep are gone"
    );
}

/// A store on `server`'s bucket that copies on the server only objects of up to 1 MiB:
/// larger ones are streamed through the process.
fn streaming_store(server: &S3Server, endpoint: &str) -> ObjectBlobStore {
    let options = StoreOptions {
        part_size: PART,
        copy_limit: 1 << 20,
        ..StoreOptions::default()
    };
    store_at(server, endpoint, options)
}

/// A blob past the copy limit is retired by streaming it into a multipart upload at its
/// retired key (three parts here), restored the same way, and discarded, byte for byte;
/// the retire tells of every byte it moves.
#[tokio::test]
async fn a_blob_past_the_copy_limit_is_retired_and_restored_byte_for_byte() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let before = files_in(&server);
    let store = streaming_store(&server, server.endpoint());
    let len = 2 * PART as u64 + 12_345;
    let moved = berth_blob::conformance::large_blobs_are_retired_and_restored(&store, len).await;
    assert_eq!(moved, len, "every byte streamed is told of");
    assert_eq!(files_in(&server), before, "no object or part is left");
}

/// A streamed retire given up on (its future dropped while a part is held in flight)
/// leaves the blob where it was, no retired copy, and no multipart upload: the upload
/// is aborted once its parts in flight have stopped.
#[tokio::test]
async fn a_streamed_retire_given_up_on_leaves_the_blob_and_no_upload_behind() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let hold: fault_proxy::Rule = Arc::new(|seen: &Seen| match seen.part_number() {
        Some(2) => Fault::Hold(Duration::from_secs(3)),
        _ => Fault::Pass,
    });
    let proxy = FaultProxy::start(server.endpoint(), hold).await;
    let store = streaming_store(&server, &proxy.endpoint());
    let direct = store_on(&server, StoreOptions::default());
    let bytes = data(32, 2 * PART + 100);
    let id = new_id();
    direct.create_upload(&id).await.unwrap();
    append(&direct, &id, &[], &bytes).await;
    let digest = commit_and_check(&direct, &id, &bytes).await;
    let before = files_in(&server);

    let retire = store.retire(&digest, "dropped1", &|_| {});
    let given_up = tokio::time::timeout(Duration::from_secs(1), retire).await;
    assert!(given_up.is_err(), "the retire waits on its held part");
    assert!(
        proxy.log().iter().any(|l| l.seen.part_number() == Some(1)),
        "a part was put before the retire was given up on"
    );

    let mut left = files_in(&server);
    for _ in 0..250 {
        if left == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = files_in(&server);
    }
    assert_eq!(left, before, "the multipart upload was aborted");
    assert!(direct.retired_copies(&digest).await.unwrap().is_empty());
    assert!(
        read_all(&direct, &digest).await == bytes,
        "the blob is intact"
    );
}
