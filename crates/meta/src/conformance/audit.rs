//! Checks of [`crate::AuditStore`]: entries kept whole, listed per project, filtered,
//! sorted, paged and purged.
//!
//! Entries here happen before 1970 (negative times), which no other check uses, so that
//! a purge removes entries of this file only.

use super::support::{
    Case, DEVELOPER, PROJECT_ADMIN, any_of, audit, audit_trail, check_listings, exact, fuzzy,
    new_project, new_user, query, range,
};
use crate::Metadata;
use crate::{
    AuditEntry, AuditField, AuditRecord, ListQuery, Listed, Match, MemberKind, ProjectUpdate,
};

/// Runs the audit-log checks.
pub(super) async fn run(store: &dyn Metadata) {
    entries_are_kept_whole_and_listed_by_project(store).await;
    audit_listings_filter_sort_and_page(store).await;
    old_entries_are_purged(store).await;
    management_changes_move_the_change_mark(store).await;
}

/// Each kind of management write moves the change mark, so another node learns that
/// its caches of accounts, projects and settings may be stale.
async fn management_changes_move_the_change_mark(store: &dyn Metadata) {
    let mut mark = store.change_mark().await.unwrap();
    let mut moved = async |what: &str| {
        let now = store.change_mark().await.unwrap();
        assert_ne!(now, mark, "{what} left the change mark as it was");
        mark = now;
    };
    let user = store
        .create_user(
            &new_user("cf-mark-user"),
            1,
            &audit("cf-mark", "create", "user"),
        )
        .await
        .unwrap();
    moved("creating a user").await;
    let project = store
        .create_project(
            &new_project("cf-mark-project", None, false),
            PROJECT_ADMIN,
            1,
            &audit("cf-mark", "create", "project"),
        )
        .await
        .unwrap();
    moved("creating a project").await;
    let public = ProjectUpdate {
        public: Some(true),
        metadata: Default::default(),
    };
    store
        .update_project(project, &public, 2, &audit("cf-mark", "update", "project"))
        .await
        .unwrap();
    moved("making a project public").await;
    store
        .add_member(
            project,
            MemberKind::User,
            user,
            DEVELOPER,
            3,
            &audit("cf-mark", "create", "member"),
        )
        .await
        .unwrap();
    moved("adding a member").await;
    let settings = [("robot_name_prefix".to_owned(), "\"bot$\"".to_owned())].into();
    store
        .put_settings(&settings, &audit("cf-mark", "update", "configuration"))
        .await
        .unwrap();
    moved("changing a setting").await;
    store
        .delete_user(user, &audit("cf-mark", "delete", "user"))
        .await
        .unwrap();
    moved("deleting a user").await;
}

/// An entry by `actor` at `op_time`, about `resource` of `resource_type`.
fn entry(actor: &str, operation: &str, resource_type: &str, resource: &str, at: i64) -> AuditEntry {
    AuditEntry {
        operation: operation.into(),
        resource_type: resource_type.into(),
        op_time: at,
        ..audit(actor, operation, resource)
    }
}

/// An entry is read back with every field; listed for some projects, only the entries
/// of those projects show, none for no project.
async fn entries_are_kept_whole_and_listed_by_project(store: &dyn Metadata) {
    let actor = "cf-audit-kept";
    let mut projects = Vec::new();
    for name in ["cf-audit-one", "cf-audit-two"] {
        let project = new_project(name, None, false);
        let created = audit("cf-audit-projects", "create", name);
        projects.push(
            store
                .create_project(&project, PROJECT_ADMIN, 1, &created)
                .await
                .unwrap(),
        );
    }
    let (one, two) = (projects[0], projects[1]);
    let entries = [
        AuditEntry {
            project_id: Some(one),
            client_ip: "198.51.100.1".into(),
            ..entry(actor, "create", "artifact", "cf-audit-one/app:v1", -9000)
        },
        AuditEntry {
            project_id: Some(two),
            success: false,
            client_ip: "2001:db8::1".into(),
            ..entry(actor, "delete", "repository", "cf-audit-two/app", -8000)
        },
        entry(actor, "login", "user", "cf-audit-user", -7000),
    ];
    store.record_audit(&entries).await.unwrap();
    store.record_audit(&[]).await.unwrap();
    let all = query(&[(AuditField::Username, exact(actor))], &[]);
    let listed = store.list_audit(None, &all).await.unwrap();
    let recorded: Vec<&AuditEntry> = listed.items.iter().map(|r| &r.entry).collect();
    assert_eq!(recorded, entries.iter().collect::<Vec<_>>());
    let ids: Vec<i64> = listed.items.iter().map(|r| r.id).collect();
    assert!(
        ids.is_sorted() && ids[0] < ids[1] && ids[1] < ids[2],
        "{ids:?}"
    );

    let cases: [(&[i64], &[&AuditEntry]); 4] = [
        (&[one], &[&entries[0]]),
        (&[one, two], &[&entries[0], &entries[1]]),
        (&[], &[]),
        (&[-1], &[]),
    ];
    for (projects, expected) in cases {
        let listed = store.list_audit(Some(projects), &all).await.unwrap();
        let entries: Vec<&AuditEntry> = listed.items.iter().map(|r| &r.entry).collect();
        assert_eq!(entries, expected, "of projects {projects:?}");
        assert_eq!(listed.total, expected.len() as u64);
    }
}

