//! Races between nodes: two stores on one database are two nodes, each with its own
//! pool and caches. Each race runs many times at once, so that the interleavings the
//! locks rule out would show.

use std::sync::Arc;
use std::time::Duration;

use berth_meta::conformance::sweep_bytes::{BoxedRetire, MemoryBytes, NoBytes, RetireWith};
use berth_meta::{
    ArtifactStore, AuditEntry, BlobLinkStore, CollectionStore, CreateUploadError, Deletion,
    ManifestStore, MarkedBlob, MemberError, MemberKind, NewManifest, NewProject, NewUploadPin,
    PinOutcome, ProjectError, ProjectStore, PullRecord, PutManifestError, RepositoryStore, Role,
    SessionLimits, SweepBytes, UploadAdvance, UploadPin, UploadSession, UploadStore, UserStore,
    Visibility,
};
use berth_oci::{Algorithm, Digest, Reference, Tag, UploadId};
use berth_testkit_postgres::TempDatabase;
use bytes::Bytes;
use tokio::task::JoinHandle;

use super::{digest, new_user, node, repo};
use crate::{PgConfig, PgMetaStore, queries};

type Node = Arc<PgMetaStore>;

/// A fresh database and two nodes on it.
async fn two_nodes() -> Option<(TempDatabase, Node, Node)> {
    let db = TempDatabase::create().await?;
    let (a, b) = (node(&db).await, node(&db).await);
    Some((db, Arc::new(a), Arc::new(b)))
}

pub(super) fn manifest(
    repository: &str,
    body: &str,
    blobs: &[(&str, u64)],
    tags: &[&str],
) -> NewManifest {
    NewManifest {
        repository: repo(repository),
        digest: digest(body),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        artifact_type: None,
        annotations: None,
        subject: None,
        content: Bytes::from(body.to_owned()),
        blobs: blobs.iter().map(|(b, s)| (digest(b), *s)).collect(),
        children: Vec::new(),
        tags: tags.iter().map(|t| Tag::parse(t).unwrap()).collect(),
        pushed_at: 1,
        audit: None,
        guard: None,
    }
}

fn audit() -> AuditEntry {
    AuditEntry {
        project_id: None,
        username: "tester".into(),
        operation: "delete".into(),
        resource_type: "thing".into(),
        resource: "thing".into(),
        success: true,
        client_ip: "192.0.2.1".into(),
        op_time: 1,
    }
}

/// Awaits every task, in order.
async fn all<T>(tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_racing_a_blob_delete_never_keeps_a_manifest_without_its_blob() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let mut races = Vec::new();
    for i in 0..40 {
        let (repository, layer) = (format!("race/blob{i}"), format!("layer{i}"));
        a.link_blob(&repo(&repository), &digest(&layer), 1, 1)
            .await
            .unwrap();
        let m = manifest(&repository, &format!("image{i}"), &[(&layer, 1)], &["v1"]);
        let (a, b) = (a.clone(), b.clone());
        races.push(tokio::spawn(async move {
            let (r, layer) = (repo(&repository), digest(&layer));
            let (pushed, unlinked) =
                tokio::join!(a.put_manifest(&m), b.unlink_blob(&r, &layer, None));
            match (pushed, unlinked.unwrap()) {
                (Ok(_), Deletion::ReferencedBy(by)) => assert_eq!(by, m.digest),
                (Err(PutManifestError::BlobUnknown(_)), Deletion::Deleted) => {}
                other => panic!("{repository}: {other:?}"),
            }
            let kept = a.manifest(&r, &Reference::Digest(m.digest.clone())).await;
            let linked = b.linked_blob(&r, &layer).await.unwrap();
            assert_eq!(kept.unwrap().is_some(), linked.is_some(), "{repository}");
        }));
    }
    all(races).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_push_racing_a_child_delete_never_keeps_an_index_without_its_child() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let mut races = Vec::new();
    for i in 0..40 {
        let repository = format!("race/index{i}");
        let child = manifest(&repository, &format!("child{i}"), &[], &[]);
        a.put_manifest(&child).await.unwrap();
        let mut index = manifest(&repository, &format!("index{i}"), &[], &["multi"]);
        index.children = vec![(child.digest.clone(), child.content.len() as u64)];
        let (a, b) = (a.clone(), b.clone());
        races.push(tokio::spawn(async move {
            let r = repo(&repository);
            let (pushed, deleted) = tokio::join!(
                a.put_manifest(&index),
                b.delete_manifest(&r, &child.digest, None, None, 2)
            );
            match (pushed, deleted.unwrap()) {
                (Ok(_), Deletion::ReferencedBy(by)) => assert_eq!(by, index.digest),
                (Err(PutManifestError::ManifestUnknown(_)), Deletion::Deleted) => {}
                other => panic!("{repository}: {other:?}"),
            }
        }));
    }
    all(races).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_creating_one_project_share_it() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let pushes = (0..16).map(|i| {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            let r = repo(&format!("shared/app{i}"));
            node.link_blob(&r, &digest("layer"), 1, 1).await.unwrap();
            node.repository_info(&r).await.unwrap().unwrap().project_id
        })
    });
    let projects = all(pushes.collect()).await;
    let shared = a.project_by_name("shared").await.unwrap().unwrap();
    assert!(projects.iter().all(|&p| p == shared.id), "{projects:?}");
    assert_eq!(shared.repo_count, 16);

    // A project created by a user while a push creates it: one of them makes it, and the
    // push's repository is in it.
    let races = (0..20).map(|i| {
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            let name = format!("made{i}");
            let project = NewProject {
                name: name.clone(),
                owner_id: None,
                public: false,
                metadata: Default::default(),
                storage_limit: None,
            };
            let (r, layer, entry) = (repo(&format!("{name}/app")), digest("layer"), audit());
            let (created, pushed) = tokio::join!(
                a.create_project(&project, 1, 1, &entry),
                b.link_blob(&r, &layer, 1, 1)
            );
            pushed.unwrap();
            match created {
                Ok(_) | Err(ProjectError::NameTaken(_)) => {}
                Err(e) => panic!("{name}: {e}"),
            }
            let project = a.project_by_name(&name).await.unwrap().unwrap();
            let repository = a.repository_info(&r).await.unwrap().unwrap();
            assert_eq!(repository.project_id, project.id, "{name}");
        })
    });
    all(races.collect()).await;
    let listed = a
        .catalog(&Visibility::All, None, 1000)
        .await
        .unwrap()
        .names()
        .len();
    assert_eq!(listed, 36);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_into_a_project_being_deleted_stops_the_delete_or_makes_it_again() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let mut races = Vec::new();
    for i in 0..20 {
        let name = format!("doomed{i}");
        let project = NewProject {
            name: name.clone(),
            owner_id: None,
            public: false,
            metadata: Default::default(),
            storage_limit: None,
        };
        let id = a.create_project(&project, 1, 1, &audit()).await.unwrap();
        let (a, b) = (a.clone(), b.clone());
        races.push(tokio::spawn(async move {
            let (r, layer, entry) = (repo(&format!("{name}/app")), digest("layer"), audit());
            let (deleted, pushed) =
                tokio::join!(a.delete_project(id, &entry), b.link_blob(&r, &layer, 1, 1));
            pushed.unwrap_or_else(|e| panic!("{name}: the push failed: {e}"));
            match deleted {
                Ok(true) | Err(ProjectError::NotEmpty(1)) => {}
                other => panic!("{name}: {other:?}"),
            }
            let project = b.project_by_name(&name).await.unwrap().unwrap();
            let repository = b.repository_info(&r).await.unwrap().unwrap();
            assert_eq!(repository.project_id, project.id, "{name}");
        }));
    }
    all(races).await;
}

