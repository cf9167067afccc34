//! Checks of [`crate::LabelStore`]: global and project labels, their listings, the
//! labels artifacts carry and the artifact listings filtered by them, and what deleting
//! a label, an artifact or a project removes.

use berth_oci::Reference;

use super::support::{
    Case, PROJECT_ADMIN, audit, audited, check_listings, digest, exact, fuzzy, manifest,
    new_project, query, range, repo,
};
use crate::Metadata;
use crate::{
    AddLabelError, ArtifactField, Label, LabelError, LabelField, LabelScope, LabelUpdate,
    ListQuery, Match, NewLabel,
};

/// Runs the label checks.
pub(super) async fn run(store: &dyn Metadata) {
    labels_are_created_read_changed_and_deleted(store).await;
    label_listings_filter_sort_and_page(store).await;
    artifacts_carry_labels_until_either_goes(store).await;
    deleting_a_project_removes_its_labels(store).await;
}

/// A label named `name` in `scope`, with a description and colour made of its name.
fn new_label(name: &str, scope: LabelScope) -> NewLabel {
    NewLabel {
        name: name.into(),
        description: format!("about {name}"),
        color: "#00FF00".into(),
        scope,
    }
}

/// Creates a project without owner; returns its id.
async fn project(store: &dyn Metadata, name: &str, actor: &str) -> i64 {
    let created = audit(actor, "create", name);
    store
        .create_project(&new_project(name, None, false), PROJECT_ADMIN, 1, &created)
        .await
        .unwrap()
}

/// Creates a label at `at`; returns its id.
async fn create(store: &dyn Metadata, label: &NewLabel, at: i64, actor: &str) -> i64 {
    let created = audit(actor, "create", &label.name);
    store.create_label(label, at, &created).await.unwrap()
}

async fn labels_are_created_read_changed_and_deleted(store: &dyn Metadata) {
    let actor = "cf-label-actor";
    let (p, q) = (
        project(store, "cf-label-p", actor).await,
        project(store, "cf-label-q", actor).await,
    );
    let global = create(store, &new_label("cf-label", LabelScope::Global), 5, actor).await;
    // One name may be used once globally and once in each project.
    let in_p = create(
        store,
        &new_label("cf-label", LabelScope::Project(p)),
        6,
        actor,
    )
    .await;
    let in_q = create(
        store,
        &new_label("cf-label", LabelScope::Project(q)),
        7,
        actor,
    )
    .await;
    assert_eq!(
        store.label(global).await.unwrap(),
        Some(Label {
            id: global,
            name: "cf-label".into(),
            description: "about cf-label".into(),
            color: "#00FF00".into(),
            scope: LabelScope::Global,
            created_at: 5,
            updated_at: 5,
        })
    );
    assert_eq!(
        store.label(in_p).await.unwrap().unwrap().scope,
        LabelScope::Project(p)
    );
    for scope in [LabelScope::Global, LabelScope::Project(q)] {
        let again = new_label("cf-label", scope);
        let refused = store
            .create_label(&again, 8, &audit(actor, "create", "refused"))
            .await;
        assert!(
            matches!(refused, Err(LabelError::NameTaken(ref n)) if n == "cf-label"),
            "{refused:?}"
        );
    }
    let orphan = new_label("cf-label-orphan", LabelScope::Project(i64::MAX));
    let refused = store
        .create_label(&orphan, 8, &audit(actor, "create", "orphan"))
        .await;
    assert!(matches!(refused, Err(LabelError::NoProject)), "{refused:?}");

    let update = LabelUpdate {
        name: "cf-label-renamed".into(),
        description: String::new(),
        color: "#FF0000".into(),
    };
    let updated = audit(actor, "update", "renamed");
    assert!(
        store
            .update_label(in_q, &update, 9, &updated)
            .await
            .unwrap()
    );
    let renamed = store.label(in_q).await.unwrap().unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.description.as_str()),
        ("cf-label-renamed", "")
    );
    assert_eq!((renamed.created_at, renamed.updated_at), (7, 9));
    assert_eq!(renamed.scope, LabelScope::Project(q), "the scope stays");
    let clash = LabelUpdate {
        name: "cf-label".into(),
        ..update.clone()
    };
    let same = store
        .update_label(in_p, &clash, 10, &audit(actor, "update", "clash"))
        .await;
    assert!(same.unwrap(), "its own name is no clash");
    let other = create(
        store,
        &new_label("cf-label-other", LabelScope::Global),
        10,
        actor,
    )
    .await;
    let taken = LabelUpdate {
        name: "cf-label-other".into(),
        ..update.clone()
    };
    let refused = store
        .update_label(global, &taken, 10, &audit(actor, "update", "refused"))
        .await;
    assert!(
        matches!(refused, Err(LabelError::NameTaken(_))),
        "{refused:?}"
    );
    assert!(
        store
            .delete_label(other, &audit(actor, "delete", "other"))
            .await
            .unwrap()
    );
    let missing = store
        .update_label(i64::MAX, &update, 10, &audit(actor, "update", "missing"))
        .await;
    assert!(!missing.unwrap());

    assert!(
        store
            .delete_label(global, &audit(actor, "delete", "global"))
            .await
            .unwrap()
    );
    assert!(store.label(global).await.unwrap().is_none());
    assert!(
        !store
            .delete_label(global, &audit(actor, "delete", "twice"))
            .await
            .unwrap()
    );
    let after = create(store, &new_label("cf-label", LabelScope::Global), 11, actor).await;
    assert!(after > in_q, "ids are never reused");
    assert_eq!(
        audited(store, actor).await,
        [
            "cf-label-p",
            "cf-label-q",
            "cf-label",
            "cf-label",
            "cf-label",
            "renamed",
            "clash",
            "cf-label-other",
            "other",
            "global",
            "cf-label",
        ]
    );
}

