//! Manifests: every supported kind round-trips byte for byte; invalid documents, unknown
//! references and bad references are refused and store nothing; size limits; deletes
//! (spec "Pushing Manifests", "Deleting tags/manifests"; checklist rows 8, 10-13, 52-68).

mod common;

use berth_app::{ForeignUrlPolicy, RegistryConfig};
use common::*;

const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const HELM_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// Pushes `body` as `content_type` under `tag`, then checks GET and HEAD by tag and by
/// digest serve exactly those bytes with `served_type`; returns the digest.
async fn check_round_trip(
    reg: &TestRegistry,
    repo: &str,
    tag: &str,
    content_type: &str,
    served_type: &str,
    body: &[u8],
) -> Digest {
    let ctx = format!("{repo}:{tag} ({served_type})");
    let d = sha256(body);
    let r = reg.put_manifest(repo, tag, content_type, body).await;
    expect_status(&r, 201, &ctx);
    assert_eq!(
        r.header("location"),
        format!("/v2/{repo}/manifests/{d}"),
        "{ctx}"
    );
    assert_eq!(r.header("docker-content-digest"), d.as_str(), "{ctx}");
    for reference in [tag, d.as_str()] {
        let uri = format!("/v2/{repo}/manifests/{reference}");
        let r = reg.get(&uri).await;
        expect_status(&r, 200, &format!("{ctx} GET {reference}"));
        assert!(
            r.body[..] == body[..],
            "{ctx}: GET {reference} changed the bytes"
        );
        assert_eq!(
            r.header("content-type"),
            served_type,
            "{ctx}: GET {reference}"
        );
        assert_eq!(
            r.header("docker-content-digest"),
            d.as_str(),
            "{ctx}: GET {reference}"
        );
        assert_eq!(
            r.header("content-length"),
            body.len().to_string(),
            "{ctx}: GET {reference}"
        );
        let h = head(reg, &uri).await;
        expect_status(&h, 200, &format!("{ctx} HEAD {reference}"));
        assert!(h.body.is_empty(), "{ctx}: HEAD {reference} has a body");
        for name in ["content-type", "docker-content-digest", "content-length"] {
            assert_eq!(
                h.header(name),
                r.header(name),
                "{ctx}: HEAD {reference} {name}"
            );
        }
    }
    let tags = reg.get(&format!("/v2/{repo}/tags/list")).await.json();
    assert!(
        strings(&tags["tags"]).contains(&tag.to_owned()),
        "{ctx}: tag not listed"
    );
    d
}

#[tokio::test]
async fn every_manifest_kind_round_trips() {
    let reg = TestRegistry::new();
    let repo = "kinds";

    // OCI image, pretty-printed: whitespace and key order are kept.
    let oci = simple_image(&reg, repo, b"oci layer").await;
    let pretty = serde_json::to_vec_pretty(&oci).unwrap();
    let oci_digest = check_round_trip(
        &reg,
        repo,
        "oci",
        media_type::OCI_MANIFEST,
        media_type::OCI_MANIFEST,
        &pretty,
    )
    .await;

    // Docker schema 2.
    let config = push_descriptor(
        &reg,
        repo,
        media_type::DOCKER_CONFIG,
        br#"{"os":"linux","architecture":"arm64"}"#,
    )
    .await;
    let layer = push_descriptor(&reg, repo, DOCKER_LAYER, b"docker layer").await;
    let docker = bytes_of(&image_manifest(
        media_type::DOCKER_MANIFEST,
        config,
        vec![layer],
    ));
    let docker_digest = check_round_trip(
        &reg,
        repo,
        "docker",
        media_type::DOCKER_MANIFEST,
        media_type::DOCKER_MANIFEST,
        &docker,
    )
    .await;

    // OCI index over both (children must exist, which they now do).
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": [
            {"mediaType": media_type::OCI_MANIFEST, "digest": oci_digest.as_str(), "size": pretty.len(),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": media_type::DOCKER_MANIFEST, "digest": docker_digest.as_str(), "size": docker.len(),
             "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    });
    let index_digest = check_round_trip(
        &reg,
        repo,
        "index",
        media_type::OCI_INDEX,
        media_type::OCI_INDEX,
        &bytes_of(&index),
    )
    .await;

    // An index of an index.
    let nested = json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [
        {"mediaType": media_type::OCI_INDEX, "digest": index_digest.as_str(), "size": bytes_of(&index).len()}]});
    check_round_trip(
        &reg,
        repo,
        "nested",
        media_type::OCI_INDEX,
        media_type::OCI_INDEX,
        &bytes_of(&nested),
    )
    .await;

    // Docker manifest list.
    let list = json!({
        "schemaVersion": 2,
        "mediaType": media_type::DOCKER_MANIFEST_LIST,
        "manifests": [{"mediaType": media_type::DOCKER_MANIFEST, "digest": docker_digest.as_str(), "size": docker.len(),
                       "platform": {"architecture": "arm64", "os": "linux"}}],
    });
    check_round_trip(
        &reg,
        repo,
        "list",
        media_type::DOCKER_MANIFEST_LIST,
        media_type::DOCKER_MANIFEST_LIST,
        &bytes_of(&list),
    )
    .await;

    // Artifact with artifactType and the empty config.
    let empty = push_descriptor(&reg, repo, media_type::OCI_EMPTY, b"{}").await;
    let sbom = push_descriptor(
        &reg,
        repo,
        "application/spdx+json",
        br#"{"spdxVersion":"SPDX-2.3"}"#,
    )
    .await;
    let artifact = json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": empty, "layers": [sbom],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    });
    check_round_trip(
        &reg,
        repo,
        "sbom",
        media_type::OCI_MANIFEST,
        media_type::OCI_MANIFEST,
        &bytes_of(&artifact),
    )
    .await;

    // Helm chart: an artifact by its config media type.
    let helm_config = push_descriptor(
        &reg,
        repo,
        HELM_CONFIG,
        br#"{"name":"mychart","version":"0.1.0"}"#,
    )
    .await;
    let chart = push_descriptor(&reg, repo, HELM_CHART, b"chart tarball").await;
    let helm = bytes_of(&image_manifest(
        media_type::OCI_MANIFEST,
        helm_config,
        vec![chart],
    ));
    check_round_trip(
        &reg,
        repo,
        "0.1.0",
        media_type::OCI_MANIFEST,
        media_type::OCI_MANIFEST,
        &helm,
    )
    .await;

    // An artifact with no layers at all.
    let bare = json!({"schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST, "artifactType": "application/x.bare",
        "config": descriptor(media_type::OCI_EMPTY, &sha256(b"{}"), 2), "layers": []});
    check_round_trip(
        &reg,
        repo,
        "bare",
        media_type::OCI_MANIFEST,
        media_type::OCI_MANIFEST,
        &bytes_of(&bare),
    )
    .await;

    let tags = reg.get(&format!("/v2/{repo}/tags/list")).await.json();
    assert_eq!(
        strings(&tags["tags"]),
        [
            "0.1.0", "bare", "docker", "index", "list", "nested", "oci", "sbom"
        ]
    );
}

