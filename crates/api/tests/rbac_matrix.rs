//! The role × endpoint matrix: every management and registry endpoint, called by every
//! kind of caller (system administrator, each of Harbor's five project roles, a user
//! of no project, anonymous, and per endpoint a robot holding exactly the permission
//! it needs and one holding every other permission), in the caller's own project and
//! in another one. The expected status follows from one table of endpoint →
//! permission and Berth's disclosure rules: allowed → the endpoint's success status;
//! anonymous → 401; on `/v2/` → 403; in the API, a project the caller may not read →
//! 404, one it may read → 403. After every refusal, the project is unchanged.

mod common;

use berth_authz::{
    Action, Permission, Principal, ProjectRef, Resource, allowed, robot_permissions,
};
use common::harbor::*;
use common::jobs::*;
use common::*;

/// What an endpoint needs.
#[derive(Clone, Copy)]
enum Need {
    /// A permission in the project the path names.
    Project(Resource, Action),
    /// A system-level permission.
    System(Resource, Action),
    /// Any logged-in caller (the answer is filtered to what it may see).
    LoggedIn,
    /// Anyone, anonymous callers included.
    Anyone,
    /// A permission in the project, and every permission of the role given (nobody
    /// makes a member stronger than themselves).
    GrantRole(Resource, Action, i64),
}

/// Which API answers.
#[derive(Clone, Copy, PartialEq)]
enum Surface {
    Registry,
    Harbor,
}

/// One endpoint of the matrix.
struct Row {
    name: &'static str,
    surface: Surface,
    method: Method,
    /// `{p}` is the project, `{member}`, `{robot}`, `{digest}`, `{doomed}`, `{label}`,
    /// `{glabel}`, `{rule}` ids made by the row's preparation; in a body,
    /// `"{label:number}"`, `"{pid:number}"` and `"{rule_id}"` become the bare numbers.
    path: &'static str,
    body: Option<Value>,
    need: Need,
    success: u16,
    prepare: Prepare,
}

/// What must exist before a row's call (made as the administrator).
#[derive(Clone, Copy, PartialEq)]
enum Prepare {
    Nothing,
    /// User `target` is not a member.
    NoTargetMember,
    /// User `target` is a member (its membership id is `{member}`).
    TargetMember,
    /// No robot `made` exists.
    NoMadeRobot,
    /// Robot `victim` exists (`{robot}`).
    VictimRobot,
    /// Repository `doomed` holds an image `v1` (`{doomed}` is its digest).
    Doomed,
    /// `app:v1` has no tag `extra`.
    NoExtraTag,
    /// `app:v1` also has tag `extra`.
    ExtraTag,
    /// No user `made` exists.
    NoMadeUser,
    /// The project's `severity` metadata is set.
    Severity,
    /// Neither the project nor the system has a label `made`.
    NoMadeLabel,
    /// The project has a label `victim` (`{label}`).
    ProjectLabel,
    /// A global label `victim-global` exists (`{glabel}`).
    GlobalLabel,
    /// The project's label `victim` exists and `app:v1` does not carry it.
    UnlabelledArtifact,
    /// `app:v1` carries the project's label `victim`.
    LabelledArtifact,
    /// The project has no immutable tag rule.
    NoRule,
    /// The project has the immutable tag rule [`rule_body`] (`{rule}`, and `"{rule_id}"`
    /// for its id as a JSON number).
    Rule,
    /// The project has no tag retention policy.
    NoPolicy,
    /// The project has the retention policy [`policy_body`] (`{policy}`), and a dry run
    /// of it has ended (`{execution}`, with the task `{task}`).
    Policy,
}

/// A tag retention policy of project `"{pid:number}"` that keeps everything.
fn policy_body() -> Value {
    json!({
        "algorithm": "or",
        "rules": [{
            "action": "retain", "template": "always", "params": {"always": null},
            "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "**"}],
            "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
        }],
        "trigger": {"kind": "Schedule", "settings": {"cron": ""}, "references": {}},
        "scope": {"level": "project", "ref": "{pid:number}"},
    })
}

/// An immutable tag rule that protects nothing the matrix pushes.
fn rule_body() -> Value {
    json!({
        "action": "immutable", "template": "immutable_template", "disabled": false,
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "never-pushed"}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
    })
}

