//! Checks of [`crate::RobotStore`]: robot accounts, their grants and listings, and what
//! deleting a project removes of them.

use std::collections::BTreeSet;

use super::support::{
    Case, PROJECT_ADMIN, any_of, audit, audited, check_listings, exact, fuzzy, new_project, query,
    range,
};
use crate::Metadata;
use crate::{
    ListQuery, Listed, Match, NewRobot, Robot, RobotError, RobotField, RobotGrant, RobotLevel,
    RobotUpdate,
};

/// Runs the robot checks.
pub(super) async fn run(store: &dyn Metadata) {
    robots_are_created_read_and_changed(store).await;
    robot_listings_filter_sort_and_page(store).await;
    deleting_a_project_removes_its_robots_and_grants(store).await;
}

/// Permissions in one namespace.
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

/// Each permission of `grants` as `(kind, namespace, resource, action)`: what grants
/// mean, however a store groups and orders them.
type Permissions = BTreeSet<(String, String, String, String)>;

fn permissions(grants: &[RobotGrant]) -> Permissions {
    grants
        .iter()
        .flat_map(|g| {
            g.access.iter().map(|(resource, action)| {
                let (resource, action) = (resource.clone(), action.clone());
                (g.kind.clone(), g.namespace.clone(), resource, action)
            })
        })
        .collect()
}

/// A robot without its grants, and the permissions they hold.
fn split(robot: Robot) -> (Robot, Permissions) {
    let permissions = permissions(&robot.grants);
    (
        Robot {
            grants: Vec::new(),
            ..robot
        },
        permissions,
    )
}

/// The robot with this id, split.
async fn stored(store: &dyn Metadata, id: i64) -> Option<(Robot, Permissions)> {
    store.robot(id).await.unwrap().map(split)
}

/// A system robot named `name`, never expiring, pulling from every project.
fn system_robot(name: &str) -> NewRobot {
    NewRobot {
        name: name.into(),
        description: format!("{name} robot"),
        secret_hash: format!("$sha256${name}"),
        level: RobotLevel::System,
        project_id: None,
        duration_days: -1,
        expires_at: -1,
        disabled: false,
        creator: "cf-bot-creator".into(),
        grants: vec![grant("project", "*", &[("repository", "pull")])],
    }
}

/// A project robot `<project>+<name>` of `project_id`, pulling from it.
fn project_robot(project: &str, project_id: i64, name: &str) -> NewRobot {
    NewRobot {
        name: format!("{project}+{name}"),
        level: RobotLevel::Project,
        project_id: Some(project_id),
        grants: vec![grant("project", project, &[("repository", "pull")])],
        ..system_robot(name)
    }
}

