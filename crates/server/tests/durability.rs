//! Durability of the real binary: uploads resume after a crash, SIGTERM lets in-flight
//! requests finish, and SIGKILL at random moments never loses an acknowledged push nor
//! exposes a partial blob.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use support::journal::Journal;
use support::{Berth, client, free_port, random_bytes, sha256};

#[tokio::test]
async fn a_chunked_upload_resumes_after_sigkill() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let port = free_port();
    let berth = Berth::start_on(&data, port);
    let http = client();
    let blob = random_bytes(3 << 20);
    let start = http
        .post(format!("{}/v2/p/resume/blobs/uploads/", berth.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let first = http
        .patch(format!("{}{location}", berth.url()))
        .header("content-range", format!("0-{}", (1 << 20) - 1))
        .body(blob[..1 << 20].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    berth.kill9();

    let berth = Berth::start_on(&data, port);
    let http = client(); // Pooled connections died with the old process.
    let status = http
        .get(format!("{}{location}", berth.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(
        status.headers()["range"],
        format!("0-{}", (1 << 20) - 1).as_str()
    );
    let second = http
        .patch(format!("{}{location}", berth.url()))
        .header("content-range", format!("{}-{}", 1 << 20, blob.len() - 1))
        .body(blob[1 << 20..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 202);
    let digest = sha256(&blob);
    let done = http
        .put(format!("{}{location}?digest={digest}", berth.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201);
    let back = http
        .get(format!("{}/v2/p/resume/blobs/{digest}", berth.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(sha256(&back.bytes().await.unwrap()), digest);
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_upload_finish() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let berth = Berth::start(&data);
    let http = client();
    let url = berth.url();
    let start = http
        .post(format!("{url}/v2/p/slow/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    // The session's id: the first 32 characters of its URL's last segment.
    let id = location.rsplit('/').next().unwrap()[..32].to_owned();
    // The body's first half is large enough to be written to the upload file, which
    // shows the request is in flight; the second half waits for the signal.
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let first = Bytes::from(vec![b'x'; 1 << 20]);
    let chunks = futures_util::stream::unfold((0, Some(signalled_rx)), move |(i, signalled)| {
        let first = first.clone();
        async move {
            match i {
                0 => Some((Ok::<_, std::io::Error>(first), (1, signalled))),
                1 => {
                    let _ = signalled.expect("waited once").await;
                    Some((Ok(Bytes::from(vec![b'y'; 1024])), (2, None)))
                }
                _ => None,
            }
        }
    });
    let patch = tokio::spawn(
        http.patch(format!("{url}{location}"))
            .body(reqwest::Body::wrap_stream(chunks))
            .send(),
    );
    let upload_file = data.join("storage/uploads").join(&id);
    wait_for(Duration::from_secs(20), || {
        std::fs::metadata(&upload_file).is_ok_and(|m| m.len() > 0)
    })
    .await;
    let pid = berth.pid();
    let exited = tokio::task::spawn_blocking(move || berth.terminate());
    // SIGTERM has been sent once the process stops accepting; then the body goes on.
    wait_for(Duration::from_secs(20), || {
        std::net::TcpStream::connect(url.trim_start_matches("http://")).is_err()
    })
    .await;
    signalled_tx.send(()).unwrap();
    let response = patch.await.unwrap().unwrap();
    assert_eq!(response.status(), 202, "the in-flight request completes");
    assert_eq!(
        response.headers()["range"],
        format!("0-{}", (1 << 20) + 1024 - 1).as_str()
    );
    assert!(
        exited.await.unwrap(),
        "berth (pid {pid}) exits cleanly after SIGTERM"
    );
}

/// Polls `done` until it holds; fails the test after `limit`.
async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn pusher(
    url: String,
    task: usize,
    journal: Arc<Mutex<Journal>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let http = client();
    let repo = format!("crash/r{task}");
    let mut mine: Vec<(String, usize)> = Vec::new();
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let size = rand::rng().random_range(1..(1 << 20));
        let blob = random_bytes(size);
        let digest = sha256(&blob);
        journal
            .lock()
            .unwrap()
            .attempted
            .push((repo.clone(), digest.clone()));
        let pushed = if n % 2 == 0 {
            http.post(format!("{url}/v2/{repo}/blobs/uploads/?digest={digest}"))
                .body(blob)
                .send()
                .await
        } else {
            match http
                .post(format!("{url}/v2/{repo}/blobs/uploads/"))
                .send()
                .await
            {
                Ok(r) if r.status() == 202 => {
                    let location = r.headers()["location"].to_str().unwrap().to_owned();
                    http.put(format!("{url}{location}?digest={digest}"))
                        .body(blob)
                        .send()
                        .await
                }
                other => other,
            }
        };
        match pushed {
            Ok(r) if r.status() == 201 => {
                journal
                    .lock()
                    .unwrap()
                    .blobs
                    .push((repo.clone(), digest.clone(), size));
                mine.push((digest, size));
            }
            Ok(r) if r.status().is_server_error() => {
                panic!("server error {} while pushing", r.status())
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        if mine.len() >= 2 && n % 3 == 0 {
            let (config, layer) = (&mine[mine.len() - 2], &mine[mine.len() - 1]);
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.0, "size": layer.1}],
            }))
            .unwrap();
            let tag = format!("t{n}");
            let put = http
                .put(format!("{url}/v2/{repo}/manifests/{tag}"))
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .body(manifest.clone())
                .send()
                .await;
            if let Ok(r) = put {
                assert!(
                    !r.status().is_server_error(),
                    "server error {} on manifest push",
                    r.status()
                );
                if r.status() == 201 {
                    journal.lock().unwrap().manifests.push((
                        repo.clone(),
                        tag,
                        sha256(&manifest),
                        manifest,
                    ));
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_acknowledged_push() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let port = free_port();
    let mut berth = Berth::start_on(&data, port);
    let url = berth.url();
    let journal = Arc::new(Mutex::new(Journal::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pushers: Vec<_> = (0..4)
        .map(|t| tokio::spawn(pusher(url.clone(), t, journal.clone(), stop.clone())))
        .collect();
    // Each kill comes after a random number of acknowledged pushes, so every round makes
    // progress whatever the machine's speed.
    let acknowledged = || journal.lock().unwrap().blobs.len();
    for _ in 0..8 {
        let target = acknowledged() + rand::rng().random_range(2..8);
        wait_for(Duration::from_secs(60), || acknowledged() >= target).await;
        berth.kill9();
        berth = Berth::start_on(&data, port);
    }
    wait_for(Duration::from_secs(60), || {
        !journal.lock().unwrap().manifests.is_empty()
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in pushers {
        p.await.unwrap();
    }
    berth.kill9();
    let berth = Berth::start_on(&data, port);

    let http = client();
    let journal = std::mem::take(&mut *journal.lock().unwrap());
    assert!(
        journal.blobs.len() >= 16,
        "each round acknowledged at least two pushes"
    );
    journal
        .audit(&http, &url, "application/vnd.oci.image.manifest.v1+json")
        .await;
    drop(berth);
}

/// What a crash or power loss may leave of an upload's bytes at rest.
#[derive(Clone, Copy, Debug)]
enum AfterCrash {
    /// The bytes are intact.
    Intact,
    /// The bytes never reached the disk: the file is empty.
    Emptied,
    /// The file kept its length but its blocks read as zeros.
    Zeroed,
    /// A completion renamed the bytes into place, then the process died before linking.
    Published,
}

/// Uploads 64 KiB in one PATCH, SIGKILLs Berth, alters the upload file as `after`
/// says, restarts and completes; returns the completion's status and error code, and
/// the blob's bytes if it is served.
async fn complete_after_crash(after: AfterCrash) -> (u16, String, Option<Vec<u8>>) {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let port = free_port();
    let berth = Berth::start_on(&data, port);
    let http = client();
    let blob = random_bytes(64 << 10);
    let digest = sha256(&blob);
    let start = http
        .post(format!("{}/v2/p/crash/blobs/uploads/", berth.url()))
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let r = http
        .patch(format!("{}{location}", berth.url()))
        .header("content-range", format!("0-{}", blob.len() - 1))
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    berth.kill9();
    let id = &location.rsplit('/').next().unwrap()[..32];
    let upload = data.join("storage/uploads").join(id);
    match after {
        AfterCrash::Intact => {}
        AfterCrash::Emptied => std::fs::write(&upload, b"").unwrap(),
        AfterCrash::Zeroed => std::fs::write(&upload, vec![0u8; blob.len()]).unwrap(),
        AfterCrash::Published => {
            let hex = digest.trim_start_matches("sha256:");
            let dir = data.join("storage/blobs/sha256").join(&hex[..2]);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::rename(&upload, dir.join(hex)).unwrap();
        }
    }
    let berth = Berth::start_on(&data, port);
    let http = client();
    let r = http
        .put(format!("{}{location}?digest={digest}", berth.url()))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value =
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or_default();
    let code = body["errors"][0]["code"].as_str().unwrap_or("").to_owned();
    let served = http
        .get(format!("{}/v2/p/crash/blobs/{digest}", berth.url()))
        .send()
        .await
        .unwrap();
    let served = match served.status().as_u16() {
        200 => Some(served.bytes().await.unwrap().to_vec()),
        404 => None,
        s => panic!("GET blob answered {s}"),
    };
    if let Some(bytes) = &served {
        assert_eq!(
            &sha256(bytes),
            &digest,
            "{after:?}: served bytes that do not hash to the digest"
        );
        assert_eq!(bytes, &blob);
    }
    (status, code, served)
}

#[tokio::test]
async fn bytes_lost_after_a_crash_are_refused_never_padded_or_published() {
    for after in [AfterCrash::Emptied, AfterCrash::Zeroed] {
        let (status, code, served) = complete_after_crash(after).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "BLOB_UPLOAD_INVALID"),
            "{after:?}"
        );
        assert!(served.is_none(), "{after:?}: nothing is published");
    }
}

#[tokio::test]
async fn an_upload_completes_after_a_crash_when_its_bytes_survived() {
    // Intact bytes are hashed again by the new process, then published.
    let (status, code, served) = complete_after_crash(AfterCrash::Intact).await;
    assert_eq!(status, 201, "{code}");
    assert!(served.is_some());
    // A completion cut between publishing and linking is finished by the retry.
    let (status, code, served) = complete_after_crash(AfterCrash::Published).await;
    assert_eq!(status, 201, "{code}");
    assert!(served.is_some());
}
