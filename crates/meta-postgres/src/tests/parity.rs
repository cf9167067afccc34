//! The management stores answer as the SQLite adapter's do: each step runs on a fresh
//! SQLite store and on a fresh PostgreSQL one, fed the same calls, and both answers must
//! print the same (ids, times, orders, errors and totals included).

use std::collections::BTreeMap;
use std::fmt::Debug;

use berth_meta::{
    ArtifactField, AuditEntry, AuditField, FieldFilter, ListQuery, Listed, Match, MemberKind,
    Metadata, NewManifest, NewProject, NewRobot, NewUser, ProfileUpdate, Project, ProjectField,
    ProjectUpdate, PullRecord, RepositoryField, RobotField, RobotGrant, RobotLevel, RobotUpdate,
    Role, SortKey, StoredSession, UserField, Visibility,
};
use berth_meta_sqlite::SqliteMetaStore;
use berth_oci::{Reference, Tag};
use berth_testkit_postgres::TempDatabase;
use bytes::Bytes;

use super::{digest, new_user, node, repo};
use crate::PgMetaStore;

/// The same calls on both stores.
struct Pair {
    sqlite: SqliteMetaStore,
    pg: PgMetaStore,
    _dir: tempfile::TempDir,
}

impl Pair {
    /// Runs `step` on both stores and checks they answer alike; returns the answer.
    async fn same<T: Debug>(&self, what: &str, step: impl AsyncFn(&dyn Metadata) -> T) -> T {
        let expected = step(&self.sqlite).await;
        let got = step(&self.pg).await;
        assert_eq!(format!("{got:#?}"), format!("{expected:#?}"), "{what}");
        expected
    }

    /// Runs `step` on both stores and checks they answer alike.
    async fn check<T: Debug>(&self, what: &str, step: impl AsyncFn(&dyn Metadata) -> T) {
        self.same(what, step).await;
    }
}

fn audit(operation: &str, resource: &str, at: i64) -> AuditEntry {
    AuditEntry {
        project_id: None,
        username: "tester".into(),
        operation: operation.into(),
        resource_type: "thing".into(),
        resource: resource.into(),
        success: true,
        client_ip: "192.0.2.1".into(),
        op_time: at,
    }
}

fn query<F>(filters: Vec<(F, Match)>, sort: &[(F, bool)], offset: u64, limit: u64) -> ListQuery<F>
where
    F: Copy,
{
    ListQuery {
        filters: filters
            .into_iter()
            .map(|(field, matching)| FieldFilter { field, matching })
            .collect(),
        sort: sort
            .iter()
            .map(|&(field, descending)| SortKey { field, descending })
            .collect(),
        offset,
        limit,
    }
}

fn exact(v: &str) -> Match {
    Match::Exact(v.into())
}

fn fuzzy(v: &str) -> Match {
    Match::Fuzzy(v.into())
}

/// Projects, with `library`'s times (those of each database's creation) left out.
async fn projects(
    s: &dyn Metadata,
    visibility: &Visibility,
    q: &ListQuery<ProjectField>,
) -> Listed<Project> {
    let mut listed = s.list_projects(visibility, q).await.unwrap();
    for p in listed.items.iter_mut().filter(|p| p.name == "library") {
        (p.created_at, p.updated_at) = (0, 0);
    }
    listed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_stores_answer_as_sqlite_does() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pair = Pair {
        sqlite: SqliteMetaStore::open(dir.path().join("meta.db")).unwrap(),
        pg: node(&db).await,
        _dir: dir,
    };
    let ids = users(&pair).await;
    let alpha = projects_and_members(&pair, &ids).await;
    robots(&pair, alpha).await;
    settings_and_sessions(&pair).await;
    artifacts(&pair).await;
    audit_log(&pair, alpha).await;
    refusals(&pair).await;
}

