//! Upload sessions recorded by their first request: the URL a `POST` answers opens the
//! session, a whole blob `PUT` to it completes it in one request, and an ended id never
//! opens again (`docs/design/uploads.md`).

mod common;

use std::time::Duration;

use berth_app::RegistryConfig;
use berth_testkit::ManualClock;
use common::*;

/// The id part of an upload URL.
fn id_of(location: &str) -> &str {
    location.rsplit('/').next().unwrap()
}

/// Asserts that no request on `url` finds an upload: `GET`, `PATCH`, a whole-blob `PUT`
/// and `DELETE` all answer `404 BLOB_UPLOAD_UNKNOWN`.
async fn expect_url_opens_nothing(reg: &TestRegistry, url: &str, ctx: &str) {
    let unknown = "BLOB_UPLOAD_UNKNOWN";
    expect_error(&reg.get(url).await, 404, unknown, &format!("{ctx}: GET"));
    let r = patch(reg, url, None, b"abc").await;
    expect_error(&r, 404, unknown, &format!("{ctx}: PATCH"));
    let d = sha256(b"abc");
    let r = put_upload(reg, url, d.as_str(), None, b"abc").await;
    expect_error(&r, 404, unknown, &format!("{ctx}: PUT"));
    expect_error(
        &delete(reg, url).await,
        404,
        unknown,
        &format!("{ctx}: DELETE"),
    );
}

#[tokio::test]
async fn a_whole_blob_put_to_a_new_url_completes_and_the_url_ends() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "p/whole").await;
    assert_eq!(
        id_of(&location).len(),
        80,
        "the URL says when it was opened, and is sealed"
    );
    expect_upload_at(&reg, &location, 0, "a new session").await;
    let data = pattern(5000);
    let d = sha256(&data);
    expect_status(
        &put_upload(&reg, &location, d.as_str(), None, &data).await,
        201,
        "PUT",
    );
    expect_blob(&reg, "p/whole", &d, &data, "after POST+PUT").await;
    let status = reg.get(&location).await;
    expect_error(&status, 404, "BLOB_UPLOAD_UNKNOWN", "GET after completion");
    expect_error(
        &put_upload(&reg, &location, d.as_str(), None, &data).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "PUT again",
    );
    expect_error(
        &patch(&reg, &location, None, b"more").await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "PATCH after completion",
    );
    assert!(
        reg.blobs.list_uploads().await.unwrap().is_empty(),
        "no byte area left"
    );
}

#[tokio::test]
async fn a_cancelled_new_url_never_opens_again() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "p/cancel").await;
    expect_status(&delete(&reg, &location).await, 204, "DELETE");
    expect_url_opens_nothing(&reg, &location, "after DELETE").await;
}

#[tokio::test]
async fn bytes_of_another_digest_end_a_new_url() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "p/wrong").await;
    let other = sha256(b"other bytes");
    expect_error(
        &put_upload(&reg, &location, other.as_str(), None, b"these bytes").await,
        400,
        "DIGEST_INVALID",
        "PUT",
    );
    expect_error(&reg.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN", "GET");
    expect_no_blob(&reg, "p/wrong", &other, "refused").await;
    assert!(reg.blobs.list_uploads().await.unwrap().is_empty());
}

