//! Blob uploads: monolithic, POST+PUT, chunked and streamed PATCH, completion, cancel,
//! mounts, size limits and concurrency (spec "Pushing blobs"; checklist rows 31-51).

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth_app::RegistryConfig;
use berth_oci::UploadRef;
use common::*;

#[tokio::test]
async fn monolithic_post_with_digest_creates_the_blob() {
    let reg = TestRegistry::new();
    let data = pattern(3000);
    let d = sha256(&data);
    let len = data.len().to_string();
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/lib/app/blobs/uploads/?digest={d}"),
            &[
                ("content-length", &len),
                ("content-type", "application/octet-stream"),
            ],
            data.clone(),
        )
        .await;
    expect_status(&r, 201, "monolithic POST");
    assert_eq!(r.header("location"), format!("/v2/lib/app/blobs/{d}"));
    assert_eq!(r.header("docker-content-digest"), d.as_str());
    expect_blob(&reg, "lib/app", &d, &data, "after monolithic POST").await;
    // The Location is pullable as given.
    expect_status(&reg.get(r.header("location")).await, 200, "GET Location");
}

#[tokio::test]
async fn monolithic_post_of_an_empty_blob() {
    let reg = TestRegistry::new();
    let d = sha256(b"");
    for headers in [&[("content-length", "0")][..], &[][..]] {
        let r = reg
            .send(
                Method::POST,
                &format!("/v2/e/blobs/uploads/?digest={d}"),
                headers,
                Body::empty(),
            )
            .await;
        expect_status(&r, 201, "empty blob");
    }
    expect_blob(&reg, "e", &d, b"", "empty blob").await;
    assert_eq!(
        head(&reg, &format!("/v2/e/blobs/{d}"))
            .await
            .header("content-length"),
        "0"
    );
}

#[tokio::test]
async fn post_then_put() {
    let reg = TestRegistry::new();
    let r = reg
        .send(
            Method::POST,
            "/v2/p/x/blobs/uploads/",
            &[("content-length", "0")],
            Body::empty(),
        )
        .await;
    expect_status(&r, 202, "POST");
    let location = r.header("location").to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    assert_eq!(r.header("docker-upload-uuid"), id);
    assert_eq!(r.header("range"), "0-0");
    assert_eq!(r.header("content-length"), "0");
    expect_upload_at(&reg, &location, 0, "fresh session").await;

    let data = pattern(5000);
    let d = sha256(&data);
    let r = put_upload(&reg, &location, d.as_str(), None, &data).await;
    expect_status(&r, 201, "PUT");
    assert_eq!(r.header("location"), format!("/v2/p/x/blobs/{d}"));
    assert_eq!(r.header("docker-content-digest"), d.as_str());
    expect_blob(&reg, "p/x", &d, &data, "after POST+PUT").await;
}

/// Uploads a `len`-byte blob to `repo` in PATCHes of `sizes`, checking every answer, and
/// closes it with a bodiless PUT.
async fn check_chunked_upload(repo: &str, len: usize, sizes: &[usize]) {
    let reg = TestRegistry::new();
    let data = pattern(len);
    let d = sha256(&data);
    let mut location = start_upload(&reg, repo).await;
    let mut offset = 0;
    for &size in sizes {
        let range = format!("{}-{}", offset, offset + size - 1);
        let r = patch(&reg, &location, Some(&range), &data[offset..offset + size]).await;
        expect_status(&r, 202, &format!("PATCH {range}"));
        assert_eq!(
            r.header("range"),
            format!("0-{}", offset + size - 1),
            "Range after {range}"
        );
        assert!(
            r.header("location")
                .starts_with(&format!("/v2/{repo}/blobs/uploads/"))
        );
        // Each next chunk uses the Location of the previous answer.
        location = r.header("location").to_owned();
        offset += size;
        expect_upload_at(&reg, &location, offset as u64, "status between chunks").await;
    }
    assert_eq!(offset, data.len());
    let r = put_upload(&reg, &location, d.as_str(), None, b"").await;
    expect_status(&r, 201, "closing PUT");
    expect_blob(&reg, repo, &d, &data, "chunked").await;
}

#[tokio::test]
async fn chunked_patch_with_content_range() {
    check_chunked_upload("chunky", 10_000, &[4096, 1, 3000, 2903]).await;
}

#[tokio::test]
async fn chunks_larger_than_a_write_batch_at_unaligned_offsets() {
    check_chunked_upload("chunky", 700_001, &[100_003, 500_000, 99_998]).await;
}