fn rows() -> Vec<Row> {
    use Action as A;
    use Method as M;
    use Need::{Project as P, System as S};
    use Prepare as Pr;
    use Resource as R;
    use Surface::{Harbor as H, Registry as V2};
    let row = |name, surface, method, path, body, need, success, prepare| Row {
        name,
        surface,
        method,
        path,
        body,
        need,
        success,
        prepare,
    };
    vec![
        row(
            "v2 pull manifest",
            V2,
            M::GET,
            "/v2/{p}/app/manifests/v1",
            None,
            P(R::Repository, A::Pull),
            200,
            Pr::Nothing,
        ),
        row(
            "v2 list tags",
            V2,
            M::GET,
            "/v2/{p}/app/tags/list",
            None,
            P(R::Repository, A::Pull),
            200,
            Pr::Nothing,
        ),
        row(
            "v2 start upload",
            V2,
            M::POST,
            "/v2/{p}/app/blobs/uploads/",
            None,
            P(R::Repository, A::Push),
            202,
            Pr::Nothing,
        ),
        row(
            "v2 delete manifest",
            V2,
            M::DELETE,
            "/v2/{p}/doomed/manifests/{doomed}",
            None,
            P(R::Repository, A::Delete),
            202,
            Pr::Doomed,
        ),
        row(
            "v2 delete tag",
            V2,
            M::DELETE,
            "/v2/{p}/app/manifests/extra",
            None,
            P(R::Repository, A::Delete),
            202,
            Pr::ExtraTag,
        ),
        row(
            "project get",
            H,
            M::GET,
            "/api/v2.0/projects/{p}",
            None,
            P(R::Project, A::Read),
            200,
            Pr::Nothing,
        ),
        row(
            "project update",
            H,
            M::PUT,
            "/api/v2.0/projects/{p}",
            Some(json!({"metadata": {"auto_scan": "true"}})),
            P(R::Project, A::Update),
            200,
            Pr::Nothing,
        ),
        row(
            "project delete (not empty)",
            H,
            M::DELETE,
            "/api/v2.0/projects/{p}",
            None,
            P(R::Project, A::Delete),
            412,
            Pr::Nothing,
        ),
        row(
            "metadata list",
            H,
            M::GET,
            "/api/v2.0/projects/{p}/metadatas/",
            None,
            P(R::Metadata, A::Read),
            200,
            Pr::Nothing,
        ),
        row(
            "metadata add",
            H,
            M::POST,
            "/api/v2.0/projects/{p}/metadatas/",
            Some(json!({"auto_scan": "true"})),
            P(R::Metadata, A::Create),
            200,
            Pr::Nothing,
        ),
        row(
            "metadata update",
            H,
            M::PUT,
            "/api/v2.0/projects/{p}/metadatas/auto_scan",
            Some(json!({"auto_scan": "false"})),
            P(R::Metadata, A::Update),
            200,
            Pr::Nothing,
        ),
        row(
            "metadata delete",
            H,
            M::DELETE,
            "/api/v2.0/projects/{p}/metadatas/severity",
            None,
            P(R::Metadata, A::Delete),
            200,
            Pr::Severity,
        ),
        row(
            "project summary",
            H,
            M::GET,
            "/api/v2.0/projects/{p}/summary",
            None,
            P(R::Project, A::Read),
            200,
            Pr::Nothing,
        ),
        row(
            "project logs",
            H,
            M::GET,
            "/api/v2.0/projects/{p}/logs",
            None,
            P(R::Log, A::List),
            200,
            Pr::Nothing,
        ),
        row(
            "members list",
            H,
            M::GET,
            "/api/v2.0/projects/{p}/members",
            None,
            P(R::Member, A::List),
            200,
            Pr::Nothing,
        ),
        row(
            "member get",
            H,
            M::GET,
            "/api/v2.0/projects/{p}/members/{member}",
            None,
            P(R::Member, A::Read),
            200,
            Pr::TargetMember,
        ),
        row(
            "member add",
            H,
            M::POST,
            "/api/v2.0/projects/{p}/members",
            Some(json!({"role_id": 3, "member_user": {"username": "target"}})),
            Need::GrantRole(R::Member, A::Create, 3),
            201,
            Pr::NoTargetMember,
        ),
        row(
            "member update",
            H,
            M::PUT,
            "/api/v2.0/projects/{p}/members/{member}",
            Some(json!({"role_id": 2})),
            Need::GrantRole(R::Member, A::Update, 2),
            200,
            Pr::TargetMember,
        ),
        row(
            "member remove",
            H,
            M::DELETE,
            "/api/v2.0/projects/{p}/members/{member}",
            None,
            P(R::Member, A::Delete),
            200,
            Pr::TargetMember,
        ),
        row(
            "immutable rules list",
            H,
            M::GET,
            "/api/v2.0/projects/{p}/immutabletagrules",
            None,
            P(R::ImmutableTag, A::List),
            200,
            Pr::Rule,
        ),
        row(
            "immutable rule create",
            H,
            M::POST,
            "/api/v2.0/projects/{p}/immutabletagrules",
            Some(rule_body()),
            P(R::ImmutableTag, A::Create),
            201,
            Pr::NoRule,
        ),
        row(
            "immutable rule update",
            H,
            M::PUT,
            "/api/v2.0/projects/{p}/immutabletagrules/{rule}",
            Some({
                let mut body = rule_body();
                body["id"] = json!("{rule_id}");
                body
            }),
            P(R::ImmutableTag, A::Update),
            200,
            Pr::Rule,
        ),
        row(
            "immutable rule delete",
            H,
            M::DELETE,
            "/api/v2.0/projects/{p}/immutabletagrules/{rule}",
            None,
            P(R::ImmutableTag, A::Delete),
            200,
            Pr::Rule,
        ),
        row(
            "retention policy get",
            H,
            M::GET,
            "/api/v2.0/retentions/{policy}",
            None,
            P(R::TagRetention, A::Read),
            200,
            Pr::Policy,
        ),
        row(
            "retention policy create",
            H,
            M::POST,
            "/api/v2.0/retentions",
            Some(policy_body()),
            P(R::TagRetention, A::Create),
            201,
            Pr::NoPolicy,
        ),
        row(
            "retention policy update",
            H,
            M::PUT,
            "/api/v2.0/retentions/{policy}",
            Some(policy_body()),
            P(R::TagRetention, A::Update),
            200,
            Pr::Policy,
        ),
        row(
            "retention policy delete",
            H,
            M::DELETE,
            "/api/v2.0/retentions/{policy}",
            None,
            P(R::TagRetention, A::Delete),
            200,
            Pr::Policy,
        ),
        row(
            "retention dry run",
            H,
            M::POST,
            "/api/v2.0/retentions/{policy}/executions",
            Some(json!({"dry_run": true})),
            P(R::TagRetention, A::Update),
            201,
            Pr::Policy,
        ),
        row(
            "retention executions list",
            H,
            M::GET,
            "/api/v2.0/retentions/{policy}/executions",
            None,
            P(R::TagRetention, A::List),
            200,
            Pr::Policy,
        ),
        row(
            "retention execution stop",
            H,
            M::PATCH,
            "/api/v2.0/retentions/{policy}/executions/{execution}",
            Some(json!({"action": "stop"})),
            P(R::TagRetention, A::Update),
            200,
            Pr::Policy,
        ),
        row(
            "retention tasks list",
            H,
            M::GET,
            "/api/v2.0/retentions/{policy}/executions/{execution}/tasks",
            None,
            P(R::TagRetention, A::List),
            200,
            Pr::Policy,
        ),
        row(
            "retention task log",
            H,
            M::GET,
            "/api/v2.0/retentions/{policy}/executions/{execution}/tasks/{task}",
            None,
            P(R::TagRetention, A::Read),
            200,
            Pr::Policy,
        ),
        row(
            "robots list",
            H,
            M::GET,
            "/api/v2.0/robots?q=ProjectID%3D{pid}",
            None,
            P(R::Robot, A::List),
            200,
            Pr::Nothing,
        ),
        // Granting only what the row's own robot holds: nobody grants more than it has.
        row(
            "robot create",
            H,
            M::POST,
            "/api/v2.0/robots",
            Some(
                json!({"name": "made", "level": "project", "duration": -1, "permissions": [{"kind": "project", "namespace": "{p}", "access": [{"resource": "robot", "action": "create"}]}]}),
            ),
            P(R::Robot, A::Create),
            201,
            Pr::NoMadeRobot,
        ),
        row(
            "robot get",
            H,
            M::GET,
            "/api/v2.0/robots/{robot}",
            None,
            P(R::Robot, A::Read),
            200,
            Pr::VictimRobot,
        ),
        row(
            "robot update",
            H,
            M::PUT,
            "/api/v2.0/robots/{robot}",
            Some(
                json!({"name": "victim", "level": "project", "duration": -1, "description": "changed", "permissions": [{"kind": "project", "namespace": "{p}", "access": [{"resource": "repository", "action": "pull"}]}]}),
            ),
            P(R::Robot, A::Update),
            200,
            Pr::VictimRobot,
        ),
        row(
            "robot refresh secret",
            H,
            M::PATCH,
            "/api/v2.0/robots/{robot}",
            Some(json!({})),
            P(R::Robot, A::Update),
            200,
            Pr::VictimRobot,
        ),
        row(
            "robot delete",
            H,
            M::DELETE,
            "/api/v2.0/robots/{robot}",
            None,
            P(R::Robot, A::Delete),
            200,
            Pr::VictimRobot,
        ),
        row(
            "repositories list",
            H,
            M::GET,
            "/api/v2.0/projects/{p}/repositories",
            None,
            P(R::Repository, A::List),
            200,
            Pr::Nothing,
        ),
        row(
            "repository get",
            H,
            M::GET,
            "/api/v2.0/projects/{p}/repositories/app",
            None,
            P(R::Repository, A::Read),
            200,
            Pr::Nothing,
        ),
        row(
            "repository update",
            H,
            M::PUT,
            "/api/v2.0/projects/{p}/repositories/app",
            Some(json!({"description": "d"})),
            P(R::Repository, A::Update),
            200,
            Pr::Nothing,
        ),
        row(
            "repository delete",
            H,
            M::DELETE,
            "/api/v2.0/projects/{p}/repositories/doomed",
            None,
            P(R::Repository, A::Delete),
            200,
            Pr::Doomed,
        ),
        row(
            "artifacts list",
            H,
            M::GET,
            "/api/v2.0/projects/{p}/repositories/app/artifacts",
            None,
            P(R::Artifact, A::List),
            200,
            Pr::Nothing,
        ),
        row(
            "artifact get",
            H,
            M::GET,
            "/api/v2.0/projects/{p}/repositories/app/artifacts/v1",
            None,
            P(R::Artifact, A::Read),
            200,
            Pr::Nothing,
        ),
        row(
            "artifact delete",
            H,
            M::DELETE,
            "/api/v2.0/projects/{p}/repositories/doomed/artifacts/{doomed}",
            None,
            P(R::Artifact, A::Delete),
            200,
            Pr::Doomed,
        ),
        row(
            "tags list",
            H,
            M::GET,
            "/api/v2.0/projects/{p}/repositories/app/artifacts/v1/tags",
            None,
            P(R::Artifact, A::Read),
            200,
            Pr::Nothing,
        ),
        row(
            "tag create",
            H,
            M::POST,
            "/api/v2.0/projects/{p}/repositories/app/artifacts/v1/tags",
            Some(json!({"name": "extra"})),
            P(R::Tag, A::Create),
            201,
            Pr::NoExtraTag,
        ),
        row(
            "tag delete",
            H,
            M::DELETE,
            "/api/v2.0/projects/{p}/repositories/app/artifacts/v1/tags/extra",
            None,
            P(R::Tag, A::Delete),
            200,
            Pr::ExtraTag,
        ),
        row(
            "accessories list",
            H,
            M::GET,
            "/api/v2.0/projects/{p}/repositories/app/artifacts/v1/accessories",
            None,
            P(R::Artifact, A::Read),
            200,
            Pr::Nothing,
        ),
        row(
            "labels list (project)",
            H,
            M::GET,
            "/api/v2.0/labels?scope=p&project_id={pid}",
            None,
            P(R::Label, A::List),
            200,
            Pr::Nothing,
        ),
        row(
            "label create (project)",
            H,
            M::POST,
            "/api/v2.0/labels",
            Some(json!({"name": "made", "scope": "p", "project_id": "{pid:number}"})),
            P(R::Label, A::Create),
            201,
            Pr::NoMadeLabel,
        ),
        row(
            "label get (project)",
            H,
            M::GET,
            "/api/v2.0/labels/{label}",
            None,
            P(R::Label, A::Read),
            200,
            Pr::ProjectLabel,
        ),
        row(
            "label update (project)",
            H,
            M::PUT,
            "/api/v2.0/labels/{label}",
            Some(json!({"name": "victim", "description": "changed", "color": "#000000"})),
            P(R::Label, A::Update),
            200,
            Pr::ProjectLabel,
        ),
        row(
            "label delete (project)",
            H,
            M::DELETE,
            "/api/v2.0/labels/{label}",
            None,
            P(R::Label, A::Delete),
            200,
            Pr::ProjectLabel,
        ),
        row(
            "quota get",
            H,
            M::GET,
            "/api/v2.0/quotas/{pid}",
            None,
            S(R::Quota, A::Read),
            200,
            Pr::Nothing,
        ),
        row(
            "quotas list",
            H,
            M::GET,
            "/api/v2.0/quotas",
            None,
            S(R::Quota, A::List),
            200,
            Pr::Nothing,
        ),
        row(
            "quota update",
            H,
            M::PUT,
            "/api/v2.0/quotas/{pid}",
            Some(json!({"hard": {"storage": -1}})),
            S(R::Quota, A::Update),
            200,
            Pr::Nothing,
        ),
        row(
            "labels list (global)",
            H,
            M::GET,
            "/api/v2.0/labels?scope=g",
            None,
            Need::Anyone,
            200,
            Pr::Nothing,
        ),
        row(
            "label create (global)",
            H,
            M::POST,
            "/api/v2.0/labels",
            Some(json!({"name": "made", "scope": "g"})),
            S(R::Label, A::Create),
            201,
            Pr::NoMadeLabel,
        ),
        row(
            "label get (global)",
            H,
            M::GET,
            "/api/v2.0/labels/{glabel}",
            None,
            S(R::Label, A::Read),
            200,
            Pr::GlobalLabel,
        ),
        row(
            "label update (global)",
            H,
            M::PUT,
            "/api/v2.0/labels/{glabel}",
            Some(json!({"name": "victim-global", "description": "changed"})),
            S(R::Label, A::Update),
            200,
            Pr::GlobalLabel,
        ),
        row(
            "label delete (global)",
            H,
            M::DELETE,
            "/api/v2.0/labels/{glabel}",
            None,
            S(R::Label, A::Delete),
            200,
            Pr::GlobalLabel,
        ),
        row(
            "artifact label add",
            H,
            M::POST,
            "/api/v2.0/projects/{p}/repositories/app/artifacts/v1/labels",
            Some(json!({"id": "{label:number}"})),
            P(R::ArtifactLabel, A::Create),
            200,
            Pr::UnlabelledArtifact,
        ),
        row(
            "artifact label remove",
            H,
            M::DELETE,
            "/api/v2.0/projects/{p}/repositories/app/artifacts/v1/labels/{label}",
            None,
            P(R::ArtifactLabel, A::Delete),
            200,
            Pr::LabelledArtifact,
        ),
        row(
            "artifacts list by label",
            H,
            M::GET,
            "/api/v2.0/projects/{p}/repositories/app/artifacts?with_label=true&q=labels%3D({label})",
            None,
            P(R::Artifact, A::List),
            200,
            Pr::LabelledArtifact,
        ),
        row(
            "users list",
            H,
            M::GET,
            "/api/v2.0/users",
            None,
            S(R::User, A::List),
            200,
            Pr::Nothing,
        ),
        row(
            "configurations get",
            H,
            M::GET,
            "/api/v2.0/configurations",
            None,
            S(R::Configuration, A::Read),
            200,
            Pr::Nothing,
        ),
        row(
            "audit logs (all, filtered)",
            H,
            M::GET,
            "/api/v2.0/audit-logs?q=operation%3Dnone",
            None,
            Need::LoggedIn,
            200,
            Pr::Nothing,
        ),
        row(
            "statistics (filtered)",
            H,
            M::GET,
            "/api/v2.0/statistics",
            None,
            Need::LoggedIn,
            200,
            Pr::Nothing,
        ),
        row(
            "user create",
            H,
            M::POST,
            "/api/v2.0/users",
            Some(json!({"username": "made", "email": "", "password": "Passw0rdPassw0rd"})),
            S(R::User, A::Create),
            201,
            Pr::NoMadeUser,
        ),
        row(
            "configurations update",
            H,
            M::PUT,
            "/api/v2.0/configurations",
            Some(json!({"robot_token_duration": 30})),
            S(R::Configuration, A::Update),
            200,
            Pr::Nothing,
        ),
    ]
}