/// What the keys dropped by migration 0024 cascaded still goes with what it belongs
/// to: a deleted manifest's references, a deleted project's counted blobs and usage
/// shards.
#[tokio::test]
async fn deletes_leave_no_rows_of_what_they_deleted_behind() {
    let Some((_db, a, _)) = two_nodes().await else {
        return;
    };
    let rows = |sql: &'static str, project: i64| {
        let a = a.clone();
        async move {
            let count: i64 = sqlx::query_scalar(sql)
                .bind(project)
                .fetch_one(&a.pool)
                .await
                .unwrap();
            count
        }
    };
    let r = repo("cascade/app");
    assert!(
        a.link_blob(&r, &digest("cascade-layer"), 1, 1)
            .await
            .unwrap()
    );
    let image = manifest(
        "cascade/app",
        "cascade-image",
        &[("cascade-layer", 1)],
        &["v1"],
    );
    a.put_manifest(&image).await.unwrap();
    let project = a.project_by_name("cascade").await.unwrap().unwrap().id;
    let references = "SELECT count(*) FROM manifest_references mr
                      JOIN tags t ON t.manifest_id = mr.manifest_id
                      JOIN repositories r ON r.id = t.repository_id
                      WHERE r.project_id = $1";
    assert_eq!(rows(references, project).await, 1);
    let (counted, shards) = (
        "SELECT count(*) FROM project_blobs WHERE project_id = $1",
        "SELECT count(*) FROM quota_shards WHERE project_id = $1",
    );
    assert!(rows(shards, project).await > 0);
    assert_eq!(
        a.delete_manifest(&r, &digest("cascade-image"), None, None, 2)
            .await
            .unwrap(),
        Deletion::Deleted
    );
    let orphans = "SELECT count(*) FROM manifest_references
                   WHERE manifest_id NOT IN (SELECT id FROM manifests) AND $1 > 0";
    assert_eq!(rows(orphans, project).await, 0);
    a.put_manifest(&image).await.unwrap();
    assert_eq!(rows(counted, project).await, 2);
    assert_eq!(
        a.delete_repository(&r, None, &audit()).await.unwrap(),
        Deletion::Deleted
    );
    assert!(a.delete_project(project, &audit()).await.unwrap());
    assert_eq!(rows(counted, project).await, 0);
    assert_eq!(rows(shards, project).await, 0);
    assert_eq!(rows(orphans, project).await, 0);
}

