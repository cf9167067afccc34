//! Tag retention: Harbor's `/retentions` (every answer checked against the swagger's
//! `RetentionPolicy`, `RetentionExecution`, `RetentionExecutionTask` and
//! `RetentionMetadata`), the policy's id in the project's metadata, a dry run that
//! deletes nothing and logs per artifact what is kept and by which rule, a run that
//! deletes what no rule keeps but never an immutable tag, the schedule, stopping an
//! execution, and who may do what (the project's `tag-retention` permissions).

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth_app::jobs::TagRetention;
use berth_app::{Clock, RegistryConfig};
use berth_meta::{ExecutionStatus, JobId, JobOutcome, JobState, StopRequest};
use berth_testkit::{LinkHold, ManualClock};
use common::harbor::*;
use common::jobs::*;
use common::*;
use tokio::sync::watch;

const HOUR: Duration = Duration::from_secs(3600);
const METADATAS: &str = "/retentions/metadatas";
const POLICIES: &str = "/retentions";
const POLICY: &str = "/retentions/{id}";
const EXECUTIONS: &str = "/retentions/{id}/executions";
const EXECUTION: &str = "/retentions/{id}/executions/{eid}";
const TASKS: &str = "/retentions/{id}/executions/{eid}/tasks";

/// Runs the registry's retention jobs and fires its policies' schedules until the
/// sender is dropped.
fn runner(reg: &TestRegistry, clock: Arc<ManualClock>) -> watch::Sender<bool> {
    job_runner(reg, clock, |runner| retention_jobs(reg, runner))
}

/// A secure registry on a manual clock with project `team`, logged in on `/v2/` as
/// the administrator; returns it, the clock and the project's id.
async fn registry() -> (TestRegistry, Arc<ManualClock>, i64) {
    let clock = ManualClock::new();
    let reg = TestRegistry::secure_with(RegistryConfig::default(), clock.clone(), None).await;
    let id = create_project(&reg, ADMIN, "team").await;
    reg.log_in(Some(ADMIN));
    (reg, clock, id)
}

/// A rule of `template` with parameter `param`, on tags matching `tags` and
/// repositories matching `repositories`.
fn rule(template: &str, param: i64, tags: &str, repositories: &str) -> Value {
    json!({
        "id": 0, "priority": 0, "disabled": false, "action": "retain",
        "template": template, "params": {template: param},
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": tags,
                           "extras": "{\"untagged\":true}"}],
        "scope_selectors": {"repository": [
            {"kind": "doublestar", "decoration": "repoMatches", "pattern": repositories}]},
    })
}

/// A policy of project `project` with `rules`, scheduled by `cron` (empty: none).
fn policy(project: i64, rules: Vec<Value>, cron: &str) -> Value {
    json!({
        "algorithm": "or", "rules": rules,
        "trigger": {"kind": "Schedule", "settings": {"cron": cron}, "references": {}},
        "scope": {"level": "project", "ref": project},
    })
}

/// Creates a policy as `who`; returns its id.
async fn create(reg: &TestRegistry, who: (&str, &str), body: Value) -> i64 {
    let r = call(
        reg,
        Some(who),
        Method::POST,
        "/retentions",
        POLICIES,
        Some(body),
    )
    .await;
    expect_status(&r, 201, "create policy");
    let location = r.header("location");
    let id = location.rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(location, format!("/api/v2.0/retentions/{id}"));
    id
}

/// Starts an execution as the administrator; returns its id.
async fn trigger(reg: &TestRegistry, id: i64, dry_run: bool) -> i64 {
    let uri = format!("/retentions/{id}/executions");
    let r = call(
        reg,
        Some(ADMIN),
        Method::POST,
        &uri,
        EXECUTIONS,
        Some(json!({"dry_run": dry_run})),
    )
    .await;
    expect_status(&r, 201, "trigger");
    let location = r.header("location");
    let eid = location.rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(
        location,
        format!("/api/v2.0/retentions/{id}/executions/{eid}")
    );
    eid
}

async fn executions(reg: &TestRegistry, id: i64) -> Value {
    let uri = format!("/retentions/{id}/executions");
    let r = call(reg, Some(ADMIN), Method::GET, &uri, EXECUTIONS, None).await;
    expect_status(&r, 200, "executions");
    r.json()
}

