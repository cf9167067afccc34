//! Tag immutability: Harbor's `/projects/{p}/immutabletagrules` (answers checked against
//! the swagger), and what the rules refuse through `/v2/` and Harbor's API: moving an
//! immutable tag to another manifest, deleting it, deleting its artifact; also with a
//! push racing the rule's creation, and artifacts showing labels beside immutability.

mod common;

use common::harbor::*;
use common::*;

const RULES: &str = "/projects/{project_name_or_id}/immutabletagrules";
const RULE: &str = "/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}";
const TAG: &str =
    "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags/{tag_name}";
const ARTIFACT: &str =
    "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}";
const ARTIFACTS: &str = "/projects/{project_name}/repositories/{repository_name}/artifacts";
const REPOSITORY: &str = "/projects/{project_name}/repositories/{repository_name}";
const ARTIFACT_LABELS: &str =
    "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels";
const ARTIFACT_LABEL: &str = "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels/{label_id}";

/// Harbor's rule JSON: repositories and tags matching the patterns.
fn rule(repositories: &str, tags: &str) -> Value {
    json!({
        "id": 0, "priority": 0, "disabled": false, "action": "immutable",
        "template": "immutable_template", "params": {},
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": tags}],
        "scope_selectors": {"repository": [
            {"kind": "doublestar", "decoration": "repoMatches", "pattern": repositories}
        ]},
    })
}

/// A secure registry with project `team`, logged in on `/v2/` as the administrator.
async fn registry() -> TestRegistry {
    let reg = TestRegistry::secure().await;
    create_project(&reg, ADMIN, "team").await;
    reg.log_in(Some(ADMIN));
    reg
}

/// Creates a rule in `team`; returns its id.
async fn create_rule(reg: &TestRegistry, body: Value) -> i64 {
    let r = call(
        reg,
        Some(ADMIN),
        Method::POST,
        "/projects/team/immutabletagrules",
        RULES,
        Some(body),
    )
    .await;
    expect_status(&r, 201, "create rule");
    let location = r.header("location");
    let id = location.rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(
        location,
        format!("/api/v2.0/projects/team/immutabletagrules/{id}")
    );
    id
}

async fn list_rules(reg: &TestRegistry, query: &str) -> TestResponse {
    let r = call(
        reg,
        Some(ADMIN),
        Method::GET,
        &format!("/projects/team/immutabletagrules{query}"),
        RULES,
        None,
    )
    .await;
    expect_status(&r, 200, "list rules");
    r
}

async fn update_rule(reg: &TestRegistry, id: i64, body: Value) -> TestResponse {
    call(
        reg,
        Some(ADMIN),
        Method::PUT,
        &format!("/projects/team/immutabletagrules/{id}"),
        RULE,
        Some(body),
    )
    .await
}

/// An image of `team/app` whose layer is `layer`, pushed under `reference`.
async fn push(reg: &TestRegistry, reference: &str, layer: &[u8]) -> TestResponse {
    let image = simple_image(reg, "team/app", layer).await;
    reg.put_manifest(
        "team/app",
        reference,
        media_type::OCI_MANIFEST,
        &bytes_of(&image),
    )
    .await
}

/// What `team/app:tag` resolves to, if anything.
async fn digest_of(reg: &TestRegistry, tag: &str) -> Option<String> {
    let r = head(reg, &format!("/v2/team/app/manifests/{tag}")).await;
    (r.status == StatusCode::OK).then(|| r.header("docker-content-digest").to_owned())
}

