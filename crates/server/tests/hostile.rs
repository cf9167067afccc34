//! Hostile clients on real sockets against the real binary: connections reset in the
//! middle of a PATCH or a completion, bodies and request heads that stall, idle
//! connections, responses nobody reads, and SIGTERM while a client stalls. Whatever
//! they do, every blob serves the bytes that hash to its digest and other clients are
//! served on time.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{Berth, client, free_port, random_bytes, sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts Berth on a fresh data directory (`<work>/data`) with extra `BERTH_*` variables.
fn start_berth(env: &[(&str, &str)]) -> (tempfile::TempDir, Berth) {
    let work = tempfile::tempdir().unwrap();
    let berth = Berth::start_with(&work.path().join("data"), free_port(), env);
    (work, berth)
}

/// Opens an upload session in `repo`; returns its location path.
async fn start_upload(http: &reqwest::Client, berth: &Berth, repo: &str) -> String {
    let r = http
        .post(format!("{}/v2/{repo}/blobs/uploads/", berth.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "POST upload in {repo}");
    r.headers()["location"].to_str().unwrap().to_owned()
}

async fn push_blob(http: &reqwest::Client, berth: &Berth, repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let r = http
        .post(format!(
            "{}/v2/{repo}/blobs/uploads/?digest={digest}",
            berth.url()
        ))
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "monolithic push to {repo}");
    digest
}

async fn fetch_blob(http: &reqwest::Client, berth: &Berth, repo: &str, digest: &str) -> Vec<u8> {
    let r = http
        .get(format!("{}/v2/{repo}/blobs/{digest}", berth.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET {repo}@{digest}");
    r.bytes().await.unwrap().to_vec()
}

/// Sends a request head and part of a body on a fresh connection.
async fn send_partial(berth: &Berth, head: &str, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(&berth.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    s
}

/// Like [`send_partial`], from the loopback address `from` (each is a client of its own).
async fn send_partial_from(berth: &Berth, from: [u8; 4], head: &str, body: &[u8]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let mut s = socket.connect(berth.addr.parse().unwrap()).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    s
}

/// Reads a response head (the status line and headers) from `s`.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            other => panic!("no response head: {other:?}, got {head:?}"),
        }
    }
    String::from_utf8(head).unwrap()
}

/// Drops a connection with a TCP reset, as a crashing client would.
#[allow(deprecated)] // A zero linger on a non-blocking socket resets it without blocking.
fn reset(s: TcpStream) {
    s.set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
}

fn patch_head(berth: &Berth, location: &str, from: usize, len: usize) -> String {
    format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {len}\r\nContent-Range: {from}-{}\r\n\r\n",
        berth.addr,
        from + len - 1
    )
}

/// Every committed blob file hashes to the digest it is named by.
fn assert_store_is_sound(data_dir: &Path) {
    let root = data_dir.join("storage/blobs/sha256");
    let mut checked = 0;
    for fan in std::fs::read_dir(&root).unwrap() {
        for blob in std::fs::read_dir(fan.unwrap().path()).unwrap() {
            let path = blob.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                sha256(&bytes),
                format!("sha256:{name}"),
                "{}",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no blob was checked");
}

/// Reads until the server closes the connection; returns how many bytes came and
/// whether it closed within `within`.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> (usize, bool) {
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (total, true),
            Ok(Ok(n)) => total += n,
            Err(_) => return (total, false),
        }
    }
}

/// An HTTP client that opens a connection per request: the server may answer a request
/// before reading its body and close the connection, which a pooled client would reuse.
fn unpooled_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Cross-repository mounts of `digest` from victim/app in a loop, until aborted. They keep
/// the metadata writer busy, which widens the window between a PATCH's commit being
/// queued and being applied.
fn spawn_mounters(berth: &Berth, digest: &str) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|i| {
            let (url, digest) = (berth.url(), digest.to_owned());
            tokio::spawn(async move {
                let http = client();
                for k in 0.. {
                    let _ = http
                        .post(format!(
                            "{url}/v2/mount/m{i}-{k}/blobs/uploads/?mount={digest}&from=victim/app"
                        ))
                        .send()
                        .await;
                }
            })
        })
        .collect()
}

