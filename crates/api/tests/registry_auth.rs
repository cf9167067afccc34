//! Authentication and authorization on `/v2/` and `/service/token`: challenges, Basic
//! and bearer credentials, project permissions, token scopes and forged tokens.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use berth_meta::{MemberKind, NewProject, NewUser};
use common::*;

const PASSWORD: &str = "Passw0rdPassw0rd";

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A secure registry with projects `p1` (private, alice a developer, bob a guest)
/// and `p2` (private, nobody).
async fn registry() -> TestRegistry {
    let reg = TestRegistry::secure().await;
    let now = 0;
    let audit =
        berth_app::identity::Actor::new("setup", None).audit("create", "test", "", None, now);
    let stores = &reg.identity.stores;
    let mut ids = Vec::new();
    for name in ["alice", "bob", "mallory"] {
        let id = stores
            .users
            .create_user(
                &NewUser {
                    username: name.into(),
                    email: format!("{name}@example.com"),
                    realname: name.into(),
                    comment: String::new(),
                    password_hash: reg.identity.passwords.hash(PASSWORD),
                    sysadmin: false,
                },
                now,
                &audit,
            )
            .await
            .unwrap();
        ids.push(id);
    }
    for name in ["p1", "p2"] {
        stores
            .projects
            .create_project(
                &NewProject {
                    name: name.into(),
                    owner_id: None,
                    public: false,
                    metadata: Default::default(),
                    storage_limit: None,
                },
                berth_authz::ROLE_PROJECT_ADMIN,
                now,
                &audit,
            )
            .await
            .unwrap();
    }
    let p1 = stores
        .projects
        .project_by_name("p1")
        .await
        .unwrap()
        .unwrap()
        .id;
    for (user, role) in [
        (ids[0], berth_authz::ROLE_DEVELOPER),
        (ids[1], berth_authz::ROLE_GUEST),
    ] {
        stores
            .projects
            .add_member(p1, MemberKind::User, user, role, now, &audit)
            .await
            .unwrap();
    }
    reg
}

async fn send(reg: &TestRegistry, method: Method, uri: &str, auth: &str) -> TestResponse {
    let headers: Vec<(&str, &str)> = if auth.is_empty() {
        Vec::new()
    } else {
        vec![("authorization", auth)]
    };
    reg.send(method, uri, &headers, Body::empty()).await
}

async fn token(reg: &TestRegistry, auth: &str, scope: &str) -> String {
    let r = send(
        reg,
        Method::GET,
        &format!("/service/token?service=berth-test&scope={scope}"),
        auth,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.json()["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn anonymous_callers_are_challenged_for_a_token() {
    let reg = registry().await;
    let r = reg.get("/v2/").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "UNAUTHORIZED");
    assert_eq!(
        r.header("www-authenticate"),
        r#"Bearer realm="http://berth.test/service/token",service="berth-test""#
    );
    let r = reg.get("/v2/p1/x/tags/list").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.header("www-authenticate"),
        r#"Bearer realm="http://berth.test/service/token",service="berth-test",scope="repository:p1/x:pull""#
    );
    // A project that does not exist looks exactly like a private one.
    let missing = reg.get("/v2/nope/x/tags/list").await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.body, r.body);
}