/// Waits (up to 10 s) until execution `eid` of `id` has ended; returns it.
async fn ended(reg: &TestRegistry, id: i64, eid: i64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let all = executions(reg, id).await;
        let found = all
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == eid)
            .cloned()
            .unwrap_or_else(|| panic!("execution {eid} not listed: {all}"));
        if found["status"] != "Running" {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "{found}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn tasks(reg: &TestRegistry, id: i64, eid: i64) -> Vec<Value> {
    let uri = format!("/retentions/{id}/executions/{eid}/tasks");
    let r = call(reg, Some(ADMIN), Method::GET, &uri, TASKS, None).await;
    expect_status(&r, 200, "tasks");
    assert_eq!(
        r.header("x-total-count"),
        r.json().as_array().unwrap().len().to_string()
    );
    r.json().as_array().unwrap().clone()
}

async fn task_log(reg: &TestRegistry, id: i64, eid: i64, tid: &Value) -> String {
    let r = reg
        .send(
            Method::GET,
            &format!("/api/v2.0/retentions/{id}/executions/{eid}/tasks/{tid}"),
            &[("authorization", basic(ADMIN).as_str())],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.header("content-type").starts_with("text/plain"));
    String::from_utf8(r.body.to_vec()).unwrap()
}

/// Pushes `repo:tag` with a layer of its own, an hour after the previous push; returns
/// its digest and bytes.
async fn push(reg: &TestRegistry, clock: &ManualClock, repo: &str, tag: &str) -> (Digest, Vec<u8>) {
    clock.advance(HOUR);
    reg.push_image(repo, tag, &[format!("{repo}:{tag}").as_bytes()])
        .await
}

async fn exists(reg: &TestRegistry, repo: &str, tag: &str) -> bool {
    head(reg, &format!("/v2/{repo}/manifests/{tag}"))
        .await
        .status
        == StatusCode::OK
}

/// The log's table line of the artifact tagged exactly `tags`.
fn line<'a>(log: &'a str, tags: &str) -> &'a str {
    log.lines()
        .find(|l| l.split('|').nth(2).map(str::trim) == Some(tags))
        .unwrap_or_else(|| panic!("no line for {tags} in\n{log}"))
}

