//! Bad input across the API: repository names, routing, methods, and the shape of every
//! error body (checklist rows 1-9, 78, 80).

mod common;

use common::*;

/// Every endpoint shape under a repository name, with a method that would otherwise be
/// served.
fn endpoints_of(name: &str) -> Vec<(Method, String)> {
    let d = unknown_digest();
    vec![
        (Method::GET, format!("/v2/{name}/tags/list")),
        (Method::GET, format!("/v2/{name}/manifests/latest")),
        (Method::PUT, format!("/v2/{name}/manifests/latest")),
        (Method::DELETE, format!("/v2/{name}/manifests/{d}")),
        (Method::GET, format!("/v2/{name}/blobs/{d}")),
        (Method::DELETE, format!("/v2/{name}/blobs/{d}")),
        (Method::POST, format!("/v2/{name}/blobs/uploads/")),
        (
            Method::POST,
            format!("/v2/{name}/blobs/uploads/?digest={}", sha256(b"x")),
        ),
        (
            Method::PATCH,
            format!("/v2/{name}/blobs/uploads/0123456789abcdef0123456789abcdef"),
        ),
        (Method::GET, format!("/v2/{name}/referrers/{d}")),
    ]
}

#[tokio::test]
async fn invalid_names_are_name_invalid() {
    let reg = TestRegistry::new();
    let long = format!("{}/{}", "a".repeat(200), "b".repeat(55));
    assert_eq!(long.len(), 256);
    let bad = [
        "Foo",
        "Foo/bar",
        "foo/Bar",
        "host:5000/x",
        "a..b",
        "a___b",
        "a_-b",
        "a.-b",
        "-a",
        "a-",
        "_a",
        ".a",
        "a.",
        "a/",
        "a//b",
        "/a",
        "a/-b",
        "a/../b",
        "a/./b",
        "..",
        "a/%2e%2e/b",
        "a%2Fb",
        "a%2fb",
        "a%00b",
        "a%20b",
        "%C3%A9",
        "a@b",
        "a+b",
        "a:b",
        "a$b",
        &long,
    ];
    for name in bad {
        for (method, uri) in endpoints_of(name) {
            let r = reg.send(method.clone(), &uri, &[], &b"x"[..]).await;
            expect_error(&r, 400, "NAME_INVALID", &format!("{method} {uri}"));
        }
    }
    // Nothing was created by any of them.
    assert_eq!(
        reg.get("/v2/_catalog").await.json(),
        json!({"repositories": []})
    );
}

#[tokio::test]
async fn valid_names_work() {
    let reg = TestRegistry::new();
    let longest = format!("{}/{}", "a".repeat(200), "b".repeat(54));
    assert_eq!(longest.len(), 255);
    let good = [
        "a",
        "0",
        "a.b",
        "a_b",
        "a__b",
        "a---b",
        "a-b.c_d__e",
        "x/y/z0",
        "p/blobs/q",
        "p/manifests/q",
        "p/tags/list/q",
        &longest,
    ];
    for name in good {
        let d = reg.push_blob(name, b"data").await;
        expect_blob(&reg, name, &d, b"data", name).await;
        reg.push_image(name, "v1", &[b"layer"]).await;
        expect_status(&reg.get(&format!("/v2/{name}/tags/list")).await, 200, name);
    }
    let catalog = strings(&reg.get("/v2/_catalog").await.json()["repositories"]);
    assert_eq!(catalog.len(), good.len(), "{catalog:?}");
}