#[tokio::test]
async fn content_type_and_media_type_may_each_be_left_out() {
    let reg = TestRegistry::new();
    let doc = simple_image(&reg, "ct", b"layer").await;
    // Parameters on the Content-Type are ignored.
    check_round_trip(
        &reg,
        "ct",
        "params",
        "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
        media_type::OCI_MANIFEST,
        &bytes_of(&doc),
    )
    .await;
    // No mediaType field: the Content-Type decides.
    let mut untyped = doc.clone();
    untyped.as_object_mut().unwrap().remove("mediaType");
    check_round_trip(
        &reg,
        "ct",
        "untyped",
        media_type::OCI_MANIFEST,
        media_type::OCI_MANIFEST,
        &bytes_of(&untyped),
    )
    .await;
    // A generic Content-Type: the mediaType field decides.
    check_round_trip(
        &reg,
        "ct",
        "generic",
        "application/json",
        media_type::OCI_MANIFEST,
        &bytes_of(&doc),
    )
    .await;
}

#[tokio::test]
async fn media_types_are_case_insensitive_and_stored_lower_case() {
    let reg = TestRegistry::new();
    let repo = "case";
    let doc = simple_image(&reg, repo, b"layer").await;
    let shouting = "Application/VND.OCI.image.manifest.v1+JSON";
    // As the Content-Type, with and without parameters.
    check_round_trip(
        &reg,
        repo,
        "header",
        shouting,
        media_type::OCI_MANIFEST,
        &bytes_of(&doc),
    )
    .await;
    check_round_trip(
        &reg,
        repo,
        "params",
        "APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON; Charset=UTF-8",
        media_type::OCI_MANIFEST,
        &bytes_of(&doc),
    )
    .await;
    // In the mediaType field, with a lower-case or a generic Content-Type.
    let mut typed = doc.clone();
    typed["mediaType"] = json!(shouting);
    let typed = bytes_of(&typed);
    for (tag, content_type) in [
        ("field", media_type::OCI_MANIFEST),
        ("generic", "Application/JSON"),
    ] {
        check_round_trip(
            &reg,
            repo,
            tag,
            content_type,
            media_type::OCI_MANIFEST,
            &typed,
        )
        .await;
    }
    // In an index and its children.
    let (child, child_body) = reg.push_image(repo, "child", &[b"child layer"]).await;
    let index = bytes_of(
        &json!({"schemaVersion": 2, "mediaType": "application/VND.oci.image.INDEX.v1+json",
        "manifests": [descriptor(shouting, &child, child_body.len())]}),
    );
    check_round_trip(
        &reg,
        repo,
        "index",
        "Application/vnd.OCI.image.index.v1+json",
        media_type::OCI_INDEX,
        &index,
    )
    .await;
    // Schema 1 is recognised in any case.
    let r = reg
        .put_manifest(
            repo,
            "old",
            "Application/VND.Docker.Distribution.Manifest.V1+PrettyJWS",
            &bytes_of(&doc),
        )
        .await;
    expect_error(&r, 400, "MANIFEST_INVALID", "schema 1 in upper case");
}

#[tokio::test]
async fn untyped_bytes_keep_one_media_type() {
    let reg = TestRegistry::new();
    let repo = "retype";
    let config = push_descriptor(&reg, repo, media_type::DOCKER_CONFIG, b"{}").await;
    let layer = push_descriptor(&reg, repo, DOCKER_LAYER, b"layer").await;
    let mut doc = image_manifest(media_type::DOCKER_MANIFEST, config, vec![layer]);
    doc.as_object_mut().unwrap().remove("mediaType");
    let body = bytes_of(&doc);
    let d = sha256(&body);
    check_round_trip(
        &reg,
        repo,
        "docker",
        media_type::DOCKER_MANIFEST,
        media_type::DOCKER_MANIFEST,
        &body,
    )
    .await;
    // The same bytes under another type would be acknowledged while served as the first:
    // refused, naming the stored type, and no tag is added.
    for reference in ["oci", d.as_str()] {
        let r = reg
            .put_manifest(repo, reference, media_type::OCI_MANIFEST, &body)
            .await;
        expect_error(&r, 400, "MANIFEST_INVALID", reference);
        let message = r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(media_type::DOCKER_MANIFEST), "{message}");
    }
    expect_error(
        &reg.get(&format!("/v2/{repo}/manifests/oci")).await,
        404,
        "MANIFEST_UNKNOWN",
        "no tag for the refused push",
    );
    let r = reg.get(&format!("/v2/{repo}/manifests/{d}")).await;
    assert_eq!(r.header("content-type"), media_type::DOCKER_MANIFEST);
    // The same type again, in any case, is fine; so is another repository.
    check_round_trip(
        &reg,
        repo,
        "again",
        "application/VND.docker.distribution.manifest.v2+json",
        media_type::DOCKER_MANIFEST,
        &body,
    )
    .await;
    reg.push_blob("other", b"{}").await;
    reg.push_blob("other", b"layer").await;
    check_round_trip(
        &reg,
        "other",
        "oci",
        media_type::OCI_MANIFEST,
        media_type::OCI_MANIFEST,
        &body,
    )
    .await;
}

#[tokio::test]
async fn accept_does_not_change_what_is_served() {
    let reg = TestRegistry::new();
    let (d, body) = reg.push_image("acc", "v1", &[b"layer"]).await;
    // Berth serves the stored type whatever the Accept header says (checklist row 66).
    for accept in [
        media_type::DOCKER_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "text/plain",
        "*/*",
    ] {
        let r = reg
            .send(
                Method::GET,
                "/v2/acc/manifests/v1",
                &[("accept", accept)],
                Body::empty(),
            )
            .await;
        expect_status(&r, 200, accept);
        assert_eq!(
            r.header("content-type"),
            media_type::OCI_MANIFEST,
            "{accept}"
        );
        assert_eq!(r.header("docker-content-digest"), d.as_str());
        assert!(r.body[..] == body[..]);
    }
}

#[tokio::test]
async fn unknown_references_are_manifest_blob_unknown() {
    let reg = TestRegistry::new();
    let repo = "refs";
    let config = push_descriptor(&reg, repo, media_type::OCI_CONFIG, b"{}").await;
    let layer = push_descriptor(&reg, repo, OCI_LAYER, b"layer").await;
    let missing = unknown_digest();
    let missing_desc = |mt: &str| descriptor(mt, &missing, 10);
    // A blob in another repository is not in this one.
    let elsewhere = push_descriptor(&reg, "elsewhere", OCI_LAYER, b"elsewhere").await;
    let elsewhere_digest = elsewhere["digest"].as_str().unwrap().to_owned();
    let (other_manifest, other_body) = reg.push_image("elsewhere", "v1", &[b"x"]).await;
    let child_elsewhere = descriptor(media_type::OCI_MANIFEST, &other_manifest, other_body.len());

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unknown config",
            image_manifest(
                media_type::OCI_MANIFEST,
                missing_desc(media_type::OCI_CONFIG),
                vec![layer.clone()],
            ),
            missing.as_str(),
        ),
        (
            "unknown layer",
            image_manifest(
                media_type::OCI_MANIFEST,
                config.clone(),
                vec![layer.clone(), missing_desc(OCI_LAYER)],
            ),
            missing.as_str(),
        ),
        (
            "docker unknown layer",
            image_manifest(
                media_type::DOCKER_MANIFEST,
                config.clone(),
                vec![missing_desc(DOCKER_LAYER)],
            ),
            missing.as_str(),
        ),
        (
            "layer of another repo",
            image_manifest(
                media_type::OCI_MANIFEST,
                config.clone(),
                vec![elsewhere.clone()],
            ),
            &elsewhere_digest,
        ),
        (
            "index with an unknown child",
            json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [missing_desc(media_type::OCI_MANIFEST)]}),
            missing.as_str(),
        ),
        (
            "manifest list with an unknown child",
            json!({"schemaVersion": 2, "mediaType": media_type::DOCKER_MANIFEST_LIST, "manifests": [missing_desc(media_type::DOCKER_MANIFEST)]}),
            missing.as_str(),
        ),
        (
            "index with a child of another repo",
            json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [child_elsewhere]}),
            other_manifest.as_str(),
        ),
        (
            "index whose child is a blob",
            json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [
                {"mediaType": media_type::OCI_MANIFEST, "digest": layer["digest"], "size": layer["size"]}]}),
            layer["digest"].as_str().unwrap(),
        ),
    ];
    for (ctx, doc, digest) in cases {
        let mt = doc["mediaType"].as_str().unwrap();
        let r = reg.put_manifest(repo, "t", mt, &bytes_of(&doc)).await;
        expect_error(&r, 400, "MANIFEST_BLOB_UNKNOWN", ctx);
        assert_eq!(
            r.json()["errors"][0]["detail"]["digest"],
            digest,
            "{ctx}: detail"
        );
        expect_error(
            &reg.get(&format!("/v2/{repo}/manifests/t")).await,
            404,
            "MANIFEST_UNKNOWN",
            ctx,
        );
    }
}

const FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// A registry admitting foreign layers from `allow` except `deny`.
fn registry_with_urls(allow: &[&str], deny: &[&str]) -> TestRegistry {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    TestRegistry::with_config(RegistryConfig {
        foreign_urls: ForeignUrlPolicy::new(&owned(allow), &owned(deny)).unwrap(),
        ..RegistryConfig::default()
    })
}

/// A Docker image whose only layer is foreign, at `urls`.
async fn foreign_image(reg: &TestRegistry, repo: &str, urls: Value) -> Value {
    let config = push_descriptor(reg, repo, media_type::DOCKER_CONFIG, b"{}").await;
    let mut foreign = descriptor(FOREIGN_LAYER, &unknown_digest(), 1000);
    foreign["urls"] = urls;
    image_manifest(media_type::DOCKER_MANIFEST, config, vec![foreign])
}

#[tokio::test]
async fn admitted_foreign_layers_need_not_be_pushed() {
    let reg = registry_with_urls(&[r"^https://example\.com/"], &[]);
    let doc = foreign_image(&reg, "win", json!(["https://example.com/layer.tar.gz"])).await;
    push_manifest(&reg, "win", "ltsc", &doc).await;
    // An OCI image may carry URLs on any layer.
    let config = push_descriptor(&reg, "win", media_type::OCI_CONFIG, b"{}").await;
    let mut layer = descriptor(OCI_LAYER, &unknown_digest(), 10);
    layer["urls"] = json!(["https://example.com/a", "https://example.com/b"]);
    push_manifest(
        &reg,
        "win",
        "oci",
        &image_manifest(media_type::OCI_MANIFEST, config, vec![layer]),
    )
    .await;
}

/// Pushes `doc` to `win` and expects MANIFEST_INVALID with nothing stored; returns the message.
async fn refused(reg: &TestRegistry, doc: Value, ctx: &str) -> String {
    let body = bytes_of(&doc);
    let r = reg
        .put_manifest("win", "t", media_type::DOCKER_MANIFEST, &body)
        .await;
    expect_error(&r, 400, "MANIFEST_INVALID", ctx);
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = reg
        .get(&format!("/v2/win/manifests/{}", sha256(&body)))
        .await;
    expect_error(&r, 404, "MANIFEST_UNKNOWN", ctx);
    message
}

#[tokio::test]
async fn foreign_urls_are_refused_unless_admitted() {
    // By default no URL is admitted, however harmless.
    let reg = TestRegistry::new();
    let doc = foreign_image(&reg, "win", json!(["https://example.com/layer.tar.gz"])).await;
    let message = refused(&reg, doc, "no allow list").await;
    assert!(
        message.contains("https://example.com/layer.tar.gz"),
        "{message}"
    );

    // Even an allow-everything pattern admits only http(s) URLs.
    let reg = registry_with_urls(&[".*"], &[r"^https://example\.com/private/"]);
    for (ctx, urls) in [
        ("a file URL", json!(["file:///etc/passwd"])),
        (
            "a file URL after a good one",
            json!(["https://example.com/l", "file:///etc/passwd"]),
        ),
        ("an ftp URL", json!(["ftp://example.com/layer"])),
        ("a relative URL", json!(["/etc/passwd"])),
        ("a URL without a host", json!(["https:///layer"])),
        ("a URL with a fragment", json!(["https://example.com/l#x"])),
        ("a denied URL", json!(["https://example.com/private/l"])),
    ] {
        let doc = foreign_image(&reg, "win", urls).await;
        refused(&reg, doc, ctx).await;
    }
    // URLs anywhere are checked, not only on layers.
    let mut doc = foreign_image(&reg, "win", json!(["https://example.com/l"])).await;
    doc["config"]["urls"] = json!(["file:///etc/passwd"]);
    refused(&reg, doc, "a file URL on the config").await;

    // An allow list admits only what it matches.
    let reg = registry_with_urls(&[r"^https://mcr\.microsoft\.com/"], &[]);
    for (ctx, url) in [
        ("another host", "https://example.com/layer"),
        (
            "a look-alike host",
            "https://mcr.microsoft.com.example.org/layer",
        ),
        ("plain http", "http://mcr.microsoft.com/layer"),
    ] {
        let doc = foreign_image(&reg, "win", json!([url])).await;
        refused(&reg, doc, ctx).await;
    }
    let doc = foreign_image(&reg, "win", json!(["https://mcr.microsoft.com/layer"])).await;
    push_manifest(&reg, "win", "t", &doc).await;
}

#[tokio::test]
async fn descriptor_sizes_must_match_the_stored_blobs() {
    let reg = TestRegistry::new();
    let config = push_descriptor(&reg, "sz", media_type::OCI_CONFIG, b"{}").await;
    let layer = push_descriptor(&reg, "sz", OCI_LAYER, b"12345").await;
    for (ctx, config_size, layer_size) in [
        ("layer too big", 2, 6),
        ("layer too small", 2, 4),
        ("config wrong", 3, 5),
        ("zero", 2, 0),
    ] {
        let mut c = config.clone();
        c["size"] = json!(config_size);
        let mut l = layer.clone();
        l["size"] = json!(layer_size);
        let doc = image_manifest(media_type::OCI_MANIFEST, c, vec![l]);
        let r = reg
            .put_manifest("sz", "t", media_type::OCI_MANIFEST, &bytes_of(&doc))
            .await;
        expect_error(&r, 400, "MANIFEST_INVALID", ctx);
    }
    let doc = image_manifest(media_type::OCI_MANIFEST, config, vec![layer]);
    push_manifest(&reg, "sz", "t", &doc).await;
}

