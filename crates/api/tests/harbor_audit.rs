//! The audit log: registry and API changes are recorded with who, what, which
//! resource, the result, the address and the time; Harbor's filters and paging apply;
//! no secret ever appears in it.

mod common;

use common::harbor::*;
use common::*;

#[tokio::test]
async fn registry_and_api_changes_are_audited_and_filtered() {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
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
    reg.log_in(Some(a));
    let (digest, _) = reg.push_image("team/app", "v1", &[b"layer"]).await;
    assert_eq!(
        reg.send_empty(Method::DELETE, "/v2/team/app/manifests/v1")
            .await
            .status,
        StatusCode::ACCEPTED
    );
    // A refused push records nothing.
    reg.log_in(Some(("alice", "wrong")));
    let _ = reg
        .put_manifest("team/app", "v2", media_type::OCI_MANIFEST, b"{}")
        .await;
    reg.log_in(None);

    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/audit-logs?page_size=100",
        "/audit-logs",
        None,
    )
    .await;
    let entries = r.json();
    let seen: Vec<(String, String, String, String)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["username"].as_str().unwrap().to_owned(),
                e["operation"].as_str().unwrap().to_owned(),
                e["resource_type"].as_str().unwrap().to_owned(),
                e["resource"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let has = |user: &str, op: &str, kind: &str, resource: &str| {
        seen.iter()
            .any(|e| e == &(user.into(), op.into(), kind.into(), resource.into()))
    };
    assert!(has("admin", "create", "user", "alice"), "{seen:#?}");
    assert!(has("alice", "create", "project", "team"), "{seen:#?}");
    assert!(
        has("alice", "create", "artifact", "team/app:v1"),
        "{seen:#?}"
    );
    assert!(has("alice", "delete", "tag", "team/app:v1"), "{seen:#?}");
    assert!(
        !seen.iter().any(|e| e.3.contains("v2")),
        "a refused push was audited"
    );
    // Newest first, with Harbor's filters.
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/audit-logs?q=operation%3Dcreate%2Cusername%3Dalice",
        "/audit-logs",
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "2");
    assert_eq!(r.json()[0]["resource"], json!("team/app:v1"));
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/audit-logs?q=resource%3D~team%2Fapp",
        "/audit-logs",
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "2");
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/audit-logs?q=op_time%3D%5B2000-01-01%2000%3A00%3A00~2001-01-01%2000%3A00%3A00%5D",
        "/audit-logs",
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "0");
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/auditlog-exts?page_size=1",
        "/auditlog-exts",
        None,
    )
    .await;
    assert_eq!(r.json()[0]["operation_result"], json!(true));
    // The project's own log, for those who may read it; others see nothing of it.
    let r = call(
        &reg,
        Some(a),
        Method::GET,
        "/projects/team/logs",
        "/projects/{project_name}/logs",
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.header("x-total-count")),
        (StatusCode::OK, "3"),
        "{:?}",
        r.body
    );
    let r = call(
        &reg,
        Some(a),
        Method::GET,
        "/audit-logs",
        "/audit-logs",
        None,
    )
    .await;
    assert_eq!(
        r.header("x-total-count"),
        "3",
        "alice sees her project's entries only"
    );
    create_user(&reg, "bob").await;
    let b = ("bob", PASSWORD);
    let r = call(
        &reg,
        Some(b),
        Method::GET,
        "/projects/team/logs",
        "/projects/{project_name}/logs",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &reg,
        Some(b),
        Method::GET,
        "/audit-logs",
        "/audit-logs",
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "0");
    assert_eq!(
        call(&reg, None, Method::GET, "/audit-logs", "/audit-logs", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/audit-logs?q=client_ip%3D1",
        "/audit-logs",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!seen.iter().any(|e| e.3.contains(digest.as_str())));
}

#[tokio::test]
async fn secrets_never_reach_the_audit_log_or_the_database_in_clear() {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "team"})),
    )
    .await;
    let r = call(&reg, Some(ADMIN), Method::POST, "/robots", "/robots", Some(json!({
        "name": "ci", "level": "project", "duration": -1,
        "permissions": [{"kind": "project", "namespace": "team", "access": [{"resource": "repository", "action": "pull"}]}],
    }))).await;
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/audit-logs?page_size=100",
        "/audit-logs",
        None,
    )
    .await;
    let log = String::from_utf8_lossy(&r.body).into_owned();
    for canary in [PASSWORD, secret.as_str(), berth_testkit::ADMIN_PASSWORD] {
        assert!(!log.contains(canary), "a secret is in the audit log");
    }
    // Nor in the database.
    for part in reg.metadata_at_rest().await {
        for canary in [PASSWORD, secret.as_str(), berth_testkit::ADMIN_PASSWORD] {
            assert!(
                !part
                    .bytes
                    .windows(canary.len())
                    .any(|w| w == canary.as_bytes()),
                "a secret is in {} in clear",
                part.name
            );
        }
    }
}

#[tokio::test]
async fn pulls_are_audited_when_configured() {
    let config = berth_app::RegistryConfig {
        audit_pulls: true,
        ..Default::default()
    };
    let reg =
        TestRegistry::secure_with(config, std::sync::Arc::new(berth_app::SystemClock), None).await;
    reg.log_in(Some(ADMIN));
    reg.push_image("library/app", "v1", &[b"layer"]).await;
    reg.log_in(None);
    assert_eq!(
        reg.get("/v2/library/app/manifests/v1").await.status,
        StatusCode::OK
    );
    reg.registry.flush_pulls().await.unwrap();
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/audit-logs?q=operation%3Dpull",
        "/audit-logs",
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "1");
    assert_eq!(
        (
            r.json()[0]["username"].clone(),
            r.json()[0]["resource"].clone()
        ),
        (json!("anonymous"), json!("library/app:v1"))
    );
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/projects/library/repositories/app",
        "/projects/{project_name}/repositories/{repository_name}",
        None,
    )
    .await;
    assert_eq!(r.json()["pull_count"], json!(1));
    // Old entries are dropped by the retention purge.
    let deleted = reg
        .identity
        .stores
        .audit
        .purge_audit(i64::MAX)
        .await
        .unwrap();
    assert!(deleted >= 2);
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/audit-logs",
        "/audit-logs",
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "0");
}
