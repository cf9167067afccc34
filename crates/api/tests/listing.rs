//! Listings: tags/list and _catalog order, `n`/`last` paging with `Link`, bad page sizes,
//! unknown repositories (spec "Listing Tags"; checklist rows 7, 14-17).

mod common;

use berth_app::RegistryConfig;
use common::*;

/// Pushes one manifest to `repo` and tags it with every tag of `tags`, in that order.
async fn tag_all(reg: &TestRegistry, repo: &str, tags: &[&str]) {
    let doc = simple_image(reg, repo, b"layer").await;
    for tag in tags {
        push_manifest(reg, repo, tag, &doc).await;
    }
}

/// The list in a listing body (`tags` or `repositories`).
fn names(r: &TestResponse) -> Vec<String> {
    let body = r.json();
    let key = if body.get("repositories").is_some() {
        "repositories"
    } else {
        "tags"
    };
    strings(&body[key])
}

/// Lists from `uri` (without query) with page size `n`, following `Link` headers; checks
/// every page with a `Link` is full and the last one is not longer than `n`.
async fn list_paged(reg: &TestRegistry, uri: &str, n: usize) -> Vec<String> {
    let mut all = Vec::new();
    let mut next = Some(format!("{uri}?n={n}"));
    let mut pages = 0;
    while let Some(page_uri) = next {
        pages += 1;
        assert!(pages < 1000, "{uri}: paging does not end");
        let r = reg.get(&page_uri).await;
        expect_status(&r, 200, &page_uri);
        let page = names(&r);
        next = next_link(&r);
        if let Some(link) = &next {
            assert!(
                link.starts_with(&format!("{uri}?")),
                "{page_uri}: Link {link}"
            );
            assert_eq!(page.len(), n, "{page_uri}: a page with a Link must be full");
        } else {
            assert!(
                page.len() <= n,
                "{page_uri}: {} names for n={n}",
                page.len()
            );
        }
        all.extend(page);
    }
    all
}

/// Checks paging through `uri` with every page size from 1 to past the end gives `full`,
/// and `last=<x>` for every name gives exactly the names after it.
async fn check_paging(reg: &TestRegistry, uri: &str, full: &[&str]) {
    let r = reg.get(uri).await;
    expect_status(&r, 200, uri);
    assert_eq!(names(&r), full, "{uri}: full list");
    assert_eq!(r.header("link"), "", "{uri}: full list has a Link");
    for n in 1..=full.len() + 1 {
        assert_eq!(list_paged(reg, uri, n).await, full, "{uri} with n={n}");
    }
    for (i, last) in full.iter().enumerate() {
        let r = reg
            .get(&format!("{uri}?last={}", last.replace('/', "%2F")))
            .await;
        assert_eq!(names(&r), &full[i + 1..], "{uri} last={last}");
        for n in 1..=2 {
            let r = reg.get(&format!("{uri}?last={last}&n={n}")).await;
            let end = (i + 1 + n).min(full.len());
            assert_eq!(names(&r), &full[i + 1..end], "{uri} last={last} n={n}");
            assert_eq!(
                next_link(&r).is_some(),
                end < full.len(),
                "{uri} last={last} n={n}: Link"
            );
        }
    }
}

#[tokio::test]
async fn tags_are_in_lexical_order() {
    let reg = TestRegistry::new();
    tag_all(
        &reg,
        "order",
        &["v2", "latest", "1.0", "v10", "_x", "a", "v1", "1.0.0", "10"],
    )
    .await;
    let r = reg.get("/v2/order/tags/list").await;
    expect_status(&r, 200, "tags/list");
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(
        r.json(),
        json!({"name": "order", "tags": ["1.0", "1.0.0", "10", "_x", "a", "latest", "v1", "v10", "v2"]})
    );
}