#[tokio::test]
async fn index_children_must_match_their_descriptors() {
    let reg = TestRegistry::new();
    let repo = "children";
    let (image, image_body) = reg.push_image(repo, "v1", &[b"layer"]).await;
    let len = image_body.len() as u64;
    let child =
        |mt: &str, size: u64| json!({"mediaType": mt, "digest": image.as_str(), "size": size});
    let index = |list: &str, children: Vec<Value>| json!({"schemaVersion": 2, "mediaType": list, "manifests": children});
    let oci = media_type::OCI_INDEX;
    let docker = media_type::DOCKER_MANIFEST_LIST;
    let cases = [
        (
            "size 5",
            index(oci, vec![child(media_type::OCI_MANIFEST, 5)]),
        ),
        (
            "size 2^63-1",
            index(oci, vec![child(media_type::OCI_MANIFEST, i64::MAX as u64)]),
        ),
        (
            "size one more",
            index(oci, vec![child(media_type::OCI_MANIFEST, len + 1)]),
        ),
        (
            "size 0",
            index(oci, vec![child(media_type::OCI_MANIFEST, 0)]),
        ),
        (
            "one good child, one of the wrong size",
            index(
                oci,
                vec![
                    child(media_type::OCI_MANIFEST, len),
                    child(media_type::OCI_MANIFEST, len - 1),
                ],
            ),
        ),
        (
            "manifest list, wrong size",
            index(docker, vec![child(media_type::DOCKER_MANIFEST, 5)]),
        ),
        ("a layer type", index(oci, vec![child(OCI_LAYER, len)])),
        (
            "a config type",
            index(oci, vec![child(media_type::OCI_CONFIG, len)]),
        ),
        (
            "the empty type",
            index(oci, vec![child(media_type::OCI_EMPTY, len)]),
        ),
        (
            "manifest list, a layer type",
            index(docker, vec![child(DOCKER_LAYER, len)]),
        ),
    ];
    for (ctx, doc) in cases {
        let body = bytes_of(&doc);
        let mt = doc["mediaType"].as_str().unwrap();
        let r = reg.put_manifest(repo, "multi", mt, &body).await;
        expect_error(&r, 400, "MANIFEST_INVALID", ctx);
        let r = reg
            .get(&format!("/v2/{repo}/manifests/{}", sha256(&body)))
            .await;
        expect_error(&r, 404, "MANIFEST_UNKNOWN", ctx);
    }
    expect_error(
        &reg.get(&format!("/v2/{repo}/manifests/multi")).await,
        404,
        "MANIFEST_UNKNOWN",
        "nothing tagged",
    );
    // Every manifest type may be listed, by either kind of index, with the right size.
    for (list, child_type) in [
        (oci, media_type::OCI_MANIFEST),
        (oci, media_type::DOCKER_MANIFEST),
        (docker, media_type::DOCKER_MANIFEST),
        (docker, media_type::OCI_MANIFEST),
    ] {
        push_manifest(
            &reg,
            repo,
            "multi",
            &index(list, vec![child(child_type, len)]),
        )
        .await;
    }
}

/// Pushes `body` with `content_type` to a fresh repository and expects `status` with one
/// of `codes`; checks nothing was stored (not even the repository).
/// Pushes `body` with `content_type` to a fresh repository and expects `status` with
/// `code`; checks nothing was stored (not even the repository).
async fn check_refused(
    reg: &TestRegistry,
    content_type: &str,
    body: &[u8],
    status: u16,
    code: &str,
    ctx: &str,
) {
    let r = reg.put_manifest("refused", "t", content_type, body).await;
    expect_error(&r, status, code, ctx);
    let r = reg.get("/v2/refused/manifests/t").await;
    expect_error(&r, 404, "MANIFEST_UNKNOWN", ctx);
    let r = reg
        .get(&format!("/v2/refused/manifests/{}", sha256(body)))
        .await;
    expect_error(&r, 404, "MANIFEST_UNKNOWN", ctx);
}

#[tokio::test]
async fn invalid_documents_are_manifest_invalid() {
    let reg = TestRegistry::new();
    // The blobs the documents below reference exist in `refused`, so only the document is wrong.
    let good = simple_image(&reg, "refused", b"layer").await;
    // Pushing blobs created the repository; failed manifest pushes must add nothing more.
    let oci = media_type::OCI_MANIFEST;
    let good_text = String::from_utf8(bytes_of(&good)).unwrap();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        bytes_of(&v)
    };
    let invalid = "MANIFEST_INVALID";
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("not JSON", oci, b"this is not json".to_vec()),
        ("empty body", oci, Vec::new()),
        ("truncated JSON", oci, good_text.as_bytes()[..good_text.len() / 2].to_vec()),
        ("a JSON array", oci, b"[]".to_vec()),
        ("a JSON string", oci, br#""manifest""#.to_vec()),
        ("duplicate top-level key", oci, good_text.replacen("{", r#"{"schemaVersion":2,"#, 1).into_bytes()),
        (
            "duplicate nested key",
            oci,
            good_text.replacen(r#""config":{"#, r#""config":{"size":2,"#, 1).into_bytes(),
        ),
        ("trailing bytes", oci, format!("{good_text} trailing").into_bytes()),
        ("two documents", oci, format!("{good_text}{good_text}").into_bytes()),
        ("UTF-8 BOM", oci, [b"\xef\xbb\xbf".as_slice(), good_text.as_bytes()].concat()),
        ("invalid UTF-8", oci, [&good_text.as_bytes()[..good_text.len() - 1], b",\"annotations\":{\"a\":\"\xff\xfe\"}}"].concat()),
        ("schemaVersion 1", oci, with(&|v| v["schemaVersion"] = json!(1))),
        ("schemaVersion 3", oci, with(&|v| v["schemaVersion"] = json!(3))),
        ("schemaVersion as a string", oci, with(&|v| v["schemaVersion"] = json!("2"))),
        ("no schemaVersion", oci, with(&|v| drop(v.as_object_mut().unwrap().remove("schemaVersion")))),
        (
            "Docker schema 1",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            br#"{"schemaVersion":1,"name":"refused","tag":"t","architecture":"amd64","fsLayers":[],"history":[]}"#.to_vec(),
        ),
        (
            "schema 1 by Content-Type",
            "application/vnd.docker.distribution.manifest.v1+json",
            bytes_of(&good),
        ),
        ("Content-Type differs from mediaType", media_type::DOCKER_MANIFEST, bytes_of(&good)),
        ("Content-Type is an index", media_type::OCI_INDEX, bytes_of(&good)),
        ("unknown mediaType", "application/x-unknown", with(&|v| v["mediaType"] = json!("application/x-unknown"))),
        ("unknown Content-Type", "application/x-unknown", with(&|v| drop(v.as_object_mut().unwrap().remove("mediaType")))),
        ("both layers and manifests", oci, with(&|v| v["manifests"] = json!([]))),
        (
            "index with layers",
            media_type::OCI_INDEX,
            bytes_of(&json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [], "layers": []})),
        ),
        (
            "index with a config",
            media_type::OCI_INDEX,
            bytes_of(&json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [], "config": good["config"]})),
        ),
        ("image without config", oci, with(&|v| drop(v.as_object_mut().unwrap().remove("config")))),
        ("descriptor with a malformed digest", oci, with(&|v| v["layers"][0]["digest"] = json!("sha256:abc"))),
        ("descriptor with a traversal digest", oci, with(&|v| v["layers"][0]["digest"] = json!("sha256:../../etc/passwd"))),
        ("descriptor with a negative size", oci, with(&|v| v["layers"][0]["size"] = json!(-1))),
        ("descriptor with a fractional size", oci, with(&|v| v["layers"][0]["size"] = json!(1.5))),
        ("descriptor without a digest", oci, with(&|v| drop(v["layers"][0].as_object_mut().unwrap().remove("digest")))),
        ("descriptor without a mediaType", oci, with(&|v| drop(v["config"].as_object_mut().unwrap().remove("mediaType")))),
        ("layers is not an array", oci, with(&|v| v["layers"] = json!({}))),
        ("subject with a bad digest", oci, with(&|v| v["subject"] = json!({"mediaType": oci, "digest": "sha256:x", "size": 1}))),
        ("annotations are not strings", oci, with(&|v| v["annotations"] = json!({"a": 1}))),
    ];
    for (ctx, content_type, body) in cases {
        check_refused(&reg, content_type, &body, 400, invalid, ctx).await;
    }
    // The untouched document is fine.
    push_manifest(&reg, "refused", "t", &good).await;
}

