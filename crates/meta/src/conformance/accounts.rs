//! Checks of [`crate::UserStore`]: the first administrator, accounts, their uniqueness and
//! listing, and what deleting one removes.

use std::sync::Arc;

use super::support::{
    Case, DEVELOPER, PROJECT_ADMIN, any_of, audit, audited, check_listings, digest, exact, fuzzy,
    new_project, new_user, query, range, repo, seed_roles,
};
use crate::Metadata;
use crate::{
    ListQuery, Listed, Match, MemberKind, NewUser, ProfileUpdate, User, UserError, UserField,
};

/// Runs the account checks (after [`first_administrator`]).
pub(super) async fn run(store: &dyn Metadata) {
    users_are_created_read_and_changed(store).await;
    names_and_emails_are_unique(store).await;
    user_listings_filter_sort_and_page(store).await;
    deleted_users_lose_their_memberships(store).await;
    user_ids_are_never_reused(store).await;
}

/// A new store holds the public project `library`, without an owner. Of concurrent first
/// starts, one creates the administrator, who then owns every project without an owner
/// and the projects pushes create later. Needs a store without an administrator.
pub(super) async fn first_administrator(store: Arc<dyn Metadata>) {
    let library = store.project_by_name("library").await.unwrap();
    let library = library.expect("a new store holds the project library");
    assert_eq!((library.public, library.owner_id), (true, None));
    store
        .link_blob(&repo("cf-legacy/app"), &digest("legacy"), 1, 1)
        .await
        .unwrap();
    let legacy = store.project_by_name("cf-legacy").await.unwrap().unwrap();
    assert_eq!(
        (legacy.public, legacy.owner_id, legacy.owner_name.as_str()),
        (false, None, ""),
        "a project a push creates is private"
    );

    let starts: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let admin = NewUser {
                sysadmin: true,
                ..new_user(&format!("cf-admin-{i}"))
            };
            tokio::spawn(async move {
                let created = store.create_first_admin(&admin, 2).await.unwrap();
                (admin.username, created)
            })
        })
        .collect();
    let mut created = Vec::new();
    for start in starts {
        let (name, made) = start.await.unwrap();
        let stored = store.user_by_name(&name).await.unwrap();
        assert_eq!(
            stored.is_some(),
            made,
            "{name} is stored exactly when created"
        );
        if made {
            created.push(stored.unwrap());
        }
    }
    assert_eq!(
        created.len(),
        1,
        "one administrator of concurrent first starts"
    );
    let admin = created.remove(0);
    assert!(admin.sysadmin);
    assert_eq!((admin.created_at, admin.updated_at), (2, 2));

    for (name, public) in [("library", true), ("cf-legacy", false)] {
        let project = store.project_by_name(name).await.unwrap().unwrap();
        assert_eq!(
            (
                project.owner_id,
                project.owner_name.as_str(),
                project.public
            ),
            (Some(admin.id), admin.username.as_str(), public),
            "{name} goes to the first administrator, as public as it was"
        );
    }
    store
        .link_blob(&repo("cf-later/app"), &digest("later"), 1, 3)
        .await
        .unwrap();
    let later = store.project_by_name("cf-later").await.unwrap().unwrap();
    assert_eq!((later.public, later.owner_id), (false, Some(admin.id)));
    let again = NewUser {
        sysadmin: true,
        ..new_user("cf-admin-late")
    };
    assert!(!store.create_first_admin(&again, 4).await.unwrap());
    assert!(store.user_by_name("cf-admin-late").await.unwrap().is_none());
}