#[tokio::test]
async fn policies_are_created_read_replaced_and_deleted_as_harbor_shows_them() {
    let (reg, _clock, project) = registry().await;
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/retentions/metadatas",
        METADATAS,
        None,
    )
    .await;
    expect_status(&r, 200, "metadatas");
    let metadata = r.json();
    let templates: Vec<&str> = (metadata["templates"].as_array().unwrap().iter())
        .map(|t| t["rule_template"].as_str().unwrap())
        .collect();
    assert_eq!(
        templates,
        [
            "latestPushedK",
            "latestPulledN",
            "nDaysSinceLastPush",
            "nDaysSinceLastPull",
            "always"
        ]
    );
    reg.log_in(None);
    let r = call(
        &reg,
        None,
        Method::GET,
        "/retentions/metadatas",
        METADATAS,
        None,
    )
    .await;
    expect_status(&r, 401, "anonymous metadatas");
    reg.log_in(Some(ADMIN));

    let body = policy(
        project,
        vec![rule("latestPushedK", 3, "**", "**")],
        "0 0 0 * * *",
    );
    let id = create(&reg, ADMIN, body.clone()).await;
    let meta = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/projects/team/metadatas/retention_id",
        "/projects/{project_name_or_id}/metadatas/{meta_name}",
        None,
    )
    .await;
    assert_eq!(meta.json(), json!({"retention_id": id.to_string()}));
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        &format!("/retentions/{id}"),
        POLICY,
        None,
    )
    .await;
    expect_status(&r, 200, "get");
    let shown = r.json();
    assert_eq!(shown["id"], id);
    assert_eq!(shown["algorithm"], "or");
    assert_eq!(shown["scope"], json!({"level": "project", "ref": project}));
    assert_eq!(shown["rules"][0]["params"], json!({"latestPushedK": 3}));
    assert_eq!(
        shown["rules"][0]["tag_selectors"],
        body["rules"][0]["tag_selectors"]
    );
    assert_eq!(shown["trigger"]["settings"]["cron"], "0 0 0 * * *");
    let next = shown["trigger"]["settings"]["next_scheduled_time"]
        .as_str()
        .unwrap();
    assert!(next.contains("T00:00:00") && next.ends_with('Z'), "{next}");

    // One policy per project.
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/retentions",
        POLICIES,
        Some(body.clone()),
    )
    .await;
    expect_status(&r, 400, "second policy");

    // Replaced with what GET showed, changed: the shown next fire time is not stored.
    let mut changed = shown.clone();
    changed["rules"] = json!([
        rule("latestPulledN", 2, "v*", "**"),
        rule("always", 0, "release-*", "app"),
    ]);
    changed["trigger"]["settings"]["cron"] = json!("");
    let uri = format!("/retentions/{id}");
    let r = call(&reg, Some(ADMIN), Method::PUT, &uri, POLICY, Some(changed)).await;
    expect_status(&r, 200, "update");
    let shown = call(&reg, Some(ADMIN), Method::GET, &uri, POLICY, None)
        .await
        .json();
    assert_eq!(shown["rules"].as_array().unwrap().len(), 2);
    assert_eq!(shown["trigger"]["settings"], json!({"cron": ""}));

    // Refusals: Harbor's messages and statuses.
    let twice = policy(
        project,
        vec![rule("always", 0, "**", "**"), rule("always", 0, "**", "**")],
        "",
    );
    let r = call(&reg, Some(ADMIN), Method::PUT, &uri, POLICY, Some(twice)).await;
    expect_status(&r, 409, "conflicting rules");
    let many: Vec<Value> = (0..16)
        .map(|k| rule("latestPushedK", k, "**", "**"))
        .collect();
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PUT,
        &uri,
        POLICY,
        Some(policy(project, many, "")),
    )
    .await;
    expect_status(&r, 400, "16 rules");
    for bad in [
        policy(project, vec![rule("latestActiveK", 1, "**", "**")], ""),
        policy(project, vec![rule("latestPushedK", -1, "**", "**")], ""),
        policy(project, vec![rule("always", 0, "{a", "**")], ""),
        policy(project, vec![], "5 0 0 * * *"),
        policy(project + 1000, vec![], ""),
    ] {
        let r = call(
            &reg,
            Some(ADMIN),
            Method::PUT,
            &uri,
            POLICY,
            Some(bad.clone()),
        )
        .await;
        expect_status(&r, 400, &bad.to_string());
    }
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/retentions/999999",
        POLICY,
        None,
    )
    .await;
    expect_status(&r, 404, "unknown policy");

    let r = call(&reg, Some(ADMIN), Method::DELETE, &uri, POLICY, None).await;
    expect_status(&r, 200, "delete");
    let r = call(&reg, Some(ADMIN), Method::GET, &uri, POLICY, None).await;
    expect_status(&r, 404, "deleted policy");
    let metadata = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/projects/team/metadatas/",
        "/projects/{project_name_or_id}/metadatas/",
        None,
    )
    .await
    .json();
    assert!(metadata.get("retention_id").is_none(), "{metadata}");
    // Another policy may follow.
    create(&reg, ADMIN, body).await;
}

/// `team/app`: v1…v4 pushed an hour apart, `latest` on v4, v1 pulled last; `team/lib`:
/// l1, l2. Returns the digests of app's v1…v4.
async fn fill(reg: &TestRegistry, clock: &ManualClock) -> Vec<Digest> {
    let mut pushed = Vec::new();
    for tag in ["v1", "v2", "v3", "v4"] {
        pushed.push(push(reg, clock, "team/app", tag).await);
    }
    let r = reg
        .put_manifest("team/app", "latest", media_type::OCI_MANIFEST, &pushed[3].1)
        .await;
    expect_status(&r, 201, "latest");
    push(reg, clock, "team/lib", "l1").await;
    push(reg, clock, "team/lib", "l2").await;
    clock.advance(HOUR);
    assert_eq!(
        reg.get("/v2/team/app/manifests/v1").await.status,
        StatusCode::OK
    );
    reg.registry.flush_pulls().await.unwrap();
    pushed.into_iter().map(|(digest, _)| digest).collect()
}