/// Waits until the upload file of `location` holds `len` bytes (the server has read the
/// whole body and is committing it), then a little longer.
async fn wait_until_written(data_dir: &Path, location: &str, len: usize) {
    // The session's id: the first 32 characters of its URL's last segment.
    let id = &location.rsplit('/').next().unwrap()[..32];
    let file = data_dir.join("storage/uploads").join(id);
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&file).map_or(0, |m| m.len()) < len as u64 {
            assert!(
                Instant::now() < deadline,
                "the PATCH never reached {}",
                file.display()
            );
            std::thread::sleep(Duration::from_micros(50));
        }
        std::thread::sleep(Duration::from_micros(200));
    })
    .await
    .unwrap();
}

/// A client resets its PATCH of bytes A mid-body (or right after the body), then
/// PATCHes bytes B over the same range and claims A's digest. Another repository's A
/// must keep serving A, and every blob in the store must hash to its name.
#[tokio::test]
async fn a_reset_patch_cannot_poison_another_repositorys_blob() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let berth = Berth::start(&data);
    let http = unpooled_client();
    let a = random_bytes(4 << 20);
    let digest_a = push_blob(&http, &berth, "victim/app", &a).await;
    let mounters = spawn_mounters(&berth, &digest_a);
    for round in 0..24usize {
        let location = start_upload(&http, &berth, &format!("mallory/x{round}")).await;
        let cut = match round % 3 {
            0 => a.len(),
            1 => a.len() / 2 + round * 4099,
            _ => a.len() - 1,
        };
        // Ready before the reset, so that PATCH B follows it at once.
        let b = random_bytes(a.len());
        let s = send_partial(
            &berth,
            &patch_head(&berth, &location, 0, a.len()),
            &a[..cut],
        )
        .await;
        if cut == a.len() {
            // Reset once the server has all of A, while it commits it.
            wait_until_written(&data, &location, a.len()).await;
        }
        reset(s);
        // The server may refuse B before reading its body (416) and close the
        // connection while it is still being sent.
        let sent = http
            .patch(format!("{}{location}", berth.url()))
            .header("content-range", format!("0-{}", b.len() - 1))
            .body(b)
            .send()
            .await;
        if let Ok(r) = sent {
            assert!(
                [202, 416].contains(&r.status().as_u16()),
                "PATCH B: {}",
                r.status()
            );
        }
        let _ = http
            .put(format!("{}{location}?digest={digest_a}", berth.url()))
            .send()
            .await
            .unwrap();
        assert!(
            fetch_blob(&http, &berth, "victim/app", &digest_a).await == a,
            "round {round}: victim/app serves other bytes under {digest_a}"
        );
    }
    mounters.iter().for_each(|m| m.abort());
    assert_store_is_sound(&data);
}

/// A client resets its connection while the completion of bytes A is flushing, then
/// appends more bytes to the same session and completes again. A stays A, and the
/// retried completion succeeds or finds the session finished.
#[tokio::test]
async fn a_reset_completion_cannot_poison_the_published_blob() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let berth = Berth::start(&data);
    let http = unpooled_client();
    for round in 0..12 {
        let a = random_bytes(8 << 20);
        let digest_a = sha256(&a);
        let location = start_upload(&http, &berth, "cut/complete").await;
        let r = http
            .patch(format!("{}{location}", berth.url()))
            .header("content-range", format!("0-{}", a.len() - 1))
            .body(a.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let sep = if location.contains('?') { '&' } else { '?' };
        let head = format!(
            "PUT {location}{sep}digest={digest_a} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            berth.addr
        );
        // Ready before the reset, so that the tail PATCH follows it at once.
        let tail = random_bytes(1 << 20);
        let s = send_partial(&berth, &head, b"").await;
        if round % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        reset(s);
        // The server may refuse the tail before reading it (404) and close the
        // connection while it is still being sent.
        let sent = http
            .patch(format!("{}{location}", berth.url()))
            .header(
                "content-range",
                format!("{}-{}", a.len(), a.len() + tail.len() - 1),
            )
            .body(tail)
            .send()
            .await;
        if let Ok(r) = sent {
            assert!(
                [202, 404].contains(&r.status().as_u16()),
                "PATCH after the cut completion: {}",
                r.status()
            );
        }
        let r = http
            .put(format!("{}{location}?digest={digest_a}", berth.url()))
            .send()
            .await
            .unwrap();
        assert!(
            [201, 400, 404].contains(&r.status().as_u16()),
            "retried completion: {}",
            r.status()
        );
        let served = http
            .get(format!("{}/v2/cut/complete/blobs/{digest_a}", berth.url()))
            .send()
            .await
            .unwrap();
        if served.status() == 200 {
            assert!(
                served.bytes().await.unwrap() == a,
                "round {round}: wrong bytes"
            );
        }
    }
    assert_store_is_sound(&data);
}