fn session(seed: u16, repository: &str) -> UploadSession {
    let mut id = [0x5a; 16];
    id[..2].copy_from_slice(&seed.to_be_bytes());
    UploadSession {
        id: UploadId::from_random(id),
        repository: repo(repository),
        algorithm: Algorithm::Sha256,
        offset: 0,
        hash_state: Vec::new(),
        verified_by: None,
        verified_digest: None,
        created_at: 1,
        updated_at: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_limits_hold_across_nodes() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let limits = SessionLimits {
        total: 5,
        per_repository: 3,
    };
    let creations = (0..32).map(|i| {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        let s = session(i, if i % 4 < 2 { "up/a" } else { "up/b" });
        tokio::spawn(async move { node.create_upload(&s, limits).await.map(|()| s) })
    });
    let mut opened = Vec::new();
    for created in all(creations.collect()).await {
        match created {
            Ok(s) => opened.push(s.repository),
            Err(CreateUploadError::TooManySessions { open }) => assert_eq!(open, 5),
            Err(CreateUploadError::TooManyInRepository { open }) => assert_eq!(open, 3),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(opened.len(), 5, "{opened:?}");
    for r in ["up/a", "up/b"] {
        assert!(
            opened.iter().filter(|o| o.as_str() == r).count() <= 3,
            "{r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_advances_once_from_each_offset() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let s = session(1, "up/cas");
    a.create_upload(
        &s,
        SessionLimits {
            total: 9,
            per_repository: 9,
        },
    )
    .await
    .unwrap();
    let mut offset = 0;
    for round in 0..30 {
        let (one, two) = (chunk(offset, 1, 1, round), chunk(offset, 2, 2, round));
        let (by_a, by_b) =
            tokio::join!(a.advance_upload(&s.id, &one), b.advance_upload(&s.id, &two));
        let (by_a, by_b) = (by_a.unwrap(), by_b.unwrap());
        assert!(by_a != by_b, "round {round}: exactly one advances");
        offset += if by_a { 1 } else { 2 };
        let stored = b.upload(&s.id).await.unwrap().unwrap();
        assert_eq!(stored.offset, offset, "round {round}");
        assert_eq!(stored.hash_state, if by_a { [1] } else { [2] });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_follow_what_another_node_writes() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let r = repo("cache/app");
    let listed = async || {
        let page = a.tags(&r, None, 100).await.unwrap().unwrap();
        page.names().to_vec()
    };
    b.put_manifest(&manifest("cache/app", "one", &[], &["v1"]))
        .await
        .unwrap();
    assert_eq!(listed().await, ["v1"]);
    b.put_manifest(&manifest("cache/app", "two", &[], &["v2", "latest"]))
        .await
        .unwrap();
    assert_eq!(listed().await, ["latest", "v1", "v2"]);
    let v2 = Tag::parse("v2").unwrap();
    assert!(b.delete_tag(&r, &v2, None, None, 0).await.unwrap() == Deletion::Deleted);
    assert_eq!(listed().await, ["latest", "v1"]);
    b.add_tag(
        &r,
        &digest("one"),
        &Tag::parse("stable").unwrap(),
        2,
        &audit(),
    )
    .await
    .unwrap();
    assert_eq!(listed().await, ["latest", "stable", "v1"]);
    // A tag moved to another manifest: same names, another target.
    let v1 = Reference::Tag(Tag::parse("v1").unwrap());
    let resolved = async |reference: &Reference| {
        let found = a.manifest(&r, reference).await.unwrap();
        found.map(|m| m.digest)
    };
    assert_eq!(resolved(&v1).await, Some(digest("one")));
    b.put_manifest(&manifest("cache/app", "two", &[], &["v1"]))
        .await
        .unwrap();
    assert_eq!(resolved(&v1).await, Some(digest("two")));
    // Manifest bytes and resolutions cached on one node are not served once another
    // deleted them.
    let one = digest("one");
    let by_digest = Reference::Digest(one.clone());
    // Untagged first, so that only the manifest's own removal can tell `a`.
    assert!(
        b.delete_tag(&r, &Tag::parse("stable").unwrap(), None, None, 0)
            .await
            .unwrap()
            == Deletion::Deleted
    );
    assert_eq!(resolved(&by_digest).await, Some(one.clone()));
    assert_eq!(
        a.manifest_content(&r, &one).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(
        b.delete_manifest(&r, &one, None, None, 2).await.unwrap(),
        Deletion::Deleted
    );
    assert_eq!(resolved(&by_digest).await, None);
    assert_eq!(a.manifest_content(&r, &one).await.unwrap(), None);
    // A blob link another node removed, or a blob marked for deletion, is not served.
    let (kept, unlinked) = (digest("kept"), digest("unlinked"));
    for blob in [&kept, &unlinked] {
        b.link_blob(&r, blob, 7, 1).await.unwrap();
        assert_eq!(a.linked_blob(&r, blob).await.unwrap(), Some(7));
    }
    assert_eq!(
        b.unlink_blob(&r, &unlinked, None).await.unwrap(),
        Deletion::Deleted
    );
    assert_eq!(a.linked_blob(&r, &unlinked).await.unwrap(), None);
    assert_eq!(a.linked_blob(&r, &kept).await.unwrap(), Some(7));
    sqlx::query("UPDATE blobs SET status = 'deleting' WHERE digest = $1")
        .bind(kept.as_str())
        .execute(&b.pool)
        .await
        .unwrap();
    assert_eq!(a.linked_blob(&r, &kept).await.unwrap(), None);
    assert_eq!(listed().await, ["latest", "v1"]);
    // A repository deleted and pushed again is another repository.
    assert_eq!(
        b.delete_repository(&r, None, &audit()).await.unwrap(),
        Deletion::Deleted
    );
    assert!(a.tags(&r, None, 100).await.unwrap().is_none());
    b.put_manifest(&manifest("cache/app", "three", &[], &["new"]))
        .await
        .unwrap();
    assert_eq!(listed().await, ["new"]);
}

/// A push that adds a tag bumps its repository's version itself, with the tag trigger
/// quiet for its own upsert only: a later insert of tags in the same session bumps it
/// through the trigger again, in a later transaction as in the push's own. A tag set
/// again as it was bumps nothing; one moved bumps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_bumps_its_version_and_leaves_the_tag_trigger_armed() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let store = node(&db).await;
    store
        .put_manifest(&manifest("bump/app", "one", &[], &[]))
        .await
        .unwrap();
    let mut c = store.pool.acquire().await.unwrap();
    let mut version = async || -> i64 {
        sqlx::query_scalar("SELECT tag_version FROM repositories WHERE name = 'bump/app'")
            .fetch_one(&mut *c)
            .await
            .unwrap()
    };
    let before = version().await;
    let mut c2 = store.pool.acquire().await.unwrap();
    let push = async |c: &mut sqlx::PgConnection, body, tags: &[&str]| {
        let pushed = queries::put_manifest(c, &manifest("bump/app", body, &[], tags)).await;
        assert!(matches!(pushed, Ok(queries::ManifestPut::Stored(_))));
    };
    push(&mut c2, "two", &["v1"]).await;
    let pushed = version().await;
    assert!(pushed > before, "a push with a tag bumps the version");
    push(&mut c2, "three", &[]).await;
    assert_eq!(
        version().await,
        pushed,
        "a push without tags changes no cached read"
    );
    push(&mut c2, "two", &["v1"]).await;
    assert_eq!(
        version().await,
        pushed,
        "nor does a tag set again as it was"
    );
    push(&mut c2, "three", &["v1"]).await;
    let moved = version().await;
    assert!(moved > pushed, "a moved tag bumps the version");
    // In the push's own transaction, as a new repository's push runs, a later insert
    // of a tag still bumps through the trigger.
    let mut tx = sqlx::Connection::begin(&mut *c2).await.unwrap();
    push(&mut tx, "four", &["v2"]).await;
    sqlx::query(
        "INSERT INTO tags (repository_id, name, manifest_id, pushed_at)
         SELECT r.id, 'raw', m.id, 0 FROM repositories r
         JOIN manifests m ON m.repository_id = r.id
         WHERE r.name = 'bump/app' AND m.digest = $1",
    )
    .bind(digest("two").as_str())
    .execute(&mut *tx)
    .await
    .unwrap();
    let bumps: i64 =
        sqlx::query_scalar("SELECT tag_version - $1 FROM repositories WHERE name = 'bump/app'")
            .bind(moved)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(bumps, 2, "the push's bump, then the trigger's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_create_one_administrator() {
    for _ in 0..3 {
        let Some((_db, a, b)) = two_nodes().await else {
            return;
        };
        let (first, second) = (new_user("admin-a", true), new_user("admin-b", true));
        let (by_a, by_b) = tokio::join!(
            a.create_first_admin(&first, 1),
            b.create_first_admin(&second, 1)
        );
        assert!(by_a.unwrap() != by_b.unwrap(), "exactly one is created");
        let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE sysadmin")
            .fetch_one(&a.pool)
            .await
            .unwrap();
        assert_eq!(admins, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_added_while_its_user_is_deleted_is_not_left_behind() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let role = Role {
        id: 2,
        name: "developer".into(),
        permissions: Vec::new(),
    };
    a.seed_roles(&[role]).await.unwrap();
    let project = NewProject {
        name: "team".into(),
        owner_id: None,
        public: false,
        metadata: Default::default(),
        storage_limit: None,
    };
    let project = a.create_project(&project, 2, 1, &audit()).await.unwrap();
    let mut races = Vec::new();
    for i in 0..30 {
        let user = a
            .create_user(&new_user(&format!("u{i}"), false), 1, &audit())
            .await
            .unwrap();
        let (a, b) = (a.clone(), b.clone());
        races.push(tokio::spawn(async move {
            let entry = audit();
            let (added, deleted) = tokio::join!(
                a.add_member(project, MemberKind::User, user, 2, 1, &entry),
                b.delete_user(user, &entry)
            );
            assert!(deleted.unwrap());
            match added {
                Ok(_) | Err(MemberError::UnknownEntity) => {}
                Err(e) => panic!("u{i}: {e}"),
            }
            assert_eq!(a.user_roles(user).await.unwrap(), [], "u{i}");
        }));
    }
    all(races).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_batches_and_pushes_from_several_nodes_never_deadlock() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let names: Vec<String> = (0..4).map(|i| format!("pulled/app{i}")).collect();
    for name in &names {
        a.put_manifest(&manifest(name, "image", &[], &["v1"]))
            .await
            .unwrap();
    }
    let pulls: Vec<PullRecord> = names
        .iter()
        .map(|name| PullRecord {
            repository: repo(name),
            digest: digest("image"),
            tag: Some(Tag::parse("v1").unwrap()),
            count: 1,
        })
        .collect();
    let mut work = Vec::new();
    for round in 0..20_i64 {
        for (node, reversed) in [(a.clone(), false), (b.clone(), true)] {
            let mut batch = pulls.clone();
            if reversed {
                batch.reverse();
            }
            work.push(tokio::spawn(async move {
                node.record_pulls(&batch, round, &[]).await.unwrap();
            }));
        }
        let (node, name) = (b.clone(), names[round as usize % names.len()].clone());
        work.push(tokio::spawn(async move {
            let tag = format!("t{round}");
            node.put_manifest(&manifest(&name, "image", &[], &["v1", &tag]))
                .await
                .unwrap();
        }));
    }
    all(work).await;
    for name in &names {
        let info = a.repository_info(&repo(name)).await.unwrap().unwrap();
        assert_eq!(info.pull_count, 40, "{name}");
    }
}

/// Pull batches while other nodes push into, delete and make again the repositories
/// they name: a repository made again after the batch locked the others is a new row
/// the batch holds no lock on, so the batch must leave it alone rather than take it
/// after the manifests and tags a push in it waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_batches_racing_repository_deletes_never_deadlock() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let names: Vec<String> = (0..3).map(|i| format!("remade/app{i}")).collect();
    let layer = digest("layer");
    for name in &names {
        a.link_blob(&repo(name), &layer, 1, 1).await.unwrap();
    }
    let pulls: Vec<PullRecord> = names
        .iter()
        .map(|name| PullRecord {
            repository: repo(name),
            digest: digest("image1"),
            tag: Some(Tag::parse("v1").unwrap()),
            count: 1,
        })
        .collect();
    let mut work = Vec::new();
    for i in 0..240_usize {
        let (node, other) = if i % 2 == 0 {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        let (name, pulls, layer) = (names[i % names.len()].clone(), pulls.clone(), layer.clone());
        work.push(tokio::spawn(async move {
            let r = repo(&name);
            let done = match i % 5 {
                0 | 1 => {
                    let image = format!("image{}", i % 3);
                    match node
                        .put_manifest(&manifest(&name, &image, &[("layer", 1)], &["v1", "v2"]))
                        .await
                    {
                        Ok(_) | Err(PutManifestError::BlobUnknown(_)) => Ok(()),
                        Err(e) => Err(berth_meta::MetaError(e.to_string())),
                    }
                }
                2 => other.delete_repository(&r, None, &audit()).await.map(drop),
                3 => node.link_blob(&r, &layer, 1, 2).await.map(drop),
                _ => node.record_pulls(&pulls, 3, &[]).await,
            };
            done.map_err(|e| format!("{i}: {e}"))
        }));
    }
    let failed: Vec<String> = all(work)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

/// A blob that garbage collection marked for deletion is linked again by no node: two
/// mounts at once, one of them holding its repository's row (the first statement of
/// every push) when the other starts, both refuse, and neither deadlocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_marked_for_deletion_is_linked_again_by_no_node() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let (first, second, layer) = (repo("marked/first"), repo("marked/second"), digest("layer"));
    a.link_blob(&first, &layer, 1, 1).await.unwrap();
    a.unlink_blob(&first, &layer, None).await.unwrap();
    let marked = b.mark_unlinked_blobs("", 10, 2).await.unwrap();
    assert_eq!(
        marked,
        [MarkedBlob {
            digest: layer.clone(),
            size: 1
        }]
    );
    let mut tx = b.durable().await.unwrap();
    let second_id = queries::ensure_repository(&mut tx, &second, 2)
        .await
        .unwrap();
    let linking = {
        let (a, first, layer) = (a.clone(), first.clone(), layer.clone());
        tokio::spawn(async move { a.link_blob(&first, &layer, 1, 2).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let second_linked = queries::link_blob(&mut tx, second_id, layer.as_str(), 1, 2).await;
    tx.commit().await.unwrap();
    let first_linked = linking.await.unwrap();
    assert!(
        matches!((&first_linked, &second_linked), (Ok(false), Ok(false))),
        "a: {first_linked:?}, b: {second_linked:?}"
    );
    for r in [&first, &second] {
        assert_eq!(b.linked_blob(r, &layer).await.unwrap(), None);
    }
}

/// An upload completed into a repository that exists (one statement) links its blob
/// and ends the session, and with it the session's pin; another node that had the
/// repository's links cached sees each step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_completed_into_an_existing_repository_links_its_blob() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let (r, other, layer) = (repo("done/app"), digest("other"), digest("layer"));
    a.link_blob(&r, &other, 5, 1).await.unwrap();
    assert_eq!(b.linked_blob(&r, &other).await.unwrap(), Some(5));
    assert_eq!(b.linked_blob(&r, &layer).await.unwrap(), None);
    let upload = session(1, "done/app");
    a.create_upload(&upload, SessionLimits::NONE).await.unwrap();
    assert_eq!(pin(&a, &upload, &layer).await, PinOutcome::Pinned);
    a.complete_upload(&upload.id, &r, &layer, 5, 2)
        .await
        .unwrap();
    assert!(b.upload(&upload.id).await.unwrap().is_none());
    assert_eq!(b.linked_blob(&r, &layer).await.unwrap(), Some(5));
    let pins: i64 = sqlx::query_scalar("SELECT count(*) FROM uploads WHERE completing IS NOT NULL")
        .fetch_one(&b.pool)
        .await
        .unwrap();
    assert_eq!(pins, 0);
}

/// A session opened the way a node of the previous release opens one (in a
/// transaction: the session-limit lock, then the count and insert in one statement),
/// so that creations by nodes of both releases can race during an upgrade.
async fn create_upload_as_before(
    node: &PgMetaStore,
    s: &UploadSession,
    limits: SessionLimits,
) -> Result<(), CreateUploadError> {
    let mut tx = node.progress_pool.begin().await.map_err(crate::db_err)?;
    crate::Lock::UploadSessions.exclusive(&mut tx).await?;
    let (open, here): (i64, i64) = sqlx::query_as(
        "WITH open AS (
             SELECT count(*) AS total, count(*) FILTER (WHERE repository = $2) AS here
             FROM uploads),
         created AS (
             INSERT INTO uploads
                 (id, repository, algorithm, \"offset\", hash_state, verified_by,
                  verified_digest, created_at, updated_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM open
             WHERE total < $10 AND here < $11)
         SELECT total, here FROM open",
    )
    .bind(s.id.as_str())
    .bind(s.repository.as_str())
    .bind(s.algorithm.as_str())
    .bind(s.offset as i64)
    .bind(&s.hash_state)
    .bind(s.verified_by)
    .bind(s.verified_digest.as_ref().map(|d| d.as_str()))
    .bind(s.created_at)
    .bind(s.updated_at)
    .bind(limits.total as i64)
    .bind(limits.per_repository as i64)
    .fetch_one(&mut *tx)
    .await
    .map_err(crate::db_err)?;
    tx.commit().await.map_err(crate::db_err)?;
    let (open, here) = (open as u64, here as u64);
    if open >= limits.total {
        return Err(CreateUploadError::TooManySessions { open });
    }
    if here >= limits.per_repository {
        return Err(CreateUploadError::TooManyInRepository { open: here });
    }
    Ok(())
}

/// Creations and recordings as it completes of an id whose insert by another node is
/// not committed yet wait for it, then find the id taken (not a unique violation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_of_an_id_another_node_is_inserting_find_it_taken() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let first = session(1, "up/taken");
    let mut inserting = a.pool.begin().await.unwrap();
    queries::create_upload(&mut *inserting, None, &first, SessionLimits::NONE)
        .await
        .unwrap();
    let created = tokio::spawn({
        let (b, first) = (b.clone(), first.clone());
        async move { b.create_upload(&first, SessionLimits::NONE).await }
    });
    let recorded = tokio::spawn({
        let (b, first) = (b.clone(), first.clone());
        let pin = NewUploadPin {
            session: first,
            digest: digest("up-taken"),
            holder: 1,
            until: 100,
            published_at: 0,
        };
        async move { b.pin_new_upload(&pin).await }
    });
    // Both find no committed row, and wait on the uncommitted insert.
    tokio::time::sleep(Duration::from_millis(300)).await;
    inserting.commit().await.unwrap();
    assert!(matches!(
        created.await.unwrap(),
        Err(CreateUploadError::Taken)
    ));
    assert_eq!(recorded.await.unwrap().unwrap().outcome, PinOutcome::Taken);
    assert_eq!(b.upload(&first.id).await.unwrap(), Some(first));
}

/// Milliseconds since the Unix epoch by this machine's clock, the database's here.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.unwrap().as_millis() as i64
}

/// A whole blob's one-step completion of an id that another node is recording (its
/// insert not committed yet) waits for the id's lock, then finds the id taken: it never
/// links the blob and ends an id that has a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_step_completion_waits_for_a_recording_of_its_id() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let (r, blob) = (repo("up/step"), digest("up-step"));
    assert!(b.link_blob(&r, &digest("up-step-own"), 1, 1).await.unwrap());
    let first = session(3, "up/step");
    let mut recording = a.pool.begin().await.unwrap();
    queries::create_upload(&mut *recording, None, &first, SessionLimits::NONE)
        .await
        .unwrap();
    let completing = tokio::spawn({
        let (b, first) = (b.clone(), first.clone());
        let pin = NewUploadPin {
            session: UploadSession { offset: 4, ..first },
            digest: blob.clone(),
            holder: 1,
            until: 100,
            published_at: now_ms(),
        };
        async move { b.pin_new_upload(&pin).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!completing.is_finished(), "the completion waits for the id");
    recording.commit().await.unwrap();
    assert_eq!(
        completing.await.unwrap().unwrap().outcome,
        PinOutcome::Taken
    );
    assert_eq!(b.linked_blob(&r, &blob).await.unwrap(), None);
    assert_eq!(b.upload(&first.id).await.unwrap(), Some(first));
}

/// A recording of an id that another node's one-step completion is ending (linked, not
/// committed yet) waits for the id's lock, then finds the id ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_waits_for_a_one_step_completion_of_its_id() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let r = repo("up/ending");
    assert!(
        a.link_blob(&r, &digest("up-ending-own"), 1, 1)
            .await
            .unwrap()
    );
    let first = session(4, "up/ending");
    let mut completing = a.pool.begin().await.unwrap();
    let answer: String = sqlx::query_scalar(
        "SELECT outcome
         FROM complete_whole_upload($1, $2, $3, 'sha256', 4, '\\x00', NULL, NULL, 1, 1,
                                    1, 100, $4, $5, $6)",
    )
    .bind(first.id.as_str())
    .bind(digest("up-ending").as_str())
    .bind(r.as_str())
    .bind(r.project())
    .bind(now_ms())
    .bind(crate::collection::fresh_for_ms())
    .fetch_one(&mut *completing)
    .await
    .unwrap();
    assert_eq!(answer, "linked");
    let recording = tokio::spawn({
        let (b, first) = (b.clone(), first.clone());
        async move { b.create_upload(&first, SessionLimits::NONE).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!recording.is_finished(), "the recording waits for the id");
    completing.commit().await.unwrap();
    assert!(matches!(
        recording.await.unwrap(),
        Err(CreateUploadError::Taken)
    ));
    assert_eq!(b.upload(&first.id).await.unwrap(), None);
}

/// During an upgrade, nodes of the previous release (a transaction around the lock)
/// and of this one (`open_upload_session`) open sessions at once: they take the same
/// lock, so the limits hold across both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_limits_hold_across_nodes_of_two_releases() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let limits = SessionLimits {
        total: 7,
        per_repository: 4,
    };
    for round in 0..8_u16 {
        let creations = (0..24_u16).map(|i| {
            let (a, b) = (a.clone(), b.clone());
            let s = session(round * 100 + i, if i % 4 < 2 { "up/a" } else { "up/b" });
            tokio::spawn(async move {
                let created = if i % 2 == 0 {
                    a.create_upload(&s, limits).await
                } else {
                    create_upload_as_before(&b, &s, limits).await
                };
                created.map(|()| s)
            })
        });
        let mut opened = Vec::new();
        for created in all(creations.collect()).await {
            match created {
                Ok(s) => opened.push(s.repository),
                Err(CreateUploadError::TooManySessions { open }) => assert_eq!(open, 7),
                Err(CreateUploadError::TooManyInRepository { open }) => assert_eq!(open, 4),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(opened.len(), 7, "round {round}: {opened:?}");
        for r in ["up/a", "up/b"] {
            let here = opened.iter().filter(|o| o.as_str() == r).count();
            assert!(here <= 4, "round {round}: {here} sessions in {r}");
        }
        sqlx::query("DELETE FROM uploads")
            .execute(&a.pool)
            .await
            .unwrap();
    }
}

/// What garbage collection does to blobs no repository links: marks them, then sweeps
/// each (no bytes to delete here).
async fn collect(node: &PgMetaStore) -> Result<(), berth_meta::MetaError> {
    node.mark_unlinked_blobs("", 100, i64::MAX).await?;
    for blob in node.marked_blobs("", 100).await? {
        node.sweep_blob(&blob.digest, Duration::from_secs(60), &NoBytes)
            .await
            .map_err(|e| berth_meta::MetaError(e.to_string()))?;
    }
    Ok(())
}

/// Pins `digest` in `session`, as a completing upload without a last chunk does; what
/// the pin did.
async fn pin(node: &PgMetaStore, session: &UploadSession, digest: &Digest) -> PinOutcome {
    let pin = UploadPin {
        id: session.id.clone(),
        repository: session.repository.clone(),
        digest: digest.clone(),
        append: None,
    };
    node.pin_upload_digest(&pin).await.unwrap().outcome
}

/// Pins `digest` in `session` (reviving a marked blob of it), as a completing upload
/// does.
async fn pin_live(node: &PgMetaStore, session: &UploadSession, digest: &Digest) {
    match pin(node, session, digest).await {
        PinOutcome::Pinned | PinOutcome::Revived => {}
        other => panic!("pinning {digest} in {} answered {other:?}", session.id),
    }
}

/// A move over `length` bytes from `from`, written by `writer` at `now`.
fn chunk(from: u64, length: u64, writer: i64, now: i64) -> UploadAdvance {
    UploadAdvance {
        from,
        to: from + length,
        hash_state: vec![length as u8],
        writer,
        now,
    }
}

/// What another node does to a repository, or to a blob it links, while an upload
/// completes into it.
#[derive(Clone, Copy)]
enum Interference {
    Collect,
    Unlink,
    DeleteRepository,
}

/// Completes 60 uploads of `layer`, one into each of `names` in turn (each repository
/// linking `layer` already), while node `b` interferes as `interference` says for the
/// `i`th: nothing may fail (a deadlock fails one of the two), and each completion ends
/// its session.
async fn complete_while_interfering(
    a: &Node,
    b: &Node,
    names: &[String],
    layer: &Digest,
    interference: fn(u16) -> Interference,
) {
    for name in names {
        a.link_blob(&repo(name), layer, 7, 1).await.unwrap();
    }
    let mut work = Vec::new();
    for i in 0..60_u16 {
        let name = names[usize::from(i) % names.len()].clone();
        let (a, b, layer) = (a.clone(), b.clone(), layer.clone());
        work.push(tokio::spawn(async move {
            let r = repo(&name);
            let upload = session(1000 + i, &name);
            a.create_upload(&upload, SessionLimits::NONE).await.unwrap();
            let interfering = async {
                match interference(i) {
                    Interference::Collect => collect(&b).await,
                    Interference::Unlink => b.unlink_blob(&r, &layer, None).await.map(drop),
                    Interference::DeleteRepository => {
                        b.delete_repository(&r, None, &audit()).await.map(drop)
                    }
                }
            };
            let completing = async {
                pin_live(&a, &upload, &layer).await;
                a.complete_upload(&upload.id, &r, &layer, 7, 2).await
            };
            let (completed, interfered) = tokio::join!(completing, interfering);
            completed.unwrap_or_else(|e| panic!("completion {i}: {e}"));
            interfered.unwrap_or_else(|e| panic!("interference {i}: {e}"));
            assert!(a.upload(&upload.id).await.unwrap().is_none(), "{i}");
        }));
    }
    all(work).await;
    let linked_but_marked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
         WHERE b.status <> 'present'",
    )
    .fetch_one(&a.pool)
    .await
    .unwrap();
    assert_eq!(
        linked_but_marked, 0,
        "no link to a blob marked for deletion"
    );
    // A completion into each repository again links a present blob.
    for (i, name) in (5000..).zip(names) {
        let upload = session(i, name);
        a.create_upload(&upload, SessionLimits::NONE).await.unwrap();
        pin_live(a, &upload, layer).await;
        a.complete_upload(&upload.id, &repo(name), layer, 7, 3)
            .await
            .unwrap();
        assert_eq!(b.linked_blob(&repo(name), layer).await.unwrap(), Some(7));
        assert!(a.upload(&upload.id).await.unwrap().is_none());
    }
}

fn names(prefix: &str) -> Vec<String> {
    (0..3).map(|i| format!("{prefix}/r{i}")).collect()
}

/// Uploads completed into existing repositories (one statement each) while another
/// node deletes those repositories or unlinks the blob: the completion and the delete
/// each lock the repository first, and neither fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_racing_repository_deletes_and_unlinks_never_deadlock() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    complete_while_interfering(&a, &b, &names("gone"), &digest("layer"), |i| {
        if i % 2 == 0 {
            Interference::Unlink
        } else {
            Interference::DeleteRepository
        }
    })
    .await;
}

/// Uploads completed into repositories that link their blob already while another node
/// collects garbage: nothing marks a linked blob, and nothing deadlocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_racing_garbage_collection_never_deadlock() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    complete_while_interfering(&a, &b, &names("marked"), &digest("layer"), |_| {
        Interference::Collect
    })
    .await;
}

/// The same races at once, with unlinks and repository deletes that leave the blob
/// linked nowhere for a moment: the collector marks and sweeps it then, and the
/// completions that pin it meanwhile wait for the sweep and link it anew. The mark and
/// the pin each lock the digest, then the row, before they check, so a link made
/// meanwhile (an unlink undone, a repository made again) is seen, and no lock is taken
/// out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_racing_deletes_and_garbage_collection_never_deadlock() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    complete_while_interfering(&a, &b, &names("mixed"), &digest("layer"), |i| match i % 3 {
        0 => Interference::Collect,
        1 => Interference::Unlink,
        _ => Interference::DeleteRepository,
    })
    .await;
}

/// Two nodes whose server ends a transaction left idle for 1.5 s, as a node whose
/// database connection stalls sees it.
async fn two_nodes_with_short_timeouts() -> Option<(TempDatabase, Node, Node)> {
    let db = TempDatabase::create().await?;
    let config = PgConfig {
        statement_timeout: Duration::from_millis(1500),
        ..super::config(&db)
    };
    let (a, b) = (
        PgMetaStore::connect(&config).await.unwrap(),
        PgMetaStore::connect(&config).await.unwrap(),
    );
    Some((db, Arc::new(a), Arc::new(b)))
}

/// Links and unlinks `body`'s digest in `repository`, then marks it.
async fn marked(node: &PgMetaStore, repository: &str, body: &str) -> Digest {
    let d = digest(body);
    node.link_blob(&repo(repository), &d, 1, 1).await.unwrap();
    node.unlink_blob(&repo(repository), &d, None).await.unwrap();
    let marked = node.mark_unlinked_blobs("", 100, i64::MAX).await.unwrap();
    assert!(marked.iter().any(|m| m.digest == d));
    d
}

/// A sweep's deletion outlasts the server's idle timeout, which ends whatever session
/// the sweep had open: the blob stays the sweep's, so another node's sweep passes it
/// over; an upload of the digest revives it meanwhile, and the sweep, its row taken
/// over, deletes no row and restores what its late deletion moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_outliving_its_session_deletes_no_bytes_published_after_it() {
    use std::sync::atomic::{AtomicBool, Ordering};

    let Some((_db, a, b)) = two_nodes_with_short_timeouts().await else {
        return;
    };
    let d = marked(&a, "slow/sweep", "slow sweep").await;
    let (republished, late_deletes) = (AtomicBool::new(false), AtomicBool::new(false));
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let started_tx = std::sync::Mutex::new(Some(started_tx));
    let slow_delete = || -> BoxedRetire<'_> {
        let started = started_tx.lock().unwrap().take();
        Box::pin(async {
            if let Some(started) = started {
                let _ = started.send(());
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            late_deletes.store(republished.load(Ordering::SeqCst), Ordering::SeqCst);
            Ok(())
        })
    };
    let slow_delete = RetireWith(slow_delete);
    let slow = a.sweep_blob(&d, Duration::from_secs(20), &slow_delete);
    let meanwhile = async {
        started.await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            !b.sweep_blob(&d, Duration::from_secs(20), &NoBytes)
                .await
                .unwrap(),
            "the blob is the first sweep's"
        );
        let upload = session(1, "slow/sweep");
        b.create_upload(&upload, SessionLimits::NONE).await.unwrap();
        assert_eq!(pin(&b, &upload, &d).await, PinOutcome::Revived);
        republished.store(true, Ordering::SeqCst);
        b.complete_upload(&upload.id, &repo("slow/sweep"), &d, 1, 5)
            .await
            .unwrap();
    };
    let (swept, ()) = tokio::join!(slow, meanwhile);
    assert!(
        late_deletes.load(Ordering::SeqCst),
        "the deletion landed late"
    );
    assert!(
        !swept.unwrap(),
        "the revived row is not the sweep's to delete"
    );
    let live = b.live_blobs(std::slice::from_ref(&d)).await.unwrap();
    assert_eq!(live.iter().map(|l| &l.digest).collect::<Vec<_>>(), [&d]);
}