/// Accounts are read back as created; each change touches its own fields and the update
/// time, and records its audit entry only when the user exists.
async fn users_are_created_read_and_changed(store: &dyn Metadata) {
    let actor = "cf-users-actor";
    let new = new_user("cf-user-ann");
    let id = store
        .create_user(&new, 10, &audit(actor, "create", "created"))
        .await
        .unwrap();
    let mut expected = User {
        id,
        username: new.username.clone(),
        email: new.email.clone(),
        realname: new.realname.clone(),
        comment: new.comment.clone(),
        password_hash: new.password_hash.clone(),
        sysadmin: false,
        created_at: 10,
        updated_at: 10,
    };
    assert_eq!(store.user(id).await.unwrap().as_ref(), Some(&expected));
    assert_eq!(
        store.user_by_name("cf-user-ann").await.unwrap().as_ref(),
        Some(&expected)
    );
    assert!(
        store
            .user_by_name("cf-user-nobody")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.user(-1).await.unwrap().is_none());

    let realname = ProfileUpdate {
        realname: Some("Ann Other".into()),
        ..ProfileUpdate::default()
    };
    assert!(
        store
            .update_profile(id, &realname, 20, &audit(actor, "update", "realname"))
            .await
            .unwrap()
    );
    expected.realname = "Ann Other".into();
    expected.updated_at = 20;
    assert_eq!(store.user(id).await.unwrap().as_ref(), Some(&expected));
    let contact = ProfileUpdate {
        email: Some("ann@elsewhere.example".into()),
        comment: Some(String::new()),
        realname: None,
    };
    assert!(
        store
            .update_profile(id, &contact, 30, &audit(actor, "update", "contact"))
            .await
            .unwrap()
    );
    expected.email = "ann@elsewhere.example".into();
    expected.comment = String::new();
    expected.updated_at = 30;
    assert_eq!(store.user(id).await.unwrap().as_ref(), Some(&expected));

    let password = audit(actor, "update", "password");
    assert!(store.set_password(id, "$new", 40, &password).await.unwrap());
    expected.password_hash = "$new".into();
    expected.updated_at = 40;
    assert_eq!(store.user(id).await.unwrap().as_ref(), Some(&expected));
    let grant = audit(actor, "update", "sysadmin");
    assert!(store.set_sysadmin(id, true, 50, &grant).await.unwrap());
    assert!(store.user(id).await.unwrap().unwrap().sysadmin);
    let revoke = audit(actor, "update", "not sysadmin");
    assert!(store.set_sysadmin(id, false, 60, &revoke).await.unwrap());
    expected.updated_at = 60;
    assert_eq!(store.user(id).await.unwrap().as_ref(), Some(&expected));

    let missed = audit(actor, "update", "no such user");
    assert!(
        !store
            .update_profile(-1, &realname, 70, &missed)
            .await
            .unwrap()
    );
    assert!(!store.set_password(-1, "$x", 70, &missed).await.unwrap());
    assert!(!store.set_sysadmin(-1, true, 70, &missed).await.unwrap());
    assert!(!store.delete_user(-1, &missed).await.unwrap());

    assert!(
        store
            .delete_user(id, &audit(actor, "delete", "deleted"))
            .await
            .unwrap()
    );
    assert!(store.user(id).await.unwrap().is_none());
    assert!(store.user_by_name("cf-user-ann").await.unwrap().is_none());
    assert!(!store.delete_user(id, &missed).await.unwrap());
    assert_eq!(
        audited(store, actor).await,
        [
            "created",
            "realname",
            "contact",
            "password",
            "sysadmin",
            "not sysadmin",
            "deleted"
        ]
    );
}

/// Login names are unique, and so are e-mail addresses that are not empty; a refused
/// change changes nothing and records no audit entry.
async fn names_and_emails_are_unique(store: &dyn Metadata) {
    let actor = "cf-unique-actor";
    let created = audit(actor, "create", "created");
    let refused = audit(actor, "create", "refused");
    let first = store
        .create_user(&new_user("cf-unique-a"), 1, &created)
        .await
        .unwrap();
    let same_name = NewUser {
        email: "other@example.com".into(),
        ..new_user("cf-unique-a")
    };
    match store.create_user(&same_name, 1, &refused).await {
        Err(UserError::NameTaken(name)) => assert_eq!(name, "cf-unique-a"),
        other => panic!("expected NameTaken, got {other:?}"),
    }
    let same_email = NewUser {
        email: "cf-unique-a@example.com".into(),
        ..new_user("cf-unique-b")
    };
    match store.create_user(&same_email, 1, &refused).await {
        Err(UserError::EmailTaken(email)) => assert_eq!(email, "cf-unique-a@example.com"),
        other => panic!("expected EmailTaken, got {other:?}"),
    }
    assert!(store.user_by_name("cf-unique-b").await.unwrap().is_none());

    let no_email = |name: &str| NewUser {
        email: String::new(),
        ..new_user(name)
    };
    let second = store
        .create_user(&no_email("cf-unique-c"), 1, &created)
        .await
        .unwrap();
    store
        .create_user(&no_email("cf-unique-d"), 1, &created)
        .await
        .expect("an empty e-mail address is not unique");
    let taken = ProfileUpdate {
        email: Some("cf-unique-a@example.com".into()),
        ..ProfileUpdate::default()
    };
    match store.update_profile(second, &taken, 2, &refused).await {
        Err(UserError::EmailTaken(email)) => assert_eq!(email, "cf-unique-a@example.com"),
        other => panic!("expected EmailTaken, got {other:?}"),
    }
    let user = store.user(second).await.unwrap().unwrap();
    assert_eq!((user.email.as_str(), user.updated_at), ("", 1));
    let cleared = ProfileUpdate {
        email: Some(String::new()),
        ..ProfileUpdate::default()
    };
    assert!(
        store
            .update_profile(first, &cleared, 3, &audit(actor, "update", "cleared"))
            .await
            .unwrap()
    );
    assert_eq!(
        audited(store, actor).await,
        ["created", "created", "created", "cleared"]
    );
}