#[tokio::test]
async fn rules_are_created_listed_changed_switched_and_deleted() {
    let reg = registry().await;
    let first = create_rule(&reg, rule("**", "v*")).await;
    let second = create_rule(&reg, rule("team/**", "{latest,stable}")).await;
    let third = create_rule(&reg, rule("app", "release-?")).await;
    assert!(first < second && second < third);

    let r = list_rules(&reg, "?page=1&page_size=2").await;
    assert_eq!(r.header("x-total-count"), "3");
    assert!(
        r.header("link").contains("rel=\"next\""),
        "{}",
        r.header("link")
    );
    let page = r.json();
    assert_eq!(page[0]["id"], json!(first));
    assert_eq!(page[1]["id"], json!(second));
    assert_eq!(
        page[0],
        json!({
            "id": first, "priority": 0, "disabled": false, "action": "immutable",
            "template": "immutable_template",
            "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v*"}],
            "scope_selectors": {"repository": [
                {"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}
            ]},
        })
    );
    let last = list_rules(&reg, "?page=2&page_size=2").await;
    assert_eq!(last.json().as_array().unwrap().len(), 1);
    assert!(last.header("link").contains("rel=\"prev\""));

    // A project is named by its id too.
    let pid = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/projects/team",
        "/projects/{project_name_or_id}",
        None,
    )
    .await
    .json()["project_id"]
        .clone();
    let by_id = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        &format!("/projects/{pid}/immutabletagrules"),
        RULES,
        None,
    )
    .await;
    assert_eq!(by_id.header("x-total-count"), "3");

    // A new definition.
    let mut changed = rule("**", "v2.*");
    changed["id"] = json!(second);
    expect_status(
        &update_rule(&reg, second, changed.clone()).await,
        200,
        "update",
    );
    let listed = list_rules(&reg, "").await.json();
    assert_eq!(listed[1]["tag_selectors"][0]["pattern"], json!("v2.*"));
    // A different switch changes only the switch, as in Harbor.
    let mut off = rule("**", "ignored");
    off["id"] = json!(second);
    off["disabled"] = json!(true);
    expect_status(&update_rule(&reg, second, off).await, 200, "disable");
    let listed = list_rules(&reg, "").await.json();
    assert_eq!(listed[1]["disabled"], json!(true));
    assert_eq!(listed[1]["tag_selectors"][0]["pattern"], json!("v2.*"));
    changed["disabled"] = json!(false);
    expect_status(&update_rule(&reg, second, changed).await, 200, "enable");
    assert_eq!(
        list_rules(&reg, "").await.json()[1]["disabled"],
        json!(false)
    );

    let r = call(
        &reg,
        Some(ADMIN),
        Method::DELETE,
        &format!("/projects/team/immutabletagrules/{third}"),
        RULE,
        None,
    )
    .await;
    expect_status(&r, 200, "delete");
    assert_eq!(list_rules(&reg, "").await.header("x-total-count"), "2");

    // Every change is in the project's audit log.
    let logs = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/projects/team/logs?q=resource_type%3Dimmutable_tag_rule&page_size=100",
        "/projects/{project_name}/logs",
        None,
    )
    .await
    .json();
    let operations: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations.len(), 7, "{logs:#}");
    assert_eq!(operations.iter().filter(|o| **o == "create").count(), 3);
    assert_eq!(operations.iter().filter(|o| **o == "update").count(), 3);
    assert_eq!(operations.iter().filter(|o| **o == "delete").count(), 1);
}

#[tokio::test]
async fn rules_are_validated_limited_and_unique() {
    let reg = registry().await;
    let post = |body: Value| {
        let reg = &reg;
        async move {
            call(
                reg,
                Some(ADMIN),
                Method::POST,
                "/projects/team/immutabletagrules",
                RULES,
                Some(body),
            )
            .await
        }
    };
    let mut regex = rule("**", "v*");
    regex["tag_selectors"][0]["kind"] = json!("regex");
    let mut unknown = rule("**", "v*");
    unknown["scope_selectors"]["repository"][0]["decoration"] = json!("startsWith");
    let mut no_scope = rule("**", "v*");
    no_scope["scope_selectors"] = json!({});
    let mut no_tags = rule("**", "v*");
    no_tags["tag_selectors"] = json!([]);
    let mut action = rule("**", "v*");
    action["action"] = json!("retain");
    for (body, what) in [
        (regex, "kind"),
        (unknown, "decoration"),
        (no_scope, "repository selector"),
        (no_tags, "tag selector"),
        (action, "action"),
        (rule("**", ""), "pattern"),
        (rule("**", "v[0-9"), "syntax"),
        (json!("not an object"), "invalid request body"),
    ] {
        let r = post(body).await;
        expect_status(&r, 400, what);
        assert_eq!(r.json()["errors"][0]["code"], json!("BAD_REQUEST"));
        let message = r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(what), "{what}: {message}");
    }

    create_rule(&reg, rule("**", "v*")).await;
    let r = post(rule("**", "v*")).await;
    expect_status(&r, 409, "duplicate");
    assert_eq!(r.json()["errors"][0]["code"], json!("CONFLICT"));
    for n in 1..15 {
        create_rule(&reg, rule("**", &format!("r{n}-*"))).await;
    }
    let r = post(rule("**", "sixteenth")).await;
    expect_status(&r, 400, "a sixteenth rule");
    assert!(text(&r).contains("at most 15"), "{}", text(&r));

    // Unknown rules, and ids that do not match.
    let id = list_rules(&reg, "").await.json()[0]["id"].as_i64().unwrap();
    let r = update_rule(&reg, id + 1000, json!({"id": id + 1000})).await;
    expect_status(&r, 404, "unknown rule");
    let r = update_rule(&reg, id, json!({"id": id + 1})).await;
    expect_status(&r, 400, "ids differ");
    let r = call(
        &reg,
        Some(ADMIN),
        Method::DELETE,
        &format!("/projects/team/immutabletagrules/{}", id + 1000),
        RULE,
        None,
    )
    .await;
    expect_status(&r, 404, "delete unknown");
    // A rule of another project is not found through this one.
    call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "other"})),
    )
    .await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::DELETE,
        &format!("/projects/other/immutabletagrules/{id}"),
        RULE,
        None,
    )
    .await;
    expect_status(&r, 404, "another project's rule");
}