#[tokio::test]
async fn traversal_never_reaches_storage() {
    let reg = TestRegistry::new();
    let d = reg.push_blob("p/x", b"secret").await;
    // Ways of reaching `p/x` or the storage directory through dot segments and escapes.
    let uris = [
        format!("/v2/q/../p/x/blobs/{d}"),
        format!("/v2/q/%2e%2e/p/x/blobs/{d}"),
        format!("/v2/p%2Fx/blobs/{d}"),
        format!("/v2/p/x/blobs/..%2F..%2F{}", d.encoded()),
        format!("/v2/p/x/blobs/sha256:..%2F{}", &d.encoded()[3..]),
        "/v2/p/x/blobs/uploads/..%2F..%2Fberth.db".to_owned(),
        "/v2/p/x/blobs/uploads/../../berth.db".to_owned(),
        "/v2/p/x/manifests/..%2F..%2Fberth.db".to_owned(),
        "/v2/p/x/manifests/../../../berth.db".to_owned(),
    ];
    for uri in &uris {
        for method in [Method::GET, Method::DELETE, Method::PUT, Method::PATCH] {
            let r = reg.send(method.clone(), uri, &[], &b"x"[..]).await;
            let ctx = format!("{method} {uri}");
            assert!(r.status.is_client_error(), "{ctx}: {}", r.status);
            check_error_body(&r, &ctx);
            assert!(
                !r.body.windows(6).any(|w| w == b"secret"),
                "{ctx} served the blob"
            );
        }
    }
    expect_blob(&reg, "p/x", &d, b"secret", "still there").await;
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let reg = TestRegistry::new();
    reg.push_image("p/x", "v1", &[b"layer"]).await;
    for uri in [
        "/v2/p/x",
        "/v2/p/x/",
        "/v2/p/x/unknown",
        "/v2/p/x/tags",
        "/v2/p/x/tags/list/",
        "/v2/p/x/tags/list/more",
        "/v2/_catalog/",
        "/v2/_catalog/x",
        "/v2/manifests/latest",
        "/v2/blobs/uploads/",
    ] {
        expect_error(&reg.get(uri).await, 404, "NAME_UNKNOWN", uri);
    }
    // Outside /v2/: the router's own 404, no registry data.
    for uri in ["/v1/_catalog", "//v2/p/x/tags/list", "/v2x/_catalog", "/"] {
        let r = reg.get(uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("v1"),
            "{uri} leaked a listing"
        );
    }
}

#[tokio::test]
async fn version_check() {
    let reg = TestRegistry::new();
    for uri in ["/v2/", "/v2"] {
        let r = reg.get(uri).await;
        expect_status(&r, 200, uri);
        assert_eq!(r.json(), json!({}));
        assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
    }
    // Errors carry the version header too.
    let r = reg.get("/v2/Foo/tags/list").await;
    assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
}

#[tokio::test]
async fn unsupported_methods_are_405_with_allow() {
    let reg = TestRegistry::new();
    let (m, _) = reg.push_image("p/x", "v1", &[b"layer"]).await;
    let d = unknown_digest();
    let upload = start_upload(&reg, "p/x").await;
    let cases = [
        (
            Method::PATCH,
            "/v2/p/x/manifests/v1".to_owned(),
            "GET, HEAD, PUT, DELETE",
        ),
        (
            Method::POST,
            "/v2/p/x/manifests/v1".to_owned(),
            "GET, HEAD, PUT, DELETE",
        ),
        (
            Method::PATCH,
            format!("/v2/p/x/manifests/{m}"),
            "GET, HEAD, PUT, DELETE",
        ),
        (
            Method::PUT,
            format!("/v2/p/x/blobs/{d}"),
            "GET, HEAD, DELETE",
        ),
        (
            Method::POST,
            format!("/v2/p/x/blobs/{d}"),
            "GET, HEAD, DELETE",
        ),
        (
            Method::PATCH,
            format!("/v2/p/x/blobs/{d}"),
            "GET, HEAD, DELETE",
        ),
        (Method::POST, "/v2/".to_owned(), "GET, HEAD"),
        (Method::DELETE, "/v2/".to_owned(), "GET, HEAD"),
        (Method::POST, "/v2/_catalog".to_owned(), "GET, HEAD"),
        (Method::DELETE, "/v2/_catalog".to_owned(), "GET, HEAD"),
        (Method::PUT, "/v2/p/x/tags/list".to_owned(), "GET, HEAD"),
        (Method::DELETE, "/v2/p/x/tags/list".to_owned(), "GET, HEAD"),
        (Method::POST, format!("/v2/p/x/referrers/{d}"), "GET, HEAD"),
        (Method::GET, "/v2/p/x/blobs/uploads/".to_owned(), "POST"),
        (Method::PUT, "/v2/p/x/blobs/uploads/".to_owned(), "POST"),
        (Method::POST, upload.clone(), "GET, PATCH, PUT, DELETE"),
        (Method::HEAD, upload.clone(), "GET, PATCH, PUT, DELETE"),
        (
            Method::OPTIONS,
            "/v2/p/x/manifests/v1".to_owned(),
            "GET, HEAD, PUT, DELETE",
        ),
    ];
    for (method, uri, allow) in &cases {
        let ctx = format!("{method} {uri}");
        let r = reg.send(method.clone(), uri, &[], Body::empty()).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{ctx}");
        assert_eq!(r.header("allow"), *allow, "{ctx}: Allow");
        if *method != Method::HEAD {
            expect_error(&r, 405, "UNSUPPORTED", &ctx);
        }
    }
    // The refused writes changed nothing.
    expect_status(
        &reg.get("/v2/p/x/manifests/v1").await,
        200,
        "manifest intact",
    );
    expect_upload_at(&reg, &upload, 0, "upload intact").await;
    // Every method an Allow header names is served (whatever its outcome).
    for (method, uri, allow) in &cases {
        for allowed in allow.split(", ") {
            let m = Method::from_bytes(allowed.as_bytes()).unwrap();
            let r = reg.send(m, uri, &[], Body::empty()).await;
            assert_ne!(
                r.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}: Allow names {allowed} but it is refused"
            );
        }
    }
}

