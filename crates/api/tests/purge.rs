//! Purging stale uploads (scenario S17): idle sessions and their bytes go, active ones
//! stay, and an upload with a request in flight is never purged under it. Time is moved
//! by a manual clock, never by sleeping.

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth_app::RegistryConfig;
use berth_testkit::ManualClock;
use common::*;

const MAX_AGE: Duration = Duration::from_secs(3600);

/// How many uploads have bytes at rest in the blob store.
async fn uploads_at_rest(reg: &TestRegistry) -> usize {
    reg.blobs.list_uploads().await.unwrap().len()
}

fn registry(clock: &Arc<ManualClock>) -> TestRegistry {
    let config = RegistryConfig {
        upload_max_age: MAX_AGE,
        ..RegistryConfig::default()
    };
    TestRegistry::with_clock(config, clock.clone())
}

#[tokio::test]
async fn only_idle_sessions_are_purged() {
    let clock = ManualClock::new();
    let reg = registry(&clock);
    let idle: Vec<String> =
        futures_util::future::join_all((0..5).map(|_| start_recorded_upload(&reg, "p/idle"))).await;
    let active = start_recorded_upload(&reg, "p/active").await;
    expect_status(
        &patch(&reg, &idle[0], Some("0-2"), b"abc").await,
        202,
        "idle data",
    );
    assert_eq!(uploads_at_rest(&reg).await, 6);

    clock.advance(MAX_AGE / 2);
    expect_status(
        &patch(&reg, &active, Some("0-2"), b"abc").await,
        202,
        "keep alive",
    );
    clock.advance(MAX_AGE / 2 + Duration::from_secs(1));
    assert_eq!(reg.registry.purge_stale_uploads().await.unwrap(), 5);

    for location in &idle {
        expect_error(
            &reg.get(location).await,
            404,
            "BLOB_UPLOAD_UNKNOWN",
            "purged",
        );
    }
    expect_upload_at(&reg, &active, 3, "active session survives").await;
    assert_eq!(
        uploads_at_rest(&reg).await,
        1,
        "purged bytes are gone from the store"
    );
    let data = b"abcdef";
    expect_status(
        &patch(&reg, &active, Some("3-5"), &data[3..]).await,
        202,
        "resume",
    );
    let d = sha256(data);
    expect_status(
        &put_upload(&reg, &active, d.as_str(), None, b"").await,
        201,
        "finish",
    );
    expect_blob(&reg, "p/active", &d, data, "after purge").await;
}

/// A PATCH that streams for longer than the age limit holds its session: the purge
/// skips it (without waiting for it), and the upload completes afterwards.
#[tokio::test]
async fn an_upload_with_a_request_in_flight_is_not_purged() {
    let clock = ManualClock::new();
    let reg = Arc::new(registry(&clock));
    let location = start_recorded_upload(&reg, "p/streaming").await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let body = Body::from_stream(tokio_stream_from(rx));
    let patching = {
        let (reg, location) = (reg.clone(), location.clone());
        tokio::spawn(async move {
            reg.send(
                Method::PATCH,
                &location,
                &[("content-type", "application/octet-stream")],
                body,
            )
            .await
        })
    };
    tx.send(Ok(Bytes::from_static(b"first "))).await.unwrap();
    // Let the PATCH take its session's lock and start streaming.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    clock.advance(MAX_AGE * 2);
    let purged = tokio::time::timeout(Duration::from_secs(5), reg.registry.purge_stale_uploads())
        .await
        .expect("the purge does not wait for the upload in flight")
        .unwrap();
    assert_eq!(purged, 0, "the streaming session was not purged");
    tx.send(Ok(Bytes::from_static(b"second"))).await.unwrap();
    drop(tx);
    expect_status(&patching.await.unwrap(), 202, "the long PATCH");
    let d = sha256(b"first second");
    expect_status(
        &put_upload(&reg, &location, d.as_str(), None, b"").await,
        201,
        "complete after the purge",
    );
    expect_blob(&reg, "p/streaming", &d, b"first second", "streamed blob").await;
}

/// A whole blob `PUT` to a new URL that streams for longer than the age limit: the
/// byte area of its own it writes to (which no session names yet) is not purged under
/// it, and the blob completes.
#[tokio::test]
async fn a_whole_blob_put_in_flight_keeps_its_byte_area() {
    let clock = ManualClock::new();
    let reg = Arc::new(registry(&clock));
    let location = start_upload(&reg, "p/whole").await;
    let data = b"first second";
    let d = sha256(data);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let body = Body::from_stream(tokio_stream_from(rx));
    let putting = {
        let (reg, uri) = (reg.clone(), with_query(&location, &format!("digest={d}")));
        tokio::spawn(async move {
            let len = data.len().to_string();
            reg.send(Method::PUT, &uri, &[("content-length", len.as_str())], body)
                .await
        })
    };
    tx.send(Ok(Bytes::from_static(b"first "))).await.unwrap();
    // Let the PUT create its byte area and start writing.
    for _ in 0..200 {
        if uploads_at_rest(&reg).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(uploads_at_rest(&reg).await, 1, "the PUT's byte area");
    clock.advance(MAX_AGE * 2);
    let purged = tokio::time::timeout(Duration::from_secs(5), reg.registry.purge_stale_uploads())
        .await
        .expect("the purge does not wait for the upload in flight")
        .unwrap();
    assert_eq!(purged, 0, "the PUT's byte area was not purged");
    tx.send(Ok(Bytes::from_static(b"second"))).await.unwrap();
    drop(tx);
    expect_status(&putting.await.unwrap(), 201, "the long PUT");
    expect_blob(&reg, "p/whole", &d, data, "streamed whole blob").await;
}

/// A stream of the items sent on `rx`.
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
}