/// Hundreds of PATCHes that send one byte of a declared megabyte and stall — more than
/// tokio's blocking pool has threads — while real pushes, pulls, completions and deletes
/// go on. The stalled bodies are dropped after the body timeout.
#[tokio::test]
async fn stalled_patches_do_not_stall_other_clients() {
    let (_work, berth) = start_berth(&[
        ("BERTH_LIMITS__MAX_UPLOAD_BODIES", "2000"),
        // As if each stalled PATCH came from a client of its own.
        ("BERTH_LIMITS__MAX_UPLOAD_BODIES_PER_CLIENT", "0"),
        ("BERTH_TIMEOUTS__BODY_IDLE_SECS", "4"),
    ]);
    let http = client();
    const STALLED: usize = 600;
    let mut stalled = Vec::with_capacity(STALLED);
    for i in 0..STALLED {
        let location = start_upload(&http, &berth, &format!("stall/r{}", i % 8)).await;
        stalled.push(send_partial(&berth, &patch_head(&berth, &location, 0, 1 << 20), b"x").await);
    }
    let stalled_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let work = async {
        for i in 0..10 {
            let blob = random_bytes(256 << 10);
            let repo = format!("live/app{i}");
            let digest = push_blob(&http, &berth, &repo, &blob).await;
            assert!(fetch_blob(&http, &berth, &repo, &digest).await == blob);
            let location = start_upload(&http, &berth, &repo).await;
            let chunk = random_bytes(100 << 10);
            let r = http
                .put(format!(
                    "{}{location}?digest={}",
                    berth.url(),
                    sha256(&chunk)
                ))
                .body(chunk)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "POST+PUT completion");
            let r = http
                .delete(format!("{}/v2/{repo}/blobs/{digest}", berth.url()))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "blob delete");
        }
    };
    tokio::time::timeout(Duration::from_secs(3), work)
        .await
        .expect("pushes, pulls and deletes finish while 600 PATCHes stall");
    assert!(
        stalled_at.elapsed() < Duration::from_secs(4),
        "the work ran while the PATCHes were stalled"
    );
    let rss = resident_kib(berth.pid());
    assert!(
        rss < 150 * 1024,
        "RSS {rss} KiB with {STALLED} stalled bodies"
    );

    // Past the body timeout every stalled PATCH has been answered or closed.
    for s in &mut stalled {
        let left = Duration::from_secs(8).saturating_sub(stalled_at.elapsed());
        let (_, closed) = read_until_closed(s, left).await;
        assert!(closed, "a stalled PATCH outlived the body timeout");
    }
}

/// Connections that uploaded a large chunk and then stay open hold no more than the
/// documented bound each (the read buffer hyper grew to receive the body: 450 to 640 KiB
/// measured, as the allocator's fragmentation varies), never the chunk they sent.
#[tokio::test]
async fn idle_connections_after_uploads_hold_their_bounded_buffers() {
    const CONNECTIONS: usize = 300;
    let (_work, berth) = start_berth(&[("BERTH_LIMITS__MAX_UPLOAD_BODIES_PER_CLIENT", "0")]);
    let http = client();
    let chunk = random_bytes(1 << 20);
    let before = resident_kib(berth.pid());
    let mut idle = Vec::new();
    for i in 0..CONNECTIONS {
        let location = start_upload(&http, &berth, &format!("idle/r{}", i % 16)).await;
        let mut s = send_partial(
            &berth,
            &patch_head(&berth, &location, 0, chunk.len()),
            &chunk,
        )
        .await;
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 202"), "{head}");
        idle.push(s);
    }
    let held = resident_kib(berth.pid()).saturating_sub(before);
    assert!(
        held < CONNECTIONS as u64 * 768,
        "{CONNECTIONS} idle connections that each uploaded 1 MiB hold {held} KiB"
    );
    drop(idle);
}