#[tokio::test]
async fn deleting_a_project_deletes_its_rules() {
    let reg = registry().await;
    create_rule(&reg, rule("**", "**")).await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::DELETE,
        "/projects/team",
        "/projects/{project_name_or_id}",
        None,
    )
    .await;
    expect_status(&r, 200, "delete project");
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects",
        "/projects",
        Some(json!({"project_name": "team"})),
    )
    .await;
    expect_status(&r, 201, "project again");
    assert_eq!(list_rules(&reg, "").await.header("x-total-count"), "0");
    // Nothing is protected in the new project.
    expect_status(&push(&reg, "v1", b"one").await, 201, "push");
    expect_status(&push(&reg, "v1", b"two").await, 201, "overwrite");
}

#[tokio::test]
async fn the_registry_refuses_to_move_or_delete_an_immutable_tag() {
    let reg = registry().await;
    expect_status(&push(&reg, "v1", b"one").await, 201, "push v1");
    expect_status(&push(&reg, "dev", b"dev").await, 201, "push dev");
    let v1 = digest_of(&reg, "v1").await.unwrap();
    let id = create_rule(&reg, rule("**", "v*")).await;
    let named =
        format!("immutable tag rule {id}: repositories repoMatches \"**\", tags matches \"v*\"");

    // The same manifest again under the tag is allowed; another one is not.
    expect_status(&push(&reg, "v1", b"one").await, 201, "same digest again");
    let r = push(&reg, "v1", b"two").await;
    expect_error(&r, 412, "DENIED", "overwrite");
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with("Failed to process request due to 'app:v1' configured as immutable")
            && message.contains(&named),
        "{message}"
    );
    assert_eq!(digest_of(&reg, "v1").await.as_deref(), Some(v1.as_str()));
    // A new protected tag is created; tags the rule does not cover move freely.
    expect_status(&push(&reg, "v2", b"two").await, 201, "new protected tag");
    expect_status(&push(&reg, "dev", b"dev2").await, 201, "unprotected tag");

    let r = delete(&reg, "/v2/team/app/manifests/v1").await;
    expect_error(&r, 412, "DENIED", "delete by tag");
    assert!(message_of(&r).contains(&named), "{}", text(&r));
    let r = delete(&reg, &format!("/v2/team/app/manifests/{v1}")).await;
    expect_error(&r, 412, "DENIED", "delete by digest");
    assert!(message_of(&r).starts_with("the tag v1 configured as immutable, cannot be deleted"));
    assert_eq!(digest_of(&reg, "v1").await.as_deref(), Some(v1.as_str()));
    // Unprotected tags and untagged manifests go.
    let dev = digest_of(&reg, "dev").await.unwrap();
    expect_status(
        &delete(&reg, "/v2/team/app/manifests/dev").await,
        202,
        "untag dev",
    );
    expect_status(
        &delete(&reg, &format!("/v2/team/app/manifests/{dev}")).await,
        202,
        "untagged",
    );

    // Switched off, the rule protects nothing.
    let mut off = rule("**", "v*");
    off["id"] = json!(id);
    off["disabled"] = json!(true);
    expect_status(&update_rule(&reg, id, off).await, 200, "disable");
    expect_status(
        &push(&reg, "v1", b"three").await,
        201,
        "overwrite once disabled",
    );
    expect_status(
        &delete(&reg, "/v2/team/app/manifests/v1").await,
        202,
        "delete once disabled",
    );
}

