//! Checks of [`crate::ProjectStore`]: projects and their metadata, visibility, listings,
//! deletion, members and roles.

use std::collections::{BTreeMap, BTreeSet};

use super::support::{
    Case, DEVELOPER, GUEST, MAINTAINER, PROJECT_ADMIN, any_of, audit, audit_trail, audited,
    check_listings, digest, exact, fuzzy, new_project, new_user, query, range, repo, seed_roles,
};
use crate::Metadata;
use crate::{
    AuditEntry, Deletion, ListQuery, Listed, Match, Member, MemberError, MemberKind, NewProject,
    Project, ProjectAccessInfo, ProjectError, ProjectField, ProjectUpdate, Role, Visibility,
};

/// Runs the project checks.
pub(super) async fn run(store: &dyn Metadata) {
    seed_roles(store).await;
    projects_are_created_with_their_owner_as_administrator(store).await;
    updates_set_visibility_and_merge_metadata(store).await;
    listings_and_the_catalog_respect_visibility(store).await;
    project_listings_filter_sort_and_page(store).await;
    deleting_a_project_removes_what_it_held(store).await;
    members_are_added_changed_and_removed(store).await;
    roles_are_seeded_and_replaced(store).await;
}

/// Creates a user named `name`; returns its id.
async fn user(store: &dyn Metadata, name: &str) -> i64 {
    let audit = audit("cf-project-users", "create", name);
    store.create_user(&new_user(name), 1, &audit).await.unwrap()
}

/// A project is read back as created, by id and by name; its owner becomes its project
/// administrator; its audit entry names the new project. A name is taken once.
async fn projects_are_created_with_their_owner_as_administrator(store: &dyn Metadata) {
    let actor = "cf-proj-actor";
    let owner = user(store, "cf-proj-owner").await;
    let metadata = BTreeMap::from([
        ("auto_scan".to_string(), "true".to_string()),
        ("severity".to_string(), "high".to_string()),
    ]);
    let new = NewProject {
        metadata: metadata.clone(),
        ..new_project("cf-proj-one", Some(owner), true)
    };
    let created = audit(actor, "create", "cf-proj-one");
    let id = store
        .create_project(&new, PROJECT_ADMIN, 10, &created)
        .await
        .unwrap();
    let expected = Project {
        id,
        name: "cf-proj-one".into(),
        owner_id: Some(owner),
        owner_name: "cf-proj-owner".into(),
        public: true,
        metadata,
        repo_count: 0,
        created_at: 10,
        updated_at: 10,
    };
    assert_eq!(store.project(id).await.unwrap().as_ref(), Some(&expected));
    let by_name = store.project_by_name("cf-proj-one").await.unwrap();
    assert_eq!(by_name.as_ref(), Some(&expected));
    let access = store.project_access("cf-proj-one").await.unwrap();
    assert_eq!(access, Some(ProjectAccessInfo { id, public: true }));
    assert!(
        store
            .project_access("cf-proj-none")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .project_by_name("cf-proj-none")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.project(-1).await.unwrap().is_none());

    let members = store.list_members(id, None, 0, u64::MAX).await.unwrap();
    assert_eq!(members.total, 1);
    let admin = &members.items[0];
    assert_eq!(
        (admin.project_id, admin.kind, admin.entity_id),
        (id, MemberKind::User, owner)
    );
    assert_eq!(
        (
            admin.entity_name.as_str(),
            admin.role_id,
            admin.role_name.as_str()
        ),
        ("cf-proj-owner", PROJECT_ADMIN, "projectAdmin")
    );
    assert_eq!(
        store.user_roles(owner).await.unwrap(),
        [(id, PROJECT_ADMIN)]
    );
    let trail = audit_trail(store, actor).await;
    assert_eq!(
        trail,
        [AuditEntry {
            project_id: Some(id),
            ..created.clone()
        }],
        "the entry names the new project"
    );

    let again = new_project("cf-proj-one", None, false);
    match store
        .create_project(&again, PROJECT_ADMIN, 11, &created)
        .await
    {
        Err(ProjectError::NameTaken(name)) => assert_eq!(name, "cf-proj-one"),
        other => panic!("expected NameTaken, got {other:?}"),
    }
    assert_eq!(store.project(id).await.unwrap().as_ref(), Some(&expected));
    assert_eq!(
        audit_trail(store, actor).await.len(),
        1,
        "a refusal is not audited"
    );

    let ownerless = new_project("cf-proj-ownerless", None, false);
    let ownerless = store
        .create_project(&ownerless, PROJECT_ADMIN, 12, &audit(actor, "create", "x"))
        .await
        .unwrap();
    let ownerless = store.project(ownerless).await.unwrap().unwrap();
    assert_eq!(
        (
            ownerless.owner_id,
            ownerless.owner_name.as_str(),
            ownerless.public
        ),
        (None, "", false)
    );
    let members = store.list_members(ownerless.id, None, 0, u64::MAX).await;
    assert_eq!(members.unwrap().total, 0);
}

