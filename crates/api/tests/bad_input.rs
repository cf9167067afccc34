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
            expect_error(&r, 400, &["NAME_INVALID"], &format!("{method} {uri}"));
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
        let r = reg.get(uri).await;
        expect_error(
            &r,
            404,
            &[
                "NAME_UNKNOWN",
                "MANIFEST_UNKNOWN",
                "BLOB_UNKNOWN",
                "UNSUPPORTED",
            ],
            uri,
        );
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
            expect_error(&r, 405, &["UNSUPPORTED"], &ctx);
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

#[tokio::test]
async fn every_4xx_has_an_oci_error_body() {
    let reg = TestRegistry::new();
    let (m, _) = reg.push_image("p/x", "v1", &[b"layer"]).await;
    let blob = reg.push_blob("p/x", &pattern(2048)).await;
    let upload = start_upload(&reg, "p/x").await;
    let unknown = unknown_digest();
    let ten = &b"0123456789"[..];
    type Case = (
        Method,
        String,
        Vec<(&'static str, &'static str)>,
        &'static [u8],
    );
    let cases: Vec<Case> = vec![
        (Method::GET, "/v2/Foo/tags/list".into(), vec![], b""),
        (Method::GET, "/v2/nosuch/tags/list".into(), vec![], b""),
        (Method::GET, "/v2/p/x/tags/list?n=-1".into(), vec![], b""),
        (
            Method::GET,
            "/v2/nosuch/manifests/latest".into(),
            vec![],
            b"",
        ),
        (
            Method::GET,
            "/v2/p/x/manifests/sha256:baddigeststring".into(),
            vec![],
            b"",
        ),
        (
            Method::PUT,
            "/v2/p/x/manifests/sha256:baddigeststring".into(),
            vec![],
            b"{}",
        ),
        (
            Method::PUT,
            format!("/v2/p/x/manifests/{}", "a".repeat(129)),
            vec![],
            b"{}",
        ),
        (
            Method::PUT,
            "/v2/p/x/manifests/t".into(),
            vec![("content-type", media_type::OCI_MANIFEST)],
            b"not json",
        ),
        (
            Method::PUT,
            "/v2/p/x/manifests/t".into(),
            vec![("content-length", "5000000")],
            b"",
        ),
        (
            Method::DELETE,
            format!("/v2/p/x/manifests/{unknown}"),
            vec![],
            b"",
        ),
        (Method::GET, format!("/v2/p/x/blobs/{unknown}"), vec![], b""),
        (Method::GET, "/v2/p/x/blobs/sha256:abc".into(), vec![], b""),
        (
            Method::GET,
            format!("/v2/p/x/blobs/{blob}"),
            vec![("range", "bytes=5000-10000")],
            b"",
        ),
        (
            Method::DELETE,
            format!("/v2/p/x/blobs/{unknown}"),
            vec![],
            b"",
        ),
        (
            Method::POST,
            "/v2/p/x/blobs/uploads/?digest-algorithm=bogus".into(),
            vec![],
            b"",
        ),
        (
            Method::POST,
            format!("/v2/p/x/blobs/uploads/?digest={unknown}"),
            vec![],
            b"x",
        ),
        (
            Method::POST,
            "/v2/p/x/blobs/uploads/?mount=sha256:abc&from=p/y".into(),
            vec![],
            b"",
        ),
        (
            Method::PATCH,
            upload.clone(),
            vec![("content-range", "5-9")],
            &ten[..5],
        ),
        (
            Method::PATCH,
            upload.clone(),
            vec![("content-range", "0-")],
            ten,
        ),
        (
            Method::PATCH,
            upload.clone(),
            vec![("content-range", "0-9"), ("content-length", "5")],
            ten,
        ),
        (Method::PUT, upload.clone(), vec![], b""),
        (
            Method::PUT,
            format!("{upload}?digest={unknown}"),
            vec![],
            b"",
        ),
        (
            Method::GET,
            "/v2/p/x/blobs/uploads/0123456789abcdef0123456789abcdef".into(),
            vec![],
            b"",
        ),
        (
            Method::GET,
            "/v2/p/x/referrers/sha256:abc".into(),
            vec![],
            b"",
        ),
        (Method::PATCH, format!("/v2/p/x/manifests/{m}"), vec![], b""),
        (Method::POST, "/v2/".into(), vec![], b""),
        (Method::GET, "/v2/p/x/unknown".into(), vec![], b""),
    ];
    for (method, uri, headers, body) in cases {
        let ctx = format!("{method} {uri} {headers:?}");
        let r = reg.send(method, &uri, &headers, body).await;
        assert!(r.status.is_client_error(), "{ctx}: {}", r.status);
        check_error_body(&r, &ctx);
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