#[tokio::test]
async fn streamed_patch_without_content_range() {
    let reg = TestRegistry::new();
    let data = pattern(300_000);
    let d = sha256(&data);
    let location = start_upload(&reg, "stream").await;
    // Two streamed PATCHes, no Content-Length nor Content-Range, each in several pieces.
    let (a, b) = data.split_at(123_457);
    for (part, end) in [(a, a.len()), (b, data.len())] {
        let r = reg
            .send(
                Method::PATCH,
                &location,
                &[("content-type", "application/octet-stream")],
                streamed(part, 7),
            )
            .await;
        expect_status(&r, 202, "streamed PATCH");
        assert_eq!(r.header("range"), format!("0-{}", end - 1));
    }
    // Closing PUT without a body and without Content-Length.
    let r = reg
        .send_empty(Method::PUT, &with_query(&location, &format!("digest={d}")))
        .await;
    expect_status(&r, 201, "closing PUT");
    expect_blob(&reg, "stream", &d, &data, "streamed").await;
}

#[tokio::test]
async fn put_carries_the_final_chunk() {
    let reg = TestRegistry::new();
    let data = pattern(2500);
    let d = sha256(&data);
    // With a Content-Range on the final chunk, after a PATCH.
    let location = start_upload(&reg, "fin").await;
    expect_status(
        &patch(&reg, &location, Some("0-999"), &data[..1000]).await,
        202,
        "PATCH",
    );
    let r = put_upload(
        &reg,
        &location,
        d.as_str(),
        Some("1000-2499"),
        &data[1000..],
    )
    .await;
    expect_status(&r, 201, "PUT with final chunk and range");
    expect_blob(&reg, "fin", &d, &data, "final chunk with range").await;

    // Without a Content-Range, after a streamed PATCH.
    let location = start_upload(&reg, "fin2").await;
    let r = reg
        .send(Method::PATCH, &location, &[], streamed(&data[..10], 2))
        .await;
    expect_status(&r, 202, "streamed PATCH");
    // The next request goes to the Location of the previous answer: the recorded session.
    let location = r.header("location").to_owned();
    let r = put_upload(&reg, &location, d.as_str(), None, &data[10..]).await;
    expect_status(&r, 201, "PUT with final chunk");
    expect_blob(&reg, "fin2", &d, &data, "final chunk without range").await;
}

/// Sends `chunks` (range, bytes) in order; all but the last must be accepted and the last
/// must get a 416 that says where the session stands, and the session must stay usable.
async fn check_out_of_order(chunks: &[(&str, &[u8])], ctx: &str) {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "ooo").await;
    let (last, accepted) = chunks.split_last().unwrap();
    let mut offset = 0u64;
    for (range, data) in accepted {
        expect_status(&patch(&reg, &location, Some(range), data).await, 202, ctx);
        offset += data.len() as u64;
    }
    let r = patch(&reg, &location, Some(last.0), last.1).await;
    expect_error(&r, 416, "BLOB_UPLOAD_INVALID", ctx);
    // A well-formed range that starts elsewhere is refused with where to resume; a range
    // that ends before it starts is refused before the session is looked at. Either way
    // the spec's way to resume is the GET below.
    let (start, end) = last.0.split_once('-').unwrap();
    if start.parse::<u64>().unwrap() <= end.parse::<u64>().unwrap() {
        expect_session_location(&r, &location, &format!("{ctx}: 416"));
        assert_eq!(
            r.header("range"),
            format!("0-{}", offset.saturating_sub(1)),
            "{ctx}: 416 Range"
        );
    }
    expect_upload_at(&reg, &location, offset, ctx).await;

    // The session is still usable: finish it from where it stands.
    let mut data: Vec<u8> = accepted.iter().flat_map(|(_, d)| d.to_vec()).collect();
    let tail = b"tail";
    let range = format!("{}-{}", offset, offset + tail.len() as u64 - 1);
    expect_status(&patch(&reg, &location, Some(&range), tail).await, 202, ctx);
    data.extend_from_slice(tail);
    let d = sha256(&data);
    expect_status(
        &put_upload(&reg, &location, d.as_str(), None, b"").await,
        201,
        ctx,
    );
    expect_blob(&reg, "ooo", &d, &data, ctx).await;
}

#[tokio::test]
async fn out_of_order_chunks_get_416() {
    let ten = b"0123456789";
    check_out_of_order(&[("5-9", &ten[..5])], "first chunk not at 0").await;
    check_out_of_order(&[("1-10", ten)], "first chunk at 1").await;
    check_out_of_order(&[("0-9", ten), ("11-20", ten)], "gap of one byte").await;
    check_out_of_order(&[("0-9", ten), ("100-109", ten)], "large gap").await;
    check_out_of_order(&[("0-9", ten), ("0-9", ten)], "chunk resent").await;
    check_out_of_order(&[("0-9", ten), ("5-14", ten)], "overlap").await;
    check_out_of_order(&[("0-9", ten), ("9-18", ten)], "overlap by one byte").await;
    check_out_of_order(&[("0-9", ten), ("10-5", &ten[..6])], "end before start").await;
}