/// A body that keeps sending, but less than the minimum rate, is cut once a window of
/// waiting for it has passed: trickling a byte now and then holds no upload slot for ever.
#[tokio::test]
async fn a_trickling_body_is_cut_at_the_minimum_rate() {
    let (_work, berth) = start_berth(&[
        ("BERTH_TIMEOUTS__BODY_IDLE_SECS", "2"),
        ("BERTH_TIMEOUTS__BODY_MIN_BYTES_PER_SEC", "100"),
    ]);
    let http = client();
    let location = start_upload(&http, &berth, "slow/trickle").await;
    let mut s = send_partial(&berth, &patch_head(&berth, &location, 0, 1 << 20), b"x").await;
    let started = Instant::now();
    // 25 bytes a second: never idle, always too slow.
    let answered = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if s.write_all(b"xxxxx").await.is_err() || started.elapsed() > Duration::from_secs(6) {
            break started.elapsed();
        }
        let mut peek = [0u8; 1];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.peek(&mut peek)).await
            && n > 0
        {
            break started.elapsed();
        }
    };
    assert!(
        answered < Duration::from_secs(4),
        "a body trickling at 25 bytes/s outlived a 2 s window at 100 bytes/s ({answered:?})"
    );
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let r = http
        .get(format!("{}{location}", berth.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["range"],
        "0-0",
        "nothing of the cut body was acknowledged"
    );
}

/// One client address streams at most `max_upload_bodies_per_client` bodies at once; the
/// next gets `429` at once, while other clients are served.
#[tokio::test]
async fn one_client_cannot_hold_every_upload_slot() {
    let (_work, berth) = start_berth(&[("BERTH_LIMITS__MAX_UPLOAD_BODIES_PER_CLIENT", "4")]);
    let http = client();
    let mut held = Vec::new();
    for _ in 0..4 {
        let location = start_upload(&http, &berth, "per/client").await;
        let head = patch_head(&berth, &location, 0, 1 << 20);
        held.push(send_partial_from(&berth, [127, 0, 0, 2], &head, b"x").await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let location = start_upload(&http, &berth, "per/client").await;
    let head = patch_head(&berth, &location, 0, 3);
    let asked = Instant::now();
    let mut fifth = send_partial_from(&berth, [127, 0, 0, 2], &head, b"abc").await;
    let answer = read_head(&mut fifth).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(asked.elapsed() < Duration::from_secs(2), "refused at once");
    let mut other = send_partial_from(&berth, [127, 0, 0, 3], &head, b"abc").await;
    let answer = read_head(&mut other).await;
    assert!(
        answer.starts_with("HTTP/1.1 202"),
        "another client: {answer}"
    );
    drop(held);
}

/// Manifest bodies take one of their client's body slots too: a client that holds every
/// slot with manifest PUTs it never finishes gets `429` for the next, at once.
#[tokio::test]
async fn manifest_bodies_count_among_a_clients_bodies() {
    let (_work, berth) = start_berth(&[("BERTH_LIMITS__MAX_UPLOAD_BODIES_PER_CLIENT", "4")]);
    let put = |tag: &str, len: usize| {
        format!(
            "PUT /v2/per/manifests/manifests/{tag} HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\
             Content-Length: {len}\r\n\r\n",
            berth.addr
        )
    };
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(
            send_partial_from(&berth, [127, 0, 0, 2], &put(&format!("t{i}"), 100), b"{").await,
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let mut fifth = send_partial_from(&berth, [127, 0, 0, 2], &put("t5", 100), b"{").await;
    let answer = read_head(&mut fifth).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(asked.elapsed() < Duration::from_secs(2), "refused at once");
    // Another client's manifest body is read (and refused as invalid JSON, not as 429).
    let mut other = send_partial_from(&berth, [127, 0, 0, 3], &put("t6", 1), b"{").await;
    let answer = read_head(&mut other).await;
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "another client: {answer}"
    );
    drop(held);
}

/// Connections that never finish their request head, and connections that send
/// nothing, are dropped after their timeouts while other clients are served.
#[tokio::test]
async fn half_sent_heads_and_idle_connections_are_dropped() {
    let (_work, berth) = start_berth(&[
        ("BERTH_TIMEOUTS__HEADER_READ_SECS", "2"),
        ("BERTH_TIMEOUTS__IDLE_SECS", "3"),
    ]);
    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..300 {
        let head = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\nX-Slow: ", berth.addr);
        slow.push(send_partial(&berth, &head, b"").await);
    }
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(&berth.addr).await.unwrap());
    }
    let http = client();
    let r = http
        .get(format!("{}/v2/", berth.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "served while 600 connections stall");
    for s in &mut slow {
        // Generous: other tests may share the machine's two cores.
        let left = Duration::from_secs(6).saturating_sub(opened.elapsed());
        let (_, closed) = read_until_closed(s, left).await;
        assert!(
            closed,
            "a half-sent head outlived the header timeout ({:?})",
            opened.elapsed()
        );
    }
    assert!(
        opened.elapsed() >= Duration::from_millis(1900),
        "not before the timeout"
    );
    for s in &mut silent {
        let left = Duration::from_secs(8).saturating_sub(opened.elapsed());
        let (_, closed) = read_until_closed(s, left).await;
        assert!(
            closed,
            "an idle connection outlived the idle timeout ({:?})",
            opened.elapsed()
        );
    }
}

/// Pushes a valid OCI manifest of about `padding` bytes to `repo:v1`; returns its bytes.
async fn push_large_manifest(
    http: &reqwest::Client,
    berth: &Berth,
    repo: &str,
    padding: usize,
) -> String {
    let config = push_blob(http, berth, repo, b"{}").await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [],
        "annotations": {"padding": "x".repeat(padding)}
    })
    .to_string();
    let r = http
        .put(format!("{}/v2/{repo}/manifests/v1", berth.url()))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    manifest
}

