//! Blob reads and deletes: GET/HEAD, Range requests, bad digests, repository isolation
//! (spec "Pulling blobs", "Deleting Blobs"; checklist rows 21-30, 65).

mod common;

use common::*;

#[tokio::test]
async fn get_and_head_serve_the_blob() {
    let reg = TestRegistry::new();
    let data = pattern(2048);
    let d = reg.push_blob("lib/x", &data).await;
    let uri = format!("/v2/lib/x/blobs/{d}");

    let r = reg.get(&uri).await;
    expect_status(&r, 200, "GET");
    assert_eq!(&r.body[..], &data[..]);
    assert_eq!(r.header("content-length"), "2048");
    assert_eq!(r.header("docker-content-digest"), d.as_str());
    assert_eq!(r.header("content-type"), "application/octet-stream");
    assert_eq!(r.header("accept-ranges"), "bytes");

    let r = head(&reg, &uri).await;
    expect_status(&r, 200, "HEAD");
    assert!(r.body.is_empty(), "HEAD has a body");
    assert_eq!(r.header("content-length"), "2048");
    assert_eq!(r.header("docker-content-digest"), d.as_str());
}

/// Checks a ranged GET of `data`: `Some((start, end))` expects 206 with those bytes,
/// `None` expects 416 with `Content-Range: bytes */<size>`.
async fn check_range(
    reg: &TestRegistry,
    uri: &str,
    data: &[u8],
    range: &str,
    expect: Option<(usize, usize)>,
) {
    let r = reg
        .send(Method::GET, uri, &[("range", range)], Body::empty())
        .await;
    match expect {
        Some((start, end)) => {
            expect_status(&r, 206, range);
            assert_eq!(
                r.header("content-range"),
                format!("bytes {start}-{end}/{}", data.len()),
                "{range}"
            );
            assert_eq!(
                r.header("content-length"),
                (end - start + 1).to_string(),
                "{range}"
            );
            assert!(r.body[..] == data[start..=end], "{range}: wrong bytes");
        }
        None => {
            expect_error(&r, 416, "SIZE_INVALID", range);
            assert_eq!(
                r.header("content-range"),
                format!("bytes */{}", data.len()),
                "{range}"
            );
        }
    }
}

#[tokio::test]
async fn ranges_of_a_large_blob_cross_read_chunks_at_any_offset() {
    let reg = TestRegistry::new();
    let data = pattern((1 << 20) + 4097);
    let d = reg.push_blob("ranges", &data).await;
    let uri = format!("/v2/ranges/blobs/{d}");
    let last = data.len() - 1;
    for (start, end) in [
        (0, last),
        (17, 262_160),
        (262_143, 262_144),
        (300_001, 1_000_003),
        (1 << 20, last),
    ] {
        let range = format!("bytes={start}-{end}");
        check_range(&reg, &uri, &data, &range, Some((start, end))).await;
    }
    check_range(
        &reg,
        &uri,
        &data,
        "bytes=-300000",
        Some((last - 299_999, last)),
    )
    .await;
}

#[tokio::test]
async fn range_requests() {
    let reg = TestRegistry::new();
    let data = pattern(2048);
    let d = reg.push_blob("ranges", &data).await;
    let uri = format!("/v2/ranges/blobs/{d}");
    let cases: &[(&str, Option<(usize, usize)>)] = &[
        ("bytes=0-0", Some((0, 0))),
        ("bytes=0-99", Some((0, 99))),
        ("bytes=500-1499", Some((500, 1499))),
        ("bytes=500-", Some((500, 2047))),
        ("bytes=-500", Some((1548, 2047))),
        ("bytes=-5000", Some((0, 2047))),
        ("bytes=2000-5000", Some((2000, 2047))),
        ("bytes=2047-2047", Some((2047, 2047))),
        ("bytes=0-2047", Some((0, 2047))),
        ("bytes=500-0", None),
        ("bytes=5000-10000", None),
        ("bytes=2048-", None),
        ("bytes=2048-2048", None),
        ("bytes=-0", None),
    ];
    for (range, expect) in cases {
        check_range(&reg, &uri, &data, range, *expect).await;
    }
    // Malformed and multi-range headers are ignored: the whole blob, 200.
    for ignored in [
        "items=0-1",
        "bytes=0-1,5-6",
        "bytes=abc",
        "bytes=",
        "0-9",
        "bytes=--1",
    ] {
        let r = reg
            .send(Method::GET, &uri, &[("range", ignored)], Body::empty())
            .await;
        expect_status(&r, 200, ignored);
        assert_eq!(r.body.len(), 2048, "{ignored}");
        assert_eq!(r.header("content-range"), "", "{ignored}");
    }
}

#[tokio::test]
async fn ranges_of_an_empty_blob_are_unsatisfiable() {
    let reg = TestRegistry::new();
    let d = reg.push_blob("empty", b"").await;
    let uri = format!("/v2/empty/blobs/{d}");
    expect_status(&reg.get(&uri).await, 200, "GET empty");
    for range in ["bytes=0-0", "bytes=0-", "bytes=-1"] {
        let r = reg
            .send(Method::GET, &uri, &[("range", range)], Body::empty())
            .await;
        expect_error(&r, 416, "SIZE_INVALID", range);
        assert_eq!(r.header("content-range"), "bytes */0");
    }
}