#[tokio::test]
async fn final_put_with_an_out_of_order_chunk_gets_416() {
    let reg = TestRegistry::new();
    let data = pattern(20);
    let location = start_upload(&reg, "ooo").await;
    expect_status(
        &patch(&reg, &location, Some("0-9"), &data[..10]).await,
        202,
        "PATCH",
    );
    let r = put_upload(
        &reg,
        &location,
        sha256(&data).as_str(),
        Some("12-21"),
        &data[10..],
    )
    .await;
    expect_error(&r, 416, "BLOB_UPLOAD_INVALID", "final PUT with a gap");
    expect_session_location(&r, &location, "416");
    expect_upload_at(&reg, &location, 10, "after the bad PUT").await;
    expect_no_blob(&reg, "ooo", &sha256(&data), "after the bad PUT").await;
    let r = put_upload(
        &reg,
        &location,
        sha256(&data).as_str(),
        Some("10-19"),
        &data[10..],
    )
    .await;
    expect_status(&r, 201, "final PUT in order");
}

/// `0-18446744073709551615` covers 2^64 bytes, a length that `u64` cannot hold: it is
/// refused as unsatisfiable instead of wrapping to an empty chunk (or panicking).
#[tokio::test]
async fn content_range_longer_than_u64_is_refused() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "huge/range").await;
    let whole = format!("0-{}", u64::MAX);
    for length in ["0", "10"] {
        let r = reg
            .send(
                Method::PATCH,
                &location,
                &[
                    ("content-range", whole.as_str()),
                    ("content-length", length),
                ],
                if length == "0" {
                    &b""[..]
                } else {
                    &b"0123456789"[..]
                },
            )
            .await;
        expect_error(
            &r,
            416,
            "BLOB_UPLOAD_INVALID",
            &format!("PATCH {whole} with Content-Length {length}"),
        );
    }
    let r = put_upload(
        &reg,
        &location,
        sha256(b"").as_str(),
        Some(whole.as_str()),
        b"",
    )
    .await;
    expect_error(&r, 416, "BLOB_UPLOAD_INVALID", &format!("PUT {whole}"));
    expect_upload_at(&reg, &location, 0, "nothing was written").await;
    expect_no_blob(&reg, "huge/range", &sha256(b""), "nothing was stored").await;
}

#[tokio::test]
async fn malformed_content_range_is_400() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "bad/range").await;
    for bad in [
        "bytes=0-9",
        "0-",
        "-5",
        "a-b",
        "0-9/10",
        "bytes 0-9/10",
        "0x0-0x9",
        "+0-9",
        "0 - 9",
        "0-9,10-19",
        "",
    ] {
        let r = reg
            .send(
                Method::PATCH,
                &location,
                &[("content-range", bad), ("content-length", "10")],
                &b"0123456789"[..],
            )
            .await;
        expect_error(
            &r,
            400,
            "BLOB_UPLOAD_INVALID",
            &format!("Content-Range {bad:?}"),
        );
    }
    expect_upload_at(&reg, &location, 0, "nothing was written").await;
    // On the closing PUT too.
    let r = put_upload(
        &reg,
        &location,
        sha256(b"0123456789").as_str(),
        Some("bytes=0-9"),
        b"0123456789",
    )
    .await;
    expect_error(&r, 400, "BLOB_UPLOAD_INVALID", "PUT with a malformed range");
    expect_upload_at(&reg, &location, 0, "nothing was written").await;
}

#[tokio::test]
async fn lengths_that_disagree_with_the_range_are_size_invalid() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "sizes").await;
    let ten = &b"0123456789"[..];
    // (Content-Range, Content-Length, body)
    let checks: Vec<(&str, Option<&str>, Body, &str)> = vec![
        (
            "0-9",
            Some("5"),
            Body::from(ten),
            "Content-Length shorter than the range",
        ),
        (
            "0-4",
            Some("10"),
            Body::from(ten),
            "Content-Length longer than the range",
        ),
        (
            "0-9",
            None,
            Body::from(&ten[..5]),
            "body shorter than the range",
        ),
        ("0-4", None, Body::from(ten), "body longer than the range"),
        (
            "0-4",
            None,
            streamed(ten, 3),
            "streamed body longer than the range",
        ),
        (
            "0-9",
            Some("10"),
            Body::from(&ten[..5]),
            "body shorter than Content-Length",
        ),
    ];
    for (range, len, body, ctx) in checks {
        let mut headers = vec![("content-range", range)];
        if let Some(len) = len {
            headers.push(("content-length", len));
        }
        let r = reg.send(Method::PATCH, &location, &headers, body).await;
        expect_error(&r, 400, "SIZE_INVALID", ctx);
        expect_upload_at(&reg, &location, 0, ctx).await;
    }
    // The session was never advanced: the right chunk is still accepted at 0.
    expect_status(
        &patch(&reg, &location, Some("0-9"), ten).await,
        202,
        "good chunk",
    );
    expect_status(
        &put_upload(&reg, &location, sha256(ten).as_str(), None, b"").await,
        201,
        "PUT",
    );
    expect_blob(&reg, "sizes", &sha256(ten), ten, "after size errors").await;
}