/// A caller of the matrix.
struct Caller {
    label: String,
    credentials: Option<(String, String)>,
}

/// The project names the matrix runs in.
const OWN: &str = "own";
const OTHER: &str = "other";

async fn api(reg: &TestRegistry, method: Method, uri: &str, body: Option<Value>) -> TestResponse {
    let auth = basic(ADMIN);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    reg.send(
        method,
        uri,
        &headers,
        body.map(|b| b.to_string()).unwrap_or_default(),
    )
    .await
}

async fn user(reg: &TestRegistry, name: &str) -> i64 {
    create_user(reg, name).await
}

async fn setup() -> TestRegistry {
    let reg = TestRegistry::secure().await;
    for name in [
        "pa",
        "maintainer",
        "developer",
        "guest",
        "limited",
        "outsider",
        "target",
    ] {
        user(&reg, name).await;
    }
    for p in [OWN, OTHER] {
        let r = api(
            &reg,
            Method::POST,
            "/api/v2.0/projects",
            Some(json!({"project_name": p})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
        reg.log_in(Some(ADMIN));
        reg.push_image(&format!("{p}/app"), "v1", &[b"app"]).await;
        reg.log_in(None);
    }
    for (name, role) in [
        ("pa", 1),
        ("developer", 2),
        ("guest", 3),
        ("maintainer", 4),
        ("limited", 5),
    ] {
        let r = api(
            &reg,
            Method::POST,
            &format!("/api/v2.0/projects/{OWN}/members"),
            Some(json!({"role_id": role, "member_user": {"username": name}})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    reg
}

/// Makes what a row needs in project `p`; returns the placeholder values.
async fn prepare(reg: &TestRegistry, p: &str, what: Prepare) -> Vec<(&'static str, String)> {
    let mut values = Vec::new();
    let members = api(
        reg,
        Method::GET,
        &format!("/api/v2.0/projects/{p}/members?entityname=target"),
        None,
    )
    .await
    .json();
    let member = members
        .as_array()
        .unwrap()
        .first()
        .map(|m| m["id"].as_i64().unwrap());
    match (what, member) {
        (Prepare::NoTargetMember, Some(id)) => {
            api(
                reg,
                Method::DELETE,
                &format!("/api/v2.0/projects/{p}/members/{id}"),
                None,
            )
            .await;
        }
        (Prepare::TargetMember, None) => {
            let r = api(
                reg,
                Method::POST,
                &format!("/api/v2.0/projects/{p}/members"),
                Some(json!({"role_id": 3, "member_user": {"username": "target"}})),
            )
            .await;
            let id = r.header("location").rsplit('/').next().unwrap().to_owned();
            values.push(("{member}", id));
        }
        (Prepare::TargetMember, Some(id)) => values.push(("{member}", id.to_string())),
        _ => {}
    }
    let pid = api(reg, Method::GET, &format!("/api/v2.0/projects/{p}"), None)
        .await
        .json()["project_id"]
        .as_i64()
        .unwrap();
    let robots = api(
        reg,
        Method::GET,
        &format!("/api/v2.0/robots?q=ProjectID%3D{pid}&page_size=100"),
        None,
    )
    .await
    .json();
    let find = |name: &str| {
        robots
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == json!(format!("robot${p}+{name}")))
            .map(|r| r["id"].as_i64().unwrap())
    };
    values.extend(prepare_labels(reg, p, pid, what).await);
    values.extend(prepare_retention(reg, p, pid, what).await);
    match what {
        Prepare::NoMadeRobot => {
            if let Some(id) = find("made") {
                api(reg, Method::DELETE, &format!("/api/v2.0/robots/{id}"), None).await;
            }
        }
        Prepare::VictimRobot => {
            let id = match find("victim") {
                Some(id) => id,
                None => {
                    robot(reg, p, "victim", &[(Resource::Repository, Action::Pull)])
                        .await
                        .0
                }
            };
            values.push(("{robot}", id.to_string()));
        }
        Prepare::Doomed => {
            reg.log_in(Some(ADMIN));
            let (digest, _) = reg
                .push_image(&format!("{p}/doomed"), "v1", &[b"doomed"])
                .await;
            reg.log_in(None);
            values.push(("{doomed}", digest.to_string()));
        }
        Prepare::NoMadeUser => {
            let users = api(reg, Method::GET, "/api/v2.0/users?q=username%3Dmade", None)
                .await
                .json();
            if let Some(id) = users
                .as_array()
                .unwrap()
                .first()
                .map(|u| u["user_id"].as_i64().unwrap())
            {
                api(reg, Method::DELETE, &format!("/api/v2.0/users/{id}"), None).await;
            }
        }
        Prepare::Severity => {
            let body = json!({"metadata": {"severity": "high"}});
            api(
                reg,
                Method::PUT,
                &format!("/api/v2.0/projects/{p}"),
                Some(body),
            )
            .await;
        }
        Prepare::NoRule | Prepare::Rule => {
            let uri = format!("/api/v2.0/projects/{p}/immutabletagrules");
            let rules = api(reg, Method::GET, &format!("{uri}?page_size=100"), None)
                .await
                .json();
            let mut ids: Vec<i64> = rules
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap())
                .collect();
            if what == Prepare::NoRule {
                for id in ids.drain(..) {
                    api(reg, Method::DELETE, &format!("{uri}/{id}"), None).await;
                }
            } else if ids.is_empty() {
                let r = api(reg, Method::POST, &uri, Some(rule_body())).await;
                assert_eq!(r.status, StatusCode::CREATED, "rule: {:?}", r.body);
                ids.push(
                    r.header("location")
                        .rsplit('/')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap(),
                );
            }
            if let Some(id) = ids.first() {
                values.push(("{rule}", id.to_string()));
                values.push(("\"{rule_id}\"", id.to_string()));
            }
        }
        Prepare::NoExtraTag => {
            api(
                reg,
                Method::DELETE,
                &format!("/api/v2.0/projects/{p}/repositories/app/artifacts/v1/tags/extra"),
                None,
            )
            .await;
        }
        Prepare::ExtraTag => {
            api(
                reg,
                Method::POST,
                &format!("/api/v2.0/projects/{p}/repositories/app/artifacts/v1/tags"),
                Some(json!({"name": "extra"})),
            )
            .await;
        }
        _ => {}
    }
    values.push(("\"{pid:number}\"", pid.to_string()));
    values.push(("{pid}", pid.to_string()));
    values
}

/// The labels part of [`prepare`] in project `p` (id `pid`).
async fn prepare_labels(
    reg: &TestRegistry,
    p: &str,
    pid: i64,
    what: Prepare,
) -> Vec<(&'static str, String)> {
    let find = async |query: String, name: &str| {
        let listed = api(reg, Method::GET, &format!("/api/v2.0/labels?{query}"), None)
            .await
            .json();
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == json!(name))
            .map(|l| l["id"].as_i64().unwrap())
    };
    let ensure = async |query: String, body: Value| -> i64 {
        let name = body["name"].as_str().unwrap().to_owned();
        if let Some(id) = find(query, &name).await {
            return id;
        }
        let r = api(reg, Method::POST, "/api/v2.0/labels", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "label {name}: {:?}", r.body);
        r.header("location")
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let in_project = format!("scope=p&project_id={pid}&page_size=100");
    let artifact_labels = format!("/api/v2.0/projects/{p}/repositories/app/artifacts/v1/labels");
    let mut values = Vec::new();
    match what {
        Prepare::NoMadeLabel => {
            for query in [in_project, "scope=g&page_size=100".to_owned()] {
                if let Some(id) = find(query, "made").await {
                    api(reg, Method::DELETE, &format!("/api/v2.0/labels/{id}"), None).await;
                }
            }
        }
        Prepare::GlobalLabel => {
            let body = json!({"name": "victim-global", "scope": "g"});
            let id = ensure("scope=g&page_size=100".into(), body).await;
            values.push(("{glabel}", id.to_string()));
        }
        Prepare::ProjectLabel | Prepare::UnlabelledArtifact | Prepare::LabelledArtifact => {
            let body = json!({"name": "victim", "scope": "p", "project_id": pid});
            let id = ensure(in_project, body).await;
            if what == Prepare::UnlabelledArtifact {
                let uri = format!("{artifact_labels}/{id}");
                api(reg, Method::DELETE, &uri, None).await;
            }
            if what == Prepare::LabelledArtifact {
                api(reg, Method::POST, &artifact_labels, Some(json!({"id": id}))).await;
            }
            values.push(("\"{label:number}\"", id.to_string()));
            values.push(("{label}", id.to_string()));
        }
        _ => {}
    }
    values
}

/// The tag retention part of [`prepare`] in project `p` (id `pid`).
async fn prepare_retention(
    reg: &TestRegistry,
    p: &str,
    pid: i64,
    what: Prepare,
) -> Vec<(&'static str, String)> {
    if !matches!(what, Prepare::NoPolicy | Prepare::Policy) {
        return Vec::new();
    }
    let current = retention_policy_of(reg, p).await;
    if what == Prepare::NoPolicy {
        if let Some(id) = current {
            let r = api(
                reg,
                Method::DELETE,
                &format!("/api/v2.0/retentions/{id}"),
                None,
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "policy delete: {:?}", r.body);
        }
        return Vec::new();
    }
    let id = match current {
        Some(id) => id,
        None => {
            let body = policy_body()
                .to_string()
                .replace("\"{pid:number}\"", &pid.to_string());
            let r = api(
                reg,
                Method::POST,
                "/api/v2.0/retentions",
                Some(serde_json::from_str(&body).unwrap()),
            )
            .await;
            assert_eq!(r.status, StatusCode::CREATED, "policy: {:?}", r.body);
            r.header("location").rsplit('/').next().unwrap().to_owned()
        }
    };
    let executions = format!("/api/v2.0/retentions/{id}/executions");
    // The latest execution once it has ended, with its first task: one an earlier row
    // started (or stopped before it had tasks) is waited for, or replaced by a dry run.
    let mut started = false;
    let (execution, task) = loop {
        let mut listed = api(reg, Method::GET, &executions, None).await.json();
        for _ in 0..1000 {
            if listed[0]["status"] != json!("Running") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            listed = api(reg, Method::GET, &executions, None).await.json();
        }
        if let Some(execution) = listed[0]["id"].as_i64() {
            let uri = format!("{executions}/{execution}/tasks");
            let tasks = api(reg, Method::GET, &uri, None).await.json();
            if let Some(task) = tasks[0]["id"].as_i64() {
                break (execution, task);
            }
        }
        assert!(!started, "the dry run has a task: {listed}");
        let dry_run = Some(json!({"dry_run": true}));
        let r = api(reg, Method::POST, &executions, dry_run).await;
        assert_eq!(r.status, StatusCode::CREATED, "dry run: {:?}", r.body);
        started = true;
    };
    vec![
        ("{policy}", id),
        ("{execution}", execution.to_string()),
        ("{task}", task.to_string()),
    ]
}

/// Creates a project robot holding `permissions`; returns its id, name and secret.
async fn robot(
    reg: &TestRegistry,
    p: &str,
    name: &str,
    permissions: &[(Resource, Action)],
) -> (i64, String, String) {
    let access: Vec<Value> = permissions
        .iter()
        .map(|(r, a)| json!({"resource": r.as_str(), "action": a.as_str()}))
        .collect();
    let r = api(
        reg,
        Method::POST,
        "/api/v2.0/robots",
        Some(json!({
            "name": name, "level": "project", "duration": -1,
            "permissions": [{"kind": "project", "namespace": p, "access": access}],
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "robot {name}: {:?}", r.body);
    let v = r.json();
    (
        v["id"].as_i64().unwrap(),
        v["name"].as_str().unwrap().to_owned(),
        v["secret"].as_str().unwrap().to_owned(),
    )
}

/// A project's state as the administrator sees it, to compare before and after.
async fn snapshot(reg: &TestRegistry, p: &str) -> String {
    let mut state = String::new();
    for uri in [
        format!("/api/v2.0/projects/{p}"),
        format!("/api/v2.0/projects/{p}/members?page_size=100"),
        format!("/api/v2.0/projects/{p}/repositories?page_size=100"),
        format!(
            "/api/v2.0/projects/{p}/repositories/app/artifacts?page_size=100&with_label=true&with_immutable_status=true"
        ),
        format!(
            "/api/v2.0/projects/{p}/repositories/doomed/artifacts?page_size=100&with_label=true&with_immutable_status=true"
        ),
        format!("/api/v2.0/projects/{p}/immutabletagrules?page_size=100"),
        "/api/v2.0/labels?scope=g&page_size=100".to_owned(),
    ] {
        let mut v = api(reg, Method::GET, &uri, None).await.json();
        strip_times(&mut v);
        state += &v.to_string();
    }
    let pid = api(reg, Method::GET, &format!("/api/v2.0/projects/{p}"), None)
        .await
        .json()["project_id"]
        .clone();
    let mut robots = api(
        reg,
        Method::GET,
        &format!("/api/v2.0/robots?q=ProjectID%3D{pid}&page_size=100"),
        None,
    )
    .await
    .json();
    strip_times(&mut robots);
    let mut labels = api(
        reg,
        Method::GET,
        &format!("/api/v2.0/labels?scope=p&project_id={pid}&page_size=100"),
        None,
    )
    .await
    .json();
    strip_times(&mut labels);
    // A policy, and the ids of its executions (whose status moves on by itself).
    let retention = match retention_policy_of(reg, p).await {
        Some(id) => {
            let uri = format!("/api/v2.0/retentions/{id}");
            let mut policy = api(reg, Method::GET, &uri, None).await.json();
            strip_times(&mut policy);
            let executions = api(reg, Method::GET, &format!("{uri}/executions"), None)
                .await
                .json();
            let ids: Vec<&Value> = executions
                .as_array()
                .unwrap()
                .iter()
                .map(|e| &e["id"])
                .collect();
            format!("{policy}{ids:?}")
        }
        None => String::new(),
    };
    state + &robots.to_string() + &labels.to_string() + &retention
}

/// The id of project `p`'s retention policy, if it has one.
async fn retention_policy_of(reg: &TestRegistry, p: &str) -> Option<String> {
    let project = api(reg, Method::GET, &format!("/api/v2.0/projects/{p}"), None)
        .await
        .json();
    project["metadata"]["retention_id"]
        .as_str()
        .map(|id| id.to_owned())
}

/// Pull times and counts change on reads; they are not what "unchanged" is about.
fn strip_times(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for key in ["pull_time", "pull_count", "update_time"] {
                map.remove(key);
            }
            map.values_mut().for_each(strip_times);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_times),
        _ => {}
    }
}

async fn principal(reg: &TestRegistry, caller: &Caller) -> Principal {
    match &caller.credentials {
        None => Principal::Anonymous,
        Some((name, password)) => reg
            .identity
            .authenticator
            .login(name, password, None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", caller.label))
            .principal
            .clone(),
    }
}

async fn project_ref(reg: &TestRegistry, p: &str) -> ProjectRef {
    let v = api(reg, Method::GET, &format!("/api/v2.0/projects/{p}"), None)
        .await
        .json();
    ProjectRef {
        id: v["project_id"].as_i64().unwrap(),
        public: v["metadata"]["public"] == json!("true"),
    }
}

fn expected(row: &Row, principal: &Principal, project: ProjectRef) -> u16 {
    let (ok, readable) = match row.need {
        Need::Project(r, a) => (
            allowed(principal, Some(project), Permission::new(r, a)),
            !berth_authz::effective_permissions(principal, Some(project)).is_empty(),
        ),
        Need::System(r, a) => (allowed(principal, None, Permission::new(r, a)), true),
        Need::LoggedIn => (!principal.is_anonymous(), true),
        Need::Anyone => (true, true),
        Need::GrantRole(r, a, role) => {
            let held = berth_authz::effective_permissions(principal, Some(project));
            let role = berth_authz::builtin_role(role)
                .expect("a built-in role")
                .permissions;
            (
                allowed(principal, Some(project), Permission::new(r, a)) && role.is_subset(&held),
                !held.is_empty(),
            )
        }
    };
    match (ok, principal.is_anonymous(), row.surface, readable) {
        (true, _, _, _) => row.success,
        (false, true, _, _) => 401,
        (false, false, Surface::Registry, _) => 403,
        (false, false, Surface::Harbor, true) => 403,
        (false, false, Surface::Harbor, false) => 404,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_gets_what_its_role_allows_on_every_endpoint() {
    let reg = setup().await;
    // Retention's dry runs, which the matrix starts, end.
    let _jobs = job_runner(
        &reg,
        std::sync::Arc::new(berth_app::SystemClock),
        |runner| retention_jobs(&reg, runner),
    );
    let mut fixed = vec![Caller {
        label: "anonymous".into(),
        credentials: None,
    }];
    for name in [
        "admin",
        "pa",
        "maintainer",
        "developer",
        "guest",
        "limited",
        "outsider",
    ] {
        let password = if name == "admin" {
            berth_testkit::ADMIN_PASSWORD
        } else {
            PASSWORD
        };
        fixed.push(Caller {
            label: name.into(),
            credentials: Some((name.into(), password.into())),
        });
    }
    let grantable = robot_permissions(berth_authz::RobotLevel::Project);
    let (mut checks, mut failures) = (0usize, Vec::new());
    for (index, row) in rows().iter().enumerate() {
        // Per row: a robot with exactly its permission (when robots may hold it), and
        // one with every grantable permission but that one.
        let mut callers: Vec<Caller> = fixed
            .iter()
            .map(|c| Caller {
                label: c.label.clone(),
                credentials: c.credentials.clone(),
            })
            .collect();
        if let Need::Project(r, a) | Need::GrantRole(r, a, _) = row.need {
            let needed = Permission::new(r, a);
            if grantable.contains(needed) {
                let (_, name, secret) = robot(&reg, OWN, &format!("with{index}"), &[(r, a)]).await;
                callers.push(Caller {
                    label: format!("robot with {needed}"),
                    credentials: Some((name, secret)),
                });
            }
            let others: Vec<(Resource, Action)> = grantable
                .iter()
                .filter(|p| *p != needed)
                .map(|p| (p.resource, p.action))
                .collect();
            let (_, name, secret) = robot(&reg, OWN, &format!("without{index}"), &others).await;
            callers.push(Caller {
                label: format!("robot without {needed}"),
                credentials: Some((name, secret)),
            });
        }
        for caller in &callers {
            let principal = principal(&reg, caller).await;
            for p in [OWN, OTHER] {
                let values = prepare(&reg, p, row.prepare).await;
                let fill = |text: &str| {
                    let mut text = text.replace("{p}", p);
                    for (key, value) in &values {
                        text = text.replace(key, value);
                    }
                    text
                };
                let uri = fill(row.path);
                let body = row.body.as_ref().map(|b| fill(&b.to_string()));
                let want = expected(row, &principal, project_ref(&reg, p).await);
                let before = if want == row.success {
                    String::new()
                } else {
                    snapshot(&reg, p).await
                };
                let auth = caller.credentials.as_ref().map(|(n, s)| basic((n, s)));
                let mut headers = vec![("content-type", "application/json")];
                if let Some(auth) = &auth {
                    headers.push(("authorization", auth.as_str()));
                }
                let r = reg
                    .send(row.method.clone(), &uri, &headers, body.unwrap_or_default())
                    .await;
                checks += 1;
                if r.status.as_u16() != want {
                    failures.push(format!(
                        "{} as {} in {p}: got {}, want {want} ({})",
                        row.name,
                        caller.label,
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ));
                    continue;
                }
                if want != row.success {
                    assert!(
                        !r.json()["errors"][0]["code"]
                            .as_str()
                            .unwrap_or("")
                            .is_empty(),
                        "{}: error body",
                        row.name
                    );
                    if snapshot(&reg, p).await != before {
                        failures.push(format!(
                            "{} as {} in {p}: refused, yet the project changed",
                            row.name, caller.label
                        ));
                    }
                }
            }
        }
    }
    println!(
        "role x endpoint matrix: {} endpoints, {checks} checks",
        rows().len()
    );
    assert!(
        failures.is_empty(),
        "{} of {checks} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