/// A deletion slower than a quarter of the lease is given up on, and the blob stays
/// claimed until the lease lapses: no other sweep deletes while it may still land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_gives_up_on_a_slow_deletion_and_keeps_its_claim() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let d = marked(&a, "slow/give-up", "given up").await;
    let lease = Duration::from_millis(1600);
    let stalled = || -> BoxedRetire<'_> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        })
    };
    let started = std::time::Instant::now();
    let given_up = a.sweep_blob(&d, lease, &RetireWith(stalled)).await;
    assert!(matches!(given_up, Err(berth_meta::SweepError::Bytes(_))));
    assert!(started.elapsed() < lease / 2, "{:?}", started.elapsed());
    assert!(!b.sweep_blob(&d, lease, &NoBytes).await.unwrap());
    tokio::time::sleep(lease).await;
    assert!(b.sweep_blob(&d, lease, &NoBytes).await.unwrap());
}

/// A retire that moves bytes for longer than the lease (a blob streamed through the
/// node) keeps its claim all along: no other sweep takes the blob over meanwhile, and
/// the sweep deletes the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retire_that_keeps_moving_bytes_keeps_its_claim_past_the_lease() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let d = marked(&a, "long/retire", "long retire").await;
    let bytes = MemoryBytes::default();
    bytes.publish(&d);
    // Long enough that a renewal slowed by a loaded machine stays within the quarter of
    // the lease a sweep waits for one.
    let lease = Duration::from_secs(3);
    let streaming = Stalled::streaming(&bytes, 3 * lease);
    let long = a.sweep_blob(&d, lease, &streaming);
    let meanwhile = async {
        tokio::time::sleep(2 * lease).await;
        let taken = b.sweep_blob(&d, lease, &NoBytes).await.unwrap();
        assert!(!taken, "the blob is still the first sweep's");
    };
    let (swept, ()) = tokio::join!(long, meanwhile);
    assert!(
        swept.unwrap(),
        "the sweep kept its claim and deleted the row"
    );
    assert_eq!((bytes.is_published(&d), bytes.retired()), (false, 0));
}