#[tokio::test]
async fn unknown_blobs_are_404() {
    let reg = TestRegistry::new();
    reg.push_blob("known", b"something").await;
    let unknown = unknown_digest();
    for repo in ["known", "nosuch/repo"] {
        expect_no_blob(&reg, repo, &unknown, repo).await;
        let r = delete(&reg, &format!("/v2/{repo}/blobs/{unknown}")).await;
        expect_error(&r, 404, "BLOB_UNKNOWN", &format!("DELETE in {repo}"));
    }
}

#[tokio::test]
async fn bad_digests_are_digest_invalid() {
    let reg = TestRegistry::new();
    let d = reg.push_blob("bad", b"content").await;
    let hex = d.encoded();
    let bad = [
        "sha256:abc".to_owned(),
        format!("sha256:{}", hex.to_uppercase()),
        format!("SHA256:{hex}"),
        format!("sha256:{}", &hex[1..]),
        format!("sha256:{hex}0"),
        format!("sha256:{}g", &hex[1..]),
        "md5:d41d8cd98f00b204e9800998ecf8427e".to_owned(),
        "foo:bar".to_owned(),
        format!("sha256+b64u:{hex}"),
        "sha256:".to_owned(),
        format!(":{hex}"),
        hex.to_owned(),
        "sha256:..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        "sha256:..%2f..%2fetc%2fpasswd".to_owned(),
        format!("sha256:{}%00", &hex[1..]),
        format!("sha256:{hex}%00"),
        // Raw traversal: the digest spans several path segments.
        "sha256:../../../etc/passwd".to_owned(),
        "sha256:../../etc/passwd".to_owned(),
        format!("sha256:{hex}/.."),
    ];
    for digest in &bad {
        let uri = format!("/v2/bad/blobs/{digest}");
        for method in [Method::GET, Method::DELETE] {
            let r = reg.send(method.clone(), &uri, &[], Body::empty()).await;
            expect_error(&r, 400, "DIGEST_INVALID", &format!("{method} {uri}"));
        }
        let r = head(&reg, &uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "HEAD {uri}");
        assert!(r.body.is_empty(), "HEAD {uri} has a body");
    }
    // Nothing was deleted.
    expect_blob(&reg, "bad", &d, b"content", "after bad deletes").await;
}

#[tokio::test]
async fn a_blob_is_readable_only_where_it_is_linked() {
    let reg = TestRegistry::new();
    let d = reg.push_blob("team/a", b"secret layer").await;
    for other in ["team/b", "team", "team/a/b", "b"] {
        expect_no_blob(&reg, other, &d, other).await;
    }
    reg.push_blob("team/b", b"other").await;
    expect_no_blob(&reg, "team/b", &d, "team/b after it exists").await;
}

#[tokio::test]
async fn delete_unlinks_from_one_repository_only() {
    let reg = TestRegistry::new();
    let data = pattern(100);
    let d = reg.push_blob("a", &data).await;
    reg.push_blob("b", &data).await;
    let r = delete(&reg, &format!("/v2/a/blobs/{d}")).await;
    expect_status(&r, 202, "DELETE");
    assert!(r.body.is_empty());
    expect_no_blob(&reg, "a", &d, "deleted in a").await;
    let r = delete(&reg, &format!("/v2/a/blobs/{d}")).await;
    expect_error(&r, 404, "BLOB_UNKNOWN", "second DELETE");
    expect_blob(&reg, "b", &d, &data, "still in b").await;
    // A manifest can no longer use it in a.
    let config = descriptor(media_type::OCI_CONFIG, &d, data.len());
    let doc = image_manifest(media_type::OCI_MANIFEST, config, vec![]);
    let r = reg
        .put_manifest("a", "t", media_type::OCI_MANIFEST, &bytes_of(&doc))
        .await;
    expect_error(
        &r,
        400,
        "MANIFEST_BLOB_UNKNOWN",
        "manifest over a deleted blob",
    );
    // Pushing it again links it again.
    reg.push_blob("a", &data).await;
    expect_blob(&reg, "a", &d, &data, "re-pushed").await;
}

#[tokio::test]
async fn a_blob_is_not_a_manifest() {
    let reg = TestRegistry::new();
    let layer = pattern(1 << 20);
    let d = reg.push_blob("mixed", &layer).await;
    let uri = format!("/v2/mixed/manifests/{d}");
    expect_error(
        &reg.get(&uri).await,
        404,
        "MANIFEST_UNKNOWN",
        "GET manifest by a blob digest",
    );
    let r = head(&reg, &uri).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.is_empty());
    let r = delete(&reg, &uri).await;
    expect_error(
        &r,
        404,
        "MANIFEST_UNKNOWN",
        "DELETE manifest by a blob digest",
    );
    expect_blob(&reg, "mixed", &d, &layer, "blob untouched").await;
}