/// Creates and changes users; returns the ids of alice, bob and the administrator.
async fn users(pair: &Pair) -> [i64; 3] {
    let mut ids = [0; 3];
    for (i, (name, email)) in [("alice", "alice@example.com"), ("bob", ""), ("carol", "")]
        .into_iter()
        .enumerate()
    {
        let user = NewUser {
            email: email.into(),
            realname: format!("{name} Example"),
            ..new_user(name, false)
        };
        let created = pair
            .same(name, async |s| {
                s.create_user(&user, 10 + i as i64, &audit("create", name, 10))
                    .await
            })
            .await;
        if i < 2 {
            ids[i] = created.unwrap();
        }
    }
    let admin = new_user("admin", true);
    pair.check("first admin", async |s| {
        (
            s.create_first_admin(&admin, 20).await,
            s.create_first_admin(&admin, 21).await,
        )
    })
    .await;
    ids[2] = pair
        .same("admin", async |s| s.user_by_name("admin").await.unwrap())
        .await
        .unwrap()
        .id;
    pair.check("lookups", async |s| {
        (
            s.user(ids[0]).await.unwrap(),
            s.user(999).await.unwrap(),
            s.user_by_name("nobody").await.unwrap(),
        )
    })
    .await;
    pair.check("profile", async |s| {
        let taken = ProfileUpdate {
            email: Some("alice@example.com".into()),
            ..ProfileUpdate::default()
        };
        let named = ProfileUpdate {
            realname: Some("Robert".into()),
            comment: Some("builds".into()),
            ..ProfileUpdate::default()
        };
        (
            s.update_profile(ids[1], &taken, 30, &audit("update", "bob", 30))
                .await,
            s.update_profile(ids[1], &named, 31, &audit("update", "bob", 31))
                .await,
            s.update_profile(999, &named, 31, &audit("update", "x", 31))
                .await,
            s.set_password(ids[1], "y", 32, &audit("update", "bob", 32))
                .await,
            s.set_sysadmin(ids[1], true, 33, &audit("update", "bob", 33))
                .await,
            s.set_sysadmin(999, true, 33, &audit("update", "x", 33))
                .await,
            s.user(ids[1]).await,
        )
    })
    .await;
    let listings = [
        query(vec![], &[], 0, u64::MAX),
        query(vec![(UserField::Username, fuzzy("O"))], &[], 0, 10),
        query(vec![], &[(UserField::Username, true)], 1, 2),
        query(vec![], &[(UserField::UpdateTime, true)], 10, 2),
        query(
            vec![(
                UserField::CreationTime,
                Match::Range(Some("11".into()), Some("20".into())),
            )],
            &[],
            0,
            10,
        ),
        query(
            vec![(
                UserField::Username,
                Match::AnyOf(vec!["carol".into(), "admin".into()]),
            )],
            &[],
            0,
            10,
        ),
        query(
            vec![(UserField::Email, exact("alice@example.com"))],
            &[],
            0,
            10,
        ),
        // Text against a number: it equals none, and every number is below it.
        query(vec![(UserField::CreationTime, exact("soon"))], &[], 0, 10),
        query(
            vec![(
                UserField::CreationTime,
                Match::Range(None, Some("soon".into())),
            )],
            &[],
            0,
            10,
        ),
        query(
            vec![(
                UserField::CreationTime,
                Match::Range(Some("soon".into()), None),
            )],
            &[],
            0,
            10,
        ),
    ];
    for (i, q) in listings.iter().enumerate() {
        pair.check(&format!("user listing {i}"), async |s| {
            s.list_users(q).await.unwrap()
        })
        .await;
    }
    ids
}

fn roles() -> Vec<Role> {
    let role = |id: i64, name: &str, permissions: &[(&str, &str)]| Role {
        id,
        name: name.into(),
        permissions: permissions
            .iter()
            .map(|(r, a)| (r.to_string(), a.to_string()))
            .collect(),
    };
    vec![
        role(
            1,
            "projectAdmin",
            &[("repository", "push"), ("member", "create")],
        ),
        role(
            2,
            "developer",
            &[("repository", "push"), ("repository", "pull")],
        ),
        role(3, "guest", &[("repository", "pull")]),
    ]
}