#[tokio::test]
async fn a_dry_run_logs_what_is_kept_and_by_which_rule_and_deletes_nothing() {
    let (reg, clock, project) = registry().await;
    let digests = fill(&reg, &clock).await;
    let id = create(
        &reg,
        ADMIN,
        policy(
            project,
            vec![
                rule("latestPushedK", 1, "**", "app"),
                rule("latestPulledN", 1, "v*", "app"),
            ],
            "",
        ),
    )
    .await;
    let _runner = runner(&reg, clock.clone());
    let eid = trigger(&reg, id, true).await;
    let execution = ended(&reg, id, eid).await;
    assert_eq!(
        (
            &execution["status"],
            &execution["trigger"],
            &execution["dry_run"],
            &execution["policy_id"]
        ),
        (
            &json!("Success"),
            &json!("MANUAL"),
            &json!(true),
            &json!(id)
        )
    );
    assert!(execution["end_time"].is_string());
    // Only the repository a rule selects has a task.
    let tasks = tasks(&reg, id, eid).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let task = &tasks[0];
    assert_eq!(
        (
            &task["repository"],
            &task["status"],
            &task["status_code"],
            &task["total"],
            &task["retained"]
        ),
        (
            &json!("app"),
            &json!("Success"),
            &json!(3),
            &json!(4),
            &json!(2)
        )
    );
    let log = task_log(&reg, id, eid, &task["id"]).await;
    assert!(log.contains("Dry Run: true"), "{log}");
    assert!(
        log.contains("rule 1: the most recently pushed 1 artifacts"),
        "{log}"
    );
    let kept_v4 = line(&log, "latest,v4");
    assert!(
        kept_v4.contains("| RETAIN") && kept_v4.contains("rule 1"),
        "{log}"
    );
    assert!(kept_v4.contains(digests[3].as_str()), "{log}");
    let kept_v1 = line(&log, "v1");
    assert!(
        kept_v1.contains("| RETAIN") && kept_v1.contains("rule 2"),
        "{log}"
    );
    for tag in ["v2", "v3"] {
        assert!(line(&log, tag).contains("| DEL"), "{log}");
    }
    assert!(
        log.contains("2 retained, 2 would be deleted (dry run)"),
        "{log}"
    );
    for tag in ["v1", "v2", "v3", "v4", "latest"] {
        assert!(
            exists(&reg, "team/app", tag).await,
            "{tag} was deleted by a dry run"
        );
    }
}