#[tokio::test]
async fn harbor_api_refuses_to_delete_an_immutable_tag_or_its_artifact() {
    let reg = registry().await;
    expect_status(&push(&reg, "v1", b"one").await, 201, "push v1");
    let v1 = digest_of(&reg, "v1").await.unwrap();
    let id = create_rule(&reg, rule("app", "v1")).await;

    let r = call(
        &reg,
        Some(ADMIN),
        Method::DELETE,
        "/projects/team/repositories/app/artifacts/v1/tags/v1",
        TAG,
        None,
    )
    .await;
    expect_status(&r, 412, "delete tag");
    let error = &r.json()["errors"][0];
    assert_eq!(error["code"], json!("PRECONDITION"));
    assert!(
        error["message"].as_str().unwrap().contains(&format!(
            "the tag v1 configured as immutable, cannot be deleted (immutable tag rule {id}"
        )),
        "{error}"
    );
    for reference in ["v1".to_owned(), v1.clone()] {
        let r = call(
            &reg,
            Some(ADMIN),
            Method::DELETE,
            &format!("/projects/team/repositories/app/artifacts/{reference}"),
            ARTIFACT,
            None,
        )
        .await;
        expect_status(&r, 412, "delete artifact");
        assert_eq!(r.json()["errors"][0]["code"], json!("PRECONDITION"));
    }
    // The tag is listed as immutable, as Harbor shows it.
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/projects/team/repositories/app/artifacts?with_tag=true&with_immutable_status=true",
        ARTIFACTS,
        None,
    )
    .await;
    assert_eq!(r.json()[0]["tags"][0]["immutable"], json!(true));
    assert_eq!(digest_of(&reg, "v1").await.as_deref(), Some(v1.as_str()));

    // Deleted, the rule protects nothing.
    call(
        &reg,
        Some(ADMIN),
        Method::DELETE,
        &format!("/projects/team/immutabletagrules/{id}"),
        RULE,
        None,
    )
    .await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::DELETE,
        &format!("/projects/team/repositories/app/artifacts/{v1}"),
        ARTIFACT,
        None,
    )
    .await;
    expect_status(&r, 200, "delete artifact once the rule is gone");
}

/// A repository holding an immutable tag is not deleted, as in Harbor, which deletes a
/// repository artifact by artifact; once no tag in it is protected, it is.
#[tokio::test]
async fn harbor_api_refuses_to_delete_a_repository_holding_an_immutable_tag() {
    let reg = registry().await;
    expect_status(&push(&reg, "v1", b"one").await, 201, "push v1");
    expect_status(&push(&reg, "v2", b"two").await, 201, "push v2");
    let id = create_rule(&reg, rule("app", "v2")).await;
    let delete_repository = async || {
        call(
            &reg,
            Some(ADMIN),
            Method::DELETE,
            "/projects/team/repositories/app",
            REPOSITORY,
            None,
        )
        .await
    };

    let r = delete_repository().await;
    expect_status(&r, 412, "delete repository");
    assert_eq!(r.json()["errors"][0]["code"], json!("PRECONDITION"));
    assert!(
        message_of(&r).contains(&format!(
            "the tag v2 configured as immutable, cannot be deleted (immutable tag rule {id}"
        )),
        "{}",
        text(&r)
    );
    assert!(digest_of(&reg, "v1").await.is_some());
    assert!(digest_of(&reg, "v2").await.is_some());

    let mut off = rule("app", "v2");
    off["id"] = json!(id);
    off["disabled"] = json!(true);
    expect_status(&update_rule(&reg, id, off).await, 200, "disable the rule");
    expect_status(&delete_repository().await, 200, "delete repository");
    assert!(digest_of(&reg, "v1").await.is_none());
    expect_status(&delete_repository().await, 404, "delete it again");
}