#[tokio::test]
async fn mixed_case_tags_sort_case_insensitively() {
    // The spec's "lexical order (i.e. case-insensitive alphanumeric order)"; tags equal but
    // for case follow each other in byte order, so `last` pages through them too.
    let reg = TestRegistry::new();
    tag_all(
        &reg,
        "case",
        &[
            "b", "B", "a", "A", "Z", "v1.0-RC", "V1.0-rc", "v1.0", "Latest", "latest", "_x", "10",
        ],
    )
    .await;
    let order = [
        "10", "_x", "A", "a", "B", "b", "Latest", "latest", "v1.0", "V1.0-rc", "v1.0-RC", "Z",
    ];
    check_paging(&reg, "/v2/case/tags/list", &order).await;
    // A `last` that is not a tag continues where it would sort.
    for (last, rest) in [
        ("AA", &order[4..]),
        ("LATEST", &order[6..]),
        ("V1.0-rC", &order[9..]),
        ("v1.0-Rc", &order[11..]),
        ("y", &order[11..]),
    ] {
        let r = reg.get(&format!("/v2/case/tags/list?last={last}")).await;
        assert_eq!(names(&r), rest, "last={last}");
    }
}

#[tokio::test]
async fn tags_page_with_prefix_names() {
    let reg = TestRegistry::new();
    tag_all(
        &reg,
        "prefix",
        &[
            "0.1.20",
            "0.1.2-rc",
            "0.1.2",
            "0.1",
            "0.1.3",
            "0.1.2-rc.1",
            "0.1.2_x",
            "latest",
        ],
    )
    .await;
    let full = [
        "0.1",
        "0.1.2",
        "0.1.2-rc",
        "0.1.2-rc.1",
        "0.1.20",
        "0.1.2_x",
        "0.1.3",
        "latest",
    ];
    check_paging(&reg, "/v2/prefix/tags/list", &full).await;
}

#[tokio::test]
async fn catalog_pages_with_prefix_names() {
    let reg = TestRegistry::new();
    for repo in [
        "a/math/x",
        "a/math-voila",
        "b",
        "a/math",
        "a",
        "a-b",
        "a/math/x/y",
        "a/mathematics",
        "a.b",
    ] {
        reg.push_blob(repo, b"layer").await;
    }
    let full = [
        "a",
        "a-b",
        "a.b",
        "a/math",
        "a/math-voila",
        "a/math/x",
        "a/math/x/y",
        "a/mathematics",
        "b",
    ];
    check_paging(&reg, "/v2/_catalog", &full).await;
}

#[tokio::test]
async fn n_zero_is_an_empty_page_without_link() {
    let reg = TestRegistry::new();
    tag_all(&reg, "zero", &["a", "b"]).await;
    for uri in [
        "/v2/zero/tags/list?n=0",
        "/v2/zero/tags/list?n=0&last=a",
        "/v2/_catalog?n=0",
        "/v2/_catalog?n=0&last=a",
    ] {
        let r = reg.get(uri).await;
        expect_status(&r, 200, uri);
        assert!(names(&r).is_empty(), "{uri}");
        assert_eq!(r.header("link"), "", "{uri}");
    }
}

#[tokio::test]
async fn bad_page_sizes_are_400() {
    let reg = TestRegistry::new();
    tag_all(&reg, "bad", &["a"]).await;
    for n in [
        "-1",
        "abc",
        "1e30",
        "1.5",
        "",
        "0x10",
        "%201",
        "1%00",
        "99999999999999999999999999",
    ] {
        for uri in [
            format!("/v2/bad/tags/list?n={n}"),
            format!("/v2/_catalog?n={n}"),
        ] {
            expect_error(&reg.get(&uri).await, 400, "SIZE_INVALID", &uri);
        }
    }
}

#[tokio::test]
async fn last_need_not_exist() {
    let reg = TestRegistry::new();
    tag_all(&reg, "last", &["a", "c", "e"]).await;
    let cases: &[(&str, &[&str])] = &[
        ("b", &["c", "e"]),
        ("", &["a", "c", "e"]),
        ("0", &["a", "c", "e"]),
        ("d", &["e"]),
        ("z", &[]),
        ("e", &[]),
    ];
    for (last, expect) in cases {
        let r = reg.get(&format!("/v2/last/tags/list?last={last}")).await;
        expect_status(&r, 200, last);
        assert_eq!(names(&r), *expect, "last={last}");
        assert_eq!(r.header("link"), "", "last={last}");
    }
}