/// Walks bad inputs across every endpoint: each gets its exact status and code, and
/// every 4xx body carries one of the spec's 14 codes (`check_error_body`), including the
/// cases where Distribution would send RANGE_INVALID or PAGINATION_NUMBER_INVALID.
#[tokio::test]
async fn every_4xx_has_an_oci_error_body() {
    let reg = TestRegistry::with_config(berth_app::RegistryConfig {
        max_blob_bytes: 1 << 20,
        max_manifest_bytes: 64 << 10,
        ..berth_app::RegistryConfig::default()
    });
    let (m, _) = reg.push_image("p/x", "v1", &[b"layer"]).await;
    let blob = reg.push_blob("p/x", &pattern(2048)).await;
    let upload = start_upload(&reg, "p/x").await;
    let upload_id = upload.rsplit('/').next().unwrap().to_owned();
    // A wrong digest ends its session, so it gets one of its own.
    let doomed = start_upload(&reg, "p/x").await;
    let unknown = unknown_digest();
    let ten = &b"0123456789"[..];
    let max = u64::MAX.to_string();
    let whole_range = format!("0-{max}");
    let big = vec![b' '; (64 << 10) + 1];
    let m_type = ("content-type", media_type::OCI_MANIFEST);
    type Case<'a> = (
        Method,
        String,
        Vec<(&'a str, &'a str)>,
        &'a [u8],
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        // Names and routing.
        (
            Method::GET,
            "/v2/Foo/tags/list".into(),
            vec![],
            b"",
            400,
            "NAME_INVALID",
        ),
        (
            Method::GET,
            "/v2/nosuch/tags/list".into(),
            vec![],
            b"",
            404,
            "NAME_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/p/x/unknown".into(),
            vec![],
            b"",
            404,
            "NAME_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/p/x/tags".into(),
            vec![],
            b"",
            404,
            "NAME_UNKNOWN",
        ),
        (Method::POST, "/v2/".into(), vec![], b"", 405, "UNSUPPORTED"),
        (
            Method::PATCH,
            format!("/v2/p/x/manifests/{m}"),
            vec![],
            b"",
            405,
            "UNSUPPORTED",
        ),
        (
            Method::PUT,
            format!("/v2/p/x/blobs/{blob}"),
            vec![],
            b"",
            405,
            "UNSUPPORTED",
        ),
        (
            Method::DELETE,
            "/v2/_catalog".into(),
            vec![],
            b"",
            405,
            "UNSUPPORTED",
        ),
        // Listings: a bad `n` is not PAGINATION_NUMBER_INVALID.
        (
            Method::GET,
            "/v2/p/x/tags/list?n=-1".into(),
            vec![],
            b"",
            400,
            "SIZE_INVALID",
        ),
        (
            Method::GET,
            "/v2/p/x/tags/list?n=abc".into(),
            vec![],
            b"",
            400,
            "SIZE_INVALID",
        ),
        (
            Method::GET,
            "/v2/p/x/tags/list?n=1e3".into(),
            vec![],
            b"",
            400,
            "SIZE_INVALID",
        ),
        (
            Method::GET,
            "/v2/_catalog?n=-5".into(),
            vec![],
            b"",
            400,
            "SIZE_INVALID",
        ),
        (
            Method::GET,
            "/v2/_catalog?n=".into(),
            vec![],
            b"",
            400,
            "SIZE_INVALID",
        ),
        (
            Method::GET,
            "/v2/p/x/referrers/sha256:abc".into(),
            vec![],
            b"",
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::GET,
            format!("/v2/p/x/referrers/{m}?last=nope"),
            vec![],
            b"",
            400,
            "DIGEST_INVALID",
        ),
        // Manifests.
        (
            Method::GET,
            "/v2/nosuch/manifests/latest".into(),
            vec![],
            b"",
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/p/x/manifests/nosuch".into(),
            vec![],
            b"",
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/p/x/manifests/sha256:baddigeststring".into(),
            vec![],
            b"",
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::PUT,
            "/v2/p/x/manifests/sha256:baddigeststring".into(),
            vec![],
            b"{}",
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::PUT,
            format!("/v2/p/x/manifests/{}", "a".repeat(129)),
            vec![],
            b"{}",
            400,
            "MANIFEST_INVALID",
        ),
        (
            Method::PUT,
            "/v2/p/x/manifests/t".into(),
            vec![m_type],
            b"not json",
            400,
            "MANIFEST_INVALID",
        ),
        (
            Method::PUT,
            "/v2/p/x/manifests/t".into(),
            vec![("content-length", "5000000")],
            b"",
            413,
            "SIZE_INVALID",
        ),
        (
            Method::PUT,
            "/v2/p/x/manifests/t".into(),
            vec![m_type],
            &big,
            413,
            "SIZE_INVALID",
        ),
        (
            Method::PUT,
            format!("/v2/p/x/manifests/{unknown}"),
            vec![m_type],
            br#"{"schemaVersion":2}"#,
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::DELETE,
            format!("/v2/p/x/manifests/{unknown}"),
            vec![],
            b"",
            404,
            "MANIFEST_UNKNOWN",
        ),
        // Blobs: an unsatisfiable read range is not RANGE_INVALID.
        (
            Method::GET,
            format!("/v2/p/x/blobs/{unknown}"),
            vec![],
            b"",
            404,
            "BLOB_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/p/x/blobs/sha256:abc".into(),
            vec![],
            b"",
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::GET,
            "/v2/p/x/blobs/md5:d41d8cd98f00b204e9800998ecf8427e".into(),
            vec![],
            b"",
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::GET,
            format!("/v2/p/x/blobs/{blob}"),
            vec![("range", "bytes=5000-10000")],
            b"",
            416,
            "SIZE_INVALID",
        ),
        (
            Method::GET,
            format!("/v2/p/x/blobs/{blob}"),
            vec![("range", "bytes=500-0")],
            b"",
            416,
            "SIZE_INVALID",
        ),
        (
            Method::DELETE,
            format!("/v2/p/x/blobs/{unknown}"),
            vec![],
            b"",
            404,
            "BLOB_UNKNOWN",
        ),
        // Uploads: out-of-order and unsatisfiable chunks are not RANGE_INVALID.
        (
            Method::POST,
            "/v2/p/x/blobs/uploads/?digest-algorithm=bogus".into(),
            vec![],
            b"",
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::POST,
            format!("/v2/p/x/blobs/uploads/?digest={unknown}"),
            vec![],
            b"x",
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::POST,
            "/v2/p/x/blobs/uploads/?mount=sha256:abc&from=p/y".into(),
            vec![],
            b"",
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::POST,
            format!("/v2/p/x/blobs/uploads/?mount={blob}&from=Bad"),
            vec![],
            b"",
            400,
            "NAME_INVALID",
        ),
        (
            Method::POST,
            format!("/v2/p/x/blobs/uploads/?digest={}", sha256(&[0; 2 << 20])),
            vec![("content-length", "2097152")],
            b"",
            413,
            "SIZE_INVALID",
        ),
        (
            Method::PATCH,
            upload.clone(),
            vec![("content-range", "5-9")],
            &ten[..5],
            416,
            "BLOB_UPLOAD_INVALID",
        ),
        (
            Method::PATCH,
            upload.clone(),
            vec![("content-range", "9-5")],
            &ten[..5],
            416,
            "BLOB_UPLOAD_INVALID",
        ),
        (
            Method::PATCH,
            upload.clone(),
            vec![("content-range", whole_range.as_str())],
            ten,
            416,
            "BLOB_UPLOAD_INVALID",
        ),
        (
            Method::PATCH,
            upload.clone(),
            vec![("content-range", "0-")],
            ten,
            400,
            "BLOB_UPLOAD_INVALID",
        ),
        (
            Method::PATCH,
            upload.clone(),
            vec![("content-range", "bytes=0-9")],
            ten,
            400,
            "BLOB_UPLOAD_INVALID",
        ),
        (
            Method::PATCH,
            upload.clone(),
            vec![("content-range", "0-9"), ("content-length", "5")],
            ten,
            400,
            "SIZE_INVALID",
        ),
        (
            Method::PUT,
            upload.clone(),
            vec![],
            b"",
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::PUT,
            format!("{doomed}?digest={unknown}"),
            vec![],
            b"",
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::PUT,
            format!("{upload}?digest=sha256:abc"),
            vec![],
            b"",
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::PUT,
            format!("{upload}?digest={unknown}"),
            vec![("content-range", "3-4")],
            b"ab",
            416,
            "BLOB_UPLOAD_INVALID",
        ),
        (
            Method::GET,
            "/v2/p/x/blobs/uploads/0123456789abcdef0123456789abcdef".into(),
            vec![],
            b"",
            404,
            "BLOB_UPLOAD_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/p/x/blobs/uploads/not-an-id".into(),
            vec![],
            b"",
            404,
            "BLOB_UPLOAD_UNKNOWN",
        ),
        (
            Method::GET,
            format!("/v2/p/other/blobs/uploads/{upload_id}"),
            vec![],
            b"",
            404,
            "BLOB_UPLOAD_UNKNOWN",
        ),
    ];
    for (method, uri, headers, body, status, code) in cases {
        let ctx = format!("{method} {uri} {headers:?}");
        let r = reg
            .send(method, &uri, &headers, Bytes::copy_from_slice(body))
            .await;
        expect_error(&r, status, code, &ctx);
    }
}

/// Row 79: an oversized request target or header section is refused quickly.
#[tokio::test]
async fn oversized_targets_and_headers_are_refused() {
    let reg = TestRegistry::new();
    let long = format!("/v2/p/x/tags/list?last={}", "a".repeat(9000));
    assert_eq!(reg.get(&long).await.status, 414);
    let ok = format!("/v2/p/x/tags/list?last={}", "a".repeat(7000));
    assert_eq!(
        reg.get(&ok).await.status,
        404,
        "a long but acceptable target is served"
    );
    let big = "b".repeat(8000);
    let headers: Vec<(String, String)> = (0..9)
        .map(|i| (format!("x-filler-{i}"), big.clone()))
        .collect();
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = reg.send(Method::GET, "/v2/", &refs, Body::empty()).await;
    assert_eq!(r.status, 431);
    let r = reg
        .send(Method::GET, "/v2/", &refs[..4], Body::empty())
        .await;
    assert_eq!(r.status, 200);
}