#[tokio::test]
async fn wrong_digest_on_put_is_digest_invalid_and_stores_nothing() {
    let reg = TestRegistry::new();
    let data = pattern(1000);
    let claimed = sha256(b"something else");
    // Chunked then PUT, and POST then PUT with the body.
    let location = start_upload(&reg, "wrong").await;
    expect_status(
        &patch(&reg, &location, Some("0-999"), &data).await,
        202,
        "PATCH",
    );
    let r = put_upload(&reg, &location, claimed.as_str(), None, b"").await;
    expect_error(&r, 400, "DIGEST_INVALID", "PUT with a wrong digest");
    let location = start_upload(&reg, "wrong").await;
    let r = put_upload(&reg, &location, claimed.as_str(), None, &data).await;
    expect_error(&r, 400, "DIGEST_INVALID", "POST+PUT with a wrong digest");
    // A wrong digest of the other algorithm is refused too.
    let location = start_upload(&reg, "wrong").await;
    let r = put_upload(&reg, &location, sha512(b"other").as_str(), None, &data).await;
    expect_error(
        &r,
        400,
        "DIGEST_INVALID",
        "wrong sha512 digest on a sha256 session",
    );
    for d in [&claimed, &sha256(&data), &sha512(b"other")] {
        expect_no_blob(&reg, "wrong", d, "after wrong digests").await;
    }
}

/// The spec lets the client name the digest only at the final `PUT`, so a session opened
/// without `digest-algorithm` completes with a sha512 digest too (its bytes are hashed
/// again), chunked and with the body on the `PUT`.
#[tokio::test]
async fn a_sha512_digest_completes_a_session_opened_for_sha256() {
    let reg = TestRegistry::new();
    let data = pattern(300_000);
    let digest = sha512(&data);
    let location = start_upload(&reg, "sha512/chunked").await;
    expect_status(
        &patch(&reg, &location, Some("0-99999"), &data[..100_000]).await,
        202,
        "first chunk",
    );
    expect_status(
        &patch(&reg, &location, Some("100000-299999"), &data[100_000..]).await,
        202,
        "second chunk",
    );
    let r = put_upload(&reg, &location, digest.as_str(), None, b"").await;
    expect_status(&r, 201, "PUT ?digest=sha512:…");
    expect_blob(&reg, "sha512/chunked", &digest, &data, "chunked sha512").await;

    let location = start_upload(&reg, "sha512/put").await;
    let r = put_upload(&reg, &location, digest.as_str(), None, &data).await;
    expect_status(&r, 201, "POST then PUT with the body");
    expect_blob(&reg, "sha512/put", &digest, &data, "POST+PUT sha512").await;
}

/// A completion cut after publishing the bytes but before linking them (a crash, a full
/// disk) is finished by the retried `PUT`, whether the stored hash state vouched for the
/// bytes (sha256) or they were hashed again at rest (sha512 on a sha256 session, whose
/// upload file is gone by the time of the retry).
#[tokio::test]
async fn a_completion_cut_before_linking_is_finished_by_the_retry() {
    let reg = TestRegistry::new();
    let data = pattern(300_000);
    for digest in [sha256(&data), sha512(&data)] {
        let repo = format!("cut/{}", digest.algorithm().as_str());
        let location = start_upload(&reg, &repo).await;
        expect_status(
            &patch(&reg, &location, Some("0-299999"), &data).await,
            202,
            "PATCH",
        );
        reg.faults.cut_completions(1);
        let r = put_upload(&reg, &location, digest.as_str(), None, b"").await;
        expect_status(&r, 500, "the cut completion");
        expect_no_blob(&reg, &repo, &digest, "published but not linked").await;
        let r = put_upload(&reg, &location, digest.as_str(), None, b"").await;
        expect_status(&r, 201, &format!("the retry with {digest}"));
        expect_blob(&reg, &repo, &digest, &data, "after the retry").await;
        check_upload_is_unknown(&reg, &location, "the retry ended the session").await;
    }
}

