//! Tests named after the auth, token, robot and project advisories of other
//! registries (reliability-security catalogue §1): each replays the attack against
//! Berth.

mod common;

use common::harbor::*;
use common::*;

/// Projects `p1` (alice admin, mallory developer) and `p2` (bob admin), each with a
/// member, a robot and an image.
async fn two_projects() -> TestRegistry {
    let reg = TestRegistry::secure().await;
    for name in ["alice", "bob", "mallory"] {
        create_user(&reg, name).await;
    }
    for (project, owner) in [("p1", "alice"), ("p2", "bob")] {
        let who = Some((owner, PASSWORD));
        call(
            &reg,
            who,
            Method::POST,
            "/projects",
            "/projects",
            Some(json!({"project_name": project})),
        )
        .await;
        call(
            &reg,
            who,
            Method::POST,
            "/robots",
            "/robots",
            Some(json!({
                "name": "bot", "level": "project", "duration": -1,
                "permissions": [{"kind": "project", "namespace": project,
                    "access": [{"resource": "repository", "action": "pull"}]}],
            })),
        )
        .await;
        reg.log_in(Some((owner, PASSWORD)));
        reg.push_image(&format!("{project}/x"), "v1", &[project.as_bytes()])
            .await;
    }
    reg.log_in(None);
    call(
        &reg,
        Some(("alice", PASSWORD)),
        Method::POST,
        "/projects/p1/members",
        "/projects/{project_name_or_id}/members",
        Some(json!({"role_id": 2, "member_user": {"username": "mallory"}})),
    )
    .await;
    reg
}

