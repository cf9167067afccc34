//! Harbor's API for users, projects and members: Harbor's paths, JSON shapes (checked
//! against the swagger), status codes, paging headers and error bodies.

mod common;

use common::harbor::*;
use common::*;

#[tokio::test]
async fn users_are_created_listed_updated_and_deleted_as_harbor_does() {
    let reg = TestRegistry::secure().await;
    let alice = create_user(&reg, "alice").await;
    // Mass assignment: the request's admin flag and id were ignored.
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        &format!("/users/{alice}"),
        "/users/{user_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["sysadmin_flag"], json!(false));
    assert_eq!(r.json()["user_id"], json!(alice));
    assert_ne!(r.json()["creation_time"], json!("2001-01-01T00:00:00Z"));

    // Duplicates, weak passwords, bad names.
    let dup = call(&reg, Some(ADMIN), Method::POST, "/users", "/users", Some(json!({
        "username": "alice", "email": "other@example.com", "realname": "a", "password": PASSWORD,
    }))).await;
    assert_eq!(
        (dup.status, dup.json()["errors"][0]["code"].clone()),
        (StatusCode::CONFLICT, json!("CONFLICT"))
    );
    for (name, password) in [
        ("bob", "weak"),
        ("bob", "alllowercase1"),
        ("bo:b", PASSWORD),
        ("robot$x", PASSWORD),
    ] {
        let r = call(
            &reg,
            Some(ADMIN),
            Method::POST,
            "/users",
            "/users",
            Some(json!({
                "username": name, "email": "b@example.com", "password": password,
            })),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name} {password}");
    }

    // Listing with paging headers and q.
    for name in ["bob", "carol", "dave"] {
        create_user(&reg, name).await;
    }
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/users?page=1&page_size=2&sort=username",
        "/users",
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "5");
    let names: Vec<Value> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].clone())
        .collect();
    assert_eq!(names, [json!("admin"), json!("alice")]);
    assert!(
        r.header("link").contains("rel=\"next\""),
        "{}",
        r.header("link")
    );
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/users?q=username%3D~aro",
        "/users",
        None,
    )
    .await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    for hidden in ["password_hash%3D~a", "password%3D~%24argon", "salt%3Dx"] {
        let r = call(
            &reg,
            Some(ADMIN),
            Method::GET,
            &format!("/users?q={hidden}"),
            "/users",
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{hidden}");
    }
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/users?page_size=101",
        "/users",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Users see themselves, search others (ids and names only), not the list.
    let me = ("alice", PASSWORD);
    assert_eq!(
        call(&reg, Some(me), Method::GET, "/users", "/users", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = call(
        &reg,
        Some(me),
        Method::GET,
        "/users/current",
        "/users/current",
        None,
    )
    .await;
    assert_eq!(r.json()["username"], json!("alice"));
    let r = call(
        &reg,
        Some(me),
        Method::GET,
        "/users/search?username=bo",
        "/users/search",
        None,
    )
    .await;
    assert_eq!(
        r.json(),
        json!([{"user_id": r.json()[0]["user_id"], "username": "bob"}])
    );
    let r = call(
        &reg,
        Some(me),
        Method::GET,
        "/users/1",
        "/users/{user_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        call(
            &reg,
            None,
            Method::GET,
            "/users/current",
            "/users/current",
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );

    // Profile and password.
    let r = call(
        &reg,
        Some(me),
        Method::PUT,
        &format!("/users/{alice}"),
        "/users/{user_id}",
        Some(json!({"realname": "Alice A.", "sysadmin_flag": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        &format!("/users/{alice}"),
        "/users/{user_id}",
        None,
    )
    .await;
    assert_eq!(
        (
            r.json()["realname"].clone(),
            r.json()["sysadmin_flag"].clone()
        ),
        (json!("Alice A."), json!(false))
    );
    let wrong = call(
        &reg,
        Some(me),
        Method::PUT,
        &format!("/users/{alice}/password"),
        "/users/{user_id}/password",
        Some(json!({"old_password": "nope", "new_password": "N3wPassword"})),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let ok = call(
        &reg,
        Some(me),
        Method::PUT,
        &format!("/users/{alice}/password"),
        "/users/{user_id}/password",
        Some(json!({"old_password": PASSWORD, "new_password": "N3wPassword"})),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        call(
            &reg,
            Some(me),
            Method::GET,
            "/users/current",
            "/users/current",
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    let me = ("alice", "N3wPassword");
    assert_eq!(
        call(
            &reg,
            Some(me),
            Method::GET,
            "/users/current",
            "/users/current",
            None
        )
        .await
        .status,
        StatusCode::OK
    );

    // Administration: only admins grant it, never to themselves; delete.
    let r = call(
        &reg,
        Some(me),
        Method::PUT,
        &format!("/users/{alice}/sysadmin"),
        "/users/{user_id}/sysadmin",
        Some(json!({"sysadmin_flag": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PUT,
        &format!("/users/{alice}/sysadmin"),
        "/users/{user_id}/sysadmin",
        Some(json!({"sysadmin_flag": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        call(&reg, Some(me), Method::GET, "/users", "/users", None)
            .await
            .status,
        StatusCode::OK
    );
    let r = call(
        &reg,
        Some(me),
        Method::DELETE,
        &format!("/users/{alice}"),
        "/users/{user_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "deleting oneself");
    let r = call(
        &reg,
        Some(ADMIN),
        Method::DELETE,
        &format!("/users/{alice}"),
        "/users/{user_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        &format!("/users/{alice}"),
        "/users/{user_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn projects_and_members_follow_harbor() {
    let reg = TestRegistry::secure().await;
    let alice = create_user(&reg, "alice").await;
    create_user(&reg, "bob").await;
    let (a, b) = (("alice", PASSWORD), ("bob", PASSWORD));

    // Anyone logged in creates projects (project_creation_restriction = everyone).
    let r = call(
        &reg,
        Some(a),
        Method::POST,
        "/projects",
        "/projects",
        Some(
            json!({"project_name": "team", "metadata": {"public": "false", "auto_scan": "true"},
                    "owner_id": 1, "project_id": 77}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let location = r.header("location").to_owned();
    assert!(location.starts_with("/api/v2.0/projects/"));
    let dup = call(
        &reg,
        Some(a),
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "team"})),
    )
    .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    for bad in ["Team", "a/b", "", "-x"] {
        let r = call(
            &reg,
            Some(a),
            Method::POST,
            "/projects",
            "/projects",
            Some(json!({"project_name": bad})),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    let r = call(
        &reg,
        None,
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "anon"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // The creator owns it and is its project admin.
    let r = call(
        &reg,
        Some(a),
        Method::GET,
        "/projects/team",
        "/projects/{project_name_or_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let p = r.json();
    assert_eq!(
        (p["owner_id"].clone(), p["owner_name"].clone()),
        (json!(alice), json!("alice"))
    );
    assert_eq!(p["current_user_role_id"], json!(1));
    assert_eq!(
        p["metadata"],
        json!({"public": "false", "auto_scan": "true"})
    );
    let id = p["project_id"].as_i64().unwrap();
    let r = call(
        &reg,
        Some(a),
        Method::GET,
        &format!("/projects/{id}"),
        "/projects/{project_name_or_id}",
        None,
    )
    .await;
    assert_eq!(r.json()["name"], json!("team"));

    // Others do not see a private project: listing, reading, existence.
    let r = call(&reg, Some(b), Method::GET, "/projects", "/projects", None).await;
    assert_eq!(
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].clone())
            .collect::<Vec<_>>(),
        vec![json!("library")]
    );
    let r = call(
        &reg,
        Some(b),
        Method::GET,
        "/projects/team",
        "/projects/{project_name_or_id}",
        None,
    )
    .await;
    let missing = call(
        &reg,
        Some(b),
        Method::GET,
        "/projects/nothing",
        "/projects/{project_name_or_id}",
        None,
    )
    .await;
    assert_eq!(
        (r.status, missing.status),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
    );
    let r = call(
        &reg,
        None,
        Method::GET,
        "/projects/team",
        "/projects/{project_name_or_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(&reg, None, Method::GET, "/projects", "/projects", None).await;
    assert_eq!(r.header("x-total-count"), "1");
    let head = reg
        .send(
            Method::HEAD,
            "/api/v2.0/projects?project_name=team",
            &[("authorization", &basic(b))],
            Body::empty(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    let head = reg
        .send(
            Method::HEAD,
            "/api/v2.0/projects?project_name=none",
            &[("authorization", &basic(b))],
            Body::empty(),
        )
        .await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);

    // Members: alice adds bob as a guest; bob then sees the project but cannot change it.
    let r = call(
        &reg,
        Some(a),
        Method::POST,
        "/projects/team/members",
        "/projects/{project_name_or_id}/members",
        Some(json!({"role_id": 3, "member_user": {"username": "bob"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let mid: i64 = r
        .header("location")
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let r = call(
        &reg,
        Some(a),
        Method::POST,
        "/projects/team/members",
        "/projects/{project_name_or_id}/members",
        Some(json!({"role_id": 3, "member_user": {"username": "bob"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = call(
        &reg,
        Some(a),
        Method::GET,
        "/projects/team/members",
        "/projects/{project_name_or_id}/members",
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "2");
    let r = call(
        &reg,
        Some(b),
        Method::GET,
        "/projects/team",
        "/projects/{project_name_or_id}",
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["current_user_role_id"].clone()),
        (StatusCode::OK, json!(3))
    );
    let r = call(
        &reg,
        Some(b),
        Method::PUT,
        "/projects/team",
        "/projects/{project_name_or_id}",
        Some(json!({"metadata": {"public": "true"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        &reg,
        Some(b),
        Method::POST,
        "/projects/team/members",
        "/projects/{project_name_or_id}/members",
        Some(json!({"role_id": 1, "member_user": {"username": "bob"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Promote bob to maintainer: still no settings.
    let r = call(
        &reg,
        Some(a),
        Method::PUT,
        &format!("/projects/team/members/{mid}"),
        "/projects/{project_name_or_id}/members/{mid}",
        Some(json!({"role_id": 4})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &reg,
        Some(a),
        Method::GET,
        &format!("/projects/team/members/{mid}"),
        "/projects/{project_name_or_id}/members/{mid}",
        None,
    )
    .await;
    assert_eq!(
        (r.json()["role_id"].clone(), r.json()["entity_name"].clone()),
        (json!(4), json!("bob"))
    );
    let r = call(
        &reg,
        Some(b),
        Method::PUT,
        "/projects/team",
        "/projects/{project_name_or_id}",
        Some(json!({"metadata": {"public": "true"}})),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "maintainers may not change project metadata"
    );

    // Settings, summary, deletion.
    let r = call(
        &reg,
        Some(a),
        Method::PUT,
        "/projects/team",
        "/projects/{project_name_or_id}",
        Some(json!({"metadata": {"public": "true", "severity": "high"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &reg,
        Some(a),
        Method::PUT,
        "/projects/team",
        "/projects/{project_name_or_id}",
        Some(json!({"metadata": {"unknown_key": "1"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(
        &reg,
        None,
        Method::GET,
        "/projects/team",
        "/projects/{project_name_or_id}",
        None,
    )
    .await;
    assert_eq!(r.json()["metadata"]["public"], json!("true"));
    let r = call(
        &reg,
        Some(a),
        Method::GET,
        "/projects/team/summary",
        "/projects/{project_name_or_id}/summary",
        None,
    )
    .await;
    assert_eq!(
        (
            r.json()["project_admin_count"].clone(),
            r.json()["maintainer_count"].clone()
        ),
        (json!(1), json!(1))
    );
    reg.log_in(Some(("alice", PASSWORD)));
    reg.push_image("team/app", "v1", &[b"layer"]).await;
    let r = call(
        &reg,
        Some(a),
        Method::GET,
        "/projects/team/_deletable",
        "/projects/{project_name_or_id}/_deletable",
        None,
    )
    .await;
    assert_eq!(r.json()["deletable"], json!(false));
    let r = call(
        &reg,
        Some(a),
        Method::DELETE,
        "/projects/team",
        "/projects/{project_name_or_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = call(
        &reg,
        Some(a),
        Method::DELETE,
        &format!("/projects/team/members/{mid}"),
        "/projects/{project_name_or_id}/members/{mid}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &reg,
        Some(b),
        Method::GET,
        "/projects/team/members",
        "/projects/{project_name_or_id}/members",
        None,
    )
    .await;
    // A public project shows its content to everyone, but its members only to members.
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn ping_health_and_systeminfo_answer() {
    let reg = TestRegistry::secure().await;
    let r = reg.get("/api/v2.0/ping").await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"Pong"[..]));
    let r = call(&reg, None, Method::GET, "/health", "/health", None).await;
    assert_eq!(r.json()["status"], json!("healthy"));
    let r = call(&reg, None, Method::GET, "/systeminfo", "/systeminfo", None).await;
    assert_eq!(r.json()["auth_mode"], json!("db_auth"));
    let r = call(&reg, None, Method::GET, "/nothing/here", "/health", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn robots_are_created_with_a_secret_shown_once_and_log_in() {
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
        Some(ADMIN),
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "other"})),
    )
    .await;
    let project_id = call(
        &reg,
        Some(a),
        Method::GET,
        "/projects/team",
        "/projects/{project_name_or_id}",
        None,
    )
    .await
    .json()["project_id"]
        .as_i64()
        .unwrap();
    let robot = |namespace: &str, actions: &[&str]| {
        json!({
            "name": "ci", "description": "pushes builds", "level": "project", "duration": -1,
            "permissions": [{"kind": "project", "namespace": namespace, "access":
                actions.iter().map(|a| json!({"resource": "repository", "action": a})).collect::<Vec<_>>()}],
        })
    };
    let r = call(
        &reg,
        Some(a),
        Method::POST,
        "/robots",
        "/robots",
        Some(robot("team", &["pull", "push"])),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let created = r.json();
    assert_eq!(created["name"], json!("robot$team+ci"));
    assert_eq!(created["expires_at"], json!(-1));
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_i64().unwrap();
    // Never shown again.
    let r = call(
        &reg,
        Some(a),
        Method::GET,
        &format!("/robots/{id}"),
        "/robots/{robot_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json().get("secret").is_none());
    assert!(!String::from_utf8_lossy(&r.body).contains(&secret));
    // Another project, an unknown permission, escalation: refused.
    let r = call(
        &reg,
        Some(a),
        Method::POST,
        "/robots",
        "/robots",
        Some(robot("other", &["pull"])),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    let r = call(
        &reg,
        Some(a),
        Method::POST,
        "/robots",
        "/robots",
        Some(robot("team", &["fly"])),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let system = json!({"name": "all", "level": "system", "duration": 30,
        "permissions": [{"kind": "project", "namespace": "*", "access": [{"resource": "repository", "action": "pull"}]}]});
    assert_eq!(
        call(
            &reg,
            Some(a),
            Method::POST,
            "/robots",
            "/robots",
            Some(system.clone())
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/robots",
        "/robots",
        Some(system),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["name"].clone()),
        (StatusCode::CREATED, json!("robot$all"))
    );

    // The robot logs in on /v2/ and pushes to its project only.
    reg.log_in(Some(("robot$team+ci", &secret)));
    reg.push_image("team/app", "v1", &[b"robot layer"]).await;
    let r = reg
        .send(
            Method::POST,
            "/v2/other/app/blobs/uploads/",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    reg.log_in(None);

    // Listing: others' robots are hidden; the project's are listed for its admin.
    let r = call(
        &reg,
        Some(a),
        Method::GET,
        &format!("/robots?q=Level%3Dproject%2CProjectID%3D{project_id}"),
        "/robots",
        None,
    )
    .await;
    assert_eq!((r.status, r.header("x-total-count")), (StatusCode::OK, "1"));
    assert_eq!(
        call(&reg, Some(a), Method::GET, "/robots", "/robots", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(
            &reg,
            Some(("bob", PASSWORD)),
            Method::GET,
            &format!("/robots/{id}"),
            "/robots/{robot_id}",
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&reg, Some(ADMIN), Method::GET, "/robots", "/robots", None)
            .await
            .header("x-total-count"),
        "2"
    );

    // A refreshed secret replaces the old one; disabling stops logins.
    let r = call(
        &reg,
        Some(a),
        Method::PATCH,
        &format!("/robots/{id}"),
        "/robots/{robot_id}",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let fresh = r.json()["secret"].as_str().unwrap().to_owned();
    assert_ne!(fresh, secret);
    assert_eq!(v2(&reg, &secret).await, StatusCode::UNAUTHORIZED);
    assert_eq!(v2(&reg, &fresh).await, StatusCode::OK);
    let mut update = robot("team", &["pull"]);
    update["disable"] = json!(true);
    update["name"] = json!("robot$team+ci");
    let r = call(
        &reg,
        Some(a),
        Method::PUT,
        &format!("/robots/{id}"),
        "/robots/{robot_id}",
        Some(update),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(v2(&reg, &fresh).await, StatusCode::UNAUTHORIZED);
    let r = call(
        &reg,
        Some(a),
        Method::DELETE,
        &format!("/robots/{id}"),
        "/robots/{robot_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &reg,
        Some(a),
        Method::GET,
        &format!("/robots/{id}"),
        "/robots/{robot_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// The status of `GET /v2/` for the `robot$team+ci` robot with `secret`.
async fn v2(reg: &TestRegistry, secret: &str) -> StatusCode {
    let auth = basic(("robot$team+ci", secret));
    reg.send(
        Method::GET,
        "/v2/",
        &[("authorization", auth.as_str())],
        Body::empty(),
    )
    .await
    .status
}

#[tokio::test]
async fn htpasswd_users_log_in_and_can_be_made_members() {
    let hash = bcrypt::hash("Htpass-w0rd", 4)
        .unwrap()
        .replace("$2b$", "$2y$");
    let file = berth_app::identity::Htpasswd::parse(&format!("carol:{hash}\n")).unwrap();
    let reg = TestRegistry::secure_with(
        Default::default(),
        std::sync::Arc::new(berth_app::SystemClock),
        Some(file),
    )
    .await;
    let carol = Some(("carol", "Htpass-w0rd"));
    assert_eq!(
        call(
            &reg,
            Some(("carol", "wrong")),
            Method::GET,
            "/users/current",
            "/users/current",
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    let r = call(
        &reg,
        carol,
        Method::GET,
        "/users/current",
        "/users/current",
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["username"].clone()),
        (StatusCode::OK, json!("carol"))
    );
    call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "team"})),
    )
    .await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects/team/members",
        "/projects/{project_name_or_id}/members",
        Some(json!({"role_id": 2, "member_user": {"username": "carol"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    reg.log_in(carol);
    reg.push_image("team/app", "v1", &[b"from htpasswd"]).await;
    // The file's password only: the row Berth keeps for carol holds no usable hash.
    let r = call(
        &reg,
        Some(("carol", "!htpasswd")),
        Method::GET,
        "/users/current",
        "/users/current",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn robots_stop_working_when_they_expire() {
    let clock = berth_testkit::ManualClock::new();
    let reg = TestRegistry::secure_with(Default::default(), clock.clone(), None).await;
    let r = call(&reg, Some(ADMIN), Method::POST, "/robots", "/robots", Some(json!({
        "name": "short", "level": "system", "duration": 1,
        "permissions": [{"kind": "project", "namespace": "library", "access": [{"resource": "repository", "action": "pull"}]}],
    }))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    let auth = basic(("robot$short", secret.as_str()));
    let headers = [("authorization", auth.as_str())];
    assert_eq!(
        reg.send(Method::GET, "/v2/", &headers, Body::empty())
            .await
            .status,
        StatusCode::OK
    );
    clock.advance(std::time::Duration::from_secs(2 * 86_400));
    reg.identity.authenticator.forget_all();
    assert_eq!(
        reg.send(Method::GET, "/v2/", &headers, Body::empty())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn open_mode_still_needs_an_administrator_for_the_api() {
    let reg = TestRegistry::new();
    assert_eq!(
        reg.get("/v2/any/repo/tags/list").await.status,
        StatusCode::NOT_FOUND
    );
    let r = call(&reg, None, Method::GET, "/users", "/users", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(
        &reg,
        None,
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "x"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn nulls_read_as_go_reads_them_and_locations_name_what_clients_ask() {
    let reg = TestRegistry::secure().await;
    // Python clients send unset fields as null: Harbor (Go) reads them as "" or 0.
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/users",
        "/users",
        Some(json!({
            "username": "alice", "email": "alice@example.com", "realname": null,
            "comment": null, "password": PASSWORD,
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let alice = r.header("location").rsplit('/').next().unwrap().to_owned();
    let user = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        &format!("/users/{alice}"),
        "/users/{user_id}",
        None,
    )
    .await;
    assert_eq!(
        (
            user.json()["realname"].clone(),
            user.json()["comment"].clone()
        ),
        (json!(""), json!(""))
    );
    // An administrator resets a password without the old one, sent as null.
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PUT,
        &format!("/users/{alice}/password"),
        "/users/{user_id}/password",
        Some(json!({"old_password": null, "new_password": "Reset-Passw0rd"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let me = ("alice", "Reset-Passw0rd");
    let r = call(
        &reg,
        Some(me),
        Method::GET,
        "/users/current",
        "/users/current",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Users changing their own still need the old one: null is a wrong password.
    let r = call(
        &reg,
        Some(me),
        Method::PUT,
        &format!("/users/{alice}/password"),
        "/users/{user_id}/password",
        Some(json!({"old_password": null, "new_password": "Other-Passw0rd"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // `X-Resource-Name-In-Location: true` puts the project's name in Location.
    let auth = basic(ADMIN);
    let create = |name: &'static str, by_name: Option<&'static str>| {
        let auth = auth.clone();
        let reg = &reg;
        async move {
            let mut headers = vec![
                ("content-type", "application/json"),
                ("authorization", auth.as_str()),
            ];
            if let Some(v) = by_name {
                headers.push(("x-resource-name-in-location", v));
            }
            let body = json!({"project_name": name, "metadata": null, "public": null});
            let r = reg
                .send(
                    Method::POST,
                    "/api/v2.0/projects",
                    &headers,
                    body.to_string(),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            r.header("location").to_owned()
        }
    };
    assert_eq!(
        create("named", Some("true")).await,
        "/api/v2.0/projects/named"
    );
    let by_id = create("numbered", Some("false")).await;
    let id = by_id.strip_prefix("/api/v2.0/projects/").unwrap();
    assert!(id.parse::<i64>().is_ok(), "{by_id}");
    let by_id = create("unsaid", None).await;
    assert!(
        by_id
            .strip_prefix("/api/v2.0/projects/")
            .unwrap()
            .parse::<i64>()
            .is_ok(),
        "{by_id}"
    );
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/projects/named",
        "/projects/{project_name_or_id}",
        None,
    )
    .await;
    assert_eq!(r.json()["metadata"]["public"], json!("false"));
}

#[tokio::test]
async fn current_user_permissions_list_one_namespace_as_harbor_does() {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    let a = ("alice", PASSWORD);
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "team"})),
    )
    .await;
    let id: i64 = r
        .header("location")
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects/team/members",
        "/projects/{project_name_or_id}/members",
        Some(json!({"role_id": 2, "member_user": {"username": "alice"}})),
    )
    .await;
    let permissions = |who: (&'static str, &'static str), query: String| {
        let reg = &reg;
        async move {
            let r = call(
                reg,
                Some(who),
                Method::GET,
                &format!("/users/current/permissions{query}"),
                "/users/current/permissions",
                None,
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{query}: {:?}", r.body);
            r.json()
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    format!(
                        "{} {}",
                        p["resource"].as_str().unwrap(),
                        p["action"].as_str().unwrap()
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    // No scope, or one naming no namespace: nothing.
    for query in ["", "?scope=/", "?scope=/project/team", "?scope=/elsewhere"] {
        assert_eq!(
            permissions(ADMIN, query.to_owned()).await,
            Vec::<String>::new(),
            "{query}"
        );
    }
    // The system namespace: Harbor's 53 system policies for an administrator, resources
    // under /system; nothing for a user.
    let system = permissions(ADMIN, "?scope=/system".into()).await;
    assert_eq!(system.len(), 53);
    assert!(
        system.contains(&"/system/user create".to_owned()),
        "{system:?}"
    );
    assert!(
        system.iter().all(|p| p.starts_with("/system/")),
        "{system:?}"
    );
    let relative = permissions(ADMIN, "?scope=/system&relative=true".into()).await;
    assert!(
        relative.contains(&"audit-log list".to_owned()),
        "{relative:?}"
    );
    assert!(!relative.iter().any(|p| p.starts_with("repository ")));
    assert!(permissions(a, "?scope=/system".into()).await.is_empty());
    // A project namespace: the member's role, the project itself as `.` relative
    // (or the scope itself), never a system resource.
    let scope = format!("/project/{id}");
    let mine = permissions(a, format!("?scope={scope}&relative=true")).await;
    for held in [". read", "repository push", "member list"] {
        assert!(mine.contains(&held.to_owned()), "{held}: {mine:?}");
    }
    for not_held in [". delete", "member create", "user create"] {
        assert!(!mine.contains(&not_held.to_owned()), "{not_held}: {mine:?}");
    }
    let absolute = permissions(a, format!("?scope={scope}")).await;
    assert!(absolute.contains(&format!("{scope} read")), "{absolute:?}");
    assert!(absolute.contains(&format!("{scope}/repository push")));
    let admin = permissions(ADMIN, format!("?scope={scope}&relative=true")).await;
    assert!(admin.contains(&". delete".to_owned()) && !admin.contains(&"user create".to_owned()));
    // A project the caller may not see grants nothing.
    assert!(
        permissions(a, "?scope=/project/999".into())
            .await
            .is_empty()
    );
    let r = call(
        &reg,
        None,
        Method::GET,
        "/users/current/permissions?scope=/system",
        "/users/current/permissions",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn project_metadata_is_read_and_changed_key_by_key() {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    create_user(&reg, "mona").await;
    let a = Some(("alice", PASSWORD));
    call(
        &reg,
        a,
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "team"})),
    )
    .await;
    call(
        &reg,
        a,
        Method::POST,
        "/projects/team/members",
        "/projects/{project_name_or_id}/members",
        Some(json!({"role_id": 4, "member_user": {"username": "mona"}})),
    )
    .await;
    let list = "/projects/{project_name_or_id}/metadatas/";
    let one = "/projects/{project_name_or_id}/metadatas/{meta_name}";
    let r = call(
        &reg,
        a,
        Method::POST,
        "/projects/team/metadatas/",
        list,
        Some(json!({"auto_scan": "true", "severity": "low"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = call(
        &reg,
        a,
        Method::GET,
        "/projects/team/metadatas/",
        list,
        None,
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"auto_scan": "true", "severity": "low", "public": "false"})
    );
    let r = call(
        &reg,
        a,
        Method::PUT,
        "/projects/team/metadatas/severity",
        one,
        Some(json!({"severity": "critical"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        call(
            &reg,
            a,
            Method::GET,
            "/projects/team/metadatas/severity",
            one,
            None
        )
        .await
        .json(),
        json!({"severity": "critical"})
    );
    assert_eq!(
        call(
            &reg,
            a,
            Method::PUT,
            "/projects/team/metadatas/severity",
            one,
            Some(json!({"auto_scan": "false"}))
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(
            &reg,
            a,
            Method::POST,
            "/projects/team/metadatas/",
            list,
            Some(json!({"severity": "extreme"}))
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    // B2 (Harbor CVE-2024-22278): a maintainer reads but never changes metadata.
    let m = Some(("mona", PASSWORD));
    assert_eq!(
        call(
            &reg,
            m,
            Method::GET,
            "/projects/team/metadatas/",
            list,
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    for (method, uri, template, body) in [
        (
            Method::POST,
            "/projects/team/metadatas/",
            list,
            Some(json!({"public": "true"})),
        ),
        (
            Method::PUT,
            "/projects/team/metadatas/auto_scan",
            one,
            Some(json!({"auto_scan": "false"})),
        ),
        (
            Method::DELETE,
            "/projects/team/metadatas/severity",
            one,
            None,
        ),
    ] {
        assert_eq!(
            call(&reg, m, method.clone(), uri, template, body)
                .await
                .status,
            StatusCode::FORBIDDEN,
            "{method} {uri}"
        );
    }
    let r = call(
        &reg,
        a,
        Method::DELETE,
        "/projects/team/metadatas/severity",
        one,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        call(
            &reg,
            a,
            Method::GET,
            "/projects/team/metadatas/severity",
            one,
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &reg,
            a,
            Method::GET,
            "/projects/team/metadatas/",
            list,
            None
        )
        .await
        .json(),
        json!({"auto_scan": "true", "public": "false"})
    );
}