#[tokio::test]
async fn a_run_deletes_what_no_rule_keeps_but_never_an_immutable_tag() {
    let (reg, clock, project) = registry().await;
    fill(&reg, &clock).await;
    let immutable = json!({
        "action": "immutable", "template": "immutable_template",
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v2"}],
        "scope_selectors": {"repository": [
            {"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
    });
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/projects/team/immutabletagrules",
        "/projects/{project_name_or_id}/immutabletagrules",
        Some(immutable),
    )
    .await;
    expect_status(&r, 201, "immutable rule");
    let id = create(
        &reg,
        ADMIN,
        policy(project, vec![rule("latestPushedK", 1, "**", "**")], ""),
    )
    .await;
    let _runner = runner(&reg, clock.clone());
    let eid = trigger(&reg, id, false).await;
    let execution = ended(&reg, id, eid).await;
    assert_eq!(execution["status"], "Success", "{execution}");
    let tasks = tasks(&reg, id, eid).await;
    let repositories: Vec<&str> = tasks
        .iter()
        .map(|t| t["repository"].as_str().unwrap())
        .collect();
    assert_eq!(repositories, ["app", "lib"]);
    assert_eq!(
        (&tasks[0]["total"], &tasks[0]["retained"]),
        (&json!(4), &json!(2))
    );
    assert_eq!(
        (&tasks[1]["total"], &tasks[1]["retained"]),
        (&json!(2), &json!(1))
    );
    let log = task_log(&reg, id, eid, &tasks[0]["id"]).await;
    let v2 = line(&log, "v2");
    assert!(
        v2.contains("| IMMUTABLE") && v2.contains("immutable tag rule"),
        "{log}"
    );
    assert!(log.contains("2 retained, 2 deleted"), "{log}");
    for (repo, tag, kept) in [
        ("team/app", "v4", true),
        ("team/app", "latest", true),
        ("team/app", "v2", true),
        ("team/app", "v1", false),
        ("team/app", "v3", false),
        ("team/lib", "l2", true),
        ("team/lib", "l1", false),
    ] {
        assert_eq!(exists(&reg, repo, tag).await, kept, "{repo}:{tag}");
    }
    // The deletes went through the artifact delete: audited as the one who ran it.
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/audit-logs?q=operation%3Ddelete&page_size=100",
        "/audit-logs",
        None,
    )
    .await;
    let deletes: Vec<Value> = (r.json().as_array().unwrap().iter())
        .filter(|e| e["resource_type"] == "artifact")
        .cloned()
        .collect();
    assert_eq!(deletes.len(), 3, "{deletes:?}");
    assert!(
        deletes.iter().all(|e| e["username"] == "admin"),
        "{deletes:?}"
    );
}

#[tokio::test]
async fn a_schedule_starts_executions_and_a_stop_ends_a_queued_one() {
    let (reg, clock, project) = registry().await;
    fill(&reg, &clock).await;
    let id = create(
        &reg,
        ADMIN,
        policy(
            project,
            vec![rule("latestPushedK", 10, "**", "**")],
            "0 0 * * * *",
        ),
    )
    .await;
    // Without a runner, an execution asked for waits queued; a stop ends it at once.
    let eid = trigger(&reg, id, false).await;
    let uri = format!("/retentions/{id}/executions/{eid}");
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PATCH,
        &uri,
        EXECUTION,
        Some(json!({"action": "pause"})),
    )
    .await;
    expect_status(&r, 400, "unknown action");
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PATCH,
        &uri,
        EXECUTION,
        Some(json!({"action": "stop"})),
    )
    .await;
    expect_status(&r, 200, "stop");
    let listed = executions(&reg, id).await;
    assert_eq!(listed[0]["status"], "Stopped", "{listed}");
    // Stopping it again changes nothing.
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PATCH,
        &uri,
        EXECUTION,
        Some(json!({"action": "stop"})),
    )
    .await;
    expect_status(&r, 200, "stop again");

    let _runner = runner(&reg, clock.clone());
    clock.advance(HOUR);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let scheduled = loop {
        let listed = executions(&reg, id).await;
        if let Some(e) = (listed.as_array().unwrap().iter())
            .find(|e| e["trigger"] == "SCHEDULE" && e["status"] != "Running")
        {
            break e.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (&scheduled["status"], &scheduled["dry_run"]),
        (&json!("Success"), &json!(false))
    );
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        &format!("/retentions/{id}/executions?page_size=1"),
        EXECUTIONS,
        None,
    )
    .await;
    assert_eq!(r.header("x-total-count"), "2");
    assert!(next_link(&r).is_some());
    // An unknown execution of the policy is not found.
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PATCH,
        &format!("/retentions/{id}/executions/999999"),
        EXECUTION,
        Some(json!({"action": "stop"})),
    )
    .await;
    expect_status(&r, 404, "unknown execution");
}

/// The job of execution `eid`.
/// A policy of `project` keeping everything, and an execution of it started (`dry_run`
/// or not) with no runner: the policy's id, the execution's, and its job's.
async fn started(reg: &TestRegistry, project: i64, dry_run: bool) -> (i64, i64, JobId) {
    let rules = vec![rule("latestPushedK", 10, "**", "**")];
    let id = create(reg, ADMIN, policy(project, rules, "")).await;
    let eid = trigger(reg, id, dry_run).await;
    let execution = reg.meta.retention_execution(eid).await.unwrap().unwrap();
    (id, eid, execution.job_id.expect("a job runs the execution"))
}