/// B1 (Harbor CVE-2022-31666/31667 and kin): sub-resources fetched by global id
/// without checking their project. alice, admin of p1, names p2's member and robot
/// ids under p1: 404, and nothing changes in p2.
#[tokio::test]
async fn b1_another_projects_sub_resources_are_not_found_through_ones_own() {
    let reg = two_projects().await;
    let bob = Some(("bob", PASSWORD));
    let alice = Some(("alice", PASSWORD));
    let p2_member = call(
        &reg,
        bob,
        Method::GET,
        "/projects/p2/members",
        "/projects/{project_name_or_id}/members",
        None,
    )
    .await
    .json()[0]["id"]
        .as_i64()
        .unwrap();
    let p2_id = call(
        &reg,
        bob,
        Method::GET,
        "/projects/p2",
        "/projects/{project_name_or_id}",
        None,
    )
    .await
    .json()["project_id"]
        .as_i64()
        .unwrap();
    let p2_robot = call(
        &reg,
        bob,
        Method::GET,
        &format!("/robots?q=ProjectID%3D{p2_id}"),
        "/robots",
        None,
    )
    .await
    .json()[0]["id"]
        .as_i64()
        .unwrap();
    for (method, uri, template, body) in [
        (
            Method::GET,
            format!("/projects/p1/members/{p2_member}"),
            "/projects/{project_name_or_id}/members/{mid}",
            None,
        ),
        (
            Method::PUT,
            format!("/projects/p1/members/{p2_member}"),
            "/projects/{project_name_or_id}/members/{mid}",
            Some(json!({"role_id": 1})),
        ),
        (
            Method::DELETE,
            format!("/projects/p1/members/{p2_member}"),
            "/projects/{project_name_or_id}/members/{mid}",
            None,
        ),
        (
            Method::GET,
            format!("/robots/{p2_robot}"),
            "/robots/{robot_id}",
            None,
        ),
        (
            Method::PATCH,
            format!("/robots/{p2_robot}"),
            "/robots/{robot_id}",
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("/robots/{p2_robot}"),
            "/robots/{robot_id}",
            None,
        ),
    ] {
        let r = call(&reg, alice, method.clone(), &uri, template, body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {uri}");
    }
    let r = call(
        &reg,
        bob,
        Method::GET,
        &format!("/projects/p2/members/{p2_member}"),
        "/projects/{project_name_or_id}/members/{mid}",
        None,
    )
    .await;
    assert_eq!(r.json()["role_id"], json!(1), "bob is still p2's admin");
    assert_eq!(
        call(
            &reg,
            bob,
            Method::GET,
            &format!("/robots/{p2_robot}"),
            "/robots/{robot_id}",
            None
        )
        .await
        .status,
        StatusCode::OK
    );
}

/// B3 (zot CVE-2024-39897): a blob only in a repository the caller cannot read is
/// never served, mounted or accepted in a manifest through one it can.
#[tokio::test]
async fn b3_knowing_a_digest_reads_nothing_of_another_project() {
    let reg = two_projects().await;
    reg.log_in(Some(("bob", PASSWORD)));
    let secret = reg.push_blob("p2/y", b"bob's secret bytes").await;
    reg.log_in(Some(("alice", PASSWORD)));
    assert_eq!(
        reg.send_empty(Method::HEAD, &format!("/v2/p1/x/blobs/{secret}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        reg.get(&format!("/v2/p1/x/blobs/{secret}")).await.status,
        StatusCode::NOT_FOUND
    );
    for uri in [
        format!("/v2/p1/x/blobs/uploads/?mount={secret}&from=p2/y"),
        format!("/v2/p1/x/blobs/uploads/?mount={secret}"),
    ] {
        assert_eq!(
            reg.send(Method::POST, &uri, &[], Body::empty())
                .await
                .status,
            StatusCode::ACCEPTED,
            "{uri}"
        );
    }
    let config = push_descriptor(&reg, "p1/x", media_type::OCI_CONFIG, b"{}").await;
    let layer = descriptor("application/vnd.oci.image.layer.v1.tar", &secret, 18);
    let doc = image_manifest(media_type::OCI_MANIFEST, config, vec![layer]);
    let r = reg
        .put_manifest("p1/x", "steal", media_type::OCI_MANIFEST, &bytes_of(&doc))
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN".into())
    );
}

/// B4 (Quay CVE-2026-32589): upload sessions are bound to their repository; another
/// user with push elsewhere cannot touch bob's session, which then finishes.
#[tokio::test]
async fn b4_upload_sessions_belong_to_their_repository() {
    let reg = two_projects().await;
    reg.log_in(Some(("bob", PASSWORD)));
    let location = start_upload(&reg, "p2/up").await;
    let id = location.rsplit('/').next().unwrap().to_owned();
    reg.log_in(Some(("mallory", PASSWORD)));
    for (method, uri) in [
        (Method::GET, format!("/v2/p1/x/blobs/uploads/{id}")),
        (Method::PATCH, format!("/v2/p1/x/blobs/uploads/{id}")),
        (
            Method::PUT,
            format!("/v2/p1/x/blobs/uploads/{id}?digest={}", sha256(b"x")),
        ),
        (Method::DELETE, format!("/v2/p1/x/blobs/uploads/{id}")),
    ] {
        let r = reg
            .send(method.clone(), &uri, &[], Bytes::from_static(b"x"))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {uri}");
    }
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let r = reg
            .send(
                method.clone(),
                &format!("/v2/p2/up/blobs/uploads/{id}"),
                &[],
                Bytes::from_static(b"x"),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} under p2");
    }
    reg.log_in(Some(("bob", PASSWORD)));
    let data = b"bob's blob";
    let r = reg
        .send(
            Method::PUT,
            &format!("{location}?digest={}", sha256(data)),
            &[],
            Bytes::from_static(data),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

/// C1 (Harbor CVE-2020-29662): every spelling of the catalog path answers the same,
/// filtered list (or is not the catalog at all).
#[tokio::test]
async fn c1_catalog_path_variants_never_skip_the_filter() {
    let reg = two_projects().await;
    reg.log_in(Some(("mallory", PASSWORD)));
    let canonical = reg.get("/v2/_catalog").await;
    assert_eq!(canonical.json()["repositories"], json!(["p1/x"]));
    for variant in [
        "/v2/_catalog/",
        "//v2/_catalog",
        "/v2/./_catalog",
        "/v2/%5Fcatalog",
        "/V2/_catalog",
        "/v2/_catalog?n=1000",
        "/v2/_catalog?last=a",
    ] {
        let r = reg.get(variant).await;
        assert!(
            r.status != StatusCode::OK || r.json()["repositories"] == json!(["p1/x"]),
            "{variant}: {} {:?}",
            r.status,
            r.body
        );
        assert!(
            !String::from_utf8_lossy(&r.body).contains("p2"),
            "{variant}"
        );
    }
}

/// A1 (distribution CVE-2025-24976) with an `x5c` chain: a token signed by an
/// attacker's key that carries a certificate chain in its header is refused.
#[tokio::test]
async fn a1_a_token_carrying_its_own_certificate_chain_is_refused() {
    let reg = two_projects().await;
    let attacker = berth_app::identity::SigningKey::generate_pem().unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(attacker.as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(vec!["MIIBfake".into()]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": "berth-test", "aud": "berth-test", "sub": "admin", "exp": now + 300, "nbf": now, "iat": now, "jti": "x",
        "access": [{"type": "repository", "name": "p2/x", "actions": ["pull", "push", "delete"]}]});
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let auth = format!("Bearer {token}");
    let r = reg
        .send(
            Method::GET,
            "/v2/p2/x/manifests/v1",
            &[("authorization", auth.as_str())],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// D1 (Harbor CVE-2019-19026 and kin): SQL metacharacters in `q`, `sort` and paging
/// parameters are refused or matched literally; nothing fails and nothing changes.
#[tokio::test]
async fn d1_query_parameters_never_reach_sql_as_code() {
    let reg = two_projects().await;
    for query in [
        "q=username%3D~%27%20OR%201%3D1--",
        "q=username%3D%27%3B%20DROP%20TABLE%20users%3B--",
        "q=username%3D~%25",
        "q=username%3D~_",
        "sort=username%3BDROP%20TABLE%20users",
        "sort=-password",
        "page=1%3B",
        "page_size=10%20OR%201%3D1",
        "q=creation_time%3D%5B1%20OR%201%3D1~2%5D",
        "q=username%3D%7Balice%20bob%27%29%20OR%20%28%271%7D",
    ] {
        let r = call(
            &reg,
            Some(ADMIN),
            Method::GET,
            &format!("/users?{query}"),
            "/users",
            None,
        )
        .await;
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST,
            "{query}: {}",
            r.status
        );
        if r.status == StatusCode::OK {
            let names: Vec<Value> = r
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["username"].clone())
                .collect();
            assert!(
                names.is_empty() || query.contains("%7B"),
                "{query} matched {names:?}"
            );
        }
    }
    let r = call(&reg, Some(ADMIN), Method::GET, "/users", "/users", None).await;
    assert_eq!(r.header("x-total-count"), "4", "users are all still there");
}

/// D3 (Harbor GHSA-f9vc-vf3r-pqqq): stored markup comes back as JSON data, never
/// sniffed as a document.
#[tokio::test]
async fn d3_stored_markup_is_served_as_json_that_is_not_sniffed() {
    let reg = two_projects().await;
    let a = Some(("alice", PASSWORD));
    let template = "/projects/{project_name}/repositories/{repository_name}";
    call(
        &reg,
        a,
        Method::PUT,
        "/projects/p1/repositories/x",
        template,
        Some(json!({"description": "<img src=x onerror=alert(1)>"})),
    )
    .await;
    let r = call(
        &reg,
        a,
        Method::GET,
        "/projects/p1/repositories/x",
        template,
        None,
    )
    .await;
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    assert_eq!(
        r.json()["description"],
        json!("<img src=x onerror=alert(1)>")
    );
}