/// A retry links a published blob only when this session's bytes were seen to hash to its
/// digest: knowing a digest, and even holding its bytes, is not enough once the bytes are
/// gone without that record.
#[tokio::test]
async fn a_lost_upload_is_not_completed_by_a_blob_published_under_its_digest() {
    let reg = TestRegistry::new();
    let data = pattern(1000);
    let digest = sha512(&data);
    let upload_id = |location: &str| {
        UploadRef::parse(location.rsplit('/').next().unwrap())
            .unwrap()
            .id
    };

    // The session's own bytes, published under the digest as a crash of a completion
    // that recorded nothing would leave them.
    let location = start_upload(&reg, "lost/own").await;
    expect_status(&patch(&reg, &location, None, &data).await, 202, "PATCH");
    reg.blobs
        .commit_upload(&upload_id(&location), data.len() as u64, &digest)
        .await
        .unwrap();
    let r = put_upload(&reg, &location, digest.as_str(), None, b"").await;
    expect_error(&r, 400, "BLOB_UPLOAD_INVALID", "no record of the hash");
    expect_no_blob(&reg, "lost/own", &digest, "nothing linked").await;
    reg.blobs.delete(&digest).await.unwrap();

    // Other bytes of the same length, lost, while another repository holds the digest.
    let uri = format!("/v2/lost/elsewhere/blobs/uploads/?digest={digest}");
    let r = reg.send(Method::POST, &uri, &[], data.clone()).await;
    expect_status(&r, 201, "push to another repository");
    let location = start_upload(&reg, "lost/other").await;
    expect_status(
        &patch(&reg, &location, None, &pattern(1001)[1..]).await,
        202,
        "PATCH other bytes",
    );
    reg.blobs
        .delete_upload(&upload_id(&location))
        .await
        .unwrap();
    let r = put_upload(&reg, &location, digest.as_str(), None, b"").await;
    expect_error(&r, 400, "BLOB_UPLOAD_INVALID", "bytes lost");
    expect_no_blob(
        &reg,
        "lost/other",
        &digest,
        "never linked by the digest alone",
    )
    .await;
}

#[tokio::test]
async fn wrong_digest_on_monolithic_post_stores_nothing() {
    let reg = TestRegistry::new();
    let data = pattern(1000);
    let claimed = sha256(b"something else");
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/wrong/blobs/uploads/?digest={claimed}"),
            &[("content-length", "1000")],
            data.clone(),
        )
        .await;
    expect_error(
        &r,
        400,
        "DIGEST_INVALID",
        "monolithic POST with a wrong digest",
    );
    expect_no_blob(&reg, "wrong", &claimed, "claimed").await;
    expect_no_blob(&reg, "wrong", &sha256(&data), "actual").await;
    // A malformed digest on a monolithic POST.
    for bad in [
        "sha256:abc",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "nonsense",
    ] {
        let r = reg
            .send(
                Method::POST,
                &format!("/v2/wrong/blobs/uploads/?digest={bad}"),
                &[],
                data.clone(),
            )
            .await;
        expect_error(&r, 400, "DIGEST_INVALID", &format!("POST ?digest={bad}"));
    }
}

#[tokio::test]
async fn missing_or_malformed_digest_on_put_keeps_the_session() {
    let reg = TestRegistry::new();
    let data = pattern(100);
    let location = start_upload(&reg, "nodigest").await;
    expect_status(
        &patch(&reg, &location, Some("0-49"), &data[..50]).await,
        202,
        "PATCH",
    );
    let r = reg
        .send(
            Method::PUT,
            &location,
            &[("content-length", "0")],
            Body::empty(),
        )
        .await;
    expect_error(&r, 400, "DIGEST_INVALID", "PUT without digest");
    for bad in ["", "sha256:abc", "SHA256:00", "bogus"] {
        let r = reg
            .send(
                Method::PUT,
                &format!("{location}?digest={bad}"),
                &[("content-length", "0")],
                Body::empty(),
            )
            .await;
        expect_error(&r, 400, "DIGEST_INVALID", &format!("PUT ?digest={bad}"));
    }
    expect_upload_at(&reg, &location, 50, "session still usable").await;
    expect_status(
        &patch(&reg, &location, Some("50-99"), &data[50..]).await,
        202,
        "PATCH after",
    );
    let r = put_upload(&reg, &location, sha256(&data).as_str(), None, b"").await;
    expect_status(&r, 201, "PUT with digest");
    expect_blob(&reg, "nodigest", &sha256(&data), &data, "after").await;
}

#[tokio::test]
async fn monolithic_post_with_a_short_body_stores_nothing() {
    let reg = TestRegistry::new();
    let data = pattern(100);
    let d = sha256(&data);
    // The client announced 200 bytes and sent 100 (then closed).
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/short/blobs/uploads/?digest={d}"),
            &[("content-length", "200")],
            data.clone(),
        )
        .await;
    assert_ne!(r.status, StatusCode::CREATED);
    expect_error(&r, 400, "SIZE_INVALID", "short monolithic body");
    expect_no_blob(&reg, "short", &d, "short monolithic").await;
    // A Content-Range has no meaning on a monolithic upload.
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/short/blobs/uploads/?digest={d}"),
            &[("content-range", "0-99")],
            data.clone(),
        )
        .await;
    expect_error(
        &r,
        400,
        "BLOB_UPLOAD_INVALID",
        "monolithic with Content-Range",
    );
    expect_no_blob(&reg, "short", &d, "monolithic with Content-Range").await;
}

