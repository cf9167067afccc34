//! Harbor's labels: `/labels` in the global and the project scope, the labels artifacts
//! carry (`…/artifacts/{reference}/labels`), artifact listings that show them and
//! filter by them, and what deleting a label or a project removes. Every answer is
//! checked against the swagger.

mod common;

use common::harbor::*;
use common::*;

const LABELS: &str = "/labels";
const LABEL: &str = "/labels/{label_id}";
const ARTIFACTS: &str = "/projects/{project_name}/repositories/{repository_name}/artifacts";
const ARTIFACT: &str =
    "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}";
const ARTIFACT_LABELS: &str =
    "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels";
const ARTIFACT_LABEL: &str = "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels/{label_id}";

const ALICE: (&str, &str) = ("alice", PASSWORD);
const BOB: (&str, &str) = ("bob", PASSWORD);

/// A registry with project `team` (alice its administrator, bob a guest) holding
/// `team/app:v1` and `team/app:v2`, and project `side` (alice's too); returns the ids
/// of `team` and `side`.
async fn populated() -> (TestRegistry, i64, i64) {
    let reg = TestRegistry::secure().await;
    create_user(&reg, "alice").await;
    create_user(&reg, "bob").await;
    let mut ids = Vec::new();
    for name in ["team", "side"] {
        ids.push(create_project(&reg, ALICE, name).await);
    }
    call(
        &reg,
        Some(ALICE),
        Method::POST,
        "/projects/team/members",
        "/projects/{project_name_or_id}/members",
        Some(json!({"role_id": 3, "member_user": {"username": "bob"}})),
    )
    .await;
    reg.log_in(Some(ALICE));
    reg.push_image("team/app", "v1", &[b"one"]).await;
    reg.push_image("team/app", "v2", &[b"two"]).await;
    reg.log_in(None);
    (reg, ids[0], ids[1])
}

/// Creates a label as `who`; returns the answer.
async fn create(reg: &TestRegistry, who: (&str, &str), body: Value) -> TestResponse {
    call(reg, Some(who), Method::POST, "/labels", LABELS, Some(body)).await
}