/// An update sets visibility when given and the metadata keys given, keeping the others;
/// a metadata key can be removed. Each change stamps the update time and is audited,
/// and a change of a missing project or key changes nothing and is not audited.
async fn updates_set_visibility_and_merge_metadata(store: &dyn Metadata) {
    let actor = "cf-meta-actor";
    let new = NewProject {
        metadata: BTreeMap::from([
            ("auto_scan".to_string(), "true".to_string()),
            ("severity".to_string(), "high".to_string()),
        ]),
        ..new_project("cf-meta", None, true)
    };
    let id = store
        .create_project(&new, PROJECT_ADMIN, 10, &audit(actor, "create", "created"))
        .await
        .unwrap();
    let update = ProjectUpdate {
        public: Some(false),
        metadata: BTreeMap::from([
            ("severity".to_string(), "low".to_string()),
            ("prevent_vul".to_string(), "true".to_string()),
        ]),
    };
    let updated = audit(actor, "update", "updated");
    assert!(
        store
            .update_project(id, &update, 20, &updated)
            .await
            .unwrap()
    );
    let project = store.project(id).await.unwrap().unwrap();
    let metadata = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        project.metadata,
        metadata(&[
            ("auto_scan", "true"),
            ("prevent_vul", "true"),
            ("severity", "low")
        ])
    );
    assert_eq!(
        (project.public, project.created_at, project.updated_at),
        (false, 10, 20)
    );
    let access = store.project_access("cf-meta").await.unwrap();
    assert_eq!(access, Some(ProjectAccessInfo { id, public: false }));
    let keep = ProjectUpdate::default();
    let kept = audit(actor, "update", "kept");
    assert!(store.update_project(id, &keep, 25, &kept).await.unwrap());
    let project = store.project(id).await.unwrap().unwrap();
    assert_eq!(
        (project.public, project.metadata.len(), project.updated_at),
        (false, 3, 25),
        "what an update does not name stays"
    );

    let removed = audit(actor, "update", "removed");
    assert!(
        store
            .delete_project_metadata(id, "severity", 30, &removed)
            .await
            .unwrap()
    );
    let project = store.project(id).await.unwrap().unwrap();
    assert_eq!(
        project.metadata,
        metadata(&[("auto_scan", "true"), ("prevent_vul", "true")])
    );
    assert_eq!(project.updated_at, 30);
    let missed = audit(actor, "update", "missed");
    assert!(
        !store
            .delete_project_metadata(id, "severity", 40, &missed)
            .await
            .unwrap()
    );
    assert_eq!(store.project(id).await.unwrap().unwrap().updated_at, 30);
    assert!(
        !store
            .update_project(-1, &update, 40, &missed)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_project_metadata(-1, "auto_scan", 40, &missed)
            .await
            .unwrap()
    );
    assert_eq!(
        audited(store, actor).await,
        ["created", "updated", "kept", "removed"]
    );
}

/// The names of a page of projects.
fn names(listed: &Listed<Project>) -> Vec<&str> {
    listed.items.iter().map(|p| p.name.as_str()).collect()
}