#[tokio::test]
async fn page_sizes_are_clamped_with_a_link() {
    let reg = TestRegistry::with_config(RegistryConfig {
        max_page: 2,
        default_page: 2,
        ..RegistryConfig::default()
    });
    tag_all(&reg, "c1", &["a", "b", "c", "d", "e"]).await;
    for repo in ["c2", "c3", "c4"] {
        reg.push_blob(repo, b"x").await;
    }
    for (uri, key_count) in [("/v2/c1/tags/list", 5), ("/v2/_catalog", 4)] {
        for query in ["", "?n=5", "?n=1000000", "?n=99999999999"] {
            let r = reg.get(&format!("{uri}{query}")).await;
            expect_status(&r, 200, query);
            assert_eq!(names(&r).len(), 2, "{uri}{query}");
            let link = next_link(&r).unwrap_or_else(|| panic!("{uri}{query}: no Link"));
            assert!(link.ends_with("&n=2"), "{uri}{query}: {link}");
        }
        let mut all = Vec::new();
        let mut next = Some(format!("{uri}?n=50"));
        while let Some(page) = next {
            let r = reg.get(&page).await;
            all.extend(names(&r));
            next = next_link(&r);
        }
        assert_eq!(all.len(), key_count, "{uri}: {all:?}");
    }
}

#[tokio::test]
async fn unknown_repositories_have_no_tags() {
    let reg = TestRegistry::new();
    tag_all(&reg, "known", &["v1"]).await;
    for uri in [
        "/v2/nosuch/tags/list",
        "/v2/nosuch/tags/list?n=0",
        "/v2/known/sub/tags/list",
        "/v2/kno/tags/list?last=a",
    ] {
        expect_error(&reg.get(uri).await, 404, "NAME_UNKNOWN", uri);
    }
    // A repository with blobs but no tags exists and lists no tags.
    reg.push_blob("blobs/only", b"x").await;
    let r = reg.get("/v2/blobs/only/tags/list").await;
    expect_status(&r, 200, "blobs only");
    assert_eq!(r.json(), json!({"name": "blobs/only", "tags": []}));
    // After its only tag is deleted, a repository still exists.
    expect_status(&delete(&reg, "/v2/known/manifests/v1").await, 202, "untag");
    assert_eq!(
        reg.get("/v2/known/tags/list").await.json(),
        json!({"name": "known", "tags": []})
    );
}

#[tokio::test]
async fn listings_answer_head() {
    let reg = TestRegistry::new();
    tag_all(&reg, "h", &["v1"]).await;
    let subject = unknown_digest();
    for uri in [
        "/v2/h/tags/list".to_owned(),
        "/v2/_catalog".to_owned(),
        format!("/v2/h/referrers/{subject}"),
        "/v2/".to_owned(),
    ] {
        let get = reg.get(&uri).await;
        let r = head(&reg, &uri).await;
        expect_status(&r, 200, &format!("HEAD {uri}"));
        assert!(r.body.is_empty(), "HEAD {uri} has a body");
        assert_eq!(
            r.header("content-type"),
            get.header("content-type"),
            "HEAD {uri}"
        );
    }
    let r = head(&reg, "/v2/nosuch/tags/list").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn only_stored_content_creates_repositories() {
    let reg = TestRegistry::new();
    reg.push_blob("real", b"x").await;
    // A session alone, a failed monolithic push, a failed manifest push, a mount that fell
    // back to a session: none of these creates a repository.
    start_upload(&reg, "ghost/session").await;
    let wrong = sha256(b"other");
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/ghost/mono/blobs/uploads/?digest={wrong}"),
            &[],
            &b"x"[..],
        )
        .await;
    expect_error(&r, 400, "DIGEST_INVALID", "wrong digest");
    let doc = image_manifest(
        media_type::OCI_MANIFEST,
        descriptor(media_type::OCI_CONFIG, &unknown_digest(), 2),
        vec![],
    );
    let r = reg
        .put_manifest(
            "ghost/manifest",
            "v1",
            media_type::OCI_MANIFEST,
            &bytes_of(&doc),
        )
        .await;
    expect_error(&r, 400, "MANIFEST_BLOB_UNKNOWN", "unknown config");
    let r = reg
        .send_empty(
            Method::POST,
            &format!("/v2/ghost/mount/blobs/uploads/?mount={wrong}&from=real"),
        )
        .await;
    expect_status(&r, 202, "mount fallback");
    assert_eq!(
        reg.get("/v2/_catalog").await.json(),
        json!({"repositories": ["real"]})
    );
    for repo in [
        "ghost/session",
        "ghost/mono",
        "ghost/manifest",
        "ghost/mount",
    ] {
        expect_error(
            &reg.get(&format!("/v2/{repo}/tags/list")).await,
            404,
            "NAME_UNKNOWN",
            repo,
        );
    }
}
