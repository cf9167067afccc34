//! Checks of [`crate::RetentionStore`]: a project's one policy and its `retention_id`,
//! executions started with their job (by hand, or by a schedule's compare-and-set that
//! starts nothing beside a running execution), old executions pruned, tasks and their
//! logs, and the candidates read from a repository.

use berth_oci::Digest;

use super::support::{PROJECT_ADMIN, audit, digest, manifest, new_project, repo};
use crate::{
    ExecutionStart, ExecutionStatus, JobOutcome, JobSpec, JobState, Metadata, RetentionCandidate,
    RetentionPolicyError, RetryPolicy, ScheduleFire, TaskEnd, TaskStatus,
};

/// The job kind of these checks' executions.
const KIND: &str = "cf-retention";

/// Runs the retention checks.
pub(super) async fn run(store: &dyn Metadata) {
    a_project_has_one_policy_named_in_its_metadata(store).await;
    executions_start_with_their_job_and_old_ones_go(store).await;
    schedules_start_once_and_never_beside_a_running_execution(store).await;
    tasks_are_added_once_worked_and_ended_when_open(store).await;
    candidates_are_the_artifacts_harbor_lists(store).await;
}

async fn project(store: &dyn Metadata, name: &str) -> i64 {
    store
        .create_project(
            &new_project(name, None, false),
            PROJECT_ADMIN,
            1,
            &audit("cf-retention-actor", "create", name),
        )
        .await
        .unwrap()
}

async fn retention_id(store: &dyn Metadata, project: i64) -> Option<String> {
    let project = store.project(project).await.unwrap().unwrap();
    project.metadata.get("retention_id").cloned()
}