#[tokio::test]
async fn digest_algorithms() {
    let reg = TestRegistry::new();
    let r = reg
        .send_empty(
            Method::POST,
            "/v2/alg/blobs/uploads/?digest-algorithm=bogus",
        )
        .await;
    expect_error(&r, 400, "DIGEST_INVALID", "digest-algorithm=bogus");

    // sha512 end to end: monolithic, and a session opened for sha512.
    let data = pattern(777);
    let d = sha512(&data);
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/alg/blobs/uploads/?digest={d}"),
            &[],
            data.clone(),
        )
        .await;
    expect_status(&r, 201, "sha512 monolithic");
    expect_blob(&reg, "alg", &d, &data, "sha512 monolithic").await;

    let r = reg
        .send_empty(
            Method::POST,
            "/v2/alg2/blobs/uploads/?digest-algorithm=sha512",
        )
        .await;
    expect_status(&r, 202, "sha512 session");
    let location = r.header("location").to_owned();
    expect_status(
        &patch(&reg, &location, Some("0-99"), &data[..100]).await,
        202,
        "PATCH",
    );
    expect_status(
        &put_upload(&reg, &location, d.as_str(), Some("100-776"), &data[100..]).await,
        201,
        "PUT",
    );
    expect_blob(&reg, "alg2", &d, &data, "sha512 chunked").await;
}

#[tokio::test]
async fn cancel_ends_the_session() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "cancel").await;
    expect_status(
        &patch(&reg, &location, Some("0-2"), b"abc").await,
        202,
        "PATCH",
    );
    let r = delete(&reg, &location).await;
    expect_status(&r, 204, "DELETE upload");
    assert!(r.body.is_empty());
    check_upload_is_unknown(&reg, &location, "cancelled").await;
    expect_no_blob(&reg, "cancel", &sha256(b"abc"), "cancelled").await;
}

/// Every upload operation on `location` answers 404 BLOB_UPLOAD_UNKNOWN.
async fn check_upload_is_unknown(reg: &TestRegistry, location: &str, ctx: &str) {
    let d = sha256(b"x");
    let ctx = |op: &str| format!("{ctx}: {op} {location}");
    expect_error(
        &reg.get(location).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
        &ctx("GET"),
    );
    let r = patch(reg, location, Some("0-0"), b"x").await;
    expect_error(&r, 404, "BLOB_UPLOAD_UNKNOWN", &ctx("PATCH"));
    let r = reg
        .send(Method::PATCH, location, &[], streamed(b"x", 1))
        .await;
    expect_error(&r, 404, "BLOB_UPLOAD_UNKNOWN", &ctx("streamed PATCH"));
    let r = put_upload(reg, location, d.as_str(), None, b"x").await;
    expect_error(&r, 404, "BLOB_UPLOAD_UNKNOWN", &ctx("PUT"));
    expect_error(
        &delete(reg, location).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
        &ctx("DELETE"),
    );
}

#[tokio::test]
async fn unknown_upload_ids_are_404() {
    let reg = TestRegistry::new();
    let real = start_upload(&reg, "ids").await;
    let id = real.rsplit('/').next().unwrap();
    // One character changed (the id is the only upload state in the URL).
    let flipped = format!(
        "{}{}",
        if id.starts_with('0') { '1' } else { '0' },
        &id[1..]
    );
    let bad_ids = [
        "0123456789abcdef0123456789abcdef".to_owned(),
        flipped,
        id.to_uppercase(),
        format!("{id}0"),
        id[1..].to_owned(),
        "not-an-id".to_owned(),
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
        "../../etc/passwd".to_owned(),
        "../../../../berth.db".to_owned(),
        "%00".to_owned(),
    ];
    for bad in bad_ids {
        check_upload_is_unknown(&reg, &format!("/v2/ids/blobs/uploads/{bad}"), "bad id").await;
    }
    // The real session was not disturbed.
    expect_upload_at(&reg, &real, 0, "real session").await;
}

#[tokio::test]
async fn an_upload_of_one_repository_is_unknown_in_another() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "team/a").await;
    expect_status(
        &patch(&reg, &location, Some("0-2"), b"abc").await,
        202,
        "PATCH in A",
    );
    let id = location.rsplit('/').next().unwrap();
    for other in ["team/b", "team", "team/a/x", "b"] {
        check_upload_is_unknown(
            &reg,
            &format!("/v2/{other}/blobs/uploads/{id}"),
            "other repo",
        )
        .await;
    }
    // Still intact in A.
    expect_upload_at(&reg, &location, 3, "session in A").await;
    expect_status(
        &put_upload(&reg, &location, sha256(b"abc").as_str(), None, b"").await,
        201,
        "PUT in A",
    );
    expect_no_blob(&reg, "team/b", &sha256(b"abc"), "not linked in B").await;
}

#[tokio::test]
async fn a_completed_session_is_gone() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "done").await;
    let d = sha256(b"abc");
    expect_status(
        &put_upload(&reg, &location, d.as_str(), None, b"abc").await,
        201,
        "first PUT",
    );
    let r = put_upload(&reg, &location, d.as_str(), None, b"").await;
    expect_error(&r, 404, "BLOB_UPLOAD_UNKNOWN", "second PUT");
    let r = patch(&reg, &location, Some("3-5"), b"def").await;
    expect_error(&r, 404, "BLOB_UPLOAD_UNKNOWN", "PATCH after completion");
    expect_error(
        &reg.get(&location).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "GET after completion",
    );
    expect_blob(&reg, "done", &d, b"abc", "the blob stays").await;
}

