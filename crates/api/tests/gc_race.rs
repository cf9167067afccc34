//! The garbage collection race: writers push images that share a pool of layers, some
//! waiting between their blob uploads and their manifest for longer than the grace
//! period, while a deleter deletes older images and collections run back to back (with
//! untagged manifests deleted too). Afterwards an oracle pulls every acknowledged image
//! that was not deleted, and checks every byte against its digest: nothing a push was
//! acknowledged for may be lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use berth_app::{CollectionOptions, CollectionReport};
use berth_oci::{Algorithm, Digest, media_type};
use berth_testkit::TestRegistry;
use http::{Method, StatusCode};
use rand::Rng;
use serde_json::json;
use tokio::sync::Mutex;

/// Long enough for a writer to push its blobs and manifest on every backend pair when
/// it does not wait on purpose (the scale-out pair takes some 100 ms a push here).
const GRACE: Duration = Duration::from_millis(600);
const WRITERS: usize = 4;
const ROUNDS: usize = 12;
const LAYERS: usize = 6;

/// Manifests refused because a blob was collected while their writer waited.
static REUPLOADS: AtomicUsize = AtomicUsize::new(0);

/// An image a push was acknowledged for.
#[derive(Clone)]
struct Pushed {
    repository: String,
    tag: String,
    manifest: Vec<u8>,
    blobs: Vec<Digest>,
}

fn layer(n: usize) -> Vec<u8> {
    format!("shared layer {n} ").repeat(64 + n).into_bytes()
}

/// Pushes `blobs` and a manifest naming them under `tag`, uploading the blobs again
/// when the manifest finds one gone (collected while the writer waited); returns the
/// manifest.
async fn push_image(
    reg: &TestRegistry,
    repository: &str,
    tag: &str,
    blobs: &[Vec<u8>],
    wait: Duration,
) -> (Vec<u8>, Vec<Digest>) {
    let (config, layers) = blobs.split_first().expect("a config");
    let descriptor = |data: &[u8], media: &str| {
        json!({"mediaType": media, "digest": Digest::compute(Algorithm::Sha256, data).as_str(),
               "size": data.len()})
    };
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": descriptor(config, media_type::OCI_CONFIG),
        "layers": layers.iter().map(|l| descriptor(l, "application/vnd.oci.image.layer.v1.tar"))
            .collect::<Vec<_>>(),
    }))
    .unwrap();
    let digests = blobs
        .iter()
        .map(|b| Digest::compute(Algorithm::Sha256, b))
        .collect();
    let mut wait = wait;
    for _ in 0..20 {
        // Every other blob in one request with its length declared (completed in one
        // step), the others as a recorded session.
        for (n, blob) in blobs.iter().enumerate() {
            match n % 2 {
                0 => reg.push_whole_blob(repository, blob).await,
                _ => reg.push_blob(repository, blob).await,
            };
        }
        tokio::time::sleep(wait).await;
        let r = reg
            .put_manifest(repository, tag, media_type::OCI_MANIFEST, &manifest)
            .await;
        match r.status {
            StatusCode::CREATED => return (manifest, digests),
            StatusCode::BAD_REQUEST if r.error_code() == "MANIFEST_BLOB_UNKNOWN" => {
                REUPLOADS.fetch_add(1, Ordering::SeqCst);
                wait = Duration::ZERO;
            }
            other => panic!("{repository}:{tag}: {other} {:?}", r.body),
        }
    }
    panic!("{repository}:{tag}: the manifest never found its blobs");
}

/// One collection with the race's grace period, untagged manifests included.
async fn collect(reg: &TestRegistry) -> CollectionReport {
    let options = CollectionOptions {
        dry_run: false,
        grace: GRACE,
        workers: 2,
        delete_untagged: true,
    };
    reg.registry.collect_garbage(options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_beside_pushes_and_deletes_lose_nothing_acknowledged() {
    let reg = Arc::new(TestRegistry::new());
    let live: Arc<Mutex<BTreeMap<(String, String), Pushed>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));

    let collector = {
        let (reg, stop) = (reg.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut runs, mut collected) = (0, 0);
            while !stop.load(Ordering::SeqCst) {
                let report = collect(&reg).await;
                assert_eq!(report.failed, [], "every sweep succeeds");
                runs += 1;
                collected += report.blobs.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (runs, collected)
        })
    };
    let deleter = {
        let (reg, live, stop) = (reg.clone(), live.clone(), stop.clone());
        tokio::spawn(async move {
            let mut deleted = 0;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(150)).await;
                let victim = {
                    let mut live = live.lock().await;
                    let key = live.keys().next().cloned();
                    key.and_then(|k| live.remove(&k))
                };
                let Some(image) = victim else { continue };
                let digest = Digest::compute(Algorithm::Sha256, &image.manifest);
                // Untag, then delete the manifest: the collector races both.
                for reference in [image.tag.clone(), digest.to_string()] {
                    let uri = format!("/v2/{}/manifests/{reference}", image.repository);
                    let r = reg.send_empty(Method::DELETE, &uri).await;
                    assert!(
                        matches!(r.status, StatusCode::ACCEPTED | StatusCode::NOT_FOUND),
                        "{uri}: {}",
                        r.status
                    );
                }
                deleted += 1;
            }
            deleted
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (reg, live) = (reg.clone(), live.clone());
            tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let (first, second, wait) = {
                        let mut rng = rand::rng();
                        let wait = if rng.random_bool(0.3) {
                            GRACE * 2
                        } else {
                            Duration::from_millis(rng.random_range(0..50))
                        };
                        (
                            rng.random_range(0..LAYERS),
                            rng.random_range(0..LAYERS),
                            wait,
                        )
                    };
                    let repository = format!("race/app{}", (w + round) % 2);
                    let tag = format!("w{w}-r{round}");
                    let config = format!("{{\"writer\":{w},\"round\":{round}}}").into_bytes();
                    let blobs = [config, layer(first), layer(second)];
                    let (manifest, digests) =
                        push_image(&reg, &repository, &tag, &blobs, wait).await;
                    live.lock().await.insert(
                        (repository.clone(), tag.clone()),
                        Pushed {
                            repository,
                            tag,
                            manifest,
                            blobs: digests,
                        },
                    );
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let (runs, collected) = collector.await.unwrap();
    let deleted = deleter.await.unwrap();
    assert!(runs >= 5, "only {runs} collections ran");
    assert!(collected > 0, "the collections deleted nothing");
    let reuploads = REUPLOADS.load(Ordering::SeqCst);
    assert!(
        reuploads > 0,
        "no writer found a blob collected while it waited"
    );
    assert!(deleted >= 3, "only {deleted} images were deleted");

    // Once more after the grace period, with nothing else running.
    tokio::time::sleep(GRACE * 2).await;
    collect(&reg).await;

    let live = live.lock().await;
    assert!(live.len() >= WRITERS * ROUNDS - deleted);
    for image in live.values() {
        let by_tag = format!("/v2/{}/manifests/{}", image.repository, image.tag);
        let r = reg.get(&by_tag).await;
        assert_eq!(r.status, StatusCode::OK, "{by_tag}");
        assert_eq!(&r.body[..], &image.manifest[..], "{by_tag}");
        for blob in &image.blobs {
            let uri = format!("/v2/{}/blobs/{blob}", image.repository);
            let r = reg.get(&uri).await;
            assert_eq!(r.status, StatusCode::OK, "{uri} of {by_tag}");
            assert_eq!(
                &Digest::compute(Algorithm::Sha256, &r.body),
                blob,
                "{uri} of {by_tag}"
            );
        }
    }
}