/// Projects, metadata, members and roles; returns alpha's id.
async fn projects_and_members(pair: &Pair, [alice, bob, admin]: &[i64; 3]) -> i64 {
    pair.check("roles", async |s| {
        s.seed_roles(&roles()).await.unwrap();
        s.seed_roles(&roles()[1..]).await.unwrap();
        s.roles().await.unwrap()
    })
    .await;
    let alpha = NewProject {
        name: "alpha".into(),
        owner_id: Some(*alice),
        public: false,
        metadata: BTreeMap::from([("auto_scan".into(), "true".into())]),
        storage_limit: None,
    };
    let alpha = pair
        .same("alpha", async |s| {
            s.create_project(&alpha, 1, 40, &audit("create", "alpha", 40))
                .await
        })
        .await
        .unwrap();
    let beta = NewProject {
        name: "beta".into(),
        owner_id: None,
        public: true,
        metadata: BTreeMap::new(),
        storage_limit: None,
    };
    let beta = pair
        .same("beta", async |s| {
            s.create_project(&beta, 1, 41, &audit("create", "beta", 41))
                .await
        })
        .await
        .unwrap();
    let gamma = pair
        .same("push makes gamma", async |s| {
            s.link_blob(&repo("gamma/app"), &digest("g"), 3, 42)
                .await
                .unwrap();
            s.project_by_name("gamma").await.unwrap()
        })
        .await
        .unwrap()
        .id;
    let group = pair
        .same("members", async |s| {
            let add = async |kind, entity, role| {
                s.add_member(alpha, kind, entity, role, 50, &audit("create", "m", 50))
                    .await
            };
            let bob = add(MemberKind::User, *bob, 2).await;
            (
                bob,
                add(MemberKind::User, *admin, 9).await,
                add(MemberKind::User, 999, 2).await,
                add(MemberKind::Group, 7, 3).await,
            )
        })
        .await
        .3
        .unwrap();
    pair.check("project changes", async |s| {
        let update = ProjectUpdate {
            public: Some(true),
            metadata: BTreeMap::from([("severity".into(), "high".into())]),
        };
        (
            s.update_project(alpha, &update, 60, &audit("update", "alpha", 60))
                .await,
            s.update_project(999, &update, 60, &audit("update", "x", 60))
                .await,
            s.delete_project_metadata(alpha, "auto_scan", 61, &audit("update", "a", 61))
                .await,
            s.delete_project_metadata(alpha, "auto_scan", 62, &audit("update", "a", 62))
                .await,
            s.set_member_role(alpha, group, 2, 63, &audit("update", "g", 63))
                .await,
            s.set_member_role(alpha, group, 99, 63, &audit("update", "g", 63))
                .await,
            s.set_member_role(beta, group, 2, 63, &audit("update", "g", 63))
                .await,
        )
    })
    .await;
    pair.check("project reads", async |s| {
        (
            s.project(alpha).await.unwrap(),
            s.project_by_name("beta").await.unwrap(),
            s.project_access("alpha").await.unwrap(),
            s.project_access("nope").await.unwrap(),
            s.list_members(alpha, None, 0, 10).await.unwrap(),
            s.list_members(alpha, Some("B"), 0, 10).await.unwrap(),
            s.list_members(alpha, None, 5, 10).await.unwrap(),
            s.member(alpha, group).await.unwrap(),
            s.member(beta, group).await.unwrap(),
            s.user_roles(*alice).await.unwrap(),
            s.user_roles(*bob).await.unwrap(),
        )
    })
    .await;
    let visibilities = [
        Visibility::All,
        Visibility::PublicOnly,
        Visibility::PublicOrMemberOf(*bob),
        Visibility::PublicOr(vec![alpha]),
    ];
    let listings = [
        query(vec![], &[], 0, u64::MAX),
        query(vec![(ProjectField::Public, exact("0"))], &[], 0, 10),
        query(vec![(ProjectField::Owner, exact("alice"))], &[], 0, 10),
        query(
            vec![(ProjectField::Name, fuzzy("A"))],
            &[(ProjectField::Name, true)],
            0,
            10,
        ),
        query(
            vec![],
            &[(ProjectField::Public, false), (ProjectField::Id, true)],
            1,
            2,
        ),
    ];
    for (v, visibility) in visibilities.iter().enumerate() {
        for (i, q) in listings.iter().enumerate() {
            pair.check(&format!("project listing {v}.{i}"), async |s| {
                projects(s, visibility, q).await
            })
            .await;
        }
    }
    pair.check("removals", async |s| {
        (
            s.remove_member(alpha, group, &audit("delete", "g", 70))
                .await,
            s.remove_member(alpha, group, &audit("delete", "g", 71))
                .await,
            s.delete_project(gamma, &audit("delete", "gamma", 72)).await,
            s.delete_project(beta, &audit("delete", "beta", 73)).await,
            s.delete_project(beta, &audit("delete", "beta", 74)).await,
            s.delete_user(*bob, &audit("delete", "bob", 75)).await,
            s.user_roles(*bob).await,
            s.list_members(alpha, None, 0, 10).await,
        )
    })
    .await;
    alpha
}

fn grant(kind: &str, namespace: &str, access: &[(&str, &str)]) -> RobotGrant {
    RobotGrant {
        kind: kind.into(),
        namespace: namespace.into(),
        access: access
            .iter()
            .map(|(r, a)| (r.to_string(), a.to_string()))
            .collect(),
    }
}