/// A client that sends every request to the URL that opened the session, as some
/// scripts do, is served: its last chunk, sent with the `PUT`, is appended to the chunks
/// before it, whether the `PUT` carries bytes or not.
#[tokio::test]
async fn chunks_sent_to_the_opening_url_are_kept() {
    let reg = TestRegistry::new();
    let data = pattern(3000);
    let d = sha256(&data);

    let location = start_upload(&reg, "p/stale").await;
    let r = patch(&reg, &location, None, &data).await;
    expect_status(&r, 202, "PATCH");
    let recorded = r.header("location").to_owned();
    assert_eq!(id_of(&recorded).len(), 32, "a recorded session's URL");
    assert!(
        location.starts_with(&recorded),
        "{location} names {recorded}"
    );
    expect_status(
        &put_upload(&reg, &location, d.as_str(), None, b"").await,
        201,
        "empty PUT to the opening URL",
    );
    expect_blob(&reg, "p/stale", &d, &data, "completed").await;

    let location = start_upload(&reg, "p/stale2").await;
    expect_status(
        &patch(&reg, &location, None, &data[..1000]).await,
        202,
        "PATCH",
    );
    expect_status(
        &put_upload(&reg, &location, d.as_str(), None, &data[1000..]).await,
        201,
        "last chunk to the opening URL",
    );
    expect_blob(&reg, "p/stale2", &d, &data, "completed from where it stood").await;
    assert!(reg.blobs.list_uploads().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_url_opened_too_long_ago_or_ahead_of_the_clock_opens_nothing() {
    let clock = ManualClock::new();
    let reg = TestRegistry::with_clock(RegistryConfig::default(), clock.clone());
    let location = start_upload(&reg, "p/old").await;
    clock.advance(Duration::from_secs(3601));
    expect_url_opens_nothing(&reg, &location, "an hour on").await;
    let d = sha256(b"abc");

    // URLs another node opened by a clock running ahead of this one: by less than
    // clocks may differ, then by more.
    let clock = ManualClock::new();
    let reg = TestRegistry::with_clock(RegistryConfig::default(), clock.clone());
    let (near, far) = (
        start_upload(&reg, "p/ahead").await,
        start_upload(&reg, "p/ahead").await,
    );
    clock.rewind(Duration::from_secs(30));
    expect_status(
        &put_upload(&reg, &near, d.as_str(), None, b"abc").await,
        201,
        "PUT 30 s ahead",
    );
    clock.rewind(Duration::from_secs(60));
    expect_error(
        &put_upload(&reg, &far, d.as_str(), None, b"abc").await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "PUT 90 s ahead",
    );
}

/// A URL opens its session only in the repository it was opened in, at the time it
/// names: its seal covers both.
#[tokio::test]
async fn a_url_altered_or_moved_to_another_repository_opens_nothing() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "p/sealed").await;
    let elsewhere = location.replace("/p/sealed/", "/p/other/");
    let id = id_of(&location).to_owned();
    let later = i64::from_str_radix(&id[32..48], 16).unwrap() + 1;
    let altered = location.replace(&id, &format!("{}{later:016x}{}", &id[..32], &id[48..]));
    let d = sha256(b"abc");
    for url in [&elsewhere, &altered] {
        expect_url_opens_nothing(&reg, url, url).await;
    }
    expect_status(
        &put_upload(&reg, &location, d.as_str(), None, b"abc").await,
        201,
        "the URL itself still completes",
    );
}

/// An ended id is remembered until no URL that opened it is valid, then forgotten by the
/// upload purge.
#[tokio::test]
async fn ended_ids_are_forgotten_once_no_url_can_open_them() {
    let clock = ManualClock::new();
    let reg = TestRegistry::with_clock(RegistryConfig::default(), clock.clone());
    let location = start_upload(&reg, "p/purge").await;
    expect_status(&delete(&reg, &location).await, 204, "DELETE");
    let id = berth_oci::UploadRef::parse(id_of(&location)).unwrap().id;
    let meta = reg.meta.clone();
    reg.registry.purge_stale_uploads().await.unwrap();
    assert!(
        meta.upload_ended(&id).await.unwrap(),
        "kept while the URL is valid"
    );
    clock.advance(Duration::from_secs(3600 + 119));
    reg.registry.purge_stale_uploads().await.unwrap();
    assert!(
        meta.upload_ended(&id).await.unwrap(),
        "kept for the clocks' leeway"
    );
    clock.advance(Duration::from_secs(2));
    reg.registry.purge_stale_uploads().await.unwrap();
    assert!(!meta.upload_ended(&id).await.unwrap(), "forgotten");
}

/// A whole blob `PUT` whose body fails midway (the client went away) records nothing:
/// the URL still opens its session, and the same `PUT` sent again completes it.
#[tokio::test]
async fn a_whole_blob_put_cut_midway_leaves_the_url_new() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "p/cut").await;
    let data = pattern(10_000);
    let d = sha256(&data);
    let half = Bytes::copy_from_slice(&data[..5_000]);
    let body = Body::from_stream(futures_util::stream::iter(vec![
        Ok(half),
        Err(std::io::Error::other("the client went away")),
    ]));
    let len = data.len().to_string();
    let r = reg
        .send(
            Method::PUT,
            &with_query(&location, &format!("digest={d}")),
            &[("content-length", len.as_str())],
            body,
        )
        .await;
    assert!(
        r.status.is_client_error() || r.status.is_server_error(),
        "{r:?}"
    );
    expect_upload_at(&reg, &location, 0, "after the cut body").await;
    expect_no_blob(&reg, "p/cut", &d, "after the cut body").await;
    assert!(
        reg.blobs.list_uploads().await.unwrap().is_empty(),
        "no byte area left by the cut body"
    );
    expect_status(
        &put_upload(&reg, &location, d.as_str(), None, &data).await,
        201,
        "the same PUT again",
    );
    expect_blob(&reg, "p/cut", &d, &data, "after the retry").await;
}