/// A robot is read back as created, by id and by name; a name is taken once; an update
/// replaces what it names, grants included, and keeps the rest; each change is audited
/// when the robot exists; ids of deleted robots are not given again.
async fn robots_are_created_read_and_changed(store: &dyn Metadata) {
    let actor = "cf-bot-actor";
    let project = new_project("cf-botproj", None, false);
    let project = store
        .create_project(
            &project,
            PROJECT_ADMIN,
            1,
            &audit(actor, "create", "project"),
        )
        .await
        .unwrap();
    let new = NewRobot {
        duration_days: 30,
        expires_at: 10 + 30 * 86_400_000,
        grants: vec![
            grant(
                "project",
                "*",
                &[("repository", "pull"), ("repository", "push")],
            ),
            grant("system", "/", &[("project", "create")]),
        ],
        ..system_robot("cf-bot-sys")
    };
    let id = store
        .create_robot(&new, 10, &audit(actor, "create", "created"))
        .await
        .unwrap();
    let mut expected = Robot {
        id,
        name: new.name.clone(),
        description: new.description.clone(),
        secret_hash: new.secret_hash.clone(),
        level: RobotLevel::System,
        project_id: None,
        duration_days: 30,
        expires_at: new.expires_at,
        disabled: false,
        creator: new.creator.clone(),
        grants: Vec::new(),
        created_at: 10,
        updated_at: 10,
    };
    let mut granted = permissions(&new.grants);
    assert_eq!(
        stored(store, id).await,
        Some((expected.clone(), granted.clone()))
    );
    let by_name = store.robot_by_name("cf-bot-sys").await.unwrap().map(split);
    assert_eq!(by_name, Some((expected.clone(), granted.clone())));
    assert!(store.robot_by_name("cf-bot-none").await.unwrap().is_none());
    assert!(store.robot(-1).await.unwrap().is_none());

    let refused = audit(actor, "create", "refused");
    let same_name = NewRobot {
        description: "another".into(),
        ..system_robot("cf-bot-sys")
    };
    match store.create_robot(&same_name, 11, &refused).await {
        Err(RobotError::NameTaken(name)) => assert_eq!(name, "cf-bot-sys"),
        other => panic!("expected NameTaken, got {other:?}"),
    }
    assert_eq!(
        stored(store, id).await,
        Some((expected.clone(), granted.clone()))
    );

    let mut ci = project_robot("cf-botproj", project, "ci");
    ci.disabled = true;
    let ci_id = store
        .create_robot(&ci, 12, &audit(actor, "create", "ci"))
        .await
        .unwrap();
    let (ci_stored, ci_granted) = stored(store, ci_id).await.unwrap();
    assert_eq!(
        (
            ci_stored.name.as_str(),
            ci_stored.level,
            ci_stored.project_id,
            ci_stored.disabled
        ),
        ("cf-botproj+ci", RobotLevel::Project, Some(project), true)
    );
    assert_eq!(ci_granted, permissions(&ci.grants));

    let update = RobotUpdate {
        description: "deploys".into(),
        duration_days: -1,
        expires_at: -1,
        disabled: true,
        grants: vec![grant("project", "cf-botproj", &[("artifact", "read")])],
    };
    let updated = audit(actor, "update", "updated");
    assert!(store.update_robot(id, &update, 20, &updated).await.unwrap());
    expected.description = "deploys".into();
    (expected.duration_days, expected.expires_at) = (-1, -1);
    expected.disabled = true;
    expected.updated_at = 20;
    granted = permissions(&update.grants);
    assert_eq!(
        stored(store, id).await,
        Some((expected.clone(), granted.clone()))
    );
    let secret = audit(actor, "update", "secret");
    assert!(
        store
            .set_robot_secret(id, "$sha256$new", 30, &secret)
            .await
            .unwrap()
    );
    expected.secret_hash = "$sha256$new".into();
    expected.updated_at = 30;
    assert_eq!(stored(store, id).await, Some((expected, granted)));

    let missed = audit(actor, "update", "missed");
    assert!(!store.update_robot(-1, &update, 40, &missed).await.unwrap());
    assert!(!store.set_robot_secret(-1, "$x", 40, &missed).await.unwrap());
    assert!(!store.delete_robot(-1, &missed).await.unwrap());

    assert!(
        store
            .delete_robot(id, &audit(actor, "delete", "deleted"))
            .await
            .unwrap()
    );
    assert!(store.robot(id).await.unwrap().is_none());
    assert!(store.robot_by_name("cf-bot-sys").await.unwrap().is_none());
    assert!(!store.delete_robot(id, &missed).await.unwrap());
    let deleted_ci = audit(actor, "delete", "ci deleted");
    assert!(store.delete_robot(ci_id, &deleted_ci).await.unwrap());
    let next = store
        .create_robot(
            &system_robot("cf-bot-next"),
            50,
            &audit(actor, "create", "next"),
        )
        .await
        .unwrap();
    assert!(next > ci_id, "a new robot never takes a deleted one's id");
    assert_eq!(
        audited(store, actor).await,
        [
            "project",
            "created",
            "ci",
            "updated",
            "secret",
            "deleted",
            "ci deleted",
            "next"
        ]
    );
}

/// The names of a page of robots.
fn names(listed: &Listed<Robot>) -> Vec<&str> {
    listed.items.iter().map(|r| r.name.as_str()).collect()
}