/// Clients that ask for a large manifest and never read share one buffer (memory stays
/// bounded) and are dropped after the send timeout; a reading client is served meanwhile.
#[tokio::test]
async fn clients_that_do_not_read_are_dropped() {
    let (_work, berth) = start_berth(&[
        ("BERTH_TIMEOUTS__SEND_SECS", "3"),
        ("BERTH_LIMITS__MAX_MANIFEST_BYTES", "16777216"),
    ]);
    let http = client();
    // Larger than the kernel's socket buffers on both sides together.
    let manifest = push_large_manifest(&http, &berth, "big/manifest", 12 << 20).await;
    let mut readers = Vec::new();
    for _ in 0..60 {
        let head = format!(
            "GET /v2/big/manifest/manifests/v1 HTTP/1.1\r\nHost: {}\r\n\
             Accept: application/vnd.oci.image.manifest.v1+json\r\n\r\n",
            berth.addr
        );
        // A small receive window, so the kernel cannot absorb the response for us.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut s = socket.connect(berth.addr.parse().unwrap()).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        readers.push(s);
    }
    let asked = Instant::now();
    let r = http
        .get(format!("{}/v2/big/manifest/manifests/v1", berth.url()))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), manifest.len());
    let rss = resident_kib(berth.pid());
    assert!(
        rss < 200 * 1024,
        "RSS {rss} KiB with 60 non-reading clients of a 12 MiB manifest"
    );
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(asked.elapsed())).await;
    for s in &mut readers {
        let (got, closed) = read_until_closed(s, Duration::from_secs(4)).await;
        assert!(
            closed,
            "a client that does not read outlived the send timeout"
        );
        assert!(
            got < manifest.len(),
            "the stalled response was cut, not sent whole"
        );
    }
}