/// A retire that goes on moving bytes while its claim's renewal waits (the row locked
/// by another transaction, a database out of reach) is given up on a quarter of the
/// lease after the claim's last renewal, as one that moves nothing is: it never runs on
/// towards the claim's deadline, past which another node may take the blob over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retire_whose_renewal_hangs_is_given_up_on_within_its_budget() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let d = marked(&a, "hung/renewal", "hung renewal").await;
    let bytes = MemoryBytes::default();
    bytes.publish(&d);
    let lease = Duration::from_millis(1600);
    let streaming = Stalled::streaming(&bytes, 4 * lease);
    let started = std::time::Instant::now();
    let long = async {
        let swept = a.sweep_blob(&d, lease, &streaming).await;
        (swept, started.elapsed())
    };
    let hold_row = async {
        tokio::time::sleep(lease / 4).await;
        let mut held = b.pool.begin().await.unwrap();
        sqlx::query("SELECT 1 FROM blobs WHERE digest = $1 FOR UPDATE")
            .bind(d.as_str())
            .execute(&mut *held)
            .await
            .unwrap();
        tokio::time::sleep(3 * lease).await;
        held.rollback().await.unwrap();
    };
    let ((swept, took), ()) = tokio::join!(long, hold_row);
    assert!(swept.is_err(), "the retire was given up on: {swept:?}");
    assert!(
        took < lease,
        "the retire ran {took:?} on a claim last renewed before {:?}",
        lease / 4
    );
}