/// Robots are filtered by each field, sorted by each key, and paged with the total of
/// the whole listing; a listed robot is the stored robot, grants included.
async fn robot_listings_filter_sort_and_page(store: &dyn Metadata) {
    let actor = "cf-rlist-actor";
    let project = new_project("cf-rlistp", None, false);
    let project = store
        .create_project(
            &project,
            PROJECT_ADMIN,
            1,
            &audit(actor, "create", "project"),
        )
        .await
        .unwrap();
    let robots = [
        (system_robot("cf-rlist-alpha"), 100),
        (system_robot("cf-rlist-bravo"), 200),
        (project_robot("cf-rlistp", project, "charlie"), 300),
        (project_robot("cf-rlistp", project, "delta"), 400),
    ];
    let mut ids = Vec::new();
    for (robot, at) in &robots {
        let created = audit(actor, "create", &robot.name);
        ids.push(store.create_robot(robot, *at, &created).await.unwrap());
    }
    let (a, b, c, d) = (
        "cf-rlist-alpha",
        "cf-rlist-bravo",
        "cf-rlistp+charlie",
        "cf-rlistp+delta",
    );

    let ours = (RobotField::Name, fuzzy("cf-rlist"));
    let list = async |filters: &[(RobotField, Match)], sort: &[(RobotField, bool)]| {
        let mut all = vec![ours.clone()];
        all.extend_from_slice(filters);
        store.list_robots(&query(&all, sort)).await.unwrap()
    };
    let all = list(&[], &[]).await;
    assert_eq!(names(&all), [a, b, c, d]);
    for listed in &all.items {
        let listed = split(listed.clone());
        assert_eq!(Some(listed.clone()), stored(store, listed.0.id).await);
    }

    let system = [(RobotField::Level, exact("system"))];
    let in_project = [(RobotField::Level, exact("project"))];
    let by_time = [(RobotField::CreationTime, false)];
    let cases: [Case<RobotField>; 11] = [
        (&system, &by_time, &[a, b]),
        (&in_project, &by_time, &[c, d]),
        (
            &[(RobotField::ProjectId, exact(project))],
            &by_time,
            &[c, d],
        ),
        (&[(RobotField::Name, fuzzy("+CH"))], &[], &[c]),
        (&[(RobotField::Name, exact(b))], &[], &[b]),
        (
            &[(RobotField::CreationTime, range(Some(200), Some(300)))],
            &by_time,
            &[b, c],
        ),
        (
            &[(RobotField::Id, any_of(&[ids[0], ids[3]]))],
            &by_time,
            &[a, d],
        ),
        (&system, &[(RobotField::Name, true)], &[b, a]),
        (&in_project, &[(RobotField::Name, true)], &[d, c]),
        (&[], &[(RobotField::CreationTime, true)], &[d, c, b, a]),
        (
            &[],
            &[(RobotField::Level, true), (RobotField::CreationTime, true)],
            &[b, a, d, c],
        ),
    ];
    check_listings(&cases, &list, |r: &Robot| r.name.as_str()).await;
    let by_id = list(&[], &[(RobotField::Id, true)]).await;
    let mut descending = ids.clone();
    descending.sort_by(|x, y| y.cmp(x));
    let listed: Vec<i64> = by_id.items.iter().map(|r| r.id).collect();
    assert_eq!(listed, descending);

    let page = ListQuery {
        offset: 1,
        limit: 2,
        ..query(std::slice::from_ref(&ours), &by_time)
    };
    let page = store.list_robots(&page).await.unwrap();
    assert_eq!((names(&page), page.total), (vec![b, c], 4));
}

/// Deleting a project deletes its project robots and every grant naming it, so a later
/// project of the same name is reachable by no robot; other grants stay.
async fn deleting_a_project_removes_its_robots_and_grants(store: &dyn Metadata) {
    let actor = "cf-botgone-actor";
    let mut ids = Vec::new();
    for name in ["cf-botgone", "cf-botkeep"] {
        let project = new_project(name, None, false);
        let created = audit(actor, "create", name);
        ids.push(
            store
                .create_project(&project, PROJECT_ADMIN, 1, &created)
                .await
                .unwrap(),
        );
    }
    let ci = project_robot("cf-botgone", ids[0], "ci");
    let ci = store
        .create_robot(&ci, 1, &audit(actor, "create", "ci"))
        .await
        .unwrap();
    let kept = project_robot("cf-botkeep", ids[1], "ci");
    let kept = store
        .create_robot(&kept, 1, &audit(actor, "create", "kept"))
        .await
        .unwrap();
    let wide = NewRobot {
        grants: vec![
            grant("project", "cf-botgone", &[("repository", "push")]),
            grant("project", "cf-botkeep", &[("repository", "push")]),
            grant("project", "*", &[("repository", "pull")]),
        ],
        ..system_robot("cf-bot-wide")
    };
    let wide = store
        .create_robot(&wide, 1, &audit(actor, "create", "wide"))
        .await
        .unwrap();

    let deleted = audit(actor, "delete", "project");
    assert!(store.delete_project(ids[0], &deleted).await.unwrap());
    assert!(store.robot(ci).await.unwrap().is_none());
    assert!(
        store
            .robot_by_name("cf-botgone+ci")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.robot(kept).await.unwrap().is_some());
    let remaining = permissions(&[
        grant("project", "cf-botkeep", &[("repository", "push")]),
        grant("project", "*", &[("repository", "pull")]),
    ]);
    assert_eq!(stored(store, wide).await.unwrap().1, remaining);
    let again = new_project("cf-botgone", None, false);
    store
        .create_project(&again, PROJECT_ADMIN, 2, &audit(actor, "create", "again"))
        .await
        .unwrap();
    assert_eq!(
        stored(store, wide).await.unwrap().1,
        remaining,
        "a new project of the name inherits no grant"
    );
}