/// Creates a label that must be created; returns its id.
async fn created_label(reg: &TestRegistry, who: (&str, &str), body: Value) -> i64 {
    let r = create(reg, who, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let location = r.header("location");
    assert!(location.starts_with("/api/v2.0/labels/"), "{location}");
    location.rsplit('/').next().unwrap().parse().unwrap()
}

/// `GET uri` as `who`, checked against `template`.
async fn get(
    reg: &TestRegistry,
    who: Option<(&str, &str)>,
    uri: &str,
    template: &str,
) -> TestResponse {
    call(reg, who, Method::GET, uri, template, None).await
}

/// The names of a JSON array's items.
fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn global_labels_are_the_administrators_and_everyone_lists_them() {
    let (reg, _, _) = populated().await;
    let id = created_label(
        &reg,
        ADMIN,
        json!({"name": "prod", "description": "in production", "color": "#FF0000",
               "scope": "g", "project_id": 99, "id": 1234}),
    )
    .await;
    let r = get(&reg, Some(BOB), "/labels?scope=g", LABELS).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-total-count"), "1");
    let listed = &r.json()[0];
    assert_eq!(
        (
            listed["id"].clone(),
            listed["name"].clone(),
            listed["scope"].clone(),
            listed["project_id"].clone(),
            listed["color"].clone(),
        ),
        (
            json!(id),
            json!("prod"),
            json!("g"),
            json!(0),
            json!("#FF0000")
        )
    );
    assert_eq!(
        get(&reg, None, "/labels?scope=g", LABELS).await.status,
        StatusCode::OK,
        "anonymous callers list global labels too"
    );
    let uri = format!("/labels/{id}");
    let r = get(&reg, Some(ADMIN), &uri, LABEL).await;
    assert_eq!(
        (r.status, r.json()["description"].clone()),
        (StatusCode::OK, json!("in production"))
    );
    // Reading, changing and deleting one is the system's: anyone else is refused.
    assert_eq!(
        get(&reg, Some(ALICE), &uri, LABEL).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&reg, None, &uri, LABEL).await.status,
        StatusCode::UNAUTHORIZED
    );
    let global = json!({"name": "mine", "scope": "g"});
    assert_eq!(
        create(&reg, ALICE, global.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    let r = call(&reg, None, Method::POST, "/labels", LABELS, Some(global)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for who in [ALICE, BOB] {
        let r = call(&reg, Some(who), Method::DELETE, &uri, LABEL, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }

    let taken = create(&reg, ADMIN, json!({"name": "prod", "scope": "g"})).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    for bad in [
        json!({"name": "", "scope": "g"}),
        json!({"name": "x".repeat(129), "scope": "g"}),
        json!({"name": "odd", "scope": "x"}),
    ] {
        let r = create(&reg, ADMIN, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PUT,
        &uri,
        LABEL,
        Some(json!({"name": "production", "description": "", "color": "#00FF00", "scope": "p"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let changed = get(&reg, Some(ADMIN), &uri, LABEL).await.json();
    assert_eq!(
        (
            changed["name"].clone(),
            changed["description"].clone(),
            changed["scope"].clone()
        ),
        (json!("production"), json!(""), json!("g")),
        "an update keeps the scope"
    );
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PUT,
        &uri,
        LABEL,
        Some(json!({"name": ""})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(&reg, Some(ADMIN), Method::DELETE, &uri, LABEL, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        get(&reg, Some(ADMIN), &uri, LABEL).await.status,
        StatusCode::NOT_FOUND
    );
    let r = call(&reg, Some(ADMIN), Method::DELETE, &uri, LABEL, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Every change is in the audit log.
    let r = get(
        &reg,
        Some(ADMIN),
        "/audit-logs?q=resource_type%3Dlabel&sort=op_time",
        "/audit-logs",
    )
    .await;
    let operations: Vec<(Value, Value)> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["operation"].clone(), e["resource"].clone()))
        .collect();
    assert_eq!(
        operations,
        [
            (json!("create"), json!("prod")),
            (json!("update"), json!("production")),
            (json!("delete"), json!("production")),
        ]
    );
}

#[tokio::test]
async fn project_labels_follow_the_project_roles() {
    let (reg, team, side) = populated().await;
    let ci = created_label(
        &reg,
        ALICE,
        json!({"name": "ci", "scope": "p", "project_id": team, "color": "#0000FF"}),
    )
    .await;
    for name in ["qa", "release", "nightly"] {
        created_label(
            &reg,
            ALICE,
            json!({"name": name, "scope": "p", "project_id": team}),
        )
        .await;
    }
    // One name may be used in each project and once globally.
    created_label(
        &reg,
        ALICE,
        json!({"name": "ci", "scope": "p", "project_id": side}),
    )
    .await;
    created_label(&reg, ADMIN, json!({"name": "ci", "scope": "g"})).await;
    let again = json!({"name": "ci", "scope": "p", "project_id": team});
    assert_eq!(
        create(&reg, ALICE, again).await.status,
        StatusCode::CONFLICT
    );

    // A guest lists and reads them, but does not create, change or delete them.
    let uri = format!("/labels?scope=p&project_id={team}&page_size=2&page=1");
    let r = get(&reg, Some(BOB), &uri, LABELS).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(names(&r.json()), ["ci", "qa"]);
    assert_eq!(r.header("x-total-count"), "4");
    let link = r.header("link");
    assert!(
        link.contains("rel=\"next\"") && link.contains("page=2"),
        "{link}"
    );
    assert!(link.starts_with("</api/v2.0/labels?"), "{link}");
    let uri = format!("/labels?scope=p&project_id={team}&name=EA&sort=-name");
    let r = get(&reg, Some(BOB), &uri, LABELS).await;
    assert_eq!(names(&r.json()), ["release"]);
    let uri = format!("/labels?scope=p&project_id={team}&q=name%3D~a&sort=-name");
    assert_eq!(
        names(&get(&reg, Some(BOB), &uri, LABELS).await.json()),
        ["release", "qa"]
    );
    let one = format!("/labels/{ci}");
    let r = get(&reg, Some(BOB), &one, LABEL).await;
    assert_eq!(
        (
            r.status,
            r.json()["project_id"].clone(),
            r.json()["scope"].clone()
        ),
        (StatusCode::OK, json!(team), json!("p"))
    );
    let mine = json!({"name": "bobs", "scope": "p", "project_id": team});
    assert_eq!(create(&reg, BOB, mine).await.status, StatusCode::FORBIDDEN);
    let r = call(
        &reg,
        Some(BOB),
        Method::PUT,
        &one,
        LABEL,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(&reg, Some(BOB), Method::DELETE, &one, LABEL, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // A stranger to the project finds nothing; an anonymous caller must log in.
    create_user(&reg, "eve").await;
    let eve = Some(("eve", PASSWORD));
    let uri = format!("/labels?scope=p&project_id={team}");
    assert_eq!(
        get(&reg, eve, &uri, LABELS).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&reg, eve, &one, LABEL).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&reg, None, &one, LABEL).await.status,
        StatusCode::UNAUTHORIZED
    );

    // The scope must be named, and a project listing needs its project.
    for uri in [
        "/labels",
        "/labels?scope=x",
        "/labels?scope=p",
        "/labels?scope=p&project_id=0",
    ] {
        let r = get(&reg, Some(ADMIN), uri, LABELS).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
    }
    let nowhere = json!({"name": "lost", "scope": "p", "project_id": 4242});
    assert_eq!(
        create(&reg, ADMIN, nowhere).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn artifacts_carry_labels_and_are_filtered_by_them() {
    let (reg, team, side) = populated().await;
    let global = created_label(&reg, ADMIN, json!({"name": "prod", "scope": "g"})).await;
    let local = created_label(
        &reg,
        ALICE,
        json!({"name": "ci", "scope": "p", "project_id": team}),
    )
    .await;
    let foreign = created_label(
        &reg,
        ALICE,
        json!({"name": "ci", "scope": "p", "project_id": side}),
    )
    .await;
    let add = async |who, reference: &str, id: i64| {
        let uri = format!("/projects/team/repositories/app/artifacts/{reference}/labels");
        call(
            &reg,
            Some(who),
            Method::POST,
            &uri,
            ARTIFACT_LABELS,
            Some(json!({"id": id})),
        )
        .await
    };
    for (reference, id) in [("v1", global), ("v1", local), ("v2", local)] {
        let r = add(ALICE, reference, id).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    assert_eq!(add(ALICE, "v1", local).await.status, StatusCode::CONFLICT);
    assert_eq!(
        add(ALICE, "v1", foreign).await.status,
        StatusCode::NOT_FOUND,
        "a label of another project is refused"
    );
    assert_eq!(add(ALICE, "v1", 4242).await.status, StatusCode::NOT_FOUND);
    assert_eq!(add(ALICE, "v9", global).await.status, StatusCode::NOT_FOUND);
    assert_eq!(add(BOB, "v2", global).await.status, StatusCode::FORBIDDEN);

    // Listings show labels when asked, and filter by them.
    let list = async |query: &str| {
        let uri = format!("/projects/team/repositories/app/artifacts?{query}");
        get(&reg, Some(BOB), &uri, ARTIFACTS).await
    };
    let tags = |r: &TestResponse| -> Vec<Value> {
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["tags"][0]["name"].clone())
            .collect()
    };
    let r = list("with_label=true&sort=id").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(names(&r.json()[0]["labels"]), ["prod", "ci"]);
    assert_eq!(r.json()[0]["labels"][0]["scope"], json!("g"));
    assert_eq!(names(&r.json()[1]["labels"]), ["ci"]);
    assert!(list("sort=id").await.json()[0].get("labels").is_none());
    let both = format!("q=labels%3D({global}%20{local})");
    let r = list(&both).await;
    assert_eq!(
        (tags(&r), r.header("x-total-count")),
        (vec![json!("v1")], "1")
    );
    let r = list(&format!("q=labels%3D({local})&sort=id")).await;
    assert_eq!(tags(&r), [json!("v1"), json!("v2")]);
    assert_eq!(list("q=labels%3D(4242)").await.header("x-total-count"), "0");
    for bad in [format!("q=labels%3D{local}"), "q=labels%3D(ci)".to_owned()] {
        assert_eq!(list(&bad).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let uri = "/projects/team/repositories/app/artifacts/v2?with_label=true";
    let r = get(&reg, Some(BOB), uri, ARTIFACT).await;
    assert_eq!(names(&r.json()["labels"]), ["ci"]);

    // Removed from one artifact; deleting a label removes it from every artifact.
    let remove = async |who, reference: &str, id: i64| {
        let uri = format!("/projects/team/repositories/app/artifacts/{reference}/labels/{id}");
        call(&reg, Some(who), Method::DELETE, &uri, ARTIFACT_LABEL, None).await
    };
    assert_eq!(remove(BOB, "v2", local).await.status, StatusCode::FORBIDDEN);
    assert_eq!(remove(ALICE, "v2", local).await.status, StatusCode::OK);
    assert_eq!(
        remove(ALICE, "v2", local).await.status,
        StatusCode::NOT_FOUND
    );
    let r = call(
        &reg,
        Some(ADMIN),
        Method::DELETE,
        &format!("/labels/{global}"),
        LABEL,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = list("with_label=true&sort=id").await;
    assert_eq!(names(&r.json()[0]["labels"]), ["ci"]);
    assert!(r.json()[1].get("labels").is_none());

    // A deleted artifact takes its labels along.
    let r = call(
        &reg,
        Some(ALICE),
        Method::DELETE,
        "/projects/team/repositories/app/artifacts/v1",
        ARTIFACT,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = list(&format!("q=labels%3D({local})")).await;
    assert_eq!(r.header("x-total-count"), "0");

    // Adding and removing are in the audit log, in the artifact's project.
    let r = get(
        &reg,
        Some(ALICE),
        "/projects/team/logs?q=resource_type%3Dartifact_label&sort=op_time",
        "/projects/{project_name}/logs",
    )
    .await;
    let operations: Vec<Value> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["operation"].clone())
        .collect();
    assert_eq!(
        operations,
        [
            json!("create"),
            json!("create"),
            json!("create"),
            json!("delete")
        ]
    );
}

#[tokio::test]
async fn deleting_a_project_removes_its_labels() {
    let (reg, _, side) = populated().await;
    let id = created_label(
        &reg,
        ALICE,
        json!({"name": "ci", "scope": "p", "project_id": side}),
    )
    .await;
    let r = call(
        &reg,
        Some(ALICE),
        Method::DELETE,
        "/projects/side",
        "/projects/{project_name_or_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let uri = format!("/labels/{id}");
    assert_eq!(
        get(&reg, Some(ADMIN), &uri, LABEL).await.status,
        StatusCode::NOT_FOUND
    );
    let r = call(
        &reg,
        Some(ALICE),
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "side"})),
    )
    .await;
    let again: i64 = r
        .header("location")
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let r = get(
        &reg,
        Some(ALICE),
        &format!("/labels?scope=p&project_id={again}"),
        LABELS,
    )
    .await;
    assert_eq!(
        r.header("x-total-count"),
        "0",
        "a new project of the name has no labels"
    );
}