/// Anonymous callers see public projects; users also those they are members of; robots
/// those they hold permissions in; administrators all. The catalog shows the
/// repositories of the same projects.
async fn listings_and_the_catalog_respect_visibility(store: &dyn Metadata) {
    let actor = "cf-vis-actor";
    let member = user(store, "cf-vis-user").await;
    let mut ids = BTreeMap::new();
    for (name, owner, public) in [
        ("cf-vis-hidden", None, false),
        ("cf-vis-member", Some(member), false),
        ("cf-vis-public", None, true),
        ("cf-vis-robot", None, false),
    ] {
        let project = new_project(name, owner, public);
        let id = store
            .create_project(&project, DEVELOPER, 1, &audit(actor, "create", name))
            .await
            .unwrap();
        ids.insert(name, id);
        let repository = repo(&format!("{name}/app"));
        store
            .link_blob(&repository, &digest(name), 1, 1)
            .await
            .unwrap();
    }
    let cases = [
        (
            Visibility::All,
            &[
                "cf-vis-hidden",
                "cf-vis-member",
                "cf-vis-public",
                "cf-vis-robot",
            ][..],
        ),
        (Visibility::PublicOnly, &["cf-vis-public"]),
        (
            Visibility::PublicOrMemberOf(member),
            &["cf-vis-member", "cf-vis-public"],
        ),
        (Visibility::PublicOrMemberOf(-1), &["cf-vis-public"]),
        (
            Visibility::PublicOr(vec![ids["cf-vis-robot"]]),
            &["cf-vis-public", "cf-vis-robot"],
        ),
        (Visibility::PublicOr(Vec::new()), &["cf-vis-public"]),
    ];
    let ours = query(
        &[(ProjectField::Name, fuzzy("cf-vis-"))],
        &[(ProjectField::Name, false)],
    );
    for (visibility, expected) in cases {
        let listed = store.list_projects(&visibility, &ours).await.unwrap();
        assert_eq!(names(&listed), expected, "{visibility:?}");
        assert_eq!(listed.total, expected.len() as u64, "{visibility:?}");
        let catalog = store
            .catalog(&visibility, Some("cf-vis-"), 1000)
            .await
            .unwrap();
        let repositories: Vec<&str> = catalog
            .names()
            .iter()
            .map(String::as_str)
            .filter(|n| n.starts_with("cf-vis-"))
            .collect();
        let expected: Vec<String> = expected.iter().map(|p| format!("{p}/app")).collect();
        assert_eq!(repositories, expected, "catalog for {visibility:?}");
    }
}

