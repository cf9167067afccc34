//! Harbor's quotas: `/quotas`, a project's `storage_limit` and its summary's `quota`,
//! the `storage_per_project` setting, and what the registry refuses past a limit
//! (`403 DENIED`, nothing written). Every answer is checked against the swagger.

mod common;

use common::harbor::*;
use common::*;

const QUOTAS: &str = "/quotas";
const QUOTA: &str = "/quotas/{id}";
const ALICE: (&str, &str) = ("alice", PASSWORD);
const BOB: (&str, &str) = ("bob", PASSWORD);

/// Creates project `name` as the administrator, with `storage_limit` when given;
/// returns its id.
async fn project(reg: &TestRegistry, name: &str, storage_limit: Option<i64>) -> i64 {
    let mut req = json!({"project_name": name});
    if let Some(limit) = storage_limit {
        req["storage_limit"] = json!(limit);
    }
    let r = call(
        reg,
        Some(ADMIN),
        Method::POST,
        "/projects",
        "/projects",
        Some(req),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    created_id(&r)
}

/// The quota of project `id`, as `/quotas?reference_id=` lists it.
async fn quota_of(reg: &TestRegistry, id: i64) -> Value {
    let uri = format!("/quotas?reference=project&reference_id={id}");
    let r = call(reg, Some(ADMIN), Method::GET, &uri, QUOTAS, None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.header("x-total-count"), "1");
    r.json()[0].clone()
}

async fn used(reg: &TestRegistry, id: i64) -> i64 {
    quota_of(reg, id).await["used"]["storage"].as_i64().unwrap()
}

/// An image manifest over `config` and `layers`.
fn image_manifest(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    let descriptor = |media: &str, data: &[u8]| json!({"mediaType": media, "digest": sha256(data).as_str(), "size": data.len()});
    let layers: Vec<Value> = (layers.iter())
        .map(|l| descriptor("application/vnd.oci.image.layer.v1.tar", l))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": berth_oci::media_type::OCI_MANIFEST,
        "config": descriptor(berth_oci::media_type::OCI_CONFIG, config),
        "layers": layers,
    }))
    .unwrap()
}

/// Pushes `manifest` as `repo:tag`.
async fn put(reg: &TestRegistry, repo: &str, tag: &str, manifest: &[u8]) -> TestResponse {
    reg.put_manifest(repo, tag, berth_oci::media_type::OCI_MANIFEST, manifest)
        .await
}

/// Sets project `id`'s quota to `storage` bytes as the administrator.
async fn set_limit(reg: &TestRegistry, id: i64, storage: i64) -> TestResponse {
    let body = json!({"hard": {"storage": storage}});
    call(
        reg,
        Some(ADMIN),
        Method::PUT,
        &format!("/quotas/{id}"),
        QUOTA,
        Some(body),
    )
    .await
}

/// A fresh blob upload of `data` to `repo` (monolithic), as the logged-in caller.
async fn upload(reg: &TestRegistry, repo: &str, data: &[u8]) -> TestResponse {
    let digest = sha256(data);
    let uri = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
    reg.send(Method::POST, &uri, &[], data.to_vec()).await
}

#[tokio::test]
async fn usage_follows_pushes_and_deletes() {
    let reg = TestRegistry::secure().await;
    let id = project(&reg, "team", Some(1 << 20)).await;
    let quota = quota_of(&reg, id).await;
    assert_eq!(quota["id"], json!(id));
    assert_eq!(quota["ref"]["name"], json!("team"));
    assert_eq!(quota["ref"]["id"], json!(id));
    assert_eq!(quota["hard"]["storage"], json!(1 << 20));
    assert_eq!(quota["used"]["storage"], json!(0));
    reg.log_in(Some(ADMIN));
    let (digest, manifest) = reg.push_image("team/app", "v1", &[b"layer-one"]).await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#.len();
    let expected = (manifest.len() + config + b"layer-one".len()) as i64;
    assert_eq!(used(&reg, id).await, expected);
    // The same layers from another repository add only the new manifest.
    let (_, other) = reg
        .push_image("team/other", "v1", &[b"layer-one", b"two"])
        .await;
    assert_eq!(used(&reg, id).await, expected + (other.len() + 3) as i64);
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/projects/team/summary",
        "/projects/{project_name_or_id}/summary",
        None,
    )
    .await;
    assert_eq!(
        r.json()["quota"]["used"]["storage"],
        json!(expected + (other.len() + 3) as i64)
    );
    assert_eq!(r.json()["quota"]["hard"]["storage"], json!(1 << 20));
    let r = reg
        .send_empty(Method::DELETE, &format!("/v2/team/app/manifests/{digest}"))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = call(
        &reg,
        Some(ADMIN),
        Method::DELETE,
        "/projects/team/repositories/other",
        "/projects/{project_name}/repositories/{repository_name}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(used(&reg, id).await, 0, "deletes release everything");
}