async fn robots(pair: &Pair, alpha: i64) {
    let ci = NewRobot {
        name: "alpha+ci".into(),
        description: "builds".into(),
        secret_hash: "h1".into(),
        level: RobotLevel::Project,
        project_id: Some(alpha),
        duration_days: 30,
        expires_at: 1000,
        disabled: false,
        creator: "alice".into(),
        grants: vec![grant(
            "project",
            "alpha",
            &[
                ("repository", "push"),
                ("repository", "pull"),
                ("repository", "pull"),
            ],
        )],
    };
    let sys = NewRobot {
        name: "sys".into(),
        level: RobotLevel::System,
        project_id: None,
        duration_days: -1,
        expires_at: -1,
        grants: vec![
            grant("system", "/", &[("project", "create")]),
            grant("project", "*", &[("repository", "pull")]),
            grant("project", "alpha", &[("artifact", "delete")]),
        ],
        ..ci.clone()
    };
    let (ci, sys) = pair
        .same("create robots", async |s| {
            (
                s.create_robot(&ci, 80, &audit("create", "ci", 80))
                    .await
                    .unwrap(),
                s.create_robot(&sys, 81, &audit("create", "sys", 81))
                    .await
                    .unwrap(),
            )
        })
        .await;
    pair.check("robot changes", async |s| {
        let update = RobotUpdate {
            description: "nightly".into(),
            duration_days: 7,
            expires_at: 2000,
            disabled: true,
            grants: vec![grant("project", "alpha", &[("tag", "create")])],
        };
        (
            s.update_robot(ci, &update, 82, &audit("update", "ci", 82))
                .await,
            s.update_robot(999, &update, 82, &audit("update", "x", 82))
                .await,
            s.set_robot_secret(ci, "h2", 83, &audit("update", "ci", 83))
                .await,
            s.set_robot_secret(999, "h2", 83, &audit("update", "x", 83))
                .await,
            s.robot(ci).await,
            s.robot_by_name("sys").await,
            s.robot_by_name("nope").await,
        )
    })
    .await;
    let listings = [
        query(vec![], &[], 0, u64::MAX),
        query(vec![(RobotField::Level, exact("project"))], &[], 0, 10),
        query(
            vec![(RobotField::ProjectId, exact(&alpha.to_string()))],
            &[],
            0,
            10,
        ),
        query(
            vec![(RobotField::Name, fuzzy("+"))],
            &[(RobotField::CreationTime, true)],
            0,
            10,
        ),
        query(vec![], &[(RobotField::Name, true)], 1, 1),
    ];
    for (i, q) in listings.iter().enumerate() {
        pair.check(&format!("robot listing {i}"), async |s| {
            s.list_robots(q).await.unwrap()
        })
        .await;
    }
    // Deleting the project takes its robots and the grants naming it.
    pair.check("robots go with their project", async |s| {
        (
            s.delete_project(alpha, &audit("delete", "alpha", 84)).await,
            s.robot(ci).await,
            s.robot(sys).await,
            s.delete_robot(sys, &audit("delete", "sys", 85)).await,
            s.delete_robot(sys, &audit("delete", "sys", 86)).await,
        )
    })
    .await;
}

async fn settings_and_sessions(pair: &Pair) {
    pair.check("settings", async |s| {
        let first = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".into(), "2".into())]);
        s.init_settings(&first).await.unwrap();
        let again = BTreeMap::from([("a".to_string(), "9".to_string()), ("c".into(), "3".into())]);
        s.init_settings(&again).await.unwrap();
        let put = BTreeMap::from([("b".to_string(), "5".to_string())]);
        s.put_settings(&put, &audit("update", "settings", 90))
            .await
            .unwrap();
        s.settings().await.unwrap()
    })
    .await;
    pair.check("sessions", async |s| {
        for (id, user, expires) in [
            ("s1", "alice", 100),
            ("s2", "alice", 200),
            ("s3", "bob", 50),
        ] {
            let session = StoredSession {
                id_hash: id.into(),
                username: user.into(),
                csrf_hash: format!("csrf-{id}"),
                expires_at: expires,
            };
            s.create_session(&session).await.unwrap();
        }
        (
            s.session("s1", 99).await,
            s.session("s1", 100).await,
            s.end_session("s1").await,
            s.end_session("s1").await,
            s.purge_sessions(60).await,
            s.end_sessions_of("alice").await,
            s.session("s2", 0).await,
        )
    })
    .await;
}