/// The login names of a page of users.
fn names(listed: &Listed<User>) -> Vec<&str> {
    listed.items.iter().map(|u| u.username.as_str()).collect()
}

/// Users are filtered by each field and kind of match, sorted by each key with ties by
/// id, and paged with the total of the whole listing.
async fn user_listings_filter_sort_and_page(store: &dyn Metadata) {
    let audit = audit("cf-list-actor", "create", "user");
    for (name, at) in [
        ("cf-list-alpha", 100),
        ("cf-list-bravo", 200),
        ("cf-list-charlie", 300),
        ("cf-list-delta", 400),
        ("cf-list-echo", 400),
    ] {
        store
            .create_user(&new_user(name), at, &audit)
            .await
            .unwrap();
    }
    let bravo = store.user_by_name("cf-list-bravo").await.unwrap().unwrap();
    let update = ProfileUpdate {
        comment: Some("changed".into()),
        ..ProfileUpdate::default()
    };
    assert!(
        store
            .update_profile(bravo.id, &update, 500, &audit)
            .await
            .unwrap()
    );

    let ours = (UserField::Username, fuzzy("cf-list-"));
    let list = async |filters: &[(UserField, Match)], sort: &[(UserField, bool)]| {
        let mut all = vec![ours.clone()];
        all.extend_from_slice(filters);
        store.list_users(&query(&all, sort)).await.unwrap()
    };
    let all = list(&[], &[]).await;
    assert_eq!(all.total, 5);
    let ids: Vec<i64> = all.items.iter().map(|u| u.id).collect();
    assert!(ids.is_sorted(), "no sort key lists by id: {ids:?}");
    let mut by_name = names(&all);
    by_name.sort();
    assert_eq!(
        by_name,
        [
            "cf-list-alpha",
            "cf-list-bravo",
            "cf-list-charlie",
            "cf-list-delta",
            "cf-list-echo"
        ]
    );
    assert_eq!(
        store.user(bravo.id).await.unwrap().as_ref(),
        all.items.iter().find(|u| u.id == bravo.id),
        "a listed user is the stored user"
    );

    let cases: [Case<UserField>; 14] = [
        (
            &[(UserField::Username, fuzzy("CF-LIST-"))],
            &[(UserField::Username, false)],
            &[
                "cf-list-alpha",
                "cf-list-bravo",
                "cf-list-charlie",
                "cf-list-delta",
                "cf-list-echo",
            ],
        ),
        (&[(UserField::Username, fuzzy("list_"))], &[], &[]),
        (&[(UserField::Username, fuzzy("%"))], &[], &[]),
        (
            &[(UserField::Username, exact("cf-list-bravo"))],
            &[],
            &["cf-list-bravo"],
        ),
        (&[(UserField::Username, exact("CF-LIST-BRAVO"))], &[], &[]),
        (
            &[(
                UserField::Username,
                any_of(&["cf-list-delta", "cf-list-alpha", "cf-list-none"]),
            )],
            &[(UserField::Username, false)],
            &["cf-list-alpha", "cf-list-delta"],
        ),
        (&[(UserField::Username, any_of::<&str>(&[]))], &[], &[]),
        (
            &[(UserField::Email, exact("cf-list-charlie@example.com"))],
            &[],
            &["cf-list-charlie"],
        ),
        (
            &[(UserField::CreationTime, range(Some(200), Some(300)))],
            &[(UserField::CreationTime, false)],
            &["cf-list-bravo", "cf-list-charlie"],
        ),
        (
            &[(UserField::CreationTime, range(None, Some(100)))],
            &[],
            &["cf-list-alpha"],
        ),
        (
            &[(UserField::UpdateTime, range(Some(450), None))],
            &[],
            &["cf-list-bravo"],
        ),
        (
            &[],
            &[(UserField::Username, true)],
            &[
                "cf-list-echo",
                "cf-list-delta",
                "cf-list-charlie",
                "cf-list-bravo",
                "cf-list-alpha",
            ],
        ),
        (
            &[],
            &[(UserField::UpdateTime, true)],
            &[
                "cf-list-bravo",
                "cf-list-delta",
                "cf-list-echo",
                "cf-list-charlie",
                "cf-list-alpha",
            ],
        ),
        (
            &[],
            &[(UserField::CreationTime, true), (UserField::Email, true)],
            &[
                "cf-list-echo",
                "cf-list-delta",
                "cf-list-charlie",
                "cf-list-bravo",
                "cf-list-alpha",
            ],
        ),
    ];
    check_listings(&cases, &list, |u: &User| u.username.as_str()).await;
    // Ties (delta and echo, created at once) go by id, whatever the direction.
    let (delta, echo) = (
        store.user_by_name("cf-list-delta").await.unwrap().unwrap(),
        store.user_by_name("cf-list-echo").await.unwrap().unwrap(),
    );
    let tied = |listed: &Listed<User>| -> Vec<i64> {
        let tied = listed.items.iter().filter(|u| u.created_at == 400);
        tied.map(|u| u.id).collect()
    };
    let mut ids = vec![delta.id, echo.id];
    ids.sort();
    for descending in [false, true] {
        let listed = list(&[], &[(UserField::CreationTime, descending)]).await;
        assert_eq!(tied(&listed), ids, "descending: {descending}");
    }

    let page = |offset, limit| ListQuery {
        offset,
        limit,
        ..query(std::slice::from_ref(&ours), &[(UserField::Username, false)])
    };
    let second = store.list_users(&page(1, 2)).await.unwrap();
    assert_eq!(names(&second), ["cf-list-bravo", "cf-list-charlie"]);
    assert_eq!(second.total, 5, "the total counts every page");
    let past = store.list_users(&page(5, 2)).await.unwrap();
    assert_eq!((past.items.len(), past.total), (0, 5));
    let none = store.list_users(&page(0, 0)).await.unwrap();
    assert_eq!((none.items.len(), none.total), (0, 5));
}