#[tokio::test]
async fn patch_content_type_does_not_matter() {
    let reg = TestRegistry::new();
    let location = start_upload(&reg, "ct").await;
    for (i, ct) in ["text/html", "application/json", "", "garbage;;;"]
        .iter()
        .enumerate()
    {
        let range = format!("{i}-{i}");
        let r = reg
            .send(
                Method::PATCH,
                &location,
                &[
                    ("content-type", ct),
                    ("content-range", &range),
                    ("content-length", "1"),
                ],
                &b"x"[..],
            )
            .await;
        expect_status(&r, 202, &format!("PATCH with Content-Type {ct:?}"));
    }
    expect_upload_at(&reg, &location, 4, "after").await;
}

#[tokio::test]
async fn blobs_above_the_size_limit_are_413() {
    let reg = TestRegistry::with_config(RegistryConfig {
        max_blob_bytes: 1000,
        ..RegistryConfig::default()
    });
    let at_limit = pattern(1000);
    let over = pattern(1001);
    let d_over = sha256(&over);
    let too_large = "SIZE_INVALID";

    let r = reg
        .send(
            Method::POST,
            &format!("/v2/big/blobs/uploads/?digest={d_over}"),
            &[("content-length", "1001")],
            over.clone(),
        )
        .await;
    expect_error(&r, 413, too_large, "monolithic with Content-Length");
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/big/blobs/uploads/?digest={d_over}"),
            &[],
            streamed(&over, 4),
        )
        .await;
    expect_error(&r, 413, too_large, "monolithic streamed");

    let location = start_upload(&reg, "big").await;
    let r = patch(&reg, &location, Some("0-599"), &over[..600]).await;
    expect_status(&r, 202, "first chunk");
    // Later requests go to the Location of the previous answer: the recorded session.
    let location = r.header("location").to_owned();
    let r = patch(&reg, &location, Some("600-1000"), &over[600..]).await;
    expect_error(&r, 413, too_large, "chunk past the limit");
    let r = reg
        .send(Method::PATCH, &location, &[], streamed(&over[600..], 3))
        .await;
    expect_error(&r, 413, too_large, "streamed chunk past the limit");
    let r = put_upload(&reg, &location, d_over.as_str(), None, &over[600..]).await;
    expect_error(&r, 413, too_large, "final chunk past the limit");
    expect_upload_at(&reg, &location, 600, "session unchanged").await;
    expect_no_blob(&reg, "big", &d_over, "over the limit").await;

    // Exactly at the limit is fine, in one piece or in chunks.
    let d = sha256(&at_limit);
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/big/blobs/uploads/?digest={d}"),
            &[("content-length", "1000")],
            at_limit.clone(),
        )
        .await;
    expect_status(&r, 201, "at the limit");
    // The session refused above can still finish within the limit (same first 600 bytes).
    let r = put_upload(
        &reg,
        &location,
        d.as_str(),
        Some("600-999"),
        &at_limit[600..],
    )
    .await;
    expect_status(&r, 201, "chunked to the limit");
    expect_blob(&reg, "big", &d, &at_limit, "at the limit").await;
}

#[tokio::test]
async fn cross_repository_mount() {
    let reg = TestRegistry::new();
    let data = pattern(4000);
    let d = reg.push_blob("src/repo", &data).await;

    let r = reg
        .send_empty(
            Method::POST,
            &format!("/v2/dst/repo/blobs/uploads/?mount={d}&from=src/repo"),
        )
        .await;
    expect_status(&r, 201, "mount");
    assert_eq!(r.header("location"), format!("/v2/dst/repo/blobs/{d}"));
    assert_eq!(r.header("docker-content-digest"), d.as_str());
    expect_blob(&reg, "dst/repo", &d, &data, "mounted").await;
    // Mounting again is harmless.
    let r = reg
        .send_empty(
            Method::POST,
            &format!("/v2/dst/repo/blobs/uploads/?mount={d}&from=src/repo"),
        )
        .await;
    expect_status(&r, 201, "mount again");
}

