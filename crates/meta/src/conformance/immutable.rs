//! Checks of [`crate::ImmutableRuleStore`]: rules created, read, listed, changed and
//! deleted per project, definitions unique within a project, and rules going with
//! their project.

use berth_oci::Tag;

use super::support::{PROJECT_ADMIN, audit, audited, digest, manifest, new_project, repo};
use crate::{
    Deletion, GuardFailure, ImmutableRuleError, Metadata, ProjectRules, PutManifestError, TagGuard,
};

/// Rules a project may hold in these checks.
const MAX: u64 = 4;

/// Runs the immutability rule checks.
pub(super) async fn run(store: &dyn Metadata) {
    rules_are_created_listed_changed_and_deleted(store).await;
    deleting_a_project_removes_its_rules(store).await;
    rule_changes_move_the_revision_and_respect_the_limit(store).await;
    guards_are_checked_in_the_write(store).await;
    repository_deletes_are_guarded(store).await;
}

/// A project named `name`, created by `actor`; returns its id.
async fn project(store: &dyn Metadata, name: &str, actor: &str) -> i64 {
    store
        .create_project(
            &new_project(name, None, false),
            PROJECT_ADMIN,
            1,
            &audit(actor, "create", name),
        )
        .await
        .unwrap()
}

async fn rules_are_created_listed_changed_and_deleted(store: &dyn Metadata) {
    let actor = "cf-immutable-actor";
    let mine = project(store, "cf-immutable", actor).await;
    let other = project(store, "cf-immutable-other", actor).await;
    let mut ids = Vec::new();
    for pattern in ["a", "b", "c"] {
        let definition = format!(r#"{{"pattern":"{pattern}"}}"#);
        let id = store
            .create_immutable_rule(mine, &definition, MAX, 1, &audit(actor, "create", pattern))
            .await
            .unwrap();
        ids.push(id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    let duplicate = store
        .create_immutable_rule(
            mine,
            r#"{"pattern":"a"}"#,
            MAX,
            1,
            &audit(actor, "create", "dup"),
        )
        .await;
    assert!(matches!(duplicate, Err(ImmutableRuleError::Duplicate)));
    // The same definition in another project is another rule.
    let elsewhere = store
        .create_immutable_rule(
            other,
            r#"{"pattern":"a"}"#,
            MAX,
            1,
            &audit(actor, "create", "x"),
        )
        .await
        .unwrap();

    let rule = store.immutable_rule(mine, ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (rule.project_id, rule.disabled, rule.definition.as_str()),
        (mine, false, r#"{"pattern":"a"}"#)
    );
    assert_eq!(store.immutable_rule(other, ids[0]).await.unwrap(), None);

    let page = store.list_immutable_rules(mine, 1, Some(1)).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(
        page.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[1]]
    );
    let all = store.list_immutable_rules(mine, 0, None).await.unwrap();
    assert_eq!(all.items.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    let by_name = store.immutable_rules_of("cf-immutable").await.unwrap();
    assert_eq!(
        (by_name.project_id, &by_name.rules),
        (Some(mine), &all.items)
    );
    let none = store.immutable_rules_of("cf-no-such").await.unwrap();
    assert_eq!(none, ProjectRules::default());

    let changed = store
        .update_immutable_rule(
            mine,
            ids[1],
            r#"{"pattern":"z"}"#,
            &audit(actor, "update", "b"),
        )
        .await
        .unwrap();
    assert!(changed);
    let clash = store
        .update_immutable_rule(
            mine,
            ids[2],
            r#"{"pattern":"z"}"#,
            &audit(actor, "update", "c"),
        )
        .await;
    assert!(matches!(clash, Err(ImmutableRuleError::Duplicate)));
    let foreign = store
        .update_immutable_rule(other, ids[1], "{}", &audit(actor, "update", "foreign"))
        .await
        .unwrap();
    assert!(!foreign, "a rule is changed only through its own project");
    assert!(
        store
            .set_immutable_rule_disabled(mine, ids[1], true, &audit(actor, "disable", "b"))
            .await
            .unwrap()
    );
    let rule = store.immutable_rule(mine, ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (rule.disabled, rule.definition.as_str()),
        (true, r#"{"pattern":"z"}"#)
    );

    assert!(
        !store
            .delete_immutable_rule(other, ids[0], &audit(actor, "delete", "foreign"))
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_immutable_rule(mine, ids[0], &audit(actor, "delete", "a"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_immutable_rule(mine, ids[0], &audit(actor, "delete", "again"))
            .await
            .unwrap()
    );
    let left = store.list_immutable_rules(mine, 0, None).await.unwrap();
    assert_eq!(
        left.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids[1..]
    );
    // A new rule never takes a deleted rule's id.
    let next = store
        .create_immutable_rule(
            mine,
            r#"{"pattern":"a"}"#,
            MAX,
            1,
            &audit(actor, "create", "a2"),
        )
        .await
        .unwrap();
    assert!(next > elsewhere && next != ids[0]);
    // Only changes are audited.
    assert_eq!(
        audited(store, actor).await,
        [
            "cf-immutable",
            "cf-immutable-other",
            "a",
            "b",
            "c",
            "x",
            "b",
            "b",
            "a",
            "a2"
        ]
    );
}

async fn deleting_a_project_removes_its_rules(store: &dyn Metadata) {
    let actor = "cf-immutable-gone-actor";
    let id = project(store, "cf-immutable-gone", actor).await;
    store
        .create_immutable_rule(id, "{}", MAX, 1, &audit(actor, "create", "rule"))
        .await
        .unwrap();
    assert!(
        store
            .delete_project(id, &audit(actor, "delete", "project"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.immutable_rules_of("cf-immutable-gone").await.unwrap(),
        ProjectRules::default()
    );
    assert_eq!(
        store.list_immutable_rules(id, 0, None).await.unwrap().total,
        0
    );
    // A project of the same name starts without rules.
    let again = project(store, "cf-immutable-gone", actor).await;
    assert_eq!(
        store
            .list_immutable_rules(again, 0, None)
            .await
            .unwrap()
            .total,
        0
    );
}

async fn rule_changes_move_the_revision_and_respect_the_limit(store: &dyn Metadata) {
    let actor = "cf-immutable-rev-actor";
    let id = project(store, "cf-immutable-rev", actor).await;
    let revision = || async {
        let rules = store.immutable_rules_of("cf-immutable-rev").await.unwrap();
        assert_eq!(rules.project_id, Some(id));
        rules.revision
    };
    assert_eq!(revision().await, 0, "a new project's rules never changed");
    let mut seen = vec![revision().await];
    let mut rules = Vec::new();
    for n in 0..MAX {
        let definition = format!("{{\"n\":{n}}}");
        let rule = store
            .create_immutable_rule(id, &definition, MAX, 1, &audit(actor, "create", "r"))
            .await
            .unwrap();
        rules.push(rule);
        seen.push(revision().await);
    }
    let over = store
        .create_immutable_rule(id, "{}", MAX, 1, &audit(actor, "create", "over"))
        .await;
    assert!(matches!(over, Err(ImmutableRuleError::TooMany(MAX))));
    store
        .update_immutable_rule(id, rules[0], "{}", &audit(actor, "update", "r"))
        .await
        .unwrap();
    seen.push(revision().await);
    store
        .set_immutable_rule_disabled(id, rules[0], true, &audit(actor, "disable", "r"))
        .await
        .unwrap();
    seen.push(revision().await);
    store
        .delete_immutable_rule(id, rules[0], &audit(actor, "delete", "r"))
        .await
        .unwrap();
    seen.push(revision().await);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "every change moves the revision: {seen:?}"
    );
    // A change that finds no rule changes nothing.
    store
        .delete_immutable_rule(id, rules[0], &audit(actor, "delete", "r"))
        .await
        .unwrap();
    assert_eq!(revision().await, *seen.last().unwrap());
}

async fn guards_are_checked_in_the_write(store: &dyn Metadata) {
    let actor = "cf-immutable-guard-actor";
    let r = repo("cf-immutable-guard/app");
    let (v1, v2) = (Tag::parse("v1").unwrap(), Tag::parse("v2").unwrap());
    // A guard decided on no project holds for the project its push creates.
    let unseen = TagGuard {
        project_id: None,
        revision: 0,
        tags: vec![v1.clone()],
    };
    let mut first = manifest(r.as_str(), "cf-guard-one", &[], &["v1"]);
    first.guard = Some(unseen.clone());
    store.put_manifest(&first).await.unwrap();
    let guard = current_guard(store, "cf-immutable-guard", vec![v1.clone()]).await;
    let id = guard.project_id.unwrap();

    // The same manifest again under a protected tag is allowed; another one is not.
    first.guard = Some(guard.clone());
    store.put_manifest(&first).await.unwrap();
    let mut second = manifest(r.as_str(), "cf-guard-two", &[], &["v1"]);
    second.guard = Some(guard.clone());
    let moved = store.put_manifest(&second).await;
    assert!(matches!(moved, Err(PutManifestError::TagProtected(ref t)) if *t == v1));
    // Unprotected, the tag moves; a new protected tag is created.
    second.guard = Some(TagGuard {
        tags: vec![v2.clone()],
        ..guard.clone()
    });
    second.tags = vec![v2.clone()];
    store.put_manifest(&second).await.unwrap();

    // A delete by digest must know every tag of the manifest.
    let one = digest("cf-guard-one");
    let blind = TagGuard {
        tags: Vec::new(),
        ..guard.clone()
    };
    let deletion = store
        .delete_manifest(&r, &one, Some(&blind), None, 2)
        .await
        .unwrap();
    assert_eq!(
        deletion,
        Deletion::Stale(GuardFailure::TagsChanged(vec![v1.clone()]))
    );

    // A rule change makes every guard of the older revision stale.
    store
        .create_immutable_rule(id, "{}", MAX, 1, &audit(actor, "create", "rule"))
        .await
        .unwrap();
    let stale = Deletion::Stale(GuardFailure::RulesChanged);
    assert_eq!(
        store
            .delete_tag(&r, &v1, Some(&guard), None, 0)
            .await
            .unwrap(),
        stale
    );
    assert_eq!(
        store
            .delete_manifest(&r, &one, Some(&guard), None, 2)
            .await
            .unwrap(),
        stale
    );
    let mut third = manifest(r.as_str(), "cf-guard-three", &[], &["v3"]);
    third.guard = Some(guard.clone());
    let refused = store.put_manifest(&third).await;
    assert!(matches!(
        refused,
        Err(PutManifestError::Stale(GuardFailure::RulesChanged))
    ));
    let mut stale_new = third.clone();
    stale_new.guard = Some(unseen);
    assert!(matches!(
        store.put_manifest(&stale_new).await,
        Err(PutManifestError::Stale(GuardFailure::RulesChanged))
    ));
    assert!(
        store
            .manifest(&r, &berth_oci::Reference::Digest(digest("cf-guard-three")))
            .await
            .unwrap()
            .is_none(),
        "a stale push writes nothing"
    );

    // At the current revision, the writes go through.
    let current = current_guard(store, "cf-immutable-guard", vec![v1.clone()]).await;
    assert_eq!(
        store
            .delete_tag(&r, &v2, Some(&current), None, 0)
            .await
            .unwrap(),
        Deletion::Deleted
    );
    assert_eq!(
        store
            .delete_manifest(&r, &one, Some(&current), None, 2)
            .await
            .unwrap(),
        Deletion::Deleted
    );
    assert_eq!(audited(store, actor).await, ["rule"]);
}

/// A repository's delete must know every tag in it and the rules' revision.
async fn repository_deletes_are_guarded(store: &dyn Metadata) {
    let actor = "cf-immutable-repository-actor";
    let r = repo("cf-immutable-repository/app");
    let tags =
        |names: &[&str]| -> Vec<Tag> { names.iter().map(|t| Tag::parse(t).unwrap()).collect() };
    store
        .put_manifest(&manifest(r.as_str(), "cf-repo-one", &[], &["b", "a"]))
        .await
        .unwrap();
    store
        .put_manifest(&manifest(r.as_str(), "cf-repo-two", &[], &["c"]))
        .await
        .unwrap();
    let guard = current_guard(store, "cf-immutable-repository", tags(&["a", "b"])).await;
    let id = guard.project_id.unwrap();
    let removed = audit(actor, "delete", "repository");
    assert_eq!(
        store
            .delete_repository(&r, Some(&guard), &removed)
            .await
            .unwrap(),
        Deletion::Stale(GuardFailure::TagsChanged(tags(&["a", "b", "c"])))
    );

    store
        .create_immutable_rule(id, "{}", MAX, 1, &audit(actor, "create", "rule"))
        .await
        .unwrap();
    let everything = TagGuard {
        tags: tags(&["a", "b", "c"]),
        ..guard.clone()
    };
    assert_eq!(
        store
            .delete_repository(&r, Some(&everything), &removed)
            .await
            .unwrap(),
        Deletion::Stale(GuardFailure::RulesChanged)
    );
    assert!(store.repository_info(&r).await.unwrap().is_some());

    let current = current_guard(store, "cf-immutable-repository", tags(&["a", "b", "c"])).await;
    assert_eq!(
        store
            .delete_repository(&r, Some(&current), &removed)
            .await
            .unwrap(),
        Deletion::Deleted
    );
    assert!(store.repository_info(&r).await.unwrap().is_none());
    assert_eq!(
        store
            .delete_repository(&r, Some(&current), &removed)
            .await
            .unwrap(),
        Deletion::NotFound
    );
    assert_eq!(audited(store, actor).await, ["rule", "repository"]);
}

/// A guard at `project`'s current rule revision, covering `tags`.
async fn current_guard(store: &dyn Metadata, project: &str, tags: Vec<Tag>) -> TagGuard {
    let rules = store.immutable_rules_of(project).await.unwrap();
    TagGuard {
        project_id: rules.project_id,
        revision: rules.revision,
        tags,
    }
}