/// A long retire whose blob a completion revives meanwhile is stopped at its next
/// renewal, rather than streamed to its end, and what it moved goes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_retire_of_a_revived_blob_stops_and_puts_its_bytes_back() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let d = marked(&a, "long/revived", "long revived").await;
    let bytes = MemoryBytes::default();
    bytes.publish(&d);
    let lease = Duration::from_millis(1600);
    let streaming = Stalled::streaming(&bytes, 20 * lease);
    let started = std::time::Instant::now();
    let long = a.sweep_blob(&d, lease, &streaming);
    let revive = async {
        tokio::time::sleep(lease / 2).await;
        let upload = session(8, "long/revived");
        b.create_upload(&upload, SessionLimits::NONE).await.unwrap();
        assert_eq!(pin(&b, &upload, &d).await, PinOutcome::Revived);
    };
    let (swept, ()) = tokio::join!(long, revive);
    assert!(
        !swept.unwrap(),
        "the revived row is not the sweep's to delete"
    );
    assert!(started.elapsed() < 2 * lease, "{:?}", started.elapsed());
    assert!(bytes.is_published(&d), "the retired bytes went back");
}

/// A node that stalls (a paused VM, a starved thread, a reply held up on the network)
/// between claiming a blob and sending its retire cannot be stopped by the retire's
/// budget, which only starts once the node runs again: the lease lapses, another node
/// sweeps the blob, the digest is pushed again, and the first node's retire then lands
/// on the bytes of that acknowledged push. Its row delete, under a claim that is no
/// longer its own, deletes nothing, and it puts the bytes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stalled_past_its_lease_deletes_no_bytes_pushed_after_it() {
    let Some((db, a, b)) = two_nodes().await else {
        return;
    };
    let d = marked(&a, "stalled/sweep", "stalled sweep").await;
    let lease = Duration::from_millis(1000);
    let bytes = Arc::new(MemoryBytes::default());
    bytes.publish(&d);
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    // The first node is a process of its own, which the stall stops as a whole.
    let first = {
        let (config, d, bytes) = (super::config(&db), d.clone(), bytes.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let a = PgMetaStore::connect(&config).await.unwrap();
                let stalled = Stalled {
                    bytes: &bytes,
                    started: std::sync::Mutex::new(Some(started_tx)),
                    stall: 4 * lease,
                    streams: Duration::ZERO,
                };
                (a.sweep_blob(&d, lease, &stalled).await).map_err(|e| e.to_string())
            })
        })
    };
    started.await.unwrap();
    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    assert!(
        b.sweep_blob(&d, lease, &*bytes).await.unwrap(),
        "the lease lapsed: the other node sweeps"
    );
    assert!(!bytes.is_published(&d));
    let upload = session(7, "stalled/sweep");
    b.create_upload(&upload, SessionLimits::NONE).await.unwrap();
    pin_live(&b, &upload, &d).await;
    bytes.publish(&d);
    b.complete_upload(&upload.id, &repo("stalled/sweep"), &d, 1, 5)
        .await
        .unwrap();
    let swept = first.join().unwrap();
    assert_eq!(swept, Ok(false), "the stalled node's claim was taken over");
    assert!(
        bytes.is_published(&d),
        "the stalled node's retire took the bytes of a push acknowledged after it"
    );
    assert_eq!(
        bytes.retired(),
        1,
        "the restored copy is kept while the blob lives"
    );
    let live = b.live_blobs(std::slice::from_ref(&d)).await.unwrap();
    assert_eq!(live.iter().map(|l| &l.digest).collect::<Vec<_>>(), [&d]);
}