#[tokio::test]
async fn put_by_digest_must_match_the_body() {
    let reg = TestRegistry::new();
    let doc = simple_image(&reg, "bydigest", b"layer").await;
    let body = bytes_of(&doc);
    let d = sha256(&body);

    let other = sha256(b"another body");
    let r = reg
        .put_manifest("bydigest", other.as_str(), media_type::OCI_MANIFEST, &body)
        .await;
    expect_error(&r, 400, "DIGEST_INVALID", "PUT by a digest of other bytes");
    let r = reg
        .put_manifest(
            "bydigest",
            sha512(&body).as_str(),
            media_type::OCI_MANIFEST,
            b"{}",
        )
        .await;
    expect_error(&r, 400, "DIGEST_INVALID", "PUT by a sha512 of other bytes");
    for reference in [d.as_str(), other.as_str()] {
        let r = reg
            .get(&format!("/v2/bydigest/manifests/{reference}"))
            .await;
        expect_error(&r, 404, "MANIFEST_UNKNOWN", "nothing stored");
    }

    for bad in [
        "sha256:baddigeststring",
        "sha256:",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
    ] {
        let r = reg
            .put_manifest("bydigest", bad, media_type::OCI_MANIFEST, &body)
            .await;
        expect_error(&r, 400, "DIGEST_INVALID", &format!("PUT {bad}"));
        let r = reg.get(&format!("/v2/bydigest/manifests/{bad}")).await;
        assert!(
            matches!(r.status.as_u16(), 400 | 404),
            "GET {bad}: {}",
            r.status
        );
        check_error_body(&r, bad);
    }

    // By its own digest: stored, untagged; sha512 too.
    let r = reg
        .put_manifest("bydigest", d.as_str(), media_type::OCI_MANIFEST, &body)
        .await;
    expect_status(&r, 201, "PUT by digest");
    assert_eq!(r.header("docker-content-digest"), d.as_str());
    expect_status(
        &reg.get(&format!("/v2/bydigest/manifests/{d}")).await,
        200,
        "GET by digest",
    );
    assert_eq!(
        reg.get("/v2/bydigest/tags/list").await.json()["tags"],
        json!([])
    );
    let d512 = sha512(&body);
    let r = reg
        .put_manifest("bydigest", d512.as_str(), media_type::OCI_MANIFEST, &body)
        .await;
    expect_status(&r, 201, "PUT by sha512 digest");
    assert_eq!(r.header("docker-content-digest"), d512.as_str());
    let r = reg.get(&format!("/v2/bydigest/manifests/{d512}")).await;
    expect_status(&r, 200, "GET by sha512");
    assert!(r.body[..] == body[..]);
}

#[tokio::test]
async fn tags_follow_the_grammar() {
    let reg = TestRegistry::new();
    let doc = simple_image(&reg, "tags", b"layer").await;
    let body = bytes_of(&doc);
    for good in [
        "a".repeat(128),
        "_x".into(),
        "A-b_c.d".into(),
        "1.0".into(),
        "latest".into(),
    ] {
        let r = reg
            .put_manifest("tags", &good, media_type::OCI_MANIFEST, &body)
            .await;
        expect_status(&r, 201, &good);
    }
    let bad = [
        "a".repeat(129),
        ".hidden".into(),
        "-x".into(),
        "a+b".into(),
        "a@b".into(),
        "%C3%A9".into(),
        "a%2Fb".into(),
        "a%20b".into(),
        "a/b".into(),
        "a/b/c".into(),
    ];
    for tag in &bad {
        let r = reg
            .put_manifest("tags", tag, media_type::OCI_MANIFEST, &body)
            .await;
        expect_error(&r, 400, "MANIFEST_INVALID", &format!("PUT tag {tag:?}"));
        let r = reg.get(&format!("/v2/tags/manifests/{tag}")).await;
        assert!(
            matches!(r.status.as_u16(), 400 | 404),
            "GET {tag}: {}",
            r.status
        );
        check_error_body(&r, tag);
    }
    // A colon makes it a digest reference.
    let r = reg
        .put_manifest("tags", "a:b", media_type::OCI_MANIFEST, &body)
        .await;
    expect_error(&r, 400, "DIGEST_INVALID", "tag a:b");
    let tags = strings(&reg.get("/v2/tags/tags/list").await.json()["tags"]);
    assert_eq!(tags.len(), 5, "{tags:?}");
}

/// An OCI image manifest of exactly `size` bytes (padded with an annotation).
fn manifest_of_size(base: &Value, size: usize) -> Vec<u8> {
    let mut doc = base.clone();
    doc["annotations"] = json!({"pad": ""});
    let overhead = bytes_of(&doc).len();
    assert!(size >= overhead);
    doc["annotations"]["pad"] = json!("a".repeat(size - overhead));
    let body = bytes_of(&doc);
    assert_eq!(body.len(), size);
    body
}

#[tokio::test]
async fn manifest_size_limit() {
    let reg = TestRegistry::new();
    let base = simple_image(&reg, "large", b"layer").await;
    let limit = 4 << 20;
    for size in [4_000_000, limit] {
        let body = manifest_of_size(&base, size);
        let len = size.to_string();
        let r = reg
            .send(
                Method::PUT,
                &format!("/v2/large/manifests/s{size}"),
                &[
                    ("content-type", media_type::OCI_MANIFEST),
                    ("content-length", &len),
                ],
                body.clone(),
            )
            .await;
        expect_status(&r, 201, &format!("{size} bytes"));
        let r = reg.get(&format!("/v2/large/manifests/s{size}")).await;
        expect_status(&r, 200, &format!("GET {size} bytes"));
        assert!(r.body[..] == body[..], "{size} bytes came back different");
    }
    let over = manifest_of_size(&base, limit + 1);
    let len = over.len().to_string();
    let r = reg
        .send(
            Method::PUT,
            "/v2/large/manifests/over",
            &[
                ("content-type", media_type::OCI_MANIFEST),
                ("content-length", &len),
            ],
            over.clone(),
        )
        .await;
    expect_error(&r, 413, "SIZE_INVALID", "4 MiB + 1 with Content-Length");
    let r = reg
        .send(
            Method::PUT,
            "/v2/large/manifests/over",
            &[("content-type", media_type::OCI_MANIFEST)],
            streamed(&over, 9),
        )
        .await;
    expect_error(&r, 413, "SIZE_INVALID", "4 MiB + 1 streamed");
    // A Content-Length above the limit is refused before the body is read.
    let r = reg
        .send(
            Method::PUT,
            "/v2/large/manifests/over",
            &[
                ("content-type", media_type::OCI_MANIFEST),
                ("content-length", "1000000000"),
            ],
            Body::empty(),
        )
        .await;
    expect_error(&r, 413, "SIZE_INVALID", "announced 1 GB");
    expect_error(
        &reg.get("/v2/large/manifests/over").await,
        404,
        "MANIFEST_UNKNOWN",
        "nothing stored",
    );
}

#[tokio::test]
async fn delete_by_tag_removes_only_the_tag() {
    let reg = TestRegistry::new();
    let (d, _) = reg.push_image("del", "v1", &[b"layer"]).await;
    let doc: Value = serde_json::from_slice(&reg.get("/v2/del/manifests/v1").await.body).unwrap();
    push_manifest(&reg, "del", "v2", &doc).await;

    let r = delete(&reg, "/v2/del/manifests/v1").await;
    expect_status(&r, 202, "DELETE tag");
    expect_error(
        &reg.get("/v2/del/manifests/v1").await,
        404,
        "MANIFEST_UNKNOWN",
        "deleted tag",
    );
    expect_status(&reg.get("/v2/del/manifests/v2").await, 200, "other tag");
    expect_status(
        &reg.get(&format!("/v2/del/manifests/{d}")).await,
        200,
        "by digest",
    );
    assert_eq!(
        reg.get("/v2/del/tags/list").await.json()["tags"],
        json!(["v2"])
    );
    expect_error(
        &delete(&reg, "/v2/del/manifests/v1").await,
        404,
        "MANIFEST_UNKNOWN",
        "DELETE the tag again",
    );
}