#[tokio::test]
async fn pushes_past_the_limit_are_denied_and_write_nothing() {
    let reg = TestRegistry::secure().await;
    let id = project(&reg, "small", Some(200)).await;
    reg.log_in(Some(ADMIN));
    let r = upload(&reg, "small/app", &[7u8; 300]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "DENIED");
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("uses 0 bytes of its limit of 200 bytes") && message.contains("300"),
        "{message}"
    );
    let r = reg.get("/v2/small/app/blobs/uploads/").await;
    assert_ne!(r.status, StatusCode::OK);
    // Every blob fits on its own; with the manifest, the image does not.
    assert_eq!(
        upload(&reg, "small/app", b"layer").await.status,
        StatusCode::CREATED
    );
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    assert_eq!(
        upload(&reg, "small/app", config).await.status,
        StatusCode::CREATED
    );
    let manifest = image_manifest(config, &[b"layer"]);
    assert!(manifest.len() + config.len() + 5 > 200);
    let r = put(&reg, "small/app", "v1", &manifest).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(r.error_code(), "DENIED");
    assert_eq!(used(&reg, id).await, 0);
    assert_eq!(
        reg.get("/v2/small/app/manifests/v1").await.status,
        StatusCode::NOT_FOUND
    );
    // Raised, the same push goes through.
    let r = set_limit(&reg, id, -1).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = put(&reg, "small/app", "v1", &manifest).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        used(&reg, id).await,
        (manifest.len() + config.len() + 5) as i64
    );
}

#[tokio::test]
async fn quotas_are_read_and_changed_by_administrators() {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    create_user(&reg, "bob").await;
    let id = project(&reg, "team", None).await;
    call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects/team/members",
        "/projects/{project_name_or_id}/members",
        Some(json!({"role_id": 3, "member_user": {"username": "alice"}})),
    )
    .await;
    let uri = format!("/quotas/{id}");
    let r = call(&reg, Some(ADMIN), Method::GET, &uri, QUOTA, None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.json()["hard"]["storage"],
        json!(-1),
        "the default: no limit"
    );
    for who in [ALICE, BOB] {
        assert_eq!(
            call(&reg, Some(who), Method::GET, &uri, QUOTA, None)
                .await
                .status,
            StatusCode::FORBIDDEN,
            "{} is no system administrator",
            who.0
        );
    }
    assert_eq!(
        call(&reg, Some(ALICE), Method::GET, "/quotas", QUOTAS, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let unknown = "/quotas/999".to_owned();
    let cases = [
        (ALICE, &uri, 10, StatusCode::FORBIDDEN),
        (ADMIN, &uri, 0, StatusCode::BAD_REQUEST),
        (ADMIN, &uri, -2, StatusCode::BAD_REQUEST),
        (ADMIN, &unknown, 10, StatusCode::NOT_FOUND),
        (ADMIN, &uri, 10, StatusCode::OK),
    ];
    for (who, target, storage, status) in cases {
        let body = json!({"hard": {"storage": storage}});
        let r = call(&reg, Some(who), Method::PUT, target, QUOTA, Some(body)).await;
        assert_eq!(r.status, status, "{:?} sets {storage} at {target}", who.0);
    }
    assert_eq!(quota_of(&reg, id).await["hard"]["storage"], json!(10));
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/audit-logs?q=operation=update,resource_type=quota",
        "/audit-logs",
        None,
    )
    .await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(1), "{:?}", r.body);
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/quotas?sort=-hard.storage&page_size=1",
        QUOTAS,
        None,
    )
    .await;
    assert_eq!(r.json()[0]["hard"]["storage"], json!(10));
    assert!(r.header("link").contains("rel=\"next\""), "{:?}", r.headers);
}

