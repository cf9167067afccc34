//! Findings of the adversarial review of identity and access: each test replays one
//! weakness it found (robot grants outliving their project, concurrent guesses past
//! the login throttle, refresh tokens and sessions outliving a password or an account,
//! reused ids, role escalation through membership, catalog leaks to robots, a robot
//! prefix shadowing users, unbounded token lifetimes) and checks it is gone.

mod common;

use std::sync::Arc;

use common::harbor::*;
use common::*;

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// Opens a browser session; returns the `Cookie` header value.
async fn session(reg: &TestRegistry, user: &str, password: &str) -> String {
    let r = reg
        .send(
            Method::POST,
            "/c/login",
            &[FORM],
            format!("principal={user}&password={password}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let sid = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next()?.strip_prefix("sid="))
        .unwrap()
        .to_owned();
    format!("sid={sid}")
}

async fn current_user(reg: &TestRegistry, cookie: &str) -> TestResponse {
    reg.send(
        Method::GET,
        "/api/v2.0/users/current",
        &[("cookie", cookie)],
        Body::empty(),
    )
    .await
}

/// An offline (refresh) token from the OAuth2 password grant.
async fn refresh_token(reg: &TestRegistry, user: &str, password: &str) -> String {
    let form = format!(
        "grant_type=password&username={user}&password={password}&service=berth-test\
         &client_id=test&access_type=offline&scope=repository%3Ap1%2Fx%3Apull"
    );
    let r = reg
        .send(Method::POST, "/service/token", &[FORM], form)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.json()["refresh_token"].as_str().unwrap().to_owned()
}

async fn use_refresh(reg: &TestRegistry, refresh: &str) -> StatusCode {
    let form = format!("grant_type=refresh_token&refresh_token={refresh}&service=berth-test");
    reg.send(Method::POST, "/service/token", &[FORM], form)
        .await
        .status
}

/// F1 (HIGH). A system robot's project permission is stored by project *name* and
/// resolved by name at every login. After its project is deleted, anyone who creates
/// a project of the same name hands the robot (and whoever holds its secret) access
/// to the new, unrelated, private project.
#[tokio::test]
async fn f1_system_robot_grant_outlives_its_project_and_applies_to_a_namesake() {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    create_project(&reg, ADMIN, "p1").await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/robots",
        "/robots",
        Some(json!({
            "name": "ci", "level": "system", "duration": -1,
            "permissions": [{"kind": "project", "namespace": "p1", "access": [
                {"resource": "repository", "action": "pull"},
                {"resource": "repository", "action": "push"}]}],
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let robot = r.json()["name"].as_str().unwrap().to_owned();
    let secret = r.json()["secret"].as_str().unwrap().to_owned();

    // The (empty) project goes away; alice later creates her own private `p1`.
    let r = call(
        &reg,
        Some(ADMIN),
        Method::DELETE,
        "/projects/p1",
        "/projects/{project_name_or_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    create_project(&reg, ("alice", PASSWORD), "p1").await;
    reg.log_in(Some(("alice", PASSWORD)));
    reg.push_image("p1/private", "v1", &[b"alice's secret layer"])
        .await;

    reg.log_in(Some((&robot, &secret)));
    let r = reg.get("/v2/p1/private/manifests/v1").await;
    assert_ne!(
        r.status,
        StatusCode::OK,
        "the old system robot pulls from alice's new private project p1"
    );
    let r = reg
        .push_blob_status("p1/private", b"planted by the robot")
        .await;
    assert!(
        !r.is_success(),
        "the old system robot pushes into alice's new private project p1: {r}"
    );
}

/// F2 (MEDIUM). The failed-login throttle checks the count before the (slow) hash
/// verification and counts the failure after it, so concurrent guesses from one
/// address all pass the check: 10 guesses per minute become as many as the client
/// sends at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn f2_concurrent_wrong_passwords_bypass_the_login_throttle() {
    let reg = Arc::new(TestRegistry::secure().await);
    create_user(&reg, "alice").await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..100 {
        let reg = reg.clone();
        set.spawn(async move {
            let mut req = http::Request::builder()
                .uri("/v2/")
                .header("host", "berth.test")
                .header("authorization", basic(("alice", &format!("guess{i}"))))
                .body(Body::empty())
                .unwrap();
            req.extensions_mut()
                .insert(berth_api::ClientAddr("10.9.9.9".parse().unwrap()));
            reg.send_request(req).await.status
        });
    }
    let mut verified = 0;
    while let Some(status) = set.join_next().await {
        if status.unwrap() == StatusCode::UNAUTHORIZED {
            verified += 1;
        }
    }
    assert!(
        verified <= 10,
        "{verified} of 100 concurrent guesses from one address were checked (limit 10 a minute)"
    );
}

/// F3 (MEDIUM). A refresh token (30 days) keeps buying access tokens after the
/// password it was obtained with is changed: resetting a leaked password does not
/// lock the thief out.
#[tokio::test]
async fn f3_refresh_tokens_survive_a_password_reset() {
    let reg = TestRegistry::secure().await;
    let id = create_user(&reg, "alice").await;
    let refresh = refresh_token(&reg, "alice", PASSWORD).await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PUT,
        &format!("/users/{id}/password"),
        "/users/{user_id}/password",
        Some(json!({"new_password": "An0therPassw0rd!"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        use_refresh(&reg, &refresh).await,
        StatusCode::UNAUTHORIZED,
        "a refresh token issued before the password reset still works"
    );
}

/// F3b (MEDIUM). Same for browser sessions: a session opened with the old password
/// stays valid (up to an hour) after the password is reset.
#[tokio::test]
async fn f3b_browser_sessions_survive_a_password_reset() {
    let reg = TestRegistry::secure().await;
    let id = create_user(&reg, "alice").await;
    let cookie = session(&reg, "alice", PASSWORD).await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PUT,
        &format!("/users/{id}/password"),
        "/users/{user_id}/password",
        Some(json!({"new_password": "An0therPassw0rd!"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        current_user(&reg, &cookie).await.status,
        StatusCode::UNAUTHORIZED,
        "a session opened before the password reset still works"
    );
}

/// F4 (MEDIUM). Sessions and refresh tokens name their account by login name only.
/// A deleted user's session and refresh token are inherited by the next account
/// created with that name (a different person, possibly an administrator).
#[tokio::test]
async fn f4_a_deleted_users_session_and_refresh_token_pass_to_a_new_namesake() {
    let reg = TestRegistry::secure().await;
    let id = create_user(&reg, "alice").await;
    let cookie = session(&reg, "alice", PASSWORD).await;
    let refresh = refresh_token(&reg, "alice", PASSWORD).await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::DELETE,
        &format!("/users/{id}"),
        "/users/{user_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // A new account of the same name, for someone else, made an administrator.
    let new_id = create_user(&reg, "alice").await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PUT,
        &format!("/users/{new_id}/sysadmin"),
        "/users/{user_id}/sysadmin",
        Some(json!({"sysadmin_flag": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let r = current_user(&reg, &cookie).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the deleted alice's session acts as the new alice: {:?}",
        r.body
    );
    assert_eq!(
        use_refresh(&reg, &refresh).await,
        StatusCode::UNAUTHORIZED,
        "the deleted alice's refresh token acts as the new alice"
    );
}

/// F5 (LOW). `robot_name_prefix` accepts a prefix of existing login names: setting it
/// to `adm` turns `admin` into a robot name, locking the administrator out (and any
/// system robot `in` would then answer to `admin`'s sessions).
#[tokio::test]
async fn f5_robot_name_prefix_may_not_shadow_existing_users() {
    let reg = TestRegistry::secure().await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PUT,
        "/configurations",
        "/configurations",
        Some(json!({"robot_name_prefix": "adm"})),
    )
    .await;
    let after = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/users/current",
        "/users/current",
        None,
    )
    .await;
    assert!(
        r.status == StatusCode::BAD_REQUEST || after.status == StatusCode::OK,
        "prefix accepted ({}), then admin cannot log in ({})",
        r.status,
        after.status
    );
}

/// F6 (LOW). `token_expiration` has no upper bound; `minutes * 60` then overflows
/// when a token is issued (a panic in debug builds, a wrapped, already expired
/// lifetime in release builds): every token request fails.
#[tokio::test]
async fn f6_token_expiration_is_bounded() {
    let reg = TestRegistry::secure().await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PUT,
        "/configurations",
        "/configurations",
        Some(json!({"token_expiration": 4_611_686_018_427_387_904_i64})),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a token lifetime of 2^62 minutes was accepted"
    );
}

trait PushStatus {
    async fn push_blob_status(&self, repo: &str, data: &[u8]) -> StatusCode;
}

impl PushStatus for TestRegistry {
    async fn push_blob_status(&self, repo: &str, data: &[u8]) -> StatusCode {
        let digest = sha256(data);
        self.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            &[("content-type", "application/octet-stream")],
            Bytes::copy_from_slice(data),
        )
        .await
        .status
    }
}

/// F7 (MEDIUM). Ids are SQLite rowids without `AUTOINCREMENT`, so a deleted
/// project's id (and a deleted user's) is given to the next one created. The audit log
/// keeps the old project's entries under that id: the new project's owner reads another
/// tenant's history (member names, repositories, robots) through `/projects/{p}/logs`.
#[tokio::test]
async fn f7_a_new_project_inherits_a_deleted_projects_id_and_audit_history() {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    create_user(&reg, "carol").await;
    create_user(&reg, "mallory").await;
    create_project(&reg, ("alice", PASSWORD), "secret-plans").await;
    let r = call(
        &reg,
        Some(("alice", PASSWORD)),
        Method::POST,
        "/projects/secret-plans/members",
        "/projects/{project_name_or_id}/members",
        Some(json!({"role_id": 2, "member_user": {"username": "carol"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let old_id = call(
        &reg,
        Some(("alice", PASSWORD)),
        Method::GET,
        "/projects/secret-plans",
        "/projects/{project_name_or_id}",
        None,
    )
    .await
    .json()["project_id"]
        .as_i64()
        .unwrap();
    let r = call(
        &reg,
        Some(("alice", PASSWORD)),
        Method::DELETE,
        "/projects/secret-plans",
        "/projects/{project_name_or_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    create_project(&reg, ("mallory", PASSWORD), "mine").await;
    let r = call(
        &reg,
        Some(("mallory", PASSWORD)),
        Method::GET,
        "/projects/mine/logs?page_size=100",
        "/projects/{project_name}/logs",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let new_id = call(
        &reg,
        Some(("mallory", PASSWORD)),
        Method::GET,
        "/projects/mine",
        "/projects/{project_name_or_id}",
        None,
    )
    .await
    .json()["project_id"]
        .as_i64()
        .unwrap();
    let leaked: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["operation"], e["resource_type"], e["resource"]
            )
        })
        .filter(|e| e.contains("carol") || e.contains("secret-plans"))
        .collect();
    assert!(
        new_id != old_id && leaked.is_empty(),
        "new project id {new_id} (deleted one was {old_id}); mallory reads: {leaked:?}"
    );
}

/// F8 (MEDIUM). Adding a member (or changing a role) never checks that the role's
/// permissions are ones the caller holds, unlike robot grants. A project robot granted
/// only `member:create` (and pull) makes any user — e.g. its operator — projectAdmin,
/// who then holds everything in the project (robots, deletion, members).
#[tokio::test]
async fn f8_a_robot_with_member_create_makes_a_user_project_admin() {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    create_user(&reg, "bob").await;
    create_project(&reg, ("alice", PASSWORD), "p1").await;
    let r = call(
        &reg,
        Some(("alice", PASSWORD)),
        Method::POST,
        "/robots",
        "/robots",
        Some(json!({
            "name": "onboarding", "level": "project", "duration": -1,
            "permissions": [{"kind": "project", "namespace": "p1", "access": [
                {"resource": "repository", "action": "pull"},
                {"resource": "member", "action": "create"}]}],
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let robot = r.json()["name"].as_str().unwrap().to_owned();
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    let r = call(
        &reg,
        Some((&robot, &secret)),
        Method::POST,
        "/projects/p1/members",
        "/projects/{project_name_or_id}/members",
        Some(json!({"role_id": 1, "member_user": {"username": "bob"}})),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a robot holding only pull and member:create made bob projectAdmin"
    );
}

/// F9 (LOW). A robot with any permission on every project (namespace `*`) sees every
/// project as `Visibility::All`: one granted only `label:read` lists the names of all
/// repositories of every private project in `/v2/_catalog`, though it may pull none.
#[tokio::test]
async fn f9_a_robot_with_an_unrelated_all_projects_permission_reads_the_whole_catalog() {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    create_project(&reg, ("alice", PASSWORD), "private").await;
    reg.log_in(Some(("alice", PASSWORD)));
    reg.push_image("private/launch-plans", "v1", &[b"x"]).await;
    reg.log_in(None);
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/robots",
        "/robots",
        Some(json!({
            "name": "labeler", "level": "system", "duration": -1,
            "permissions": [{"kind": "project", "namespace": "*", "access": [
                {"resource": "label", "action": "read"}]}],
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let robot = r.json()["name"].as_str().unwrap().to_owned();
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    reg.log_in(Some((&robot, &secret)));
    assert_ne!(
        reg.get("/v2/private/launch-plans/manifests/v1")
            .await
            .status,
        StatusCode::OK
    );
    let r = reg.get("/v2/_catalog").await;
    assert!(
        !String::from_utf8_lossy(&r.body).contains("launch-plans"),
        "catalog: {:?}",
        r.body
    );
}