#[tokio::test]
async fn delete_by_digest_removes_the_manifest_and_its_tags() {
    let reg = TestRegistry::new();
    let (d, body) = reg.push_image("del", "v1", &[b"layer"]).await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    push_manifest(&reg, "del", "v2", &doc).await;
    let (keep, _) = reg.push_image("del", "keep", &[b"other layer"]).await;

    let r = delete(&reg, &format!("/v2/del/manifests/{d}")).await;
    expect_status(&r, 202, "DELETE by digest");
    for reference in ["v1", "v2", d.as_str()] {
        let uri = format!("/v2/del/manifests/{reference}");
        expect_error(&reg.get(&uri).await, 404, "MANIFEST_UNKNOWN", reference);
        let h = head(&reg, &uri).await;
        assert_eq!(h.status, StatusCode::NOT_FOUND, "HEAD {reference}");
        assert!(h.body.is_empty());
    }
    assert_eq!(
        reg.get("/v2/del/tags/list").await.json()["tags"],
        json!(["keep"])
    );
    expect_status(
        &reg.get(&format!("/v2/del/manifests/{keep}")).await,
        200,
        "other manifest",
    );
    expect_error(
        &delete(&reg, &format!("/v2/del/manifests/{d}")).await,
        404,
        "MANIFEST_UNKNOWN",
        "DELETE again",
    );
    // The manifest can be pushed again.
    push_manifest(&reg, "del", "v1", &doc).await;
}

/// Expects a DELETE refused because `referrer` still references the content at `uri`.
async fn expect_delete_refused(reg: &TestRegistry, uri: &str, referrer: &Digest, ctx: &str) {
    let r = delete(reg, uri).await;
    expect_error(&r, 405, "UNSUPPORTED", ctx);
    let error = &r.json()["errors"][0];
    assert_eq!(error["detail"]["referencedBy"], referrer.as_str(), "{ctx}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(referrer.as_str()),
        "{ctx}: the message names the referrer: {error}"
    );
    assert!(r.header("allow").starts_with("GET, HEAD"), "{ctx}: Allow");
}

#[tokio::test]
async fn referenced_blobs_and_children_are_not_deleted() {
    let reg = TestRegistry::new();
    let repo = "held";
    let doc = simple_image(&reg, repo, b"held layer").await;
    let (image, image_body) = push_manifest(&reg, repo, "v1", &doc).await;
    let layer = Digest::parse(doc["layers"][0]["digest"].as_str().unwrap()).unwrap();
    let config = Digest::parse(doc["config"]["digest"].as_str().unwrap()).unwrap();
    for blob in [&layer, &config] {
        let uri = format!("/v2/{repo}/blobs/{blob}");
        expect_delete_refused(&reg, &uri, &image, "DELETE a blob the image uses").await;
        expect_status(&head(&reg, &uri).await, 200, "the blob stays");
    }
    // The same blob in another repository is not held by this repository's manifest.
    reg.push_blob("elsewhere", b"held layer").await;
    expect_status(
        &delete(&reg, &format!("/v2/elsewhere/blobs/{layer}")).await,
        202,
        "DELETE the blob where no manifest uses it",
    );

    let index = json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX,
        "manifests": [descriptor(media_type::OCI_MANIFEST, &image, image_body.len())]});
    let (index_digest, _) = push_manifest(&reg, repo, "multi", &index).await;
    let image_uri = format!("/v2/{repo}/manifests/{image}");
    expect_delete_refused(&reg, &image_uri, &index_digest, "DELETE an index child").await;
    expect_status(&reg.get(&image_uri).await, 200, "the child stays");
    // Untagging the child is fine: the index still finds it by digest.
    expect_status(
        &delete(&reg, &format!("/v2/{repo}/manifests/v1")).await,
        202,
        "DELETE the child's tag",
    );

    // A referrer does not hold its subject: the subject goes, the referrer stays listed.
    let empty = push_descriptor(&reg, repo, media_type::OCI_EMPTY, b"{}").await;
    let mut sig = image_manifest(media_type::OCI_MANIFEST, empty, vec![]);
    sig["artifactType"] = json!("application/vnd.example.signature");
    sig["subject"] = descriptor(media_type::OCI_INDEX, &index_digest, bytes_of(&index).len());
    let (sig_digest, _) = push_manifest(&reg, repo, "sig", &sig).await;
    expect_status(
        &delete(&reg, &format!("/v2/{repo}/manifests/{index_digest}")).await,
        202,
        "DELETE a subject with referrers",
    );
    let listed = reg
        .get(&format!("/v2/{repo}/referrers/{index_digest}"))
        .await
        .json();
    assert_eq!(listed["manifests"][0]["digest"], sig_digest.as_str());

    // Once the index is gone, the child can go, then its blobs.
    expect_status(&delete(&reg, &image_uri).await, 202, "DELETE the child");
    for blob in [&layer, &config] {
        expect_status(
            &delete(&reg, &format!("/v2/{repo}/blobs/{blob}")).await,
            202,
            "DELETE a blob no manifest uses",
        );
    }
    // The empty config is still held by the signature.
    let empty_digest = sha256(b"{}");
    expect_delete_refused(
        &reg,
        &format!("/v2/{repo}/blobs/{empty_digest}"),
        &sig_digest,
        "DELETE the signature's config",
    )
    .await;
}

#[tokio::test]
async fn unknown_repositories_and_manifests_are_404() {
    let reg = TestRegistry::new();
    reg.push_image("known", "v1", &[b"layer"]).await;
    let unknown = unknown_digest();
    for uri in [
        "/v2/nosuch/manifests/latest".to_owned(),
        format!("/v2/nosuch/manifests/{unknown}"),
        "/v2/known/manifests/nosuch".to_owned(),
        format!("/v2/known/manifests/{unknown}"),
        "/v2/known/sub/manifests/v1".to_owned(),
    ] {
        expect_error(
            &reg.get(&uri).await,
            404,
            "MANIFEST_UNKNOWN",
            &format!("GET {uri}"),
        );
        let h = head(&reg, &uri).await;
        assert_eq!(h.status, StatusCode::NOT_FOUND, "HEAD {uri}");
        assert!(h.body.is_empty(), "HEAD {uri} has a body");
        expect_error(
            &delete(&reg, &uri).await,
            404,
            "MANIFEST_UNKNOWN",
            &format!("DELETE {uri}"),
        );
    }
}

#[tokio::test]
async fn retagging_and_repushing() {
    let reg = TestRegistry::new();
    let (first, _) = reg.push_image("re", "latest", &[b"one"]).await;
    let (second, second_body) = reg.push_image("re", "latest", &[b"two"]).await;
    assert_ne!(first, second);
    let r = reg.get("/v2/re/manifests/latest").await;
    assert_eq!(r.header("docker-content-digest"), second.as_str());
    assert!(r.body[..] == second_body[..]);
    expect_status(
        &reg.get(&format!("/v2/re/manifests/{first}")).await,
        200,
        "old manifest by digest",
    );
    // The same bytes again are fine.
    let r = reg
        .put_manifest("re", "latest", media_type::OCI_MANIFEST, &second_body)
        .await;
    expect_status(&r, 201, "re-push");
    assert_eq!(
        reg.get("/v2/re/tags/list").await.json()["tags"],
        json!(["latest"])
    );
}