fn start(policy_id: i64, trigger: &str, keep: u64, fire: Option<ScheduleFire>) -> ExecutionStart {
    ExecutionStart {
        policy_id,
        trigger: trigger.into(),
        dry_run: trigger == "MANUAL",
        operator: "cf-operator".into(),
        job: JobSpec {
            kind: KIND.into(),
            payload: format!(r#"{{"policy_id":{policy_id}}}"#),
            retry: RetryPolicy::default(),
        },
        keep,
        fire,
    }
}

/// Runs the due job of these checks to its end.
async fn finish_job(store: &dyn Metadata, now: i64) {
    let job = store
        .claim(&[KIND.to_owned()], now, 60_000)
        .await
        .unwrap()
        .expect("a job is due");
    store
        .finish(&job.lease, &JobOutcome::Succeeded, now)
        .await
        .unwrap();
}

/// Starts a manual execution of `policy` at `at` and finishes its job, leaving the
/// execution running (as a runner that ended the job, not yet the execution); returns
/// the execution's id.
async fn started_with_job_done(store: &dyn Metadata, policy: i64, at: i64) -> i64 {
    let started = store
        .start_retention_execution(&start(policy, "MANUAL", 10, None), at)
        .await
        .unwrap()
        .expect("the execution starts");
    finish_job(store, at).await;
    started.execution_id
}

async fn a_project_has_one_policy_named_in_its_metadata(store: &dyn Metadata) {
    let actor = "cf-retention-actor";
    let p = project(store, "cf-retention-policy").await;
    let id = store
        .create_retention_policy(
            p,
            r#"{"rules":[]}"#,
            Some(50),
            10,
            &audit(actor, "create", "p"),
        )
        .await
        .unwrap();
    assert_eq!(retention_id(store, p).await, Some(id.to_string()));
    let stored = store.retention_policy(id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.project_id,
            stored.definition.as_str(),
            stored.next_fire,
            stored.created_at,
            stored.updated_at
        ),
        (p, r#"{"rules":[]}"#, Some(50), 10, 10)
    );
    let again = store
        .create_retention_policy(p, "{}", None, 11, &audit(actor, "create", "p"))
        .await;
    assert!(
        matches!(&again, Err(RetentionPolicyError::Exists { existing, .. }) if *existing == id.to_string()),
        "{again:?}"
    );
    let missing = store
        .create_retention_policy(i64::MAX, "{}", None, 11, &audit(actor, "create", "x"))
        .await;
    assert!(matches!(missing, Err(RetentionPolicyError::NoProject(_))));

    assert!(
        store
            .update_retention_policy(
                id,
                r#"{"rules":[1]}"#,
                None,
                12,
                &audit(actor, "update", "p")
            )
            .await
            .unwrap()
    );
    let stored = store.retention_policy(id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.definition.as_str(),
            stored.next_fire,
            stored.updated_at
        ),
        (r#"{"rules":[1]}"#, None, 12)
    );
    assert!(
        !store
            .update_retention_policy(i64::MAX, "{}", None, 12, &audit(actor, "update", "x"))
            .await
            .unwrap()
    );

    // A project whose metadata names a policy already gets no other.
    let q = project(store, "cf-retention-named").await;
    let update = crate::ProjectUpdate {
        public: None,
        metadata: [("retention_id".to_owned(), "77".to_owned())].into(),
    };
    store
        .update_project(q, &update, 13, &audit(actor, "update", "q"))
        .await
        .unwrap();
    let named = store
        .create_retention_policy(q, "{}", None, 14, &audit(actor, "create", "q"))
        .await;
    assert!(
        matches!(&named, Err(RetentionPolicyError::Exists { existing, .. }) if existing == "77"),
        "{named:?}"
    );

    assert!(
        store
            .delete_retention_policy(id, &audit(actor, "delete", "p"))
            .await
            .unwrap()
    );
    assert_eq!(store.retention_policy(id).await.unwrap(), None);
    assert_eq!(retention_id(store, p).await, None);
    assert!(
        !store
            .delete_retention_policy(id, &audit(actor, "delete", "p"))
            .await
            .unwrap()
    );
    // Deleting a project deletes its policy; ids are not given again.
    let second = store
        .create_retention_policy(p, "{}", None, 15, &audit(actor, "create", "p2"))
        .await
        .unwrap();
    assert!(second > id);
    store
        .delete_project(p, &audit(actor, "delete", "project"))
        .await
        .unwrap();
    assert_eq!(store.retention_policy(second).await.unwrap(), None);
}

async fn executions_start_with_their_job_and_old_ones_go(store: &dyn Metadata) {
    let actor = "cf-retention-actor";
    let p = project(store, "cf-retention-runs").await;
    let policy = store
        .create_retention_policy(p, "v1", None, 1, &audit(actor, "create", "runs"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for round in 0..4 {
        let now = 100 + round;
        let started = store
            .start_retention_execution(&start(policy, "MANUAL", 2, None), now)
            .await
            .unwrap()
            .unwrap();
        let execution = store
            .retention_execution(started.execution_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                execution.policy_id,
                execution.trigger.as_str(),
                execution.dry_run,
                execution.operator.as_str(),
                execution.status,
                execution.job_id,
                execution.policy.as_str(),
                execution.started_at,
                execution.ended_at,
            ),
            (
                policy,
                "MANUAL",
                true,
                "cf-operator",
                ExecutionStatus::Running,
                Some(started.job_id),
                "v1",
                now,
                None
            )
        );
        let job = store.job(started.job_id).await.unwrap().unwrap();
        assert_eq!(
            (job.spec.kind.as_str(), job.state),
            (KIND, JobState::Queued)
        );
        assert_eq!(
            store
                .retention_execution_of_job(started.job_id)
                .await
                .unwrap()
                .map(|e| e.id),
            Some(started.execution_id)
        );
        finish_job(store, now).await;
        assert!(
            store
                .end_retention_execution(started.execution_id, ExecutionStatus::Success, now + 1)
                .await
                .unwrap()
        );
        // An ended execution keeps its end.
        assert!(
            !store
                .end_retention_execution(started.execution_id, ExecutionStatus::Error, now + 2)
                .await
                .unwrap()
        );
        ids.push(started.execution_id);
    }
    // Each start keeps the newest two ended executions besides itself.
    let listed = store
        .list_retention_executions(policy, 0, 10)
        .await
        .unwrap();
    let listed_ids: Vec<i64> = listed.items.iter().map(|e| e.id).collect();
    assert_eq!(
        (listed_ids, listed.total),
        (vec![ids[3], ids[2], ids[1]], 3)
    );
    let ended = &listed.items[0];
    assert_eq!(
        (ended.status, ended.ended_at),
        (ExecutionStatus::Success, Some(104))
    );
    let page = store.list_retention_executions(policy, 1, 1).await.unwrap();
    assert_eq!(
        (
            page.items.iter().map(|e| e.id).collect::<Vec<_>>(),
            page.total
        ),
        (vec![ids[2]], 3)
    );
    // The policy's definition when an execution starts is the one it runs.
    store
        .update_retention_policy(policy, "v2", None, 2, &audit(actor, "update", "runs"))
        .await
        .unwrap();
    let started = store
        .start_retention_execution(&start(policy, "MANUAL", 10, None), 200)
        .await
        .unwrap()
        .unwrap();
    let execution = store
        .retention_execution(started.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execution.policy, "v2");
    finish_job(store, 200).await;
    // Nothing starts for a policy that is gone; its executions went with it.
    store
        .delete_retention_policy(policy, &audit(actor, "delete", "runs"))
        .await
        .unwrap();
    assert_eq!(
        store
            .retention_execution(started.execution_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .start_retention_execution(&start(policy, "MANUAL", 10, None), 201)
            .await
            .unwrap(),
        None
    );
}

async fn schedules_start_once_and_never_beside_a_running_execution(store: &dyn Metadata) {
    let actor = "cf-retention-actor";
    let p = project(store, "cf-retention-schedule").await;
    let policy = store
        .create_retention_policy(p, "s", Some(1000), 1, &audit(actor, "create", "s"))
        .await
        .unwrap();
    let due = |now| async move {
        (store.due_retention_policies(now).await.unwrap().into_iter())
            .filter(|d| d.id == policy)
            .map(|d| d.next_fire)
            .collect::<Vec<_>>()
    };
    assert_eq!(due(999).await, Vec::<Option<i64>>::new());
    assert_eq!(due(1000).await, vec![Some(1000)]);
    let fire = |seen, next| Some(ScheduleFire { seen, next });
    let started = store
        .start_retention_execution(&start(policy, "SCHEDULE", 10, fire(1000, 2000)), 1001)
        .await
        .unwrap()
        .expect("the first firing starts");
    let execution = store
        .retention_execution(started.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execution.trigger, "SCHEDULE");
    // The same firing again finds the fire time moved on.
    let again = store
        .start_retention_execution(&start(policy, "SCHEDULE", 10, fire(1000, 2000)), 1001)
        .await
        .unwrap();
    assert_eq!(again, None);
    assert_eq!(due(1500).await, Vec::<Option<i64>>::new());
    // While the execution's job is queued, the next firing moves the time and starts
    // nothing.
    let busy = store
        .start_retention_execution(&start(policy, "SCHEDULE", 10, fire(2000, 3000)), 2001)
        .await
        .unwrap();
    assert_eq!(busy, None);
    assert_eq!(
        store
            .retention_policy(policy)
            .await
            .unwrap()
            .unwrap()
            .next_fire,
        Some(3000)
    );
    // Once the job ended, whatever the row says, the schedule starts again.
    finish_job(store, 2500).await;
    let next = store
        .start_retention_execution(&start(policy, "SCHEDULE", 10, fire(3000, 4000)), 3001)
        .await
        .unwrap();
    assert!(next.is_some());
    finish_job(store, 3001).await;
}

async fn tasks_are_added_once_worked_and_ended_when_open(store: &dyn Metadata) {
    let actor = "cf-retention-actor";
    let p = project(store, "cf-retention-tasks").await;
    let policy = store
        .create_retention_policy(p, "t", None, 1, &audit(actor, "create", "t"))
        .await
        .unwrap();
    let execution = started_with_job_done(store, policy, 10).await;
    let names: Vec<String> = ["p/b", "p/a", "p/c"].map(String::from).to_vec();
    let tasks = store.add_retention_tasks(execution, &names).await.unwrap();
    let repositories: Vec<&str> = tasks.iter().map(|t| t.repository.as_str()).collect();
    assert_eq!(repositories, ["p/b", "p/a", "p/c"]);
    assert!(tasks.iter().all(|t| t.status == TaskStatus::Pending
        && (t.started_at, t.ended_at, t.total, t.retained) == (None, None, 0, 0)));
    // Adding again returns the tasks there are.
    let again = store
        .add_retention_tasks(execution, &["p/z".to_owned()])
        .await
        .unwrap();
    assert_eq!(again, tasks);
    let page = store
        .list_retention_tasks(execution, 1, Some(1))
        .await
        .unwrap();
    assert_eq!((page.items, page.total), (vec![tasks[1].clone()], 3));

    let first = tasks[0].id;
    assert!(store.start_retention_task(first, 20).await.unwrap());
    let running = store.retention_task(first).await.unwrap().unwrap();
    assert_eq!(
        (running.status, running.started_at),
        (TaskStatus::Running, Some(20))
    );
    assert_eq!(
        store.retention_task_log(first).await.unwrap().as_deref(),
        Some("")
    );
    let end = TaskEnd {
        status: TaskStatus::Success,
        total: 5,
        retained: 3,
        log: "| a | b |\n".into(),
    };
    assert!(store.end_retention_task(first, &end, 30).await.unwrap());
    assert!(!store.end_retention_task(first, &end, 31).await.unwrap());
    assert!(!store.start_retention_task(first, 32).await.unwrap());
    let done = store.retention_task(first).await.unwrap().unwrap();
    assert_eq!(
        (
            done.status,
            done.started_at,
            done.ended_at,
            done.total,
            done.retained
        ),
        (TaskStatus::Success, Some(20), Some(30), 5, 3)
    );
    assert_eq!(
        store.retention_task_log(first).await.unwrap().as_deref(),
        Some("| a | b |\n")
    );

    assert!(store.start_retention_task(tasks[1].id, 40).await.unwrap());
    // The execution's end ends its tasks still open, once.
    let fail = store.end_retention_execution(execution, ExecutionStatus::Error, 50);
    assert!(fail.await.unwrap());
    let stop = store.end_retention_execution(execution, ExecutionStatus::Stopped, 60);
    assert!(!stop.await.unwrap());
    let ended = store
        .list_retention_tasks(execution, 0, None)
        .await
        .unwrap()
        .items;
    let states: Vec<(TaskStatus, Option<i64>)> =
        ended.iter().map(|t| (t.status, t.ended_at)).collect();
    assert_eq!(
        states,
        [
            (TaskStatus::Success, Some(30)),
            (TaskStatus::Error, Some(50)),
            (TaskStatus::Error, Some(50))
        ]
    );
    // A stopped execution's open tasks end stopped.
    let second = started_with_job_done(store, policy, 70).await;
    store.add_retention_tasks(second, &names).await.unwrap();
    let stop = store.end_retention_execution(second, ExecutionStatus::Stopped, 80);
    assert!(stop.await.unwrap());
    let ended = store.list_retention_tasks(second, 0, None).await.unwrap();
    assert!(
        (ended.items.iter()).all(|t| (t.status, t.ended_at) == (TaskStatus::Stopped, Some(80))),
        "{ended:?}"
    );
    // An execution that ended gets no tasks: none would ever end.
    let third = started_with_job_done(store, policy, 90).await;
    let fail = store.end_retention_execution(third, ExecutionStatus::Error, 95);
    assert!(fail.await.unwrap());
    assert_eq!(store.add_retention_tasks(third, &names).await.unwrap(), []);
    let none = store.list_retention_tasks(third, 0, None).await.unwrap();
    assert_eq!(none.total, 0);
    assert_eq!(store.retention_task(i64::MAX).await.unwrap(), None);
    assert_eq!(store.retention_task_log(i64::MAX).await.unwrap(), None);
}

async fn candidates_are_the_artifacts_harbor_lists(store: &dyn Metadata) {
    let actor = "cf-retention-actor";
    project(store, "cf-retention-cand").await;
    let name = "cf-retention-cand/app";
    let repository = repo(name);
    let push = |body: &'static str, tags: &'static [&'static str], at: i64| {
        let mut m = manifest(name, body, &[], tags);
        m.pushed_at = at;
        m
    };
    store
        .put_manifest(&push("cf-rc one", &["v1", "a-first"], 10))
        .await
        .unwrap();
    store
        .put_manifest(&push("cf-rc two", &[], 20))
        .await
        .unwrap();
    // An index listing a tagged child and an untagged one.
    store
        .put_manifest(&push("cf-rc child", &[], 30))
        .await
        .unwrap();
    store
        .put_manifest(&push("cf-rc tagged child", &["child"], 31))
        .await
        .unwrap();
    let mut index = push("cf-rc index", &["multi"], 40);
    index.children = vec![
        (digest("cf-rc child"), "cf-rc child".len() as u64),
        (
            digest("cf-rc tagged child"),
            "cf-rc tagged child".len() as u64,
        ),
    ];
    store.put_manifest(&index).await.unwrap();
    // A signature of the first: not a candidate.
    let mut referrer = push("cf-rc sig", &[], 50);
    referrer.subject = Some(digest("cf-rc one"));
    store.put_manifest(&referrer).await.unwrap();
    store
        .record_pulls(
            &[crate::PullRecord {
                repository: repository.clone(),
                digest: digest("cf-rc one"),
                tag: Some(berth_oci::Tag::parse("v1").unwrap()),
                count: 1,
            }],
            60,
            &[],
        )
        .await
        .unwrap();
    let one = store
        .artifact(
            &repository,
            &berth_oci::Reference::Digest(digest("cf-rc one")),
            0,
        )
        .await
        .unwrap()
        .unwrap()
        .id;
    for label in ["cf-rc-b", "cf-rc-a"] {
        let new = crate::NewLabel {
            name: label.into(),
            description: String::new(),
            color: String::new(),
            scope: crate::LabelScope::Global,
        };
        let id = store
            .create_label(&new, 1, &audit(actor, "create", label))
            .await
            .unwrap();
        store
            .add_artifact_label(one, id, 2, &audit(actor, "create", label))
            .await
            .unwrap();
    }

    let shown = |found: &[RetentionCandidate]| -> Vec<(Digest, Vec<String>, i64, Option<i64>)> {
        found
            .iter()
            .map(|c| {
                let tags = c.tags.iter().map(|t| t.name.to_string()).collect();
                (c.digest.clone(), tags, c.pushed_at, c.pulled_at)
            })
            .collect()
    };
    let all = store
        .retention_candidates(&repository, 0, 100)
        .await
        .unwrap();
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        shown(&all),
        vec![
            (digest("cf-rc one"), tags(&["a-first", "v1"]), 10, Some(60)),
            (digest("cf-rc two"), tags(&[]), 20, None),
            (digest("cf-rc tagged child"), tags(&["child"]), 31, None),
            (digest("cf-rc index"), tags(&["multi"]), 40, None),
        ]
    );
    let first = &all[0];
    assert_eq!(first.labels, ["cf-rc-a", "cf-rc-b"]);
    let v1 = first.tags.iter().find(|t| t.name.as_str() == "v1").unwrap();
    assert_eq!(
        (v1.artifact_id, v1.pushed_at, v1.pulled_at),
        (first.id, 10, Some(60))
    );
    assert!(all[1].labels.is_empty());
    // Pages follow the id.
    let page = store
        .retention_candidates(&repository, all[0].id, 2)
        .await
        .unwrap();
    assert_eq!(shown(&page), shown(&all[1..3]));
    assert!(
        store
            .retention_candidates(&repo("cf-retention-cand/none"), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