#[tokio::test]
async fn basic_credentials_work_on_v2_and_wrong_ones_do_not() {
    let reg = registry().await;
    assert_eq!(
        send(
            &reg,
            Method::GET,
            "/v2/",
            &basic("admin", berth_testkit::ADMIN_PASSWORD)
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&reg, Method::GET, "/v2/", &basic("alice", PASSWORD))
            .await
            .status,
        StatusCode::OK
    );
    for (user, password) in [("alice", "wrong"), ("nobody", PASSWORD), ("", "")] {
        let r = send(&reg, Method::GET, "/v2/", &basic(user, password)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user}");
        assert!(r.header("www-authenticate").starts_with("Bearer realm="));
    }
    let r = send(&reg, Method::GET, "/v2/", "Basic not-base64!").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn roles_decide_pull_push_and_delete_in_a_project() {
    let reg = registry().await;
    reg.log_in(Some(("alice", PASSWORD)));
    let (digest, _) = reg.push_image("p1/app", "v1", &[b"layer"]).await;
    // A guest pulls but may not push or delete.
    reg.log_in(Some(("bob", PASSWORD)));
    assert_eq!(
        reg.get("/v2/p1/app/manifests/v1").await.status,
        StatusCode::OK
    );
    let r = reg
        .send(
            Method::POST,
            "/v2/p1/app/blobs/uploads/",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (StatusCode::FORBIDDEN, "DENIED")
    );
    // A developer may not delete either.
    reg.log_in(Some(("alice", PASSWORD)));
    let r = reg
        .send_empty(Method::DELETE, &format!("/v2/p1/app/manifests/{digest}"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Someone else's private project answers the same whether it exists or not.
    let theirs = reg.get("/v2/p2/app/tags/list").await;
    let missing = reg.get("/v2/p3/app/tags/list").await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN);
    assert_eq!(
        (missing.status, missing.error_code()),
        (theirs.status, theirs.error_code())
    );
    // Only the administrator learns that a project is missing, with what to do.
    reg.log_in(Some(("admin", berth_testkit::ADMIN_PASSWORD)));
    let r = reg
        .send(
            Method::POST,
            "/v2/p3/app/blobs/uploads/",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "NAME_UNKNOWN");
    assert!(
        r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("create it")
    );
    let r = reg
        .send_empty(Method::DELETE, &format!("/v2/p1/app/manifests/{digest}"))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn anonymous_pulls_only_from_public_projects() {
    let reg = registry().await;
    reg.log_in(Some(("admin", berth_testkit::ADMIN_PASSWORD)));
    reg.push_image("library/hello", "latest", &[b"hello"]).await;
    reg.push_image("p2/secret", "latest", &[b"secret"]).await;
    reg.log_in(None);
    assert_eq!(
        reg.get("/v2/library/hello/manifests/latest").await.status,
        StatusCode::OK
    );
    assert_eq!(
        reg.get("/v2/p2/secret/manifests/latest").await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = reg
        .send(
            Method::POST,
            "/v2/library/hello/blobs/uploads/",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The catalog lists only what the caller may read.
    let r = reg.get("/v2/_catalog").await;
    assert_eq!(r.json()["repositories"], json!(["library/hello"]));
    reg.log_in(Some(("alice", PASSWORD)));
    assert_eq!(
        reg.get("/v2/_catalog").await.json()["repositories"],
        json!(["library/hello"])
    );
    reg.log_in(Some(("admin", berth_testkit::ADMIN_PASSWORD)));
    assert_eq!(
        reg.get("/v2/_catalog").await.json()["repositories"],
        json!(["library/hello", "p2/secret"])
    );
}

#[tokio::test]
async fn tokens_grant_only_what_the_caller_may_and_only_that_repository() {
    let reg = registry().await;
    let alice = basic("alice", PASSWORD);
    let bob = basic("bob", PASSWORD);
    let t = token(&reg, &alice, "repository:p1/x:pull,push").await;
    reg.log_in(None);
    let auth = bearer(&t);
    let headers = [("authorization", auth.as_str())];
    let data = b"pushed with a token";
    let d = sha256(data);
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/p1/x/blobs/uploads/?digest={d}"),
            &headers,
            Bytes::from_static(data),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // The token names exactly p1/x.
    for other in ["p1/xy", "p1/x/y", "p2/x"] {
        let r = reg
            .send(
                Method::GET,
                &format!("/v2/{other}/blobs/{d}"),
                &headers,
                Body::empty(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{other}");
        assert!(
            r.header("www-authenticate")
                .contains(r#"error="insufficient_scope""#)
        );
    }
    // Alice may not delete, so the token does not grant it even when asked.
    let t = token(&reg, &alice, "repository:p1/x:pull,push,delete").await;
    let r = send(
        &reg,
        Method::DELETE,
        &format!("/v2/p1/x/blobs/{d}"),
        &bearer(&t),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A guest's token pulls only.
    let t = token(&reg, &bob, "repository:p1/x:pull,push").await;
    assert_eq!(
        send(
            &reg,
            Method::GET,
            &format!("/v2/p1/x/blobs/{d}"),
            &bearer(&t)
        )
        .await
        .status,
        StatusCode::OK
    );
    for (method, uri) in [
        (Method::POST, "/v2/p1/x/blobs/uploads/".to_owned()),
        (Method::DELETE, format!("/v2/p1/x/blobs/{d}")),
        (Method::PUT, "/v2/p1/x/manifests/latest".to_owned()),
    ] {
        let r = send(&reg, method.clone(), &uri, &bearer(&t)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    assert_eq!(
        send(&reg, Method::GET, &format!("/v2/p1/x/blobs/{d}"), "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Scopes whose names carry a port or extra colons parse; they grant nothing here.
    let r = send(
        &reg,
        Method::GET,
        "/service/token?scope=repository:host:5000/p1/x:pull&scope=repository:p1/x:pull:extra",
        &alice,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Wrong credentials get no token at all.
    let r = send(
        &reg,
        Method::GET,
        "/service/token?scope=repository:p1/x:pull",
        &basic("alice", "nope"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn claims(exp_offset: i64, aud: &str, iss: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    json!({
        "iss": iss, "sub": "admin", "aud": aud, "exp": now + exp_offset, "nbf": now - 60,
        "iat": now - 60, "jti": "x",
        "access": [{"type": "repository", "name": "p2/x", "actions": ["pull", "push", "delete"]}],
    })
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let reg = registry().await;
    let key = jsonwebtoken::EncodingKey::from_ec_pem(reg.signing_key_pem.as_bytes()).unwrap();
    let sign = |claims: &Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            claims,
            &key,
        )
        .unwrap()
    };
    let valid = sign(&claims(300, "berth-test", "berth-test"));
    assert_eq!(
        send(&reg, Method::GET, "/v2/p2/x/tags/list", &bearer(&valid))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let mut forged = vec![
        ("expired", sign(&claims(-3600, "berth-test", "berth-test"))),
        ("wrong audience", sign(&claims(300, "other", "berth-test"))),
        ("wrong issuer", sign(&claims(300, "berth-test", "other"))),
    ];
    // alg none.
    let none = format!(
        "{}.{}.",
        encode_part(&json!({"alg": "none", "typ": "JWT"})),
        encode_part(&claims(300, "berth-test", "berth-test"))
    );
    forged.push(("alg none", none));
    // HS256 keyed with the public key.
    let pem = pem_public_key(&reg.signing_key_pem);
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(300, "berth-test", "berth-test"),
        &jsonwebtoken::EncodingKey::from_secret(&pem),
    )
    .unwrap();
    forged.push(("HS256 with the public key", hs));
    // Signed by another key that the header carries as a JWK.
    let other_pem = berth_app::identity::SigningKey::generate_pem().unwrap();
    let other = jsonwebtoken::EncodingKey::from_ec_pem(other_pem.as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.jwk = Some(
        serde_json::from_value(json!({
            "kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"
        }))
        .unwrap(),
    );
    let embedded =
        jsonwebtoken::encode(&header, &claims(300, "berth-test", "berth-test"), &other).unwrap();
    forged.push(("embedded JWK", embedded));
    // A token from another Berth.
    let elsewhere = TestRegistry::secure().await;
    forged.push((
        "another Berth's key",
        token(
            &elsewhere,
            &basic("admin", berth_testkit::ADMIN_PASSWORD),
            "repository:p2/x:pull",
        )
        .await,
    ));
    for (what, token) in forged {
        let r = send(&reg, Method::GET, "/v2/p2/x/tags/list", &bearer(&token)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            r.header("www-authenticate")
                .contains(r#"error="invalid_token""#),
            "{what}"
        );
    }
}

/// The SubjectPublicKeyInfo of a P-256 PKCS#8 key, as PEM bytes (what a forger of an
/// HS256 token would use as its secret).
fn pem_public_key(private_pem: &str) -> Vec<u8> {
    use ring::signature::KeyPair;
    let der = STANDARD
        .decode(
            private_pem
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    pair.public_key().as_ref().to_vec()
}

#[tokio::test]
async fn mounts_need_pull_on_the_source() {
    let reg = registry().await;
    reg.log_in(Some(("admin", berth_testkit::ADMIN_PASSWORD)));
    let secret = reg.push_blob("p2/secret", b"secret bytes").await;
    reg.log_in(Some(("alice", PASSWORD)));
    for uri in [
        format!("/v2/p1/x/blobs/uploads/?mount={secret}&from=p2/secret"),
        format!("/v2/p1/x/blobs/uploads/?mount={secret}"),
    ] {
        let r = reg.send(Method::POST, &uri, &[], Body::empty()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{uri}");
    }
    assert_eq!(
        reg.get(&format!("/v2/p1/x/blobs/{secret}")).await.status,
        StatusCode::NOT_FOUND
    );
    // A blob alice may read is mounted, with or without `from`.
    let own = reg.push_blob("p1/a", b"alice's bytes").await;
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/p1/b/blobs/uploads/?mount={own}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn oauth2_password_and_refresh_grants_issue_tokens() {
    let reg = registry().await;
    let form = "grant_type=password&username=alice&password=Passw0rdPassw0rd&service=berth-test&client_id=test&access_type=offline&scope=repository%3Ap1%2Fx%3Apull";
    let r = reg
        .send(
            Method::POST,
            "/service/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            form,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_owned();
    let access = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        send(&reg, Method::GET, "/v2/p1/x/tags/list", &bearer(&access))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let form = format!(
        "grant_type=refresh_token&refresh_token={refresh}&service=berth-test&scope=repository%3Ap1%2Fx%3Apull"
    );
    let r = reg.send(Method::POST, "/service/token", &[], form).await;
    assert_eq!(r.status, StatusCode::OK);
    // A refresh token is no access token, and an access token no refresh token.
    assert_eq!(
        send(&reg, Method::GET, "/v2/p1/x/tags/list", &bearer(&refresh))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let form = format!("grant_type=refresh_token&refresh_token={access}");
    assert_eq!(
        reg.send(Method::POST, "/service/token", &[], form)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = reg
        .send(
            Method::POST,
            "/service/token",
            &[],
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("unsupported_grant_type"))
    );
    let form = "grant_type=password&username=alice&password=wrong";
    assert_eq!(
        reg.send(Method::POST, "/service/token", &[], form)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled() {
    let reg = registry().await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let mut req = http::Request::builder()
            .uri("/v2/")
            .header("host", "berth.test")
            .header("authorization", basic("alice", "wrong"))
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(berth_api::ClientAddr("10.1.2.3".parse().unwrap()));
        statuses.push(reg.send_request(req).await);
    }
    let last = statuses.last().unwrap();
    assert_eq!(last.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(last.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(statuses[0].status, StatusCode::UNAUTHORIZED);
}