#[tokio::test]
async fn an_execution_ending_while_it_is_listed_shows_its_own_end() {
    let (reg, clock, project) = registry().await;
    let (id, eid, job) = started(&reg, project, true).await;
    // The listing reads the execution still running. Then its runner ends it (in
    // error, at one time) and its job (done, later), as a runner does, before the
    // listing reads the job.
    let LinkHold { reached, release } = reg.faults.hold_next_execution_listing();
    let end_it = async {
        reached.await.expect("the listing reads the executions");
        let now = clock.now_ms();
        let kinds = [TagRetention::KIND.to_owned()];
        let claimed = reg.jobs.claim(&kinds, now, 60_000).await.unwrap();
        let lease = claimed.expect("the execution's job is due").lease;
        let ended = reg
            .meta
            .end_retention_execution(eid, ExecutionStatus::Error, now + 5_000);
        assert!(ended.await.unwrap());
        let finished = reg.jobs.finish(&lease, &JobOutcome::Succeeded, now + 9_000);
        finished.await.unwrap();
        assert_eq!(
            reg.jobs.job(job).await.unwrap().unwrap().state,
            JobState::Succeeded
        );
        release.send(()).expect("the listing waits");
    };
    let (listed, ()) = tokio::join!(executions(&reg, id), end_it);
    let again = executions(&reg, id).await;
    assert!(again[0]["end_time"].is_string(), "{again}");
    assert_eq!(
        (&listed[0]["status"], &listed[0]["end_time"]),
        (&json!("Error"), &again[0]["end_time"]),
        "{listed}"
    );
}

/// A JSON RFC 3339 time as milliseconds since the epoch.
fn unix_ms(at: &Value) -> i64 {
    let text = at.as_str().unwrap_or_else(|| panic!("not a time: {at}"));
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339);
    (parsed.expect("an RFC 3339 time").unix_timestamp_nanos() / 1_000_000) as i64
}

/// The `status` and `end_time` of the newest execution of `id`.
async fn newest_end(reg: &TestRegistry, id: i64) -> (Value, Value) {
    let listed = executions(reg, id).await;
    (listed[0]["status"].clone(), listed[0]["end_time"].clone())
}

#[tokio::test]
async fn an_execution_whose_job_ended_without_it_keeps_the_jobs_end() {
    let (reg, clock, project) = registry().await;
    let (id, eid, job) = started(&reg, project, false).await;
    // The job stops before it runs, as on another node, and nothing ends the execution.
    let now = clock.now_ms();
    let stop = reg.jobs.request_stop(job, now + 1_000);
    assert_eq!(stop.await.unwrap(), StopRequest::Stopped);
    let (status, end) = newest_end(&reg, id).await;
    assert_eq!(
        (status.as_str(), unix_ms(&end)),
        (Some("Stopped"), now + 1_000)
    );
    // The end stays once the job is forgotten, and a runner ending it late changes
    // nothing.
    assert_eq!(reg.jobs.purge_finished_jobs(now + 2_000).await.unwrap(), 1);
    assert_eq!(newest_end(&reg, id).await, (status.clone(), end.clone()));
    let late = reg
        .meta
        .end_retention_execution(eid, ExecutionStatus::Success, now + 3_000);
    assert!(!late.await.unwrap());
    assert_eq!(newest_end(&reg, id).await, (status, end));
}

#[tokio::test]
async fn an_execution_whose_runner_is_lost_for_good_ends_in_error_with_its_tasks() {
    let (reg, clock, project) = registry().await;
    fill(&reg, &clock).await;
    let (id, eid, job) = started(&reg, project, false).await;
    // A runner plans the task and starts it, then is lost; so is each runner taking
    // the job over, until the job has no attempt left.
    let kinds = [TagRetention::KIND.to_owned()];
    let mut now = clock.now_ms();
    assert!(reg.jobs.claim(&kinds, now, 1_000).await.unwrap().is_some());
    let repositories = ["team/app".to_owned()];
    let planned = reg.meta.add_retention_tasks(eid, &repositories);
    let task = planned.await.unwrap()[0].id;
    assert!(reg.meta.start_retention_task(task, now).await.unwrap());
    while reg.jobs.job(job).await.unwrap().unwrap().state != JobState::Failed {
        now += 2_000;
        reg.jobs.claim(&kinds, now, 1_000).await.unwrap();
        assert!(now < clock.now_ms() + 60_000, "the job never failed");
    }
    // The tasks, listed first, show the end the execution shows.
    let listed = tasks(&reg, id, eid).await;
    let (status, end) = newest_end(&reg, id).await;
    assert_eq!((status.as_str(), unix_ms(&end)), (Some("Error"), now));
    assert_eq!(
        (
            &listed[0]["status"],
            &listed[0]["status_code"],
            &listed[0]["end_time"]
        ),
        (&json!("Error"), &json!(3), &end)
    );
}