/// Projects are filtered by each field, sorted by each key, and paged with the total of
/// the whole listing; a listed project is the stored project.
async fn project_listings_filter_sort_and_page(store: &dyn Metadata) {
    let actor = "cf-plist-actor";
    let first = user(store, "cf-plist-owner1").await;
    let second = user(store, "cf-plist-owner2").await;
    let mut ids = BTreeMap::new();
    for (name, owner, public, at) in [
        ("cf-plist-alpha", Some(first), true, 100),
        ("cf-plist-bravo", Some(second), false, 200),
        ("cf-plist-charlie", None, true, 300),
    ] {
        let project = NewProject {
            metadata: BTreeMap::from([("severity".to_string(), name.to_string())]),
            ..new_project(name, owner, public)
        };
        let id = store
            .create_project(&project, PROJECT_ADMIN, at, &audit(actor, "create", name))
            .await
            .unwrap();
        ids.insert(name, id);
    }
    let (alpha, bravo, charlie) = (
        ids["cf-plist-alpha"],
        ids["cf-plist-bravo"],
        ids["cf-plist-charlie"],
    );
    store
        .link_blob(&repo("cf-plist-alpha/app"), &digest("plist"), 1, 150)
        .await
        .unwrap();
    let touch = ProjectUpdate::default();
    assert!(
        store
            .update_project(bravo, &touch, 400, &audit(actor, "update", "bravo"))
            .await
            .unwrap()
    );

    let ours = (ProjectField::Name, fuzzy("cf-plist-"));
    let list = async |filters: &[(ProjectField, Match)], sort: &[(ProjectField, bool)]| {
        let mut all = vec![ours.clone()];
        all.extend_from_slice(filters);
        let query = query(&all, sort);
        store.list_projects(&Visibility::All, &query).await.unwrap()
    };
    let all = list(&[], &[]).await;
    assert_eq!(
        names(&all),
        ["cf-plist-alpha", "cf-plist-bravo", "cf-plist-charlie"]
    );
    for listed in &all.items {
        let stored = store.project(listed.id).await.unwrap();
        assert_eq!(Some(listed), stored.as_ref(), "listed as stored");
    }
    assert_eq!(all.items[0].repo_count, 1);

    let (a, b, c) = ("cf-plist-alpha", "cf-plist-bravo", "cf-plist-charlie");
    let by_name = [(ProjectField::Name, false)];
    let cases: [Case<ProjectField>; 14] = [
        (&[(ProjectField::Public, exact(1))], &by_name, &[a, c]),
        (&[(ProjectField::Public, exact(0))], &by_name, &[b]),
        (
            &[(ProjectField::Owner, exact("cf-plist-owner1"))],
            &[],
            &[a],
        ),
        (&[(ProjectField::Name, exact(b))], &[], &[b]),
        (&[(ProjectField::Name, fuzzy("PLIST-CH"))], &[], &[c]),
        (
            &[(ProjectField::CreationTime, range(Some(150), Some(300)))],
            &by_name,
            &[b, c],
        ),
        (
            &[(ProjectField::UpdateTime, range(Some(400), None))],
            &[],
            &[b],
        ),
        (
            &[(ProjectField::Id, any_of(&[alpha, charlie]))],
            &by_name,
            &[a, c],
        ),
        (&[(ProjectField::Id, exact(bravo))], &[], &[b]),
        (&[], &[(ProjectField::Name, true)], &[c, b, a]),
        (
            &[],
            &[(ProjectField::Public, true), (ProjectField::Name, true)],
            &[c, a, b],
        ),
        (
            &[(ProjectField::Id, any_of(&[alpha, bravo]))],
            &[(ProjectField::Owner, true)],
            &[b, a],
        ),
        (&[], &[(ProjectField::CreationTime, true)], &[c, b, a]),
        (&[], &[(ProjectField::UpdateTime, false)], &[a, c, b]),
    ];
    check_listings(&cases, &list, |p: &Project| p.name.as_str()).await;
    let by_id = list(&[], &[(ProjectField::Id, true)]).await;
    let mut descending = vec![alpha, bravo, charlie];
    descending.sort_by(|x, y| y.cmp(x));
    let listed: Vec<i64> = by_id.items.iter().map(|p| p.id).collect();
    assert_eq!(listed, descending);

    let page = ListQuery {
        offset: 1,
        limit: 1,
        ..query(std::slice::from_ref(&ours), &by_name)
    };
    let page = store.list_projects(&Visibility::All, &page).await.unwrap();
    assert_eq!((names(&page), page.total), (vec![b], 3));
}

/// A project holding repositories is not deleted. Deleting an empty one removes its
/// members and metadata, so a later project of the same name starts bare, with a new id.
async fn deleting_a_project_removes_what_it_held(store: &dyn Metadata) {
    let actor = "cf-del-actor";
    let owner = user(store, "cf-del-owner").await;
    let project = NewProject {
        metadata: BTreeMap::from([("auto_scan".to_string(), "true".to_string())]),
        ..new_project("cf-del", Some(owner), false)
    };
    let id = store
        .create_project(
            &project,
            PROJECT_ADMIN,
            1,
            &audit(actor, "create", "created"),
        )
        .await
        .unwrap();
    let repository = repo("cf-del/app");
    store
        .link_blob(&repository, &digest("cf-del"), 1, 1)
        .await
        .unwrap();
    let refused = audit(actor, "delete", "refused");
    match store.delete_project(id, &refused).await {
        Err(ProjectError::NotEmpty(1)) => {}
        other => panic!("expected NotEmpty(1), got {other:?}"),
    }
    assert!(store.project(id).await.unwrap().is_some());
    assert_eq!(
        store.user_roles(owner).await.unwrap(),
        [(id, PROJECT_ADMIN)]
    );

    let emptied = audit(actor, "delete", "repository");
    assert_eq!(
        store
            .delete_repository(&repository, None, &emptied)
            .await
            .unwrap(),
        Deletion::Deleted
    );
    let deleted = audit(actor, "delete", "deleted");
    assert!(store.delete_project(id, &deleted).await.unwrap());
    assert!(store.project(id).await.unwrap().is_none());
    assert!(store.project_by_name("cf-del").await.unwrap().is_none());
    assert!(store.project_access("cf-del").await.unwrap().is_none());
    assert!(store.user_roles(owner).await.unwrap().is_empty());
    let members = store.list_members(id, None, 0, u64::MAX).await.unwrap();
    assert_eq!((members.items.len(), members.total), (0, 0));
    let missed = audit(actor, "delete", "missed");
    assert!(!store.delete_project(id, &missed).await.unwrap());

    let bare = new_project("cf-del", None, false);
    let again = store
        .create_project(&bare, PROJECT_ADMIN, 2, &audit(actor, "create", "again"))
        .await
        .unwrap();
    assert!(again > id, "a new project never takes a deleted one's id");
    let again = store.project(again).await.unwrap().unwrap();
    assert!(again.metadata.is_empty(), "{:?}", again.metadata);
    let members = store
        .list_members(again.id, None, 0, u64::MAX)
        .await
        .unwrap();
    assert_eq!(members.total, 0);
    let bare = audit(actor, "delete", "bare");
    assert!(store.delete_project(again.id, &bare).await.unwrap());
    store
        .link_blob(&repo("cf-del-pushed/app"), &digest("cf-del"), 1, 3)
        .await
        .unwrap();
    let pushed = store
        .project_by_name("cf-del-pushed")
        .await
        .unwrap()
        .unwrap();
    assert!(pushed.id > again.id, "nor does a project a push creates");
    assert_eq!(
        audited(store, actor).await,
        ["created", "repository", "deleted", "again", "bare"]
    );
}