#[tokio::test]
async fn mount_falls_back_to_a_session() {
    let reg = TestRegistry::new();
    let data = pattern(4000);
    let d = reg.push_blob("has", &data).await;
    reg.push_blob("other", b"unrelated").await;
    let unknown = unknown_digest();
    // (target, query, expected status)
    let cases = [
        (
            "t1",
            format!("mount={d}&from=other"),
            202,
            "from a repo without the blob",
        ),
        (
            "t2",
            format!("mount={d}&from=nosuch/repo"),
            202,
            "from a repo that does not exist",
        ),
        (
            "t3",
            format!("mount={unknown}&from=has"),
            202,
            "unknown digest",
        ),
        (
            "t4",
            format!("mount={unknown}"),
            202,
            "unknown digest without from",
        ),
        (
            "t5",
            format!("mount={d}"),
            201,
            "without from, blob exists elsewhere",
        ),
        (
            "t6",
            format!("mount={d}&from=t6"),
            202,
            "from itself, not there",
        ),
    ];
    for (target, query, status, ctx) in cases {
        let r = reg
            .send_empty(
                Method::POST,
                &format!("/v2/{target}/blobs/uploads/?{query}"),
            )
            .await;
        expect_status(&r, status, ctx);
        if status == 201 {
            expect_blob(&reg, target, &d, &data, ctx).await;
            continue;
        }
        // A 202 is an ordinary new session in the target repository.
        let location = r.header("location").to_owned();
        assert!(
            location.starts_with(&format!("/v2/{target}/blobs/uploads/")),
            "{ctx}: {location}"
        );
        assert_eq!(r.header("range"), "0-0", "{ctx}");
        expect_no_blob(&reg, target, &d, ctx).await;
        expect_upload_at(&reg, &location, 0, ctx).await;
        expect_status(
            &put_upload(&reg, &location, d.as_str(), None, &data).await,
            201,
            ctx,
        );
        expect_blob(&reg, target, &d, &data, ctx).await;
    }
    // After the blob was deleted from the source, a mount from it falls back too.
    expect_status(
        &delete(&reg, &format!("/v2/has/blobs/{d}")).await,
        202,
        "delete in source",
    );
    let r = reg
        .send_empty(
            Method::POST,
            &format!("/v2/t7/blobs/uploads/?mount={d}&from=has"),
        )
        .await;
    expect_status(&r, 202, "from a repo whose link was deleted");
}

#[tokio::test]
async fn malformed_mount_requests_are_400() {
    let reg = TestRegistry::new();
    let d = reg.push_blob("src", b"data").await;
    let cases = [
        ("mount=sha256:abc&from=src".to_owned(), "DIGEST_INVALID"),
        (
            format!("mount={}&from=src", d.as_str().to_uppercase()),
            "DIGEST_INVALID",
        ),
        (
            "mount=md5:d41d8cd98f00b204e9800998ecf8427e&from=src".to_owned(),
            "DIGEST_INVALID",
        ),
        (
            "mount=sha256:..%2F..%2Fetc%2Fpasswd&from=src".to_owned(),
            "DIGEST_INVALID",
        ),
        ("mount=&from=src".to_owned(), "DIGEST_INVALID"),
        (format!("mount={d}&from=Src"), "NAME_INVALID"),
        (format!("mount={d}&from=..%2Fsrc"), "NAME_INVALID"),
    ];
    for (query, code) in cases {
        let r = reg
            .send_empty(Method::POST, &format!("/v2/dst/blobs/uploads/?{query}"))
            .await;
        expect_error(&r, 400, code, &query);
    }
    expect_no_blob(&reg, "dst", &d, "nothing mounted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_of_one_blob_all_succeed() {
    let reg = Arc::new(TestRegistry::new());
    let data = Bytes::from(pattern(200_000));
    let d = sha256(&data);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (reg, data, d) = (reg.clone(), data.clone(), d.clone());
        // Half into one repository, half into one repository each.
        let repo = if i % 2 == 0 {
            "same".to_owned()
        } else {
            format!("other{i}")
        };
        tasks.push(tokio::spawn(async move {
            let len = data.len().to_string();
            let r = reg
                .send(
                    Method::POST,
                    &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                    &[("content-length", &len)],
                    data,
                )
                .await;
            (repo, r)
        }));
    }
    for t in tasks {
        let (repo, r) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("no deadlock")
            .unwrap();
        expect_status(&r, 201, &format!("concurrent push to {repo}"));
        expect_blob(&reg, &repo, &d, &data, "after concurrent pushes").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_chunks_at_one_offset_accept_exactly_one() {
    let reg = Arc::new(TestRegistry::new());
    let location = start_upload(&reg, "race").await;
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let (reg, location) = (reg.clone(), location.clone());
        tasks.push(tokio::spawn(async move {
            patch(&reg, &location, Some("0-99"), &[i; 100]).await
        }));
    }
    let mut accepted = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        match r.status.as_u16() {
            202 => accepted.push(i as u8),
            _ => expect_error(&r, 416, "BLOB_UPLOAD_INVALID", "losing chunk"),
        }
    }
    assert_eq!(accepted.len(), 1, "exactly one chunk at offset 0 wins");
    expect_upload_at(&reg, &location, 100, "after the race").await;
    let data = [accepted[0]; 100];
    expect_status(
        &put_upload(&reg, &location, sha256(&data).as_str(), None, b"").await,
        201,
        "PUT the winner",
    );
    expect_blob(&reg, "race", &sha256(&data), &data, "winner's bytes").await;
}