/// Sweep bytes whose retire first stalls the whole node (its thread sleeps) for
/// `stall`, then moves `bytes` aside, then goes on moving a byte every 50 ms for
/// `streams`, as a blob streamed through the node does.
struct Stalled<'a> {
    bytes: &'a MemoryBytes,
    started: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    stall: Duration,
    streams: Duration,
}

impl<'a> Stalled<'a> {
    /// A retire that never stalls and streams for `streams`.
    fn streaming(bytes: &'a MemoryBytes, streams: Duration) -> Self {
        Stalled {
            bytes,
            started: std::sync::Mutex::new(None),
            stall: Duration::ZERO,
            streams,
        }
    }
}

#[async_trait::async_trait]
impl SweepBytes for Stalled<'_> {
    async fn retire(
        &self,
        digest: &Digest,
        token: &str,
        moved: berth_meta::Moved<'_>,
    ) -> Result<(), berth_meta::SweepFailed> {
        if let Some(started) = self.started.lock().unwrap().take() {
            let _ = started.send(());
        }
        std::thread::sleep(self.stall);
        self.bytes.retire(digest, token, moved).await?;
        let end = std::time::Instant::now() + self.streams;
        while std::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(50)).await;
            moved(1);
        }
        Ok(())
    }

    async fn discard(&self, digest: &Digest, token: &str) -> Result<(), berth_meta::SweepFailed> {
        self.bytes.discard(digest, token).await
    }

    async fn restore(&self, digest: &Digest, token: &str) -> Result<(), berth_meta::SweepFailed> {
        self.bytes.restore(digest, token).await
    }
}

/// A deletion answered with an error (an S3 error answer, a permission error) is over:
/// the blob stays marked but free at once for another sweep (the next run's, or that of
/// an upload completing the digest), rather than held for the whole lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_whose_deletion_failed_holds_no_claim() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let d = marked(&a, "failed/sweep", "failed sweep").await;
    let lease = Duration::from_secs(120);
    let failing = || -> BoxedRetire<'_> {
        Box::pin(async { Err(berth_meta::SweepFailed("503 Slow Down".into())) })
    };
    assert!(a.sweep_blob(&d, lease, &RetireWith(failing)).await.is_err());
    assert!(
        b.sweep_blob(&d, lease, &NoBytes).await.unwrap(),
        "a deletion that failed still holds the blob against every other sweep"
    );
}

/// Creates project `name` with a storage `limit` on `node`; returns its id.
async fn project_with_limit(node: &PgMetaStore, name: &str, limit: i64) -> i64 {
    let project = NewProject {
        name: name.into(),
        owner_id: None,
        public: false,
        metadata: Default::default(),
        storage_limit: Some(limit),
    };
    node.create_project(&project, 1, 1, &audit()).await.unwrap()
}

/// A push into a project without a limit counts under a shared lock of the quota row; a
/// limit set meanwhile on another node waits for no such push, and a push that finds the
/// limit set once it has the lock is tried again, counted against the limit: refused
/// when the limit leaves it no room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_set_while_a_push_counts_holds_for_that_push() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let id = project_with_limit(&a, "capped", berth_meta::UNLIMITED).await;
    let r = repo("capped/app");
    b.link_blob(&r, &digest("capped-l1"), 7, 1).await.unwrap();
    // The limit change in progress: the usage and the quota row locked as
    // `set_quota_limit` locks them.
    let mut change = a.pool.begin().await.unwrap();
    for lock in [
        "SELECT quota_usage_lock($1, TRUE)",
        "SELECT 1 FROM quotas WHERE project_id = $1 FOR UPDATE",
    ] {
        sqlx::query(lock)
            .bind(id)
            .execute(&mut *change)
            .await
            .unwrap();
    }
    let pushing = {
        let b = b.clone();
        tokio::spawn(async move {
            b.put_manifest(&manifest(
                "capped/app",
                "capped-1",
                &[("capped-l1", 7)],
                &[],
            ))
            .await
        })
    };
    // The push waits on the row's lock.
    let waits = async {
        loop {
            let waiting: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                                WHERE wait_event_type = 'Lock' AND query LIKE '%push_manifest%')",
            )
            .fetch_one(&a.pool)
            .await
            .unwrap();
            if waiting {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), waits)
        .await
        .expect("the push never waited for the limit change");
    // One byte short of that push: its manifest (8 bytes) and its layer.
    sqlx::query("UPDATE quotas SET hard = 14 WHERE project_id = $1")
        .bind(id)
        .execute(&mut *change)
        .await
        .unwrap();
    change.commit().await.unwrap();
    assert!(matches!(
        pushing.await.unwrap(),
        Err(PutManifestError::QuotaExceeded(_))
    ));
    let quota = berth_meta::QuotaStore::quota(&*a, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((quota.hard, quota.used), (14, 0));
    assert_eq!(
        berth_meta::QuotaStore::usage_drift(&*a).await.unwrap(),
        Vec::new()
    );
}

/// A push that counts into a project without a limit but with a warning mark (its
/// limit removed by a change that had not committed when the mark was read) asks for a
/// look at the mark.
#[tokio::test]
async fn a_mark_without_a_limit_is_watched() {
    let Some((_db, a, _)) = two_nodes().await else {
        return;
    };
    let id = project_with_limit(&a, "marked", berth_meta::UNLIMITED).await;
    sqlx::query("UPDATE quotas SET warned = TRUE WHERE project_id = $1")
        .bind(id)
        .execute(&a.pool)
        .await
        .unwrap();
    let image = manifest("marked/app", "marked-1", &[], &["v1"]);
    assert_eq!(
        a.put_manifest(&image).await.unwrap(),
        berth_meta::WarningMark::Watched
    );
}

/// Backends of this test's database waiting for a lock in a statement that contains
/// `text`.
async fn waiting_in(node: &PgMetaStore, text: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'",
    )
    .bind(text)
    .fetch_one(&node.pool)
    .await
    .unwrap()
}