/// Members are added once each, with a known role, to existing users; they are listed,
/// filtered by name and paged; roles change and members go, within their project only.
async fn members_are_added_changed_and_removed(store: &dyn Metadata) {
    let actor = "cf-mem-actor";
    let project = new_project("cf-mem", None, false);
    let id = store
        .create_project(
            &project,
            PROJECT_ADMIN,
            1,
            &audit(actor, "create", "project"),
        )
        .await
        .unwrap();
    let other = new_project("cf-mem-other", None, false);
    let other = store
        .create_project(&other, PROJECT_ADMIN, 1, &audit(actor, "create", "other"))
        .await
        .unwrap();
    let ann = user(store, "cf-mem-ann").await;
    let bob = user(store, "cf-mem-bob").await;
    let carl = user(store, "cf-mem-carl").await;

    let add = async |user, role, label| {
        let audit = audit(actor, "create", label);
        store
            .add_member(id, MemberKind::User, user, role, 5, &audit)
            .await
    };
    let ann_member = add(ann, DEVELOPER, "ann").await.unwrap();
    let expected = Member {
        id: ann_member,
        project_id: id,
        kind: MemberKind::User,
        entity_id: ann,
        entity_name: "cf-mem-ann".into(),
        role_id: DEVELOPER,
        role_name: "developer".into(),
    };
    assert_eq!(
        store.member(id, ann_member).await.unwrap().as_ref(),
        Some(&expected)
    );
    assert!(store.member(other, ann_member).await.unwrap().is_none());
    assert!(matches!(
        add(ann, GUEST, "again").await,
        Err(MemberError::AlreadyMember)
    ));
    assert!(matches!(
        add(bob, 99, "no role").await,
        Err(MemberError::UnknownRole(99))
    ));
    assert!(matches!(
        add(-1, GUEST, "no user").await,
        Err(MemberError::UnknownEntity)
    ));
    let bob_member = add(bob, GUEST, "bob").await.unwrap();
    let carl_member = add(carl, MAINTAINER, "carl").await.unwrap();
    let other_member = store
        .add_member(
            other,
            MemberKind::User,
            ann,
            GUEST,
            5,
            &audit(actor, "c", "o"),
        )
        .await
        .unwrap();

    let listed = store.list_members(id, None, 0, u64::MAX).await.unwrap();
    assert_eq!(listed.total, 3);
    let mut roles: Vec<(&str, &str)> = listed
        .items
        .iter()
        .map(|m| (m.entity_name.as_str(), m.role_name.as_str()))
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [
            ("cf-mem-ann", "developer"),
            ("cf-mem-bob", "guest"),
            ("cf-mem-carl", "maintainer")
        ]
    );
    assert!(listed.items.contains(&expected));
    let named = store
        .list_members(id, Some("m-bo"), 0, u64::MAX)
        .await
        .unwrap();
    let named: Vec<i64> = named.items.iter().map(|m| m.id).collect();
    assert_eq!(named, [bob_member]);
    let pages = [
        store.list_members(id, None, 0, 2).await.unwrap(),
        store.list_members(id, None, 2, 2).await.unwrap(),
    ];
    assert_eq!(
        pages
            .iter()
            .map(|p| (p.items.len(), p.total))
            .collect::<Vec<_>>(),
        [(2, 3), (1, 3)]
    );
    let paged: Vec<&Member> = pages.iter().flat_map(|p| &p.items).collect();
    assert_eq!(
        paged,
        listed.items.iter().collect::<Vec<_>>(),
        "pages walk the list"
    );

    let changed = audit(actor, "update", "ann role");
    assert!(
        store
            .set_member_role(id, ann_member, MAINTAINER, 6, &changed)
            .await
            .unwrap()
    );
    let ann_now = store.member(id, ann_member).await.unwrap().unwrap();
    assert_eq!(
        (ann_now.role_id, ann_now.role_name.as_str()),
        (MAINTAINER, "maintainer")
    );
    let missed = audit(actor, "update", "missed");
    assert!(matches!(
        store.set_member_role(id, ann_member, 99, 7, &missed).await,
        Err(MemberError::UnknownRole(99))
    ));
    let still = store.member(id, ann_member).await.unwrap().unwrap();
    assert_eq!(still.role_id, MAINTAINER);
    assert!(
        !store
            .set_member_role(id, -1, GUEST, 7, &missed)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_member_role(other, ann_member, GUEST, 7, &missed)
            .await
            .unwrap()
    );
    let mut held = store.user_roles(ann).await.unwrap();
    held.sort();
    assert_eq!(held, [(id, MAINTAINER), (other, GUEST)]);

    let removed = audit(actor, "delete", "bob");
    assert!(store.remove_member(id, bob_member, &removed).await.unwrap());
    assert!(!store.remove_member(id, bob_member, &missed).await.unwrap());
    assert!(
        !store
            .remove_member(other, carl_member, &missed)
            .await
            .unwrap()
    );
    assert!(store.member(id, bob_member).await.unwrap().is_none());
    assert!(store.member(id, carl_member).await.unwrap().is_some());
    assert!(store.member(other, other_member).await.unwrap().is_some());
    assert!(store.user_roles(bob).await.unwrap().is_empty());
    assert_eq!(
        audited(store, actor).await,
        [
            "project", "other", "ann", "bob", "carl", "o", "ann role", "bob"
        ]
    );
}