/// A whole blob `PUT` cut after its bytes were published, before the one step that
/// completes it: nothing is acknowledged, nothing is recorded, and the same `PUT` again
/// completes the URL with the right bytes.
#[tokio::test]
async fn a_whole_blob_put_cut_before_its_one_step_is_completed_by_the_same_put() {
    let reg = TestRegistry::new();
    reg.push_blob("p/cutstep", b"the repository").await;
    let location = start_upload(&reg, "p/cutstep").await;
    let data = pattern(6_000);
    let d = sha256(&data);
    reg.faults.cut_one_step_completions(1);
    let r = put_upload(&reg, &location, d.as_str(), None, &data).await;
    assert!(r.status.is_server_error(), "cut completion: {r:?}");
    expect_no_blob(&reg, "p/cutstep", &d, "nothing acknowledged").await;
    expect_upload_at(&reg, &location, 0, "nothing recorded").await;
    expect_status(
        &put_upload(&reg, &location, d.as_str(), None, &data).await,
        201,
        "the same PUT",
    );
    expect_blob(&reg, "p/cutstep", &d, &data, "after the retry").await;
    expect_error(&reg.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN", "GET");
}

/// A whole blob `PUT` to a new repository (whose one step pins the digest rather than
/// linking it) cut after its session was recorded and its bytes published, before the
/// blob was linked: nothing is acknowledged, the opening URL then tells where the
/// session stands, and an empty `PUT` on the recorded URL completes it with the right
/// bytes.
#[tokio::test]
async fn a_whole_blob_put_cut_before_linking_is_completed_by_a_retry() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "p/cutlink").await;
    let data = pattern(7_000);
    let d = sha256(&data);
    reg.faults.cut_completions(1);
    let r = put_upload(&reg, &location, d.as_str(), None, &data).await;
    assert!(r.status.is_server_error(), "cut completion: {r:?}");
    expect_no_blob(&reg, "p/cutlink", &d, "nothing acknowledged").await;
    let again = put_upload(&reg, &location, d.as_str(), None, &data).await;
    expect_error(
        &again,
        416,
        "BLOB_UPLOAD_INVALID",
        "the same PUT on the opening URL",
    );
    let recorded = again.header("location").to_owned();
    assert_eq!(id_of(&recorded).len(), 32, "the recorded URL: {recorded}");
    expect_upload_at(&reg, &recorded, data.len() as u64, "the recorded session").await;
    expect_status(
        &put_upload(&reg, &recorded, d.as_str(), None, b"").await,
        201,
        "empty PUT on the recorded URL",
    );
    expect_blob(&reg, "p/cutlink", &d, &data, "after the retry").await;
    expect_error(&reg.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN", "GET");
}

