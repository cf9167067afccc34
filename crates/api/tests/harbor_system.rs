//! Harbor's system endpoints (`/configurations`, `/statistics`, `/search`) and browser
//! sessions with their CSRF token.

mod common;

use common::harbor::*;
use common::*;

#[tokio::test]
async fn configurations_are_read_and_changed_by_administrators_only() {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/configurations",
        "/configurations",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.json()["robot_name_prefix"],
        json!({"value": "robot$", "editable": true})
    );
    assert_eq!(r.json()["token_expiration"]["value"], json!(30));
    let a = Some(("alice", PASSWORD));
    assert_eq!(
        call(
            &reg,
            a,
            Method::GET,
            "/configurations",
            "/configurations",
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(
            &reg,
            a,
            Method::PUT,
            "/configurations",
            "/configurations",
            Some(json!({"self_registration": true}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    for bad in [
        json!({"token_expiration": -1}),
        json!({"auth_mode": "ldap_auth"}),
        json!({"ldap_url": "ldap://x"}),
        json!({"project_creation_restriction": "nobody"}),
    ] {
        let r = call(
            &reg,
            Some(ADMIN),
            Method::PUT,
            "/configurations",
            "/configurations",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = call(&reg, Some(ADMIN), Method::PUT, "/configurations", "/configurations",
        Some(json!({"project_creation_restriction": "adminonly", "token_expiration": 5, "ldap_url": null}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Only administrators create projects now; tokens last five minutes.
    let r = call(
        &reg,
        a,
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "mine"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = reg
        .send(
            Method::GET,
            "/service/token?scope=repository:library/x:pull",
            &[("authorization", &basic(ADMIN))],
            Body::empty(),
        )
        .await;
    assert_eq!(r.json()["expires_in"], json!(300));
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/audit-logs?q=resource_type%3Dconfiguration",
        "/audit-logs",
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "1");
}

#[tokio::test]
async fn statistics_and_search_cover_what_the_caller_may_see() {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "secret"})),
    )
    .await;
    reg.log_in(Some(ADMIN));
    reg.push_image("library/search-me", "v1", &[b"a"]).await;
    reg.push_image("secret/search-me", "v1", &[b"b"]).await;
    reg.log_in(None);
    let a = Some(("alice", PASSWORD));
    let r = call(&reg, a, Method::GET, "/statistics", "/statistics", None).await;
    assert_eq!(r.json()["total_project_count"], json!(1));
    assert_eq!(r.json()["public_repo_count"], json!(1));
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/statistics",
        "/statistics",
        None,
    )
    .await;
    assert_eq!(
        (
            r.json()["total_project_count"].clone(),
            r.json()["private_repo_count"].clone()
        ),
        (json!(2), json!(1))
    );
    assert_eq!(
        call(&reg, None, Method::GET, "/statistics", "/statistics", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = call(&reg, a, Method::GET, "/search?q=search", "/search", None).await;
    let names: Vec<Value> = r.json()["repository"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["repository_name"].clone())
        .collect();
    assert_eq!(names, [json!("library/search-me")]);
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/search?q=secret",
        "/search",
        None,
    )
    .await;
    assert_eq!(r.json()["project"][0]["name"], json!("secret"));
    assert_eq!(r.json()["repository"].as_array().unwrap().len(), 1);
    let r = call(&reg, None, Method::GET, "/search?q=secret", "/search", None).await;
    assert_eq!(r.json(), json!({"project": [], "repository": []}));
}

fn cookies(r: &TestResponse) -> (String, String) {
    let mut sid = String::new();
    let mut csrf = String::new();
    for v in r.headers.get_all("set-cookie") {
        let v = v.to_str().unwrap();
        let pair = v.split(';').next().unwrap();
        if let Some(s) = pair.strip_prefix("sid=") {
            assert!(v.contains("HttpOnly"), "{v}");
            sid = s.to_owned();
        }
        if let Some(s) = pair.strip_prefix("__csrf=") {
            csrf = s.to_owned();
        }
    }
    (sid, csrf)
}

#[tokio::test]
async fn browser_sessions_need_their_csrf_token_for_changes() {
    let reg = TestRegistry::secure().await;
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = reg
        .send(
            Method::POST,
            "/c/login",
            &form,
            "principal=admin&password=wrong",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = reg
        .send(
            Method::POST,
            "/c/login",
            &form,
            format!("principal=admin&password={}", berth_testkit::ADMIN_PASSWORD),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (sid, csrf) = cookies(&r);
    assert_eq!(r.header("x-harbor-csrf-token"), csrf);
    let cookie = format!("sid={sid}");
    let r = reg
        .send(
            Method::GET,
            "/api/v2.0/users/current",
            &[("cookie", &cookie)],
            Body::empty(),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["username"].clone()),
        (StatusCode::OK, json!("admin"))
    );
    // Without the token, with a wrong one, or from another origin: refused.
    for extra in [
        vec![],
        vec![("x-harbor-csrf-token", "nope".to_owned())],
        vec![
            ("x-harbor-csrf-token", csrf.clone()),
            ("origin", "https://evil.example".to_owned()),
        ],
    ] {
        let mut headers: Vec<(&str, &str)> =
            vec![("cookie", &cookie), ("content-type", "application/json")];
        headers.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let r = reg
            .send(
                Method::POST,
                "/api/v2.0/projects",
                &headers,
                json!({"project_name": "p"}).to_string(),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{extra:?}");
    }
    let headers = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/json"),
        ("x-harbor-csrf-token", csrf.as_str()),
        ("origin", "http://berth.test"),
    ];
    let r = reg
        .send(
            Method::POST,
            "/api/v2.0/projects",
            &headers,
            json!({"project_name": "p"}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // Basic credentials need no token.
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "q"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // After logout the cookie is worthless.
    let r = reg
        .send(
            Method::GET,
            "/c/log_out",
            &[("cookie", &cookie)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = reg
        .send(
            Method::GET,
            "/api/v2.0/users/current",
            &[("cookie", &cookie)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