#[tokio::test]
async fn tag_query_parameters_are_ignored() {
    // Berth implements distribution-spec v1.1.1, which has no `?tag=` on manifest PUTs; the
    // parameters must not be taken as tags. A thousand of them make the target too long
    // (checklist row 64: 414), and nothing is stored.
    let reg = TestRegistry::new();
    let doc = simple_image(&reg, "q", b"layer").await;
    let body = bytes_of(&doc);
    let d = sha256(&body);
    let put = |count: usize| {
        let query: Vec<String> = (0..count).map(|i| format!("tag=t{i}")).collect();
        format!("/v2/q/manifests/{d}?{}", query.join("&"))
    };
    let headers = [("content-type", media_type::OCI_MANIFEST)];
    let r = reg
        .send(Method::PUT, &put(1000), &headers, body.clone())
        .await;
    expect_status(&r, 414, "PUT with 1000 tag parameters");
    expect_error(
        &reg.get(&format!("/v2/q/manifests/{d}")).await,
        404,
        "MANIFEST_UNKNOWN",
        "not stored",
    );
    let r = reg.send(Method::PUT, &put(10), &headers, body).await;
    expect_status(&r, 201, "PUT with 10 tag parameters");
    assert_eq!(reg.get("/v2/q/tags/list").await.json()["tags"], json!([]));
}

/// A referrer artifact of `artifact_type` (or an image one when `None`) whose subject is `subject`.
async fn push_referrer(
    reg: &TestRegistry,
    repo: &str,
    subject: &Digest,
    artifact_type: Option<&str>,
    note: &str,
) -> (TestResponse, Digest, usize) {
    let empty = push_descriptor(reg, repo, media_type::OCI_EMPTY, b"{}").await;
    let layer = push_descriptor(reg, repo, "application/octet-stream", note.as_bytes()).await;
    let mut doc = image_manifest(media_type::OCI_MANIFEST, empty, vec![layer]);
    match artifact_type {
        Some(t) => doc["artifactType"] = json!(t),
        None => {
            doc["config"] =
                push_descriptor(reg, repo, media_type::OCI_CONFIG, br#"{"os":"linux"}"#).await
        }
    }
    doc["subject"] =
        json!({"mediaType": media_type::OCI_MANIFEST, "digest": subject.as_str(), "size": 123});
    doc["annotations"] = json!({"note": note});
    let body = bytes_of(&doc);
    let r = reg
        .put_manifest(
            repo,
            &sha256(&body).to_string(),
            media_type::OCI_MANIFEST,
            &body,
        )
        .await;
    (r, sha256(&body), body.len())
}

/// `GET referrers`: checks the envelope and returns the descriptors.
async fn referrers(
    reg: &TestRegistry,
    repo: &str,
    subject: &str,
    filter: Option<&str>,
) -> Vec<Value> {
    let uri = match filter {
        // A raw `+` in a query means a space, as in Go's url.ParseQuery (Distribution, zot).
        Some(t) => format!(
            "/v2/{repo}/referrers/{subject}?artifactType={}",
            t.replace('+', "%2B")
        ),
        None => format!("/v2/{repo}/referrers/{subject}"),
    };
    let r = reg.get(&uri).await;
    expect_status(&r, 200, &uri);
    assert_eq!(r.header("content-type"), media_type::OCI_INDEX, "{uri}");
    let filters = if filter.is_some() { "artifactType" } else { "" };
    assert_eq!(r.header("oci-filters-applied"), filters, "{uri}");
    let index = r.json();
    assert_eq!(index["schemaVersion"], 2, "{uri}");
    assert_eq!(index["mediaType"], media_type::OCI_INDEX, "{uri}");
    index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("{uri}: no manifests array"))
        .clone()
}

#[tokio::test]
async fn subjects_and_the_referrers_api() {
    let reg = TestRegistry::new();
    let repo = "refs";
    // The subject does not exist yet: accepted, with OCI-Subject.
    let (subject, subject_body) = {
        let doc = simple_image(&reg, repo, b"the image").await;
        (sha256(&bytes_of(&doc)), doc)
    };
    let (r, sig, sig_len) = push_referrer(
        &reg,
        repo,
        &subject,
        Some("application/vnd.example.signature"),
        "sig",
    )
    .await;
    expect_status(&r, 201, "referrer before its subject");
    assert_eq!(r.header("oci-subject"), subject.as_str());
    let (r, sbom, _) = push_referrer(
        &reg,
        repo,
        &subject,
        Some("application/vnd.example.sbom"),
        "sbom",
    )
    .await;
    assert_eq!(r.header("oci-subject"), subject.as_str());
    let (r, image_ref, _) = push_referrer(&reg, repo, &subject, None, "image").await;
    assert_eq!(r.header("oci-subject"), subject.as_str());
    // Now the subject itself; a push without subject has no OCI-Subject.
    let r = reg
        .put_manifest(
            repo,
            "v1",
            media_type::OCI_MANIFEST,
            &bytes_of(&subject_body),
        )
        .await;
    expect_status(&r, 201, "subject");
    assert_eq!(r.header("oci-subject"), "");

    let all = referrers(&reg, repo, subject.as_str(), None).await;
    let digests: Vec<&str> = all.iter().map(|d| d["digest"].as_str().unwrap()).collect();
    assert_eq!(digests.len(), 3, "{all:?}");
    for d in [&sig, &sbom, &image_ref] {
        assert!(digests.contains(&d.as_str()), "{d} not listed");
    }
    let sig_desc = all.iter().find(|d| d["digest"] == sig.as_str()).unwrap();
    assert_eq!(sig_desc["mediaType"], media_type::OCI_MANIFEST);
    assert_eq!(sig_desc["size"], sig_len);
    assert_eq!(
        sig_desc["artifactType"],
        "application/vnd.example.signature"
    );
    assert_eq!(sig_desc["annotations"], json!({"note": "sig"}));
    // An image manifest without artifactType is listed with its config's media type.
    let image_desc = all
        .iter()
        .find(|d| d["digest"] == image_ref.as_str())
        .unwrap();
    assert_eq!(image_desc["artifactType"], media_type::OCI_CONFIG);

    let filtered = referrers(
        &reg,
        repo,
        subject.as_str(),
        Some("application/vnd.example.sbom"),
    )
    .await;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["digest"], sbom.as_str());
    let filtered = referrers(&reg, repo, subject.as_str(), Some(media_type::OCI_CONFIG)).await;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["digest"], image_ref.as_str());
    assert!(
        referrers(&reg, repo, subject.as_str(), Some("application/x-none"))
            .await
            .is_empty()
    );

    // Referrers are per repository.
    reg.push_blob("other", b"x").await;
    assert!(
        referrers(&reg, "other", subject.as_str(), None)
            .await
            .is_empty()
    );
    // Deleting a referrer removes it from the list.
    expect_status(
        &delete(&reg, &format!("/v2/{repo}/manifests/{sig}")).await,
        202,
        "delete referrer",
    );
    assert_eq!(referrers(&reg, repo, subject.as_str(), None).await.len(), 2);
}