async fn label_listings_filter_sort_and_page(store: &dyn Metadata) {
    let actor = "cf-llist-actor";
    let p = project(store, "cf-llist-p", actor).await;
    let labels = [
        ("cf-llist-alpha", LabelScope::Global, 100),
        ("cf-llist-bravo", LabelScope::Global, 200),
        ("cf-llist-charlie", LabelScope::Project(p), 300),
        ("cf-llist-delta", LabelScope::Project(p), 400),
    ];
    for (name, scope, at) in labels {
        create(store, &new_label(name, scope), at, actor).await;
    }
    let (a, b, c, d) = (
        "cf-llist-alpha",
        "cf-llist-bravo",
        "cf-llist-charlie",
        "cf-llist-delta",
    );
    let ours = (LabelField::Name, fuzzy("CF-LLIST"));
    let list = async |filters: &[(LabelField, Match)], sort: &[(LabelField, bool)]| {
        let mut all = vec![ours.clone()];
        all.extend_from_slice(filters);
        store.list_labels(&query(&all, sort)).await.unwrap()
    };
    let by_time = [(LabelField::CreationTime, false)];
    let cases: [Case<LabelField>; 7] = [
        (&[], &[], &[a, b, c, d]),
        (&[(LabelField::Scope, exact("g"))], &by_time, &[a, b]),
        (&[(LabelField::Scope, exact("p"))], &by_time, &[c, d]),
        (&[(LabelField::ProjectId, exact(p))], &[], &[c, d]),
        (&[(LabelField::ProjectId, exact(0))], &[], &[a, b]),
        (
            &[(LabelField::UpdateTime, range(Some(200), Some(300)))],
            &[(LabelField::Name, true)],
            &[c, b],
        ),
        (&[(LabelField::Description, fuzzy("DELTA"))], &[], &[d]),
    ];
    check_listings(&cases, list, |l| l.name.as_str()).await;
    let page = ListQuery {
        offset: 1,
        limit: 2,
        ..query(&[ours], &[(LabelField::Id, true)])
    };
    let listed = store.list_labels(&page).await.unwrap();
    let names: Vec<&str> = listed.items.iter().map(|l| l.name.as_str()).collect();
    assert_eq!((names, listed.total), (vec![c, b], 4));
}