/// Seeding stores roles with their permissions, and seeding again replaces the name and
/// permissions of the roles it names, leaving the others.
async fn roles_are_seeded_and_replaced(store: &dyn Metadata) {
    let role = |name: &str, permissions: &[(&str, &str)]| Role {
        id: 1005,
        name: name.into(),
        permissions: permissions
            .iter()
            .map(|(r, a)| (r.to_string(), a.to_string()))
            .collect(),
    };
    let find = async |id| {
        let roles = store.roles().await.unwrap();
        let role = roles.into_iter().find(|r| r.id == id)?;
        let permissions: BTreeSet<(String, String)> = role.permissions.into_iter().collect();
        Some((role.name, permissions))
    };
    let first = role("cf-role", &[("artifact", "read"), ("tag", "create")]);
    store
        .seed_roles(std::slice::from_ref(&first))
        .await
        .unwrap();
    let stored = find(1005).await.expect("a seeded role is stored");
    assert_eq!(
        stored,
        (
            first.name.clone(),
            first.permissions.iter().cloned().collect()
        )
    );
    let admin_before = find(PROJECT_ADMIN).await;
    assert!(admin_before.is_some());

    let second = role("cf-role-renamed", &[("tag", "create"), ("tag", "delete")]);
    store
        .seed_roles(std::slice::from_ref(&second))
        .await
        .unwrap();
    let stored = find(1005).await.unwrap();
    assert_eq!(
        stored,
        (
            second.name.clone(),
            second.permissions.iter().cloned().collect()
        )
    );
    assert_eq!(find(PROJECT_ADMIN).await, admin_before, "other roles stay");
}
