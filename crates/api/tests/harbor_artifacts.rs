//! Harbor's API for repositories, artifacts, tags and accessories over what was pushed
//! through `/v2/`.

mod common;

use common::harbor::*;
use common::*;

const REPO_TEMPLATE: &str = "/projects/{project_name}/repositories/{repository_name}";
const ARTIFACTS: &str = "/projects/{project_name}/repositories/{repository_name}/artifacts";
const ARTIFACT: &str =
    "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}";
const TAGS: &str =
    "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags";
const ACCESSORIES: &str =
    "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/accessories";

/// A registry with project `team` (alice admin, bob guest) holding an image with a
/// referrer and a cosign tag-scheme signature, a multi-platform index, and a nested
/// repository.
async fn populated() -> (TestRegistry, Digest, Digest) {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    create_user(&reg, "bob").await;
    let a = ("alice", PASSWORD);
    call(
        &reg,
        Some(a),
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "team"})),
    )
    .await;
    call(
        &reg,
        Some(a),
        Method::POST,
        "/projects/team/members",
        "/projects/{project_name_or_id}/members",
        Some(json!({"role_id": 3, "member_user": {"username": "bob"}})),
    )
    .await;
    reg.log_in(Some(a));
    let image = simple_image(&reg, "team/app", b"app layer").await;
    let (image_digest, image_bytes) = push_manifest(&reg, "team/app", "v1", &image).await;
    // A referrer (a cosign signature in the OCI 1.1 way).
    let sig_config =
        push_descriptor(&reg, "team/app", "application/vnd.oci.empty.v1+json", b"{}").await;
    let sig_layer = push_descriptor(
        &reg,
        "team/app",
        "application/vnd.dev.cosign.simplesigning.v1+json",
        b"sig",
    )
    .await;
    let mut referrer = image_manifest(media_type::OCI_MANIFEST, sig_config, vec![sig_layer]);
    referrer["artifactType"] = json!("application/vnd.dev.cosign.artifact.sig.v1+json");
    referrer["subject"] = descriptor(media_type::OCI_MANIFEST, &image_digest, image_bytes.len());
    push_manifest(
        &reg,
        "team/app",
        &sha256(&bytes_of(&referrer)).to_string(),
        &referrer,
    )
    .await;
    // A signature in cosign's tag scheme.
    let tag_sig = simple_image(&reg, "team/app", b"tag-scheme signature").await;
    let sig_tag = format!("{}.sig", image_digest.as_str().replace(':', "-"));
    push_manifest(&reg, "team/app", &sig_tag, &tag_sig).await;
    // A two-platform index.
    let mut children = Vec::new();
    for (arch, layer) in [("amd64", b"amd" as &[u8]), ("arm64", b"arm")] {
        let child = simple_image(&reg, "team/multi", layer).await;
        let (d, bytes) = push_manifest(
            &reg,
            "team/multi",
            &sha256(&bytes_of(&child)).to_string(),
            &child,
        )
        .await;
        let mut desc = descriptor(media_type::OCI_MANIFEST, &d, bytes.len());
        desc["platform"] = json!({"architecture": arch, "os": "linux"});
        children.push(desc);
    }
    let index =
        json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": children});
    let (index_digest, _) = push_manifest(&reg, "team/multi", "latest", &index).await;
    let nested = simple_image(&reg, "team/a/b", b"nested").await;
    push_manifest(&reg, "team/a/b", "v1", &nested).await;
    reg.log_in(None);
    (reg, image_digest, index_digest)
}