/// Whole blob `PUT`s of different bytes sent at once to one URL: at most one completes,
/// and the blob it names holds its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_whole_blob_puts_to_one_url_complete_at_most_once() {
    let reg = std::sync::Arc::new(TestRegistry::new());
    for round in 0..8 {
        let location = start_upload(&reg, "p/twice").await;
        let bodies: Vec<Vec<u8>> = (0..3u8)
            .map(|i| {
                let mut b = pattern(2_000 + 1_000 * usize::from(i));
                b[0] = i.wrapping_add(round);
                b
            })
            .collect();
        let tasks: Vec<_> = bodies
            .iter()
            .cloned()
            .map(|data| {
                let (reg, location) = (reg.clone(), location.clone());
                tokio::spawn(async move {
                    let d = sha256(&data);
                    let r = put_upload(&reg, &location, d.as_str(), None, &data).await;
                    (d, data, r)
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            let (d, data, r) = task.await.unwrap();
            if r.status == StatusCode::CREATED {
                created += 1;
                expect_blob(&reg, "p/twice", &d, &data, "a completed PUT").await;
            } else {
                assert!(
                    [404, 416].contains(&r.status.as_u16()),
                    "a PUT that lost the race: {r:?}"
                );
                expect_no_blob(&reg, "p/twice", &d, "a PUT that lost").await;
            }
        }
        assert!(
            created <= 1,
            "round {round}: {created} PUTs completed one URL"
        );
    }
}

/// A `DELETE` of a URL whose session has no record yet, paused just before it ends the
/// id, and a whole blob `PUT` to the same URL meanwhile: the two never both succeed. An
/// id the `DELETE` reported ended must not complete afterwards, with its pin on the
/// digest removed while its bytes were being published.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_racing_a_whole_blob_put_never_lets_both_succeed() {
    let reg = std::sync::Arc::new(TestRegistry::new());
    let location = start_upload(&reg, "p/race").await;
    let end = reg.faults.hold_next_upload_end();
    let cancel = {
        let (reg, location) = (reg.clone(), location.clone());
        tokio::spawn(async move { delete(&reg, &location).await })
    };
    tokio::time::timeout(Duration::from_secs(10), end.reached)
        .await
        .expect("the DELETE reaches the end of the id")
        .unwrap();
    let completion = reg.faults.hold_next_completion();
    let data = pattern(3_000);
    let d = sha256(&data);
    let put = {
        let (reg, location, d, data) = (reg.clone(), location.clone(), d.clone(), data.clone());
        tokio::spawn(async move { put_upload(&reg, &location, d.as_str(), None, &data).await })
    };
    let reached = tokio::time::timeout(Duration::from_secs(2), completion.reached)
        .await
        .is_ok();
    let _ = end.release.send(());
    let cancelled = cancel.await.unwrap();
    if reached {
        let _ = completion.release.send(());
    } else {
        drop(completion.release);
    }
    let put = put.await.unwrap();
    assert!(
        !(cancelled.status == StatusCode::NO_CONTENT && put.status == StatusCode::CREATED),
        "DELETE answered {} and PUT answered {} on one URL",
        cancelled.status,
        put.status
    );
    expect_error(
        &reg.get(&location).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "GET after both",
    );
    if put.status == StatusCode::CREATED {
        expect_blob(&reg, "p/race", &d, &data, "the completed PUT").await;
    }
}

/// A chunk and a whole blob sent at once to one new URL: the chunk records the session
/// and the whole blob is told where it stands, or the whole blob completes and the chunk
/// finds the id ended; never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunk_and_a_whole_blob_racing_on_one_url_never_both_succeed() {
    let reg = std::sync::Arc::new(TestRegistry::new());
    for round in 0..8u8 {
        let location = start_upload(&reg, "p/mixed").await;
        let mut data = pattern(4_000);
        data[0] = round;
        let d = sha256(&data);
        let put = {
            let (reg, location, d, data) = (reg.clone(), location.clone(), d.clone(), data.clone());
            tokio::spawn(async move { put_upload(&reg, &location, d.as_str(), None, &data).await })
        };
        let chunk = {
            let (reg, location) = (reg.clone(), location.clone());
            tokio::spawn(async move { patch(&reg, &location, None, b"a chunk").await })
        };
        let (put, chunk) = (put.await.unwrap(), chunk.await.unwrap());
        assert!(
            !(put.status == StatusCode::CREATED && chunk.status == StatusCode::ACCEPTED),
            "round {round}: the PUT and the PATCH of one new URL both succeeded"
        );
        if put.status == StatusCode::CREATED {
            expect_blob(&reg, "p/mixed", &d, &data, "the completed PUT").await;
        } else {
            expect_no_blob(&reg, "p/mixed", &d, "the PUT that lost").await;
        }
    }
}

/// First chunks sent at once to one new URL: one records the session and the others
/// find it recorded, and none finds it without its byte area and ends it as lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_chunks_never_end_the_session_as_lost() {
    let reg = std::sync::Arc::new(TestRegistry::new());
    for round in 0..40 {
        let location = start_upload(&reg, "p/first").await;
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let (reg, location) = (reg.clone(), location.clone());
                tokio::spawn(async move { patch(&reg, &location, Some("0-9"), &[i; 10]).await })
            })
            .collect();
        let mut accepted = 0;
        for task in tasks {
            let r = task.await.unwrap();
            match r.status.as_u16() {
                202 => accepted += 1,
                _ => expect_error(&r, 416, "BLOB_UPLOAD_INVALID", &format!("round {round}")),
            }
        }
        assert_eq!(accepted, 1, "round {round}: one first chunk wins");
    }
}

/// Whole blobs sent again and again to a URL whose session ended: each is refused, and
/// none of their bytes is left in the blob store, though each was published before the
/// step that refused it.
#[tokio::test]
async fn whole_blobs_sent_to_an_ended_url_leave_no_bytes() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "p/ended").await;
    expect_status(&delete(&reg, &location).await, 204, "DELETE");
    for n in 0..4u8 {
        let data = vec![n; 100_000];
        let d = sha256(&data);
        let r = put_upload(&reg, &location, d.as_str(), None, &data).await;
        expect_error(&r, 404, "BLOB_UPLOAD_UNKNOWN", "a PUT on an ended URL");
        assert_eq!(
            reg.blobs.size(&d).await.unwrap(),
            None,
            "the refused blob {n} was left in the blob store"
        );
    }
}
