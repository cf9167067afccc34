//! Power loss. SIGKILL leaves the page cache to be written back, so crash tests cannot
//! tell whether Berth fsyncs; a power cut loses every write that was not synced. Here
//! Berth runs on `lossy_fs.py`, a FUSE filesystem that keeps the state a power cut would
//! leave (file contents as of their last fsync, directory entries as of their directory's
//! last fsync). Clients push blobs and manifests concurrently, the power is cut, and Berth
//! restarted on what survived must serve every acknowledged push byte for byte and show
//! no partial blob. Without the fdatasync of a blob, a directory fsync on its publish
//! path, or SQLite's fsync of its commits, this test fails.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use support::journal::Journal;
use support::lossy::LossyFs;
use support::{Berth, client, random_bytes, sha256};

/// Clients pushing at once.
const CLIENTS: usize = 3;
/// Acknowledged blob pushes before the unfinished uploads get their last chunk.
const BEFORE: usize = 10;
/// Acknowledged blob pushes after that, before the power is cut.
const AFTER: usize = 300;
/// Acknowledged manifest pushes before the power is cut, at least.
const MANIFESTS: usize = 6;
/// Largest blob pushed.
const MAX_BLOB: usize = 1 << 20;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// Pushes `blob` in one of three ways: a monolithic POST, a session completed by one PUT
/// with the body, or a session fed by two PATCHes and completed by an empty PUT. Returns
/// the last response (a 201 when the push was acknowledged).
async fn push_blob(
    http: &reqwest::Client,
    url: &str,
    repo: &str,
    blob: Vec<u8>,
    way: usize,
) -> reqwest::Result<reqwest::Response> {
    let digest = sha256(&blob);
    if way == 0 {
        return http
            .post(format!("{url}/v2/{repo}/blobs/uploads/?digest={digest}"))
            .body(blob)
            .send()
            .await;
    }
    let start = http
        .post(format!("{url}/v2/{repo}/blobs/uploads/"))
        .send()
        .await?;
    if start.status() != 202 {
        return Ok(start);
    }
    let mut at = location(&start);
    if way == 1 {
        return http
            .put(format!("{url}{at}?digest={digest}"))
            .body(blob)
            .send()
            .await;
    }
    let middle = blob.len() / 2;
    for (from, part) in [(0, &blob[..middle]), (middle, &blob[middle..])] {
        let patch = http
            .patch(format!("{url}{at}"))
            .header("content-range", format!("{from}-{}", from + part.len() - 1))
            .body(part.to_vec())
            .send()
            .await?;
        if patch.status() != 202 {
            return Ok(patch);
        }
        at = location(&patch);
    }
    http.put(format!("{url}{at}?digest={digest}")).send().await
}

/// Pushes blobs and, for every two, a manifest tagged with them, until `stop`; journals
/// every push the server acknowledged.
async fn pusher(url: String, task: usize, journal: Arc<Mutex<Journal>>, stop: Arc<AtomicBool>) {
    let http = client();
    let repo = format!("power/r{task}");
    let mut mine: Vec<(String, usize)> = Vec::new();
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let size = rand::rng().random_range(2..=MAX_BLOB);
        let blob = random_bytes(size);
        let digest = sha256(&blob);
        journal
            .lock()
            .unwrap()
            .attempted
            .push((repo.clone(), digest.clone()));
        match push_blob(&http, &url, &repo, blob, n % 3).await {
            Ok(r) if r.status() == 201 => {
                journal
                    .lock()
                    .unwrap()
                    .blobs
                    .push((repo.clone(), digest.clone(), size));
                mine.push((digest, size));
            }
            // The power was cut under this push.
            _ if stop.load(Ordering::SeqCst) => return,
            Ok(r) => panic!("blob push answered {}: {:?}", r.status(), r.text().await),
            Err(e) => panic!("blob push failed: {e}"),
        }
        if !mine.len().is_multiple_of(2) {
            continue;
        }
        let (config, layer) = (&mine[mine.len() - 2], &mine[mine.len() - 1]);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.0, "size": layer.1}],
        }))
        .unwrap();
        let tag = format!("t{n}");
        match http
            .put(format!("{url}/v2/{repo}/manifests/{tag}"))
            .header("content-type", MANIFEST_TYPE)
            .body(manifest.clone())
            .send()
            .await
        {
            Ok(r) if r.status() == 201 => journal.lock().unwrap().manifests.push((
                repo.clone(),
                tag,
                sha256(&manifest),
                manifest,
            )),
            _ if stop.load(Ordering::SeqCst) => return,
            Ok(r) => panic!(
                "manifest push answered {}: {:?}",
                r.status(),
                r.text().await
            ),
            Err(e) => panic!("manifest push failed: {e}"),
        }
    }
}

/// An upload session left open at the power cut, with the bytes acknowledged so far.
struct Unfinished {
    what: &'static str,
    repo: String,
    location: String,
    sent: Vec<u8>,
}