#[tokio::test]
async fn index_referrers_keep_their_artifact_type_or_none() {
    let reg = TestRegistry::new();
    let (subject, _) = reg.push_image("ix", "v1", &[b"layer"]).await;
    let (child, child_body) = reg.push_image("ix", "v2", &[b"layer 2"]).await;
    let child_desc = descriptor(media_type::OCI_MANIFEST, &child, child_body.len());
    let subject_desc =
        json!({"mediaType": media_type::OCI_MANIFEST, "digest": subject.as_str(), "size": 1});
    let plain = json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [child_desc], "subject": subject_desc});
    let r = reg
        .put_manifest("ix", "plain", media_type::OCI_INDEX, &bytes_of(&plain))
        .await;
    expect_status(&r, 201, "index with subject");
    assert_eq!(r.header("oci-subject"), subject.as_str());
    let mut typed = plain.clone();
    typed["artifactType"] = json!("application/vnd.example.bundle");
    expect_status(
        &reg.put_manifest("ix", "typed", media_type::OCI_INDEX, &bytes_of(&typed))
            .await,
        201,
        "typed index",
    );

    let all = referrers(&reg, "ix", subject.as_str(), None).await;
    assert_eq!(all.len(), 2);
    let plain_desc = all
        .iter()
        .find(|d| d["digest"] == sha256(&bytes_of(&plain)).as_str())
        .unwrap();
    assert_eq!(plain_desc["mediaType"], media_type::OCI_INDEX);
    assert!(plain_desc.get("artifactType").is_none(), "{plain_desc}");
    let typed_desc = all
        .iter()
        .find(|d| d["digest"] == sha256(&bytes_of(&typed)).as_str())
        .unwrap();
    assert_eq!(typed_desc["artifactType"], "application/vnd.example.bundle");
}

#[tokio::test]
async fn referrers_of_unknown_or_malformed_subjects() {
    let reg = TestRegistry::new();
    reg.push_image("r", "v1", &[b"layer"]).await;
    for repo in ["r", "nosuch"] {
        assert!(
            referrers(&reg, repo, unknown_digest().as_str(), None)
                .await
                .is_empty(),
            "{repo}"
        );
        assert!(
            referrers(&reg, repo, unknown_digest().as_str(), Some("x"))
                .await
                .is_empty(),
            "{repo}"
        );
    }
    let bad = [
        "sha256:abc",
        "latest",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256:..%2F..%2Fetc",
        "sha256:../../etc/passwd",
    ];
    for digest in bad {
        let r = reg.get(&format!("/v2/r/referrers/{digest}")).await;
        expect_error(&r, 400, "DIGEST_INVALID", digest);
    }
}

/// Follows `Link: <…>; rel="next"` from `uri` to the last page, checking each page's
/// envelope; returns the digests on each page.
async fn referrer_pages(reg: &TestRegistry, uri: &str, filtered: bool) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(uri.to_owned());
    while let Some(uri) = next.take() {
        let r = reg.get(&uri).await;
        expect_status(&r, 200, &uri);
        assert_eq!(r.header("content-type"), media_type::OCI_INDEX, "{uri}");
        let filters = if filtered { "artifactType" } else { "" };
        assert_eq!(r.header("oci-filters-applied"), filters, "{uri}");
        let index = r.json();
        assert_eq!(index["schemaVersion"], 2, "{uri}");
        let digests: Vec<String> = index["manifests"]
            .as_array()
            .unwrap_or_else(|| panic!("{uri}: no manifests array"))
            .iter()
            .map(|d| d["digest"].as_str().unwrap().to_owned())
            .collect();
        pages.push(digests);
        let link = r.header("link");
        if !link.is_empty() {
            let target = link
                .strip_prefix('<')
                .and_then(|l| l.strip_suffix(">; rel=\"next\""))
                .unwrap_or_else(|| panic!("{uri}: Link {link:?}"));
            next = Some(target.to_owned());
        }
        assert!(pages.len() <= 100, "{uri}: the pages do not end");
    }
    pages
}

#[tokio::test]
async fn referrers_come_in_pages_linked_by_last_digest() {
    let reg = TestRegistry::with_config(berth_app::RegistryConfig {
        max_referrers: 2,
        ..berth_app::RegistryConfig::default()
    });
    let repo = "paged/refs";
    let (subject, _) = reg.push_image(repo, "v1", &[b"layer"]).await;
    let mut sigs = Vec::new();
    let mut all = Vec::new();
    for i in 0..5 {
        let artifact_type = if i < 3 {
            "application/vnd.example.sig+json"
        } else {
            "text/plain"
        };
        let (r, d, _) =
            push_referrer(&reg, repo, &subject, Some(artifact_type), &format!("n{i}")).await;
        expect_status(&r, 201, "referrer");
        if i < 3 {
            sigs.push(d.to_string());
        }
        all.push(d.to_string());
    }
    all.sort();
    sigs.sort();

    let pages = referrer_pages(&reg, &format!("/v2/{repo}/referrers/{subject}"), false).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(pages.concat(), all, "every referrer once, in digest order");

    // The filter is carried to the next page, whose `+` must survive the round trip.
    let uri =
        format!("/v2/{repo}/referrers/{subject}?artifactType=application/vnd.example.sig%2Bjson");
    let pages = referrer_pages(&reg, &uri, true).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(pages.concat(), sigs);

    // Exactly a page's worth has no Link.
    let r = reg
        .get(&format!(
            "/v2/{repo}/referrers/{subject}?artifactType=text/plain"
        ))
        .await;
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(r.header("link"), "");

    // `last` past every digest: an empty page; `last` that is not a digest: 400.
    let last = all.last().unwrap();
    let r = reg
        .get(&format!("/v2/{repo}/referrers/{subject}?last={last}"))
        .await;
    expect_status(&r, 200, "last past the end");
    assert_eq!(r.json()["manifests"], json!([]));
    assert_eq!(r.header("link"), "");
    let r = reg
        .get(&format!("/v2/{repo}/referrers/{subject}?last=nope"))
        .await;
    expect_error(&r, 400, "DIGEST_INVALID", "last is not a digest");
}

/// A referrers page is an image index, which clients read with the manifest size limit:
/// big annotations cut the page before it passes `max_manifest_bytes`.
#[tokio::test]
async fn referrer_pages_stay_below_the_manifest_limit() {
    let max_manifest_bytes = 3000;
    let reg = TestRegistry::with_config(berth_app::RegistryConfig {
        max_manifest_bytes,
        ..berth_app::RegistryConfig::default()
    });
    let repo = "big/refs";
    let (subject, _) = reg.push_image(repo, "v1", &[b"layer"]).await;
    let mut all = Vec::new();
    for i in 0..4 {
        // A note of 1000 bytes: each descriptor is over a third of the limit.
        let note = format!("{i}{}", "x".repeat(999));
        let (r, d, _) = push_referrer(&reg, repo, &subject, Some("text/plain"), &note).await;
        expect_status(&r, 201, "referrer with a big annotation");
        all.push(d.to_string());
    }
    all.sort();
    let mut seen = Vec::new();
    let mut uri = format!("/v2/{repo}/referrers/{subject}");
    loop {
        let r = reg.get(&uri).await;
        expect_status(&r, 200, &uri);
        assert!(
            r.body.len() as u64 <= max_manifest_bytes,
            "{uri}: a page of {} bytes",
            r.body.len()
        );
        let page = r.json()["manifests"].as_array().unwrap().clone();
        assert_eq!(page.len(), 2, "{uri}: two descriptors fit, three do not");
        seen.extend(
            page.iter()
                .map(|d| d["digest"].as_str().unwrap().to_owned()),
        );
        match r.header("link") {
            "" => break,
            link => uri = link[1..link.find('>').unwrap()].to_owned(),
        }
    }
    assert_eq!(seen, all);
}