#[tokio::test]
async fn new_projects_get_the_configured_default_and_warnings_are_audited() {
    let reg = TestRegistry::secure().await;
    let configure = async |method: Method, body: Option<Value>| {
        call(
            &reg,
            Some(ADMIN),
            method,
            "/configurations",
            "/configurations",
            body,
        )
        .await
    };
    let r = configure(Method::PUT, Some(json!({"storage_per_project": 1000}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = configure(Method::GET, None).await;
    assert_eq!(r.json()["storage_per_project"]["value"], json!(1000));
    let r = configure(Method::PUT, Some(json!({"storage_per_project": 0}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let id = project(&reg, "team", None).await;
    assert_eq!(quota_of(&reg, id).await["hard"]["storage"], json!(1000));
    reg.log_in(Some(ADMIN));
    reg.push_blob("team/app", &[1u8; 900]).await;
    let warnings = async || warnings(&reg).await;
    assert_eq!(warnings().await, Some(0), "a blob link counts nothing");
    let manifest = image_manifest(&[1u8; 900], &[]);
    let r = put(&reg, "team/app", "v1", &manifest).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "900 + the manifest pass 1000"
    );
    let r = set_limit(&reg, id, 1200).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = put(&reg, "team/app", "v1", &manifest).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(warnings().await, Some(1), "past 85 % of 1200");
    let r = put(&reg, "team/app", "v2", &manifest).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(warnings().await, Some(1), "once per crossing");
}

/// Sets the `storage_per_project` setting as the administrator.
async fn default_limit(reg: &TestRegistry, bytes: i64) {
    let r = call(
        reg,
        Some(ADMIN),
        Method::PUT,
        "/configurations",
        "/configurations",
        Some(json!({"storage_per_project": bytes})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

/// As in Harbor, a project created by anyone but a system administrator gets the
/// `storage_per_project` limit whatever `storage_limit` it asks for: a user cannot
/// escape the default by asking for `-1`.
#[tokio::test]
async fn a_user_cannot_choose_the_limit_of_the_project_they_create() {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    default_limit(&reg, 1000).await;
    let r = call(
        &reg,
        Some(ALICE),
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "mine", "storage_limit": -1})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = created_id(&r);
    assert_eq!(
        quota_of(&reg, id).await["hard"]["storage"],
        json!(1000),
        "a user's project gets the default limit, not the one it asked for"
    );
}

/// As in Harbor, `storage_limit: 0` means the default.
#[tokio::test]
async fn a_storage_limit_of_zero_means_the_default() {
    let reg = TestRegistry::secure().await;
    default_limit(&reg, 1000).await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "zero", "storage_limit": 0})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        quota_of(&reg, created_id(&r)).await["hard"]["storage"],
        json!(1000)
    );
}

/// Usage that falls below the warning threshold by deletes and crosses it again is
/// warned again.
#[tokio::test]
async fn a_second_crossing_after_deletes_is_warned_again() {
    let reg = TestRegistry::secure().await;
    let id = project(&reg, "team", Some(1200)).await;
    reg.log_in(Some(ADMIN));
    reg.push_blob("team/app", &[1u8; 900]).await;
    let warnings = async || warnings(&reg).await;
    let manifest = image_manifest(&[1u8; 900], &[]);
    let r = put(&reg, "team/app", "v1", &manifest).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(warnings().await, Some(1), "past 85 % of 1200");
    let digest = sha256(&manifest);
    let r = reg
        .send_empty(Method::DELETE, &format!("/v2/team/app/manifests/{digest}"))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(used(&reg, id).await, 0);
    let r = put(&reg, "team/app", "v1", &manifest).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        warnings().await,
        Some(2),
        "from 0 bytes back past 85 % is a second crossing"
    );
}

/// As in Harbor, `GET /quotas/{id}` needs the system permission to read quotas, as
/// `GET /quotas` does: a project administrator who is not a system administrator is
/// refused with 403.
#[tokio::test]
async fn reading_one_quota_needs_the_system_permission_as_in_harbor() {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    let id = project(&reg, "team", None).await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects/team/members",
        "/projects/{project_name_or_id}/members",
        Some(json!({"role_id": 1, "member_user": {"username": "alice"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let uri = format!("/quotas/{id}");
    let r = call(&reg, Some(ALICE), Method::GET, &uri, QUOTA, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
}

/// How many `quota_warning` entries the audit log holds.
async fn warnings(reg: &TestRegistry) -> Option<usize> {
    let r = call(
        reg,
        Some(ADMIN),
        Method::GET,
        "/audit-logs?q=operation=quota_warning",
        "/audit-logs",
        None,
    )
    .await;
    r.json().as_array().map(Vec::len)
}

/// Whole blobs over the quota, each sent in one request with its length declared (and
/// so published before the step that refuses it): refused, and none of their bytes is
/// left in the blob store.
#[tokio::test]
async fn whole_blobs_refused_for_the_quota_leave_no_bytes() {
    let reg = TestRegistry::secure().await;
    project(&reg, "tight", Some(200)).await;
    reg.log_in(Some(ADMIN));
    for n in 0..4u8 {
        let data = vec![n; 100_000];
        let digest = sha256(&data);
        let uri = format!("/v2/tight/app/blobs/uploads/?digest={digest}");
        let len = data.len().to_string();
        let r = reg
            .send(
                Method::POST,
                &uri,
                &[("content-length", len.as_str())],
                data,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
        assert_eq!(
            reg.blobs.size(&digest).await.unwrap(),
            None,
            "the refused blob {n} was left in the blob store"
        );
    }
}