/// Waits until `n` backends wait for a lock in a statement that contains `text`.
async fn until_waiting(node: &PgMetaStore, text: &str, n: i64) {
    let waits = async {
        while waiting_in(node, text).await < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), waits)
        .await
        .is_err()
    {
        let sessions: Vec<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT state, wait_event_type || ':' || wait_event, left(query, 120)
             FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(&node.pool)
        .await
        .unwrap();
        panic!("never {n} statements with {text:?} waiting: {sessions:#?}");
    }
}

/// In a project without a limit, pushes count under a shared lock, while a delete (and
/// a limit change) needs it exclusive. A shared row lock would be granted at once to
/// whoever asks while the only holders are shared, even with a `FOR UPDATE` waiting: so
/// every push that started while the delete waited would go ahead of it, and as long as
/// pushes overlap (here each is held up by another push counting the same shared layer,
/// as pushes of images sharing a base are) the delete would wait, holding its
/// repository's lock, until the statement timeout ended it. The usage lock (migration
/// 0016) queues: pushes that start after the delete go after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_is_not_overtaken_by_pushes_that_start_after_it() {
    overtaken_by_later_pushes(false).await;
}

/// The same for a limit change (`set_quota_limit`): pushes that start after it go after
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_change_is_not_overtaken_by_pushes_that_start_after_it() {
    overtaken_by_later_pushes(true).await;
}

/// A write that locks the usage exclusively (a delete, or with `limit_change` a limit
/// change) while pushes count, each push held up by another counting its layer;
/// fails when pushes that started after the write go first.
async fn overtaken_by_later_pushes(limit_change: bool) {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let id = project_with_limit(&a, "busy", berth_meta::UNLIMITED).await;
    let old = repo("busy/old");
    a.link_blob(&old, &digest("busy-doomed-layer"), 7, 1)
        .await
        .unwrap();
    let doomed = manifest("busy/old", "busy-doomed", &[("busy-doomed-layer", 7)], &[]);
    a.put_manifest(&doomed).await.unwrap();
    const ROUNDS: usize = 4;
    let shared = |i: usize| format!("busy-shared-{i}");
    for i in 1..=ROUNDS {
        // A layer the project already holds, and a repository each push has to itself.
        for r in [format!("busy/base{i}"), format!("busy/top{i}")] {
            a.link_blob(&repo(&r), &digest(&shared(i)), 7, 1)
                .await
                .unwrap();
        }
        let layer = shared(i);
        let base = manifest(
            &format!("busy/base{i}"),
            &format!("busy-base-{i}"),
            &[(layer.as_str(), 7)],
            &[],
        );
        a.put_manifest(&base).await.unwrap();
    }
    // Another push counting layer `i` (its row of `project_blobs` locked until it
    // commits), and a push of a new image on top of that layer.
    let hold = |i: usize| {
        let (a, layer) = (a.clone(), digest(&shared(i)));
        async move {
            let mut tx = a.pool.begin().await.unwrap();
            sqlx::query(
                "UPDATE project_blobs SET refs = refs WHERE project_id = $1 AND digest = $2",
            )
            .bind(id)
            .bind(layer.as_str())
            .execute(&mut *tx)
            .await
            .unwrap();
            tx
        }
    };
    let push = |i: usize| {
        let b = b.clone();
        tokio::spawn(async move {
            let layer = format!("busy-shared-{i}");
            let top = manifest(
                &format!("busy/top{i}"),
                &format!("busy-top-{i}"),
                &[(layer.as_str(), 7)],
                &[],
            );
            b.put_manifest(&top).await
        })
    };

    let mut held = hold(1).await;
    let mut pushing = push(1);
    until_waiting(&a, "push_manifest", 1).await;
    // The write starts while push 1 counts: it waits for that push.
    let mut writing = {
        let a = a.clone();
        tokio::spawn(async move {
            if limit_change {
                // Still no limit, so that the pushes after it count as before.
                let (entry, limit) = (audit(), berth_meta::UNLIMITED);
                return berth_meta::QuotaStore::set_quota_limit(&*a, id, limit, 2, &entry).await;
            }
            let deleted = a
                .delete_manifest(&old, &digest("busy-doomed"), None, None, 2)
                .await?;
            Ok(deleted == Deletion::Deleted)
        })
    };
    let (what, statement) = match limit_change {
        true => ("limit change", "quota_usage_lock"),
        false => ("delete", "DELETE FROM manifests"),
    };
    until_waiting(&a, statement, 1).await;
    // Each round a push starts, then the one before it ends.
    for i in 2..=ROUNDS {
        let next = hold(i).await;
        let next_pushing = push(i);
        until_waiting(&a, "push_manifest", 2).await;
        held.commit().await.unwrap();
        pushing.await.unwrap().unwrap();
        (held, pushing) = (next, next_pushing);
    }

    // Every push that was counting when the write started ended long ago.
    let waited = tokio::time::timeout(Duration::from_secs(5), &mut writing).await;
    let still_waiting = waited.is_err();
    held.commit().await.unwrap();
    pushing.await.unwrap().unwrap();
    assert!(
        !still_waiting,
        "the {what} still waits for the usage lock: the {} pushes that started after it \
         went first, and so would every later one",
        ROUNDS - 1
    );
    assert!(waited.unwrap().unwrap().unwrap(), "the {what} is done");
    assert_eq!(
        berth_meta::QuotaStore::usage_drift(&*a).await.unwrap(),
        Vec::new()
    );
}

/// How a delete or a limit change locks a project's usage, then its quota row.
const EXCLUSIVE: [&str; 2] = [
    "SELECT quota_usage_lock($1, TRUE)",
    "SELECT 1 FROM quotas WHERE project_id = $1 FOR UPDATE",
];

/// Runs `statements`, each on the project `id`, in `tx`.
async fn run_all(
    tx: &mut sqlx::PgConnection,
    id: i64,
    statements: &[&str],
) -> Result<(), sqlx::Error> {
    for statement in statements {
        sqlx::query(statement).bind(id).execute(&mut *tx).await?;
    }
    Ok(())
}

/// A push that waited for the quota row of a project with a limit, and finds the limit
/// removed once it holds the row, starts over: counting on without a limit, it would ask
/// for the usage lock while holding the row, and deadlock with a delete or limit change
/// that took the usage lock and waits for the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_that_finds_its_limit_removed_deadlocks_with_no_delete() {
    let Some((_db, a, b)) = two_nodes().await else {
        return;
    };
    let id = project_with_limit(&a, "unlimiting", 1000).await;
    // The limit removed, as `set_quota_limit` does.
    let mut removal = a.pool.begin().await.unwrap();
    let removes = [
        EXCLUSIVE.as_slice(),
        &["UPDATE quotas SET hard = -1 WHERE project_id = $1"],
    ];
    run_all(&mut removal, id, &removes.concat()).await.unwrap();
    let count = "SELECT quota_count($1, ARRAY[$2], ARRAY[1::BIGINT])";
    let counting = {
        let b = b.clone();
        tokio::spawn(async move {
            let mut tx = b.pool.begin().await.unwrap();
            let first = sqlx::query(count)
                .bind(id)
                .bind(digest("unlimiting-1").as_str())
                .execute(&mut *tx)
                .await;
            (tx, first.map(drop))
        })
    };
    until_waiting(&a, "quota_count", 1).await;
    removal.commit().await.unwrap();
    let (mut push, first) = counting.await.unwrap();
    // A delete (or another limit change) takes the usage lock, then waits for the row.
    let deleting = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut tx = a.pool.begin().await?;
            run_all(&mut tx, id, &EXCLUSIVE).await?;
            tx.commit().await
        })
    };
    if first.is_ok() {
        until_waiting(&a, "WHERE project_id = $1 FOR UPDATE", 1).await;
        let second = sqlx::query(count)
            .bind(id)
            .bind(digest("unlimiting-2").as_str())
            .execute(&mut *push)
            .await;
        push.commit().await.unwrap();
        second.unwrap();
    } else {
        drop(push);
    }
    deleting.await.unwrap().unwrap();
}