#[tokio::test]
async fn the_projects_tag_retention_permissions_decide_who_may_do_what() {
    let (reg, _clock, project) = registry().await;
    let body = policy(project, vec![rule("always", 0, "**", "**")], "");
    for (name, role) in [("dev", 2), ("guest", 3), ("maint", 4), ("limited", 5)] {
        create_user(&reg, name).await;
        let r = call(
            &reg,
            Some(ADMIN),
            Method::POST,
            "/projects/team/members",
            "/projects/{project_name_or_id}/members",
            Some(json!({"role_id": role, "member_user": {"username": name}})),
        )
        .await;
        expect_status(&r, 201, name);
    }
    create_user(&reg, "stranger").await;
    let as_user = |name: &'static str| (name, PASSWORD);

    // Guests, limited guests and strangers may not create one.
    for (who, status) in [("guest", 403), ("limited", 403), ("stranger", 404)] {
        let r = call(
            &reg,
            Some(as_user(who)),
            Method::POST,
            "/retentions",
            POLICIES,
            Some(body.clone()),
        )
        .await;
        expect_status(&r, status, who);
    }
    reg.log_in(None);
    let r = call(
        &reg,
        None,
        Method::POST,
        "/retentions",
        POLICIES,
        Some(body.clone()),
    )
    .await;
    expect_status(&r, 401, "anonymous");
    // A developer may (Harbor's developer holds every tag-retention permission).
    let id = create(&reg, as_user("dev"), body.clone()).await;
    let policy_uri = format!("/retentions/{id}");
    let executions_uri = format!("/retentions/{id}/executions");
    for who in ["dev", "maint"] {
        let r = call(
            &reg,
            Some(as_user(who)),
            Method::GET,
            &policy_uri,
            POLICY,
            None,
        )
        .await;
        expect_status(&r, 200, who);
        let r = call(
            &reg,
            Some(as_user(who)),
            Method::GET,
            &executions_uri,
            EXECUTIONS,
            None,
        )
        .await;
        expect_status(&r, 200, who);
        let r = call(
            &reg,
            Some(as_user(who)),
            Method::PUT,
            &policy_uri,
            POLICY,
            Some(body.clone()),
        )
        .await;
        expect_status(&r, 200, who);
    }
    for (who, status) in [("guest", 403), ("limited", 403), ("stranger", 404)] {
        for (method, uri, template, request) in [
            (Method::GET, &policy_uri, POLICY, None),
            (Method::PUT, &policy_uri, POLICY, Some(body.clone())),
            (Method::DELETE, &policy_uri, POLICY, None),
            (Method::GET, &executions_uri, EXECUTIONS, None),
            (
                Method::POST,
                &executions_uri,
                EXECUTIONS,
                Some(json!({"dry_run": true})),
            ),
        ] {
            let r = call(
                &reg,
                Some(as_user(who)),
                method.clone(),
                uri,
                template,
                request,
            )
            .await;
            expect_status(&r, status, &format!("{who} {method} {uri}"));
        }
    }
    let r = call(&reg, None, Method::GET, &policy_uri, POLICY, None).await;
    expect_status(&r, 401, "anonymous read");
    reg.log_in(Some(ADMIN));
    let uri = format!("/retentions/{id}/executions");
    let r = call(
        &reg,
        Some(as_user("dev")),
        Method::POST,
        &uri,
        EXECUTIONS,
        Some(json!({"dry_run": true})),
    )
    .await;
    expect_status(&r, 201, "developer triggers");
    let r = call(
        &reg,
        Some(as_user("maint")),
        Method::DELETE,
        &policy_uri,
        POLICY,
        None,
    )
    .await;
    expect_status(&r, 200, "maintainer deletes");
}