fn manifest(
    body: &str,
    blobs: &[(&str, u64)],
    children: &[(&str, u64)],
    tags: &[&str],
) -> NewManifest {
    NewManifest {
        repository: repo("delta/app"),
        digest: digest(body),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        artifact_type: None,
        annotations: None,
        subject: None,
        content: Bytes::from(body.to_owned()),
        blobs: blobs.iter().map(|(b, s)| (digest(b), *s)).collect(),
        children: children.iter().map(|(c, s)| (digest(c), *s)).collect(),
        tags: tags.iter().map(|t| Tag::parse(t).unwrap()).collect(),
        pushed_at: 100,
        audit: Some(audit("create", body, 100)),
        guard: None,
    }
}

async fn artifacts(pair: &Pair) {
    let app = repo("delta/app");
    pair.check("pushes", async |s| {
        for (blob, size) in [("cfg", 3), ("l1", 40), ("l2", 500)] {
            s.link_blob(&app, &digest(blob), size, 99).await.unwrap();
        }
        s.link_blob(&repo("delta/other"), &digest("l1"), 40, 99)
            .await
            .unwrap();
        s.put_manifest(&manifest(
            "image",
            &[("cfg", 3), ("l1", 40)],
            &[],
            &["v1", "latest"],
        ))
        .await
        .unwrap();
        s.put_manifest(&manifest("second", &[("cfg", 3), ("l2", 500)], &[], &[]))
            .await
            .unwrap();
        s.put_manifest(&manifest(
            "index",
            &[],
            &[("image", 5), ("second", 6)],
            &["multi"],
        ))
        .await
        .unwrap();
        let mut sig = manifest("signature", &[], &[], &[]);
        sig.subject = Some(digest("image"));
        sig.artifact_type = Some("application/vnd.dev.cosign".into());
        sig.annotations = Some(r#"{"a":"b"}"#.into());
        s.put_manifest(&sig).await.unwrap();
        let pulls = [PullRecord {
            repository: app.clone(),
            digest: digest("image"),
            tag: Some(Tag::parse("v1").unwrap()),
            count: 2,
        }];
        s.record_pulls(&pulls, 110, &[(app.clone(), audit("pull", "image", 110))])
            .await
    })
    .await;
    let project = pair
        .same("repository", async |s| {
            s.repository_info(&app).await.unwrap()
        })
        .await
        .unwrap()
        .project_id;
    pair.check("repository changes", async |s| {
        (
            s.set_repository_description(&app, "the app", 120, &audit("update", "app", 120))
                .await,
            s.set_repository_description(&repo("delta/none"), "x", 120, &audit("u", "x", 120))
                .await,
            s.stored_bytes(&[project]).await,
            s.stored_bytes(&[]).await,
        )
    })
    .await;
    for (i, q) in [
        query(vec![], &[], 0, u64::MAX),
        query(
            vec![(RepositoryField::Name, fuzzy("APP"))],
            &[(RepositoryField::PullCount, true)],
            0,
            10,
        ),
        query(vec![], &[(RepositoryField::Name, true)], 1, 5),
    ]
    .iter()
    .enumerate()
    {
        pair.check(&format!("repository listing {i}"), async |s| {
            s.list_repositories(&[project], q).await.unwrap()
        })
        .await;
    }
    for (i, q) in [
        query(vec![], &[], 0, u64::MAX),
        query(vec![(ArtifactField::Tags, exact("*"))], &[], 0, 10),
        query(vec![(ArtifactField::Tags, exact("nil"))], &[], 0, 10),
        query(vec![(ArtifactField::Tags, exact("v1"))], &[], 0, 10),
        query(vec![(ArtifactField::Tags, fuzzy("LAT"))], &[], 0, 10),
        query(
            vec![(ArtifactField::Tags, Match::AnyOf(vec!["v1".into()]))],
            &[],
            0,
            10,
        ),
        query(
            vec![(
                ArtifactField::PushTime,
                Match::Range(Some("100".into()), None),
            )],
            &[
                (ArtifactField::PullTime, true),
                (ArtifactField::Digest, false),
            ],
            1,
            2,
        ),
        query(vec![(ArtifactField::MediaType, fuzzy("oci"))], &[], 9, 2),
    ]
    .iter()
    .enumerate()
    {
        pair.check(&format!("artifact listing {i}"), async |s| {
            s.list_artifacts(&app, q, 6).await.unwrap()
        })
        .await;
    }
    pair.check("artifact reads", async |s| {
        (
            s.artifact(&app, &Reference::Tag(Tag::parse("latest").unwrap()), 0)
                .await,
            s.artifact(&app, &Reference::Digest(digest("index")), u64::MAX)
                .await,
            s.artifact(&app, &Reference::Tag(Tag::parse("none").unwrap()), 0)
                .await,
            s.referring_artifacts(&app, &digest("image"), u64::MAX)
                .await,
        )
    })
    .await;
    pair.check("tags added", async |s| {
        let tag = |t: &str| Tag::parse(t).unwrap();
        (
            s.add_tag(
                &app,
                &digest("second"),
                &tag("v2"),
                130,
                &audit("create", "v2", 130),
            )
            .await,
            s.add_tag(
                &app,
                &digest("second"),
                &tag("v1"),
                131,
                &audit("create", "v1", 131),
            )
            .await,
            s.add_tag(
                &app,
                &digest("none"),
                &tag("v3"),
                132,
                &audit("create", "v3", 132),
            )
            .await,
            s.artifact(&app, &Reference::Tag(tag("v2")), 0).await,
        )
    })
    .await;
    pair.check("repository deleted", async |s| {
        (
            s.delete_repository(&app, None, &audit("delete", "app", 140))
                .await,
            s.delete_repository(&app, None, &audit("delete", "app", 141))
                .await,
            s.linked_blob(&app, &digest("cfg")).await,
            s.linked_blob(&repo("delta/other"), &digest("l1")).await,
        )
    })
    .await;
}

async fn audit_log(pair: &Pair, alpha: i64) {
    pair.check("recorded", async |s| {
        s.record_audit(&[audit("login", "alice", 150), audit("login", "bob", 151)])
            .await
    })
    .await;
    for (i, (projects, q)) in [
        (None, query(vec![], &[], 0, u64::MAX)),
        (Some(vec![alpha]), query(vec![], &[], 0, u64::MAX)),
        (Some(vec![]), query(vec![], &[], 0, 10)),
        (
            None,
            query(
                vec![
                    (AuditField::Operation, exact("create")),
                    (
                        AuditField::OpTime,
                        Match::Range(Some("40".into()), Some("100".into())),
                    ),
                ],
                &[(AuditField::OpTime, true)],
                1,
                3,
            ),
        ),
        (
            None,
            query(
                vec![(AuditField::Resource, fuzzy("AL"))],
                &[(AuditField::Username, false), (AuditField::Id, true)],
                0,
                10,
            ),
        ),
    ]
    .iter()
    .enumerate()
    {
        pair.check(&format!("audit listing {i}"), async |s| {
            s.list_audit(projects.as_deref(), q).await.unwrap()
        })
        .await;
    }
    pair.check("purged", async |s| {
        (
            s.purge_audit(50).await,
            s.list_audit(None, &query(vec![], &[], 0, 3)).await,
        )
    })
    .await;
}

/// Creations refused for a taken name or address (last: a refused creation may use up
/// an id on PostgreSQL, whose sequences never give one back).
async fn refusals(pair: &Pair) {
    let alice = new_user("alice", false);
    let taken_email = NewUser {
        email: "alice@example.com".into(),
        ..new_user("dave", false)
    };
    let project = NewProject {
        name: "gamma".into(),
        owner_id: None,
        public: false,
        metadata: BTreeMap::new(),
        storage_limit: None,
    };
    let robot = NewRobot {
        name: "alpha+ci".into(),
        description: String::new(),
        secret_hash: "h".into(),
        level: RobotLevel::System,
        project_id: None,
        duration_days: -1,
        expires_at: -1,
        disabled: false,
        creator: String::new(),
        grants: Vec::new(),
    };
    pair.check("refusals", async |s| {
        s.link_blob(&repo("gamma/app"), &digest("g"), 3, 160)
            .await
            .unwrap();
        s.create_robot(&robot, 160, &audit("create", "r", 160))
            .await
            .unwrap();
        (
            s.create_user(&alice, 160, &audit("create", "alice", 160))
                .await,
            s.create_user(&taken_email, 160, &audit("create", "dave", 160))
                .await,
            s.create_project(&project, 1, 160, &audit("create", "gamma", 160))
                .await,
            s.create_robot(&robot, 160, &audit("create", "r", 160))
                .await,
        )
    })
    .await;
}