#[tokio::test]
async fn repositories_list_with_counts_and_nested_names_are_double_encoded() {
    let (reg, _, _) = populated().await;
    let a = Some(("alice", PASSWORD));
    let r = call(
        &reg,
        a,
        Method::GET,
        "/projects/team/repositories?sort=name",
        "/projects/{project_name}/repositories",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.header("x-total-count"), "3");
    let names: Vec<Value> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("team/a/b"), json!("team/app"), json!("team/multi")]
    );
    assert_eq!(r.json()[1]["artifact_count"], json!(3));
    let r = call(
        &reg,
        a,
        Method::GET,
        "/projects/team/repositories/a%252Fb",
        REPO_TEMPLATE,
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["name"].clone()),
        (StatusCode::OK, json!("team/a/b"))
    );
    let r = call(
        &reg,
        a,
        Method::PUT,
        "/projects/team/repositories/app",
        REPO_TEMPLATE,
        Some(json!({"description": "<script>alert(1)</script>", "id": 99})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &reg,
        a,
        Method::GET,
        "/projects/team/repositories/app",
        REPO_TEMPLATE,
        None,
    )
    .await;
    assert_eq!(r.json()["description"], json!("<script>alert(1)</script>"));
    assert_eq!(r.header("content-type"), "application/json");
    // Guests read but do not change; strangers see nothing.
    let b = Some(("bob", PASSWORD));
    assert_eq!(
        call(
            &reg,
            b,
            Method::GET,
            "/projects/team/repositories/app",
            REPO_TEMPLATE,
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &reg,
            b,
            Method::PUT,
            "/projects/team/repositories/app",
            REPO_TEMPLATE,
            Some(json!({"description": ""}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(
            &reg,
            b,
            Method::DELETE,
            "/projects/team/repositories/app",
            REPO_TEMPLATE,
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    create_user(&reg, "eve").await;
    let e = Some(("eve", PASSWORD));
    assert_eq!(
        call(
            &reg,
            e,
            Method::GET,
            "/projects/team/repositories",
            "/projects/{project_name}/repositories",
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let r = call(&reg, e, Method::GET, "/repositories", "/repositories", None).await;
    assert_eq!(r.header("x-total-count"), "0");
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/repositories",
        "/repositories",
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "3");
    // Deleting a repository takes its artifacts.
    let r = call(
        &reg,
        a,
        Method::DELETE,
        "/projects/team/repositories/a%252Fb",
        REPO_TEMPLATE,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        call(
            &reg,
            a,
            Method::GET,
            "/projects/team/repositories/a%252Fb",
            REPO_TEMPLATE,
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    reg.log_in(a);
    assert_eq!(
        reg.get("/v2/team/a/b/manifests/v1").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn artifacts_show_type_attributes_references_tags_and_accessories() {
    let (reg, image, index) = populated().await;
    let a = Some(("alice", PASSWORD));
    let r = call(
        &reg,
        a,
        Method::GET,
        "/projects/team/repositories/app/artifacts/v1?with_accessory=true",
        ARTIFACT,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let art = r.json();
    assert_eq!(art["digest"], json!(image.as_str()));
    assert_eq!(art["type"], json!("IMAGE"));
    assert_eq!(art["manifest_media_type"], json!(media_type::OCI_MANIFEST));
    assert_eq!(art["media_type"], json!(media_type::OCI_CONFIG));
    assert_eq!(art["extra_attrs"]["architecture"], json!("amd64"));
    assert_eq!(art["tags"][0]["name"], json!("v1"));
    assert_eq!(art["pull_time"], json!("0001-01-01T00:00:00.000Z"));
    assert!(art["size"].as_u64().unwrap() > 100);
    let kinds: Vec<Value> = art["accessories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        [json!("signature.cosign"), json!("signature.cosign")]
    );
    let r = call(
        &reg,
        a,
        Method::GET,
        &format!("/projects/team/repositories/app/artifacts/{image}/accessories"),
        ACCESSORIES,
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "2");

    let r = call(
        &reg,
        a,
        Method::GET,
        "/projects/team/repositories/multi/artifacts/latest",
        ARTIFACT,
        None,
    )
    .await;
    let idx = r.json();
    assert_eq!(idx["digest"], json!(index.as_str()));
    assert_eq!(idx["type"], json!("IMAGE"));
    let platforms: Vec<Value> = idx["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["platform"]["architecture"].clone())
        .collect();
    assert_eq!(platforms, [json!("amd64"), json!("arm64")]);
    assert!(idx["references"][0]["child_id"].as_i64().unwrap() > 0);

    // Listing and filtering by tags.
    let r = call(
        &reg,
        a,
        Method::GET,
        "/projects/team/repositories/app/artifacts",
        ARTIFACTS,
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "3");
    let r = call(
        &reg,
        a,
        Method::GET,
        "/projects/team/repositories/app/artifacts?q=tags%3Dv1",
        ARTIFACTS,
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "1");
    let r = call(
        &reg,
        a,
        Method::GET,
        "/projects/team/repositories/app/artifacts?q=tags%3Dnil",
        ARTIFACTS,
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "1");
    let r = call(
        &reg,
        a,
        Method::GET,
        "/projects/team/repositories/app/artifacts?page_size=1&sort=-push_time",
        ARTIFACTS,
        None,
    )
    .await;
    assert!(r.header("link").contains("rel=\"next\""));
    let r = call(
        &reg,
        a,
        Method::GET,
        "/projects/team/repositories/nothing/artifacts",
        ARTIFACTS,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tags_are_added_and_removed_and_artifacts_deleted_with_the_registrys_rules() {
    let (reg, image, index) = populated().await;
    let a = Some(("alice", PASSWORD));
    let b = Some(("bob", PASSWORD));
    let uri = format!("/projects/team/repositories/app/artifacts/{image}/tags");
    let r = call(
        &reg,
        a,
        Method::POST,
        &uri,
        TAGS,
        Some(json!({"name": "stable"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        call(
            &reg,
            a,
            Method::POST,
            &uri,
            TAGS,
            Some(json!({"name": "stable"}))
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        call(
            &reg,
            a,
            Method::POST,
            &uri,
            TAGS,
            Some(json!({"name": "bad tag"}))
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(
            &reg,
            b,
            Method::POST,
            &uri,
            TAGS,
            Some(json!({"name": "mine"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    reg.log_in(a);
    assert_eq!(
        reg.get("/v2/team/app/manifests/stable").await.status,
        StatusCode::OK
    );
    let r = call(&reg, a, Method::GET, &uri, TAGS, None).await;
    assert_eq!(r.header("x-total-count"), "2");
    let r = call(&reg, a, Method::DELETE, &format!("{uri}/stable"), "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags/{tag_name}", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        reg.get("/v2/team/app/manifests/stable").await.status,
        StatusCode::NOT_FOUND
    );

    // A child of an index cannot go while the index lists it.
    let child = call(
        &reg,
        a,
        Method::GET,
        "/projects/team/repositories/multi/artifacts/latest",
        ARTIFACT,
        None,
    )
    .await
    .json()["references"][0]["child_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call(
        &reg,
        a,
        Method::DELETE,
        &format!("/projects/team/repositories/multi/artifacts/{child}"),
        ARTIFACT,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        call(
            &reg,
            b,
            Method::DELETE,
            &format!("/projects/team/repositories/multi/artifacts/{index}"),
            ARTIFACT,
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let r = call(
        &reg,
        a,
        Method::DELETE,
        &format!("/projects/team/repositories/multi/artifacts/{index}"),
        ARTIFACT,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        reg.get("/v2/team/multi/manifests/latest").await.status,
        StatusCode::NOT_FOUND
    );
    let r = call(
        &reg,
        a,
        Method::GET,
        &format!("/projects/team/repositories/multi/artifacts/{index}"),
        ARTIFACT,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