/// The resources of a page of entries.
fn resources(listed: &Listed<AuditRecord>) -> Vec<&str> {
    listed
        .items
        .iter()
        .map(|r| r.entry.resource.as_str())
        .collect()
}

/// Entries are filtered by each field, sorted by each key and paged with the total of
/// the whole listing.
async fn audit_listings_filter_sort_and_page(store: &dyn Metadata) {
    let actor = "cf-audit-list";
    let (a, b, c, d) = ("app:a", "app:b", "web", "project");
    let entries = [
        entry(actor, "create", "artifact", a, -5000),
        entry(actor, "delete", "artifact", b, -6000),
        entry(actor, "pull", "repository", c, -4000),
        entry(actor, "create", "project", d, -3000),
    ];
    store.record_audit(&entries).await.unwrap();
    let ours = (AuditField::Username, exact(actor));
    let list = async |filters: &[(AuditField, Match)], sort: &[(AuditField, bool)]| {
        let mut all = vec![ours.clone()];
        all.extend_from_slice(filters);
        store.list_audit(None, &query(&all, sort)).await.unwrap()
    };
    let all = list(&[], &[]).await;
    assert_eq!(resources(&all), [a, b, c, d]);
    let c_id = all.items[2].id;
    let cases: [Case<AuditField>; 11] = [
        (&[(AuditField::Operation, exact("create"))], &[], &[a, d]),
        (
            &[(AuditField::ResourceType, any_of(&["artifact", "project"]))],
            &[],
            &[a, b, d],
        ),
        (&[(AuditField::Resource, fuzzy("APP:"))], &[], &[a, b]),
        (
            &[(AuditField::OpTime, range(Some(-5500), Some(-3500)))],
            &[],
            &[a, c],
        ),
        (
            &[(AuditField::OpTime, range(None, Some(-5000)))],
            &[],
            &[a, b],
        ),
        (&[(AuditField::Id, exact(c_id))], &[], &[c]),
        (
            &[(AuditField::Username, fuzzy("AUDIT-LI"))],
            &[],
            &[a, b, c, d],
        ),
        (&[], &[(AuditField::OpTime, true)], &[d, c, a, b]),
        (&[], &[(AuditField::OpTime, false)], &[b, a, c, d]),
        (
            &[],
            &[(AuditField::Operation, false), (AuditField::OpTime, true)],
            &[d, a, b, c],
        ),
        (&[], &[(AuditField::Id, true)], &[d, c, b, a]),
    ];
    check_listings(&cases, &list, |r: &AuditRecord| r.entry.resource.as_str()).await;
    let page = ListQuery {
        offset: 1,
        limit: 2,
        ..query(&[ours], &[(AuditField::OpTime, true)])
    };
    let page = store.list_audit(None, &page).await.unwrap();
    assert_eq!((resources(&page), page.total), (vec![c, a], 4));
}

/// A purge deletes the entries older than its time, says how many, and keeps the rest.
async fn old_entries_are_purged(store: &dyn Metadata) {
    let actor = "cf-audit-purge";
    let entries = [
        entry(actor, "create", "artifact", "oldest", -1_000_003),
        entry(actor, "create", "artifact", "old", -1_000_002),
        entry(actor, "create", "artifact", "at the limit", -999_000),
        entry(actor, "create", "artifact", "newer", -998_000),
    ];
    store.record_audit(&entries).await.unwrap();
    assert_eq!(store.purge_audit(-999_000).await.unwrap(), 2);
    let kept: Vec<AuditEntry> = entries[2..].to_vec();
    assert_eq!(audit_trail(store, actor).await, kept);
    assert_eq!(store.purge_audit(-999_000).await.unwrap(), 0);
    assert_eq!(
        audit_trail(store, "cf-audit-kept").await.len(),
        3,
        "newer entries stay"
    );
}