async fn artifacts_carry_labels_until_either_goes(store: &dyn Metadata) {
    let actor = "cf-lart-actor";
    let p = project(store, "cf-lart", actor).await;
    let repository = repo("cf-lart/app");
    let mut artifacts = Vec::new();
    for body in ["cf-lart one", "cf-lart two", "cf-lart three"] {
        store
            .put_manifest(&manifest("cf-lart/app", body, &[], &[]))
            .await
            .unwrap();
        let found = store
            .artifact(&repository, &Reference::Digest(digest(body)), 0)
            .await
            .unwrap()
            .unwrap();
        artifacts.push(found.id);
    }
    let [one, two, three] = artifacts[..] else {
        unreachable!()
    };
    let global = create(store, &new_label("cf-lart-g", LabelScope::Global), 1, actor).await;
    let local = create(
        store,
        &new_label("cf-lart-p", LabelScope::Project(p)),
        1,
        actor,
    )
    .await;
    for (artifact, label) in [(one, global), (one, local), (two, local), (three, global)] {
        let added = audit(actor, "create", &format!("{artifact}:{label}"));
        store
            .add_artifact_label(artifact, label, 2, &added)
            .await
            .unwrap();
    }
    let again = store
        .add_artifact_label(one, local, 3, &audit(actor, "create", "again"))
        .await;
    assert!(
        matches!(again, Err(AddLabelError::AlreadyAdded { label, artifact })
            if (label, artifact) == (local, one)),
        "{again:?}"
    );
    for (artifact, label) in [(one, i64::MAX), (i64::MAX, local)] {
        let missing = store
            .add_artifact_label(artifact, label, 3, &audit(actor, "create", "missing"))
            .await;
        assert!(
            matches!(missing, Err(AddLabelError::NotFound { .. })),
            "{missing:?}"
        );
    }
    let pairs = |found: Vec<(i64, Label)>| -> Vec<(i64, i64)> {
        found.into_iter().map(|(a, l)| (a, l.id)).collect()
    };
    let (low, high) = (global.min(local), global.max(local));
    assert_eq!(
        pairs(
            store
                .artifact_labels(&[three, one, i64::MAX])
                .await
                .unwrap()
        ),
        [(one, low), (one, high), (three, global)]
    );
    assert!(store.artifact_labels(&[]).await.unwrap().is_empty());

    let labelled = async |matching: Match| -> Vec<i64> {
        let query = query(&[(ArtifactField::Labels, matching)], &[]);
        let listed = store.list_artifacts(&repository, &query, 0).await.unwrap();
        assert_eq!(listed.total, listed.items.len() as u64);
        listed.items.iter().map(|a| a.id).collect()
    };
    let all_of = |ids: &[i64]| Match::AllOf(ids.iter().map(ToString::to_string).collect());
    assert_eq!(labelled(all_of(&[local])).await, [one, two]);
    assert_eq!(labelled(all_of(&[global, local])).await, [one]);
    assert_eq!(labelled(all_of(&[global, global])).await, [one, three]);
    assert_eq!(labelled(exact(global)).await, [one, three]);
    assert!(labelled(all_of(&[i64::MAX])).await.is_empty());

    let removed = audit(actor, "delete", "removed");
    assert!(
        store
            .remove_artifact_label(two, local, &removed)
            .await
            .unwrap()
    );
    let twice = audit(actor, "delete", "twice");
    assert!(
        !store
            .remove_artifact_label(two, local, &twice)
            .await
            .unwrap()
    );
    // A deleted artifact takes its labels with it; pushed again, it has none.
    store
        .delete_manifest(&repository, &digest("cf-lart three"), None, None, 4)
        .await
        .unwrap();
    store
        .put_manifest(&manifest("cf-lart/app", "cf-lart three", &[], &[]))
        .await
        .unwrap();
    let three = store
        .artifact(&repository, &Reference::Digest(digest("cf-lart three")), 0)
        .await
        .unwrap()
        .unwrap()
        .id;
    assert!(
        store
            .artifact_labels(&[two, three])
            .await
            .unwrap()
            .is_empty()
    );
    // A deleted label is removed from every artifact.
    let gone = audit(actor, "delete", "label");
    assert!(store.delete_label(global, &gone).await.unwrap());
    assert_eq!(
        pairs(store.artifact_labels(&[one]).await.unwrap()),
        [(one, local)]
    );
    assert_eq!(labelled(all_of(&[local])).await, [one]);
    assert_eq!(
        audited(store, actor).await[1..],
        [
            "cf-lart-g".to_owned(),
            "cf-lart-p".into(),
            format!("{one}:{global}"),
            format!("{one}:{local}"),
            format!("{two}:{local}"),
            format!("{three_before}:{global}", three_before = artifacts[2]),
            "removed".into(),
            "label".into(),
        ]
    );
}

async fn deleting_a_project_removes_its_labels(store: &dyn Metadata) {
    let actor = "cf-lgone-actor";
    let gone = project(store, "cf-lgone", actor).await;
    let kept = project(store, "cf-lkept", actor).await;
    let in_gone = create(
        store,
        &new_label("cf-lgone", LabelScope::Project(gone)),
        1,
        actor,
    )
    .await;
    let in_kept = create(
        store,
        &new_label("cf-lgone", LabelScope::Project(kept)),
        1,
        actor,
    )
    .await;
    let deleted = audit(actor, "delete", "project");
    assert!(store.delete_project(gone, &deleted).await.unwrap());
    assert!(store.label(in_gone).await.unwrap().is_none());
    assert!(store.label(in_kept).await.unwrap().is_some());
    let in_project = query(&[(LabelField::ProjectId, exact(gone))], &[]);
    assert_eq!(store.list_labels(&in_project).await.unwrap().total, 0);
}