/// Deleting a user ends their memberships; the projects they owned stay, without owner.
async fn deleted_users_lose_their_memberships(store: &dyn Metadata) {
    seed_roles(store).await;
    let actor = "cf-leaver-actor";
    let user = store
        .create_user(&new_user("cf-leaver"), 1, &audit(actor, "create", "user"))
        .await
        .unwrap();
    let owned = new_project("cf-leaver-owned", Some(user), false);
    let owned = store
        .create_project(&owned, PROJECT_ADMIN, 1, &audit(actor, "create", "owned"))
        .await
        .unwrap();
    let joined = new_project("cf-leaver-joined", None, false);
    let joined = store
        .create_project(&joined, PROJECT_ADMIN, 1, &audit(actor, "create", "joined"))
        .await
        .unwrap();
    store
        .add_member(
            joined,
            MemberKind::User,
            user,
            DEVELOPER,
            1,
            &audit(actor, "add", "m"),
        )
        .await
        .unwrap();
    let mut roles = store.user_roles(user).await.unwrap();
    roles.sort();
    assert_eq!(roles, [(owned, PROJECT_ADMIN), (joined, DEVELOPER)]);

    assert!(
        store
            .delete_user(user, &audit(actor, "delete", "user"))
            .await
            .unwrap()
    );
    assert!(store.user_roles(user).await.unwrap().is_empty());
    for project in [owned, joined] {
        let members = store
            .list_members(project, None, 0, u64::MAX)
            .await
            .unwrap();
        assert_eq!(members.total, 0, "project {project} keeps no membership");
    }
    let owned = store
        .project(owned)
        .await
        .unwrap()
        .expect("the project stays");
    assert_eq!((owned.owner_id, owned.owner_name.as_str()), (None, ""));
}

/// A user created after another was deleted never gets its id.
async fn user_ids_are_never_reused(store: &dyn Metadata) {
    let audit = audit("cf-ids-actor", "create", "user");
    let first = store
        .create_user(&new_user("cf-ids-first"), 1, &audit)
        .await
        .unwrap();
    assert!(store.delete_user(first, &audit).await.unwrap());
    let second = store
        .create_user(&new_user("cf-ids-second"), 2, &audit)
        .await
        .unwrap();
    assert!(second > first, "{second} after {first}");
}