/// An artifact shows its labels and its tags' immutability together, when both are asked
/// for; a label is added to and removed from an artifact whose tag is immutable.
#[tokio::test]
async fn an_artifact_shows_its_labels_and_immutable_tags_together() {
    let reg = registry().await;
    expect_status(&push(&reg, "v1", b"one").await, 201, "push v1");
    create_rule(&reg, rule("app", "v1")).await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/labels",
        "/labels",
        Some(json!({"name": "release", "scope": "g"})),
    )
    .await;
    expect_status(&r, 201, "create label");
    let label: i64 = r
        .header("location")
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects/team/repositories/app/artifacts/v1/labels",
        ARTIFACT_LABELS,
        Some(json!({"id": label})),
    )
    .await;
    expect_status(&r, 200, "label the artifact");

    let shown = [
        (
            "/projects/team/repositories/app/artifacts?with_label=true&with_immutable_status=true",
            ARTIFACTS,
        ),
        (
            "/projects/team/repositories/app/artifacts/v1?with_label=true&with_immutable_status=true",
            ARTIFACT,
        ),
    ];
    for (uri, template) in shown {
        let r = call(&reg, Some(ADMIN), Method::GET, uri, template, None).await;
        expect_status(&r, 200, uri);
        let body = r.json();
        let artifact = if body.is_array() { &body[0] } else { &body };
        assert_eq!(
            artifact["labels"][0]["id"],
            json!(label),
            "{uri}: {artifact}"
        );
        assert_eq!(
            artifact["tags"][0]["name"],
            json!("v1"),
            "{uri}: {artifact}"
        );
        assert_eq!(
            artifact["tags"][0]["immutable"],
            json!(true),
            "{uri}: {artifact}"
        );
    }
    // Either alone shows only itself.
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/projects/team/repositories/app/artifacts/v1?with_label=true",
        ARTIFACT,
        None,
    )
    .await;
    assert_eq!(r.json()["labels"][0]["id"], json!(label));
    assert_eq!(r.json()["tags"][0]["immutable"], json!(false));
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/projects/team/repositories/app/artifacts/v1?with_immutable_status=true",
        ARTIFACT,
        None,
    )
    .await;
    assert!(r.json().get("labels").is_none(), "{}", r.json());
    assert_eq!(r.json()["tags"][0]["immutable"], json!(true));

    let r = call(
        &reg,
        Some(ADMIN),
        Method::DELETE,
        &format!("/projects/team/repositories/app/artifacts/v1/labels/{label}"),
        ARTIFACT_LABEL,
        None,
    )
    .await;
    expect_status(&r, 200, "unlabel the artifact");
    assert!(digest_of(&reg, "v1").await.is_some());
}

/// Pushes of two manifests alternate under one tag while a rule protecting it is
/// created: once the rule's creation is acknowledged, the tag never moves again (a push
/// decided on the rules before it commits only if it still holds after).
#[tokio::test]
async fn a_push_racing_a_rule_creation_never_moves_the_tag_after_it() {
    let reg = registry().await;
    let one = simple_image(&reg, "team/app", b"one").await;
    let two = simple_image(&reg, "team/app", b"two").await;
    let bodies = [bytes_of(&one), bytes_of(&two)];
    for round in 0..6 {
        let tag = format!("v{round}");
        let pushed = reg
            .put_manifest("team/app", &tag, media_type::OCI_MANIFEST, &bodies[0])
            .await;
        expect_status(&pushed, 201, "first push");
        let pusher = async {
            for n in 0..30 {
                let body = &bodies[(n + 1) % 2];
                let r = reg
                    .put_manifest("team/app", &tag, media_type::OCI_MANIFEST, body)
                    .await;
                assert!(
                    matches!(r.status.as_u16(), 201 | 412),
                    "push {n}: {} {}",
                    r.status,
                    text(&r)
                );
                tokio::task::yield_now().await;
            }
        };
        let creator = async {
            for _ in 0..round * 4 {
                tokio::task::yield_now().await;
            }
            create_rule(&reg, rule("**", &tag)).await;
            digest_of(&reg, &tag).await.unwrap()
        };
        let ((), at_creation) = tokio::join!(pusher, creator);
        assert_eq!(
            digest_of(&reg, &tag).await.unwrap(),
            at_creation,
            "round {round}: the tag moved after the rule was created"
        );
        let (same, other): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) = bodies
            .iter()
            .partition(|b| sha256(b).to_string() == at_creation);
        let again = reg
            .put_manifest("team/app", &tag, media_type::OCI_MANIFEST, same[0])
            .await;
        expect_status(&again, 201, "the protected digest again");
        let moved = reg
            .put_manifest("team/app", &tag, media_type::OCI_MANIFEST, other[0])
            .await;
        expect_error(&moved, 412, "DENIED", "after the race");
    }
}

/// The message of an error answer.
fn message_of(r: &TestResponse) -> String {
    r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A response body as text.
fn text(r: &TestResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}