impl Unfinished {
    async fn start(http: &reqwest::Client, url: &str, what: &'static str) -> Self {
        let repo = "power/unfinished".to_owned();
        let r = http
            .post(format!("{url}/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        Unfinished {
            what,
            repo,
            location: location(&r),
            sent: Vec::new(),
        }
    }

    /// Appends a chunk, which the server must acknowledge with 202.
    async fn patch(&mut self, http: &reqwest::Client, url: &str, len: usize) {
        let chunk = random_bytes(len);
        let from = self.sent.len();
        let r = http
            .patch(format!("{url}{}", self.location))
            .header("content-range", format!("{from}-{}", from + len - 1))
            .body(chunk.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}: PATCH", self.what);
        self.location = location(&r);
        self.sent.extend_from_slice(&chunk);
    }

    /// After the power cut, completing with the digest of the acknowledged bytes either
    /// publishes exactly those bytes or is refused; returns which, for the log.
    async fn complete(&self, http: &reqwest::Client, url: &str) -> String {
        let digest = sha256(&self.sent);
        let r = http
            .put(format!("{url}{}?digest={digest}", self.location))
            // Without this header, Berth answers the completion of a session whose
            // bytes are gone with 404 BLOB_UNKNOWN and keeps the session.
            .header("content-length", "0")
            .send()
            .await
            .unwrap();
        let status = r.status();
        if status == 201 {
            let back = http
                .get(format!("{url}/v2/{}/blobs/{digest}", self.repo))
                .send()
                .await
                .unwrap();
            assert_eq!(
                back.status(),
                200,
                "{}: completed but not served",
                self.what
            );
            let bytes = back.bytes().await.unwrap();
            assert_eq!(
                bytes.len(),
                self.sent.len(),
                "{}: completed short",
                self.what
            );
            assert_eq!(
                sha256(&bytes),
                digest,
                "{}: completed with other bytes",
                self.what
            );
            return format!("{}: completed", self.what);
        }
        let body: serde_json::Value =
            serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or_default();
        let code = body["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            status.is_client_error()
                && [
                    "BLOB_UPLOAD_INVALID",
                    "BLOB_UPLOAD_UNKNOWN",
                    "DIGEST_INVALID"
                ]
                .contains(&code.as_str()),
            "{}: completion answered {status} {body}",
            self.what
        );
        format!("{}: refused ({status} {code})", self.what)
    }
}

/// Waits until `done` holds, failing early when a pusher has stopped (its panic is the
/// reason) and after a minute.
async fn wait_until(pushers: &mut Vec<tokio::task::JoinHandle<()>>, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if let Some(i) = pushers.iter().position(|p| p.is_finished()) {
            pushers.remove(i).await.unwrap();
            panic!("a pusher stopped early");
        }
        assert!(Instant::now() < deadline, "timed out waiting for pushes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every file under `dir` is named by the sha256 of its bytes.
fn check_blob_files(dir: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            count += check_blob_files(&path);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_str().unwrap();
            assert_eq!(
                sha256(&bytes),
                format!("sha256:{name}"),
                "{} holds other bytes ({} bytes)",
                path.display(),
                bytes.len()
            );
            count += 1;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_loses_no_acknowledged_push() {
    let work = tempfile::tempdir().unwrap();
    let (backing, data, after) = (
        work.path().join("backing"),
        work.path().join("data"),
        work.path().join("after"),
    );
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&data).unwrap();
    let mut fs = LossyFs::mount(&backing, &data);
    let berth = Berth::start(&data);
    let url = berth.url();
    let http = client();

    // Two sessions open before the last full sync, with bytes on disk for one of them.
    let mut a = Unfinished::start(&http, &url, "session opened first").await;
    let mut c = Unfinished::start(&http, &url, "session with an early chunk").await;
    c.patch(&http, &url, 100 << 10).await;
    // Nothing is synced for Berth: from its first start on, only its own fsyncs count
    // (it makes the directories it creates durable itself).

    let journal = Arc::new(Mutex::new(Journal::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut pushers: Vec<_> = (0..CLIENTS)
        .map(|t| tokio::spawn(pusher(url.clone(), t, journal.clone(), stop.clone())))
        .collect();
    let acknowledged = || journal.lock().unwrap().blobs.len();
    wait_until(&mut pushers, || acknowledged() >= BEFORE).await;
    a.patch(&http, &url, 150 << 10).await;
    c.patch(&http, &url, 50 << 10).await;
    let mut b = Unfinished::start(&http, &url, "session opened after the sync").await;
    b.patch(&http, &url, 120 << 10).await;
    // Later pushes commit with fsync, which makes the sessions' progress durable too.
    wait_until(&mut pushers, || {
        acknowledged() >= BEFORE + AFTER && journal.lock().unwrap().manifests.len() >= MANIFESTS
    })
    .await;

    // The power cut, while the clients are still pushing.
    stop.store(true, Ordering::SeqCst);
    berth.kill9();
    tokio::task::block_in_place(|| fs.cut(&after));
    for p in pushers {
        p.await.unwrap();
    }
    tokio::task::block_in_place(|| fs.unmount());

    let berth = Berth::start(&after);
    let url = berth.url();
    let http = client();
    let journal = std::mem::take(&mut *journal.lock().unwrap());
    let blobs_dir = after.join("storage/blobs");
    assert!(
        blobs_dir.is_dir(),
        "storage/blobs did not survive the power cut"
    );
    let blob_files = check_blob_files(&blobs_dir);
    journal.audit(&http, &url, MANIFEST_TYPE).await;
    let mut outcomes = Vec::new();
    for unfinished in [&a, &b, &c] {
        outcomes.push(unfinished.complete(&http, &url).await);
    }
    println!(
        "power cut after {} acknowledged blobs and {} manifests ({} attempted); {blob_files} \
         blob files survived; {}",
        journal.blobs.len(),
        journal.manifests.len(),
        journal.attempted.len(),
        outcomes.join("; ")
    );
    drop(berth);
}