/// Many clients that do not read ask for many different large manifests, more than the
/// budget holds: those waiting for room hold no copy, so memory stays within the budget
/// (plus the manifest cache), and the rest are refused with `429` once their wait ends.
#[tokio::test]
async fn requests_waiting_for_room_hold_no_manifest() {
    const MANIFESTS: usize = 24;
    const CLIENTS: usize = 300;
    let (_work, berth) = start_berth(&[
        ("BERTH_TIMEOUTS__SEND_SECS", "15"),
        ("BERTH_LIMITS__MAX_BUFFERED_BYTES", "67108864"),
        ("BERTH_LIMITS__OVERLOAD_WAIT_SECS", "3"),
    ]);
    let http = client();
    for i in 0..MANIFESTS {
        // Each a different document, so each has a digest (and buffer) of its own.
        let padding = (4 << 20) - 1024 - i;
        push_large_manifest(&http, &berth, &format!("many/m{i}"), padding).await;
    }
    let mut readers = Vec::new();
    for c in 0..CLIENTS {
        let head = format!(
            "GET /v2/many/m{}/manifests/v1 HTTP/1.1\r\nHost: {}\r\n\
             Accept: application/vnd.oci.image.manifest.v1+json\r\n\r\n",
            c % MANIFESTS,
            berth.addr
        );
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut s = socket.connect(berth.addr.parse().unwrap()).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        readers.push(s);
    }
    let mut peak = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        peak = peak.max(resident_kib(berth.pid()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 64 MiB of budget and 64 MiB of manifest cache, over about 30 MiB at rest.
    assert!(
        peak < 180 * 1024,
        "peak RSS {peak} KiB with {CLIENTS} unread GETs of {MANIFESTS} 4 MiB manifests"
    );
    drop(readers);
}

/// An HTTP/2 client with a shut flow-control window opens many streams for a large
/// manifest: memory stays bounded and the connection is dropped after the send timeout.
#[tokio::test]
async fn an_http2_client_with_a_shut_window_is_dropped() {
    let (_work, berth) = start_berth(&[("BERTH_TIMEOUTS__SEND_SECS", "3")]);
    let http = client();
    push_large_manifest(&http, &berth, "h2/manifest", 3 << 20).await;
    let tcp = TcpStream::connect(&berth.addr).await.unwrap();
    let (mut h2, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .initial_connection_window_size(65_535)
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let mut responses = Vec::new();
    for _ in 0..100 {
        h2 = h2.ready().await.unwrap();
        let request =
            http::Request::get(format!("http://{}/v2/h2/manifest/manifests/v1", berth.addr))
                .header("accept", "application/vnd.oci.image.manifest.v1+json")
                .body(())
                .unwrap();
        let (response, _) = h2.send_request(request, true).unwrap();
        responses.push(response);
    }
    let opened = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rss = resident_kib(berth.pid());
    assert!(
        rss < 200 * 1024,
        "RSS {rss} KiB with 100 stalled HTTP/2 streams of 3 MiB"
    );
    let closed = tokio::time::timeout(Duration::from_secs(8), connection).await;
    assert!(
        closed.is_ok(),
        "the stalled HTTP/2 connection outlived the send timeout"
    );
    assert!(
        opened.elapsed() >= Duration::from_secs(2),
        "not before the timeout"
    );
    let r = http
        .get(format!("{}/v2/", berth.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A monolithic push whose body ends before its `Content-Length` (the client closes its
/// side) gets `400 SIZE_INVALID`, and nothing is stored (checklist row 42).
#[tokio::test]
async fn a_body_shorter_than_its_length_is_size_invalid() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let berth = Berth::start(&data);
    let blob = random_bytes(100_000);
    let digest = sha256(&blob);
    let head = format!(
        "POST /v2/short/body/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        berth.addr,
        blob.len()
    );
    let mut s = send_partial(&berth, &head, &blob[..60_000]).await;
    s.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "answer: {answer}");
    assert!(answer.contains("SIZE_INVALID"), "answer: {answer}");
    let r = client()
        .head(format!("{}/v2/short/body/blobs/{digest}", berth.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "nothing was stored");
}

/// Manifest PUTs that hold back their last byte hold room in the buffered-bytes budget:
/// past it, further PUTs wait and are refused with 429 instead of buffering without
/// bound, so memory stays near the budget.
#[tokio::test]
async fn stalled_manifest_puts_stay_within_the_buffer_budget() {
    let (_work, berth) = start_berth(&[
        ("BERTH_LIMITS__MAX_BUFFERED_BYTES", "33554432"),
        ("BERTH_LIMITS__OVERLOAD_WAIT_SECS", "1"),
    ]);
    let body = vec![b' '; 3 << 20];
    let mut stalled = Vec::new();
    for i in 0..60 {
        let head = format!(
            "PUT /v2/stall/put/manifests/t{i} HTTP/1.1\r\nHost: {}\r\n\
             Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\
             Content-Length: {}\r\n\r\n",
            berth.addr,
            body.len() + 1
        );
        stalled.push(send_partial(&berth, &head, &body).await);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let rss = resident_kib(berth.pid());
    assert!(
        rss < 120 * 1024,
        "RSS {rss} KiB with 60 stalled 3 MiB manifest PUTs"
    );
    // The registry still answers other clients.
    let r = client()
        .get(format!("{}/v2/", berth.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(stalled);
}

/// SIGTERM while a client stalls in the middle of a PATCH body: the process exits once
/// the grace period is over.
#[tokio::test]
async fn sigterm_exits_within_the_grace_period_despite_a_stalled_patch() {
    let (_work, berth) = start_berth(&[("BERTH_LIMITS__SHUTDOWN_GRACE_SECS", "2")]);
    let http = client();
    let location = start_upload(&http, &berth, "term/stall").await;
    let _stalled = send_partial(&berth, &patch_head(&berth, &location, 0, 1 << 20), b"x").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    let exited = tokio::task::spawn_blocking(move || berth.terminate())
        .await
        .unwrap();
    let took = signalled.elapsed();
    assert!(exited, "berth exits cleanly");
    assert!(took < Duration::from_secs(4), "exit took {took:?}");
}

/// Resident memory of a process that is its own (anonymous), in KiB: pages of files it
/// maps (the database, which SQLite reads through `mmap`) are the kernel's page cache.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
