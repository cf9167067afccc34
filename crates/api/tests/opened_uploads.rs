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

#[tokio::test]
async fn a_whole_blob_put_to_a_new_url_completes_and_the_url_ends() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "p/whole").await;
    assert_eq!(
        id_of(&location).len(),
        80,
        "the URL says when it was opened"
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
    expect_error(&reg.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN", "GET");
    expect_error(
        &patch(&reg, &location, None, b"abc").await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "PATCH",
    );
    let d = sha256(b"abc");
    expect_error(
        &put_upload(&reg, &location, d.as_str(), None, b"abc").await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "PUT",
    );
    expect_error(
        &delete(&reg, &location).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "DELETE again",
    );
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
    expect_error(&reg.get(&location).await, 404, "BLOB_UPLOAD_UNKNOWN", "GET");
    expect_error(
        &patch(&reg, &location, None, b"abc").await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "PATCH",
    );
    let d = sha256(b"abc");
    expect_error(
        &put_upload(&reg, &location, d.as_str(), None, b"abc").await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "PUT",
    );

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
        expect_error(&reg.get(url).await, 404, "BLOB_UPLOAD_UNKNOWN", url);
        expect_error(
            &patch(&reg, url, None, b"abc").await,
            404,
            "BLOB_UPLOAD_UNKNOWN",
            url,
        );
        expect_error(
            &put_upload(&reg, url, d.as_str(), None, b"abc").await,
            404,
            "BLOB_UPLOAD_UNKNOWN",
            url,
        );
        expect_error(&delete(&reg, url).await, 404, "BLOB_UPLOAD_UNKNOWN", url);
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
