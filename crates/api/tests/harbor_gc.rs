//! Harbor's `/system/gc`: a run asked for now goes through the job queue and deletes
//! what nothing references, with its history, status and log; the schedule is set,
//! read, replaced and removed; a run can be stopped; only administrators may do any
//! of it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth_app::RegistryConfig;
use berth_app::jobs::GarbageCollection;
use berth_testkit::ManualClock;
use common::harbor::*;
use common::jobs::*;
use common::*;
use tokio::sync::watch;

const HOUR: Duration = Duration::from_secs(3600);

/// Runs the registry's collection jobs until the sender is dropped.
fn runner(reg: &TestRegistry, clock: Arc<ManualClock>) -> watch::Sender<bool> {
    job_runner(reg, clock, |runner| {
        runner.handle(
            GarbageCollection::KIND,
            Arc::new(GarbageCollection {
                registry: reg.registry.clone(),
                grace: HOUR,
            }),
        );
    })
}

async fn run_status(reg: &TestRegistry, id: &str) -> Value {
    let r = call(
        reg,
        Some(ADMIN),
        Method::GET,
        &format!("/system/gc/{id}"),
        "/system/gc/{gc_id}",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.json()
}

/// Waits (up to 10 s) until run `id` has ended; returns it.
async fn ended(reg: &TestRegistry, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let run = run_status(reg, id).await;
        if !matches!(run["job_status"].as_str(), Some("Pending" | "Running")) {
            return run;
        }
        assert!(tokio::time::Instant::now() < deadline, "run {id}: {run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn gc_log(reg: &TestRegistry, id: &str) -> String {
    let r = reg
        .send(
            Method::GET,
            &format!("/api/v2.0/system/gc/{id}/log"),
            &[("authorization", basic(ADMIN).as_str())],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").starts_with("text/plain"));
    String::from_utf8(r.body.to_vec()).unwrap()
}

async fn start(reg: &TestRegistry, parameters: Value) -> TestResponse {
    call(
        reg,
        Some(ADMIN),
        Method::POST,
        "/system/gc/schedule",
        "/system/gc/schedule",
        Some(json!({"schedule": {"type": "Manual"}, "parameters": parameters})),
    )
    .await
}

#[tokio::test]
async fn a_run_asked_for_now_collects_and_reports() {
    let clock = ManualClock::new();
    let reg = TestRegistry::secure_with(RegistryConfig::default(), clock.clone(), None).await;
    reg.log_in(Some(ADMIN));
    let (old, _) = reg
        .push_image("library/app", "latest", &[b"old layer"])
        .await;
    reg.push_image("library/app", "latest", &[b"new layer"])
        .await;
    let stray = reg.push_blob("library/app", b"stray bytes").await;
    clock.advance(2 * HOUR);
    let _runner = runner(&reg, clock.clone());

    // A dry run deletes nothing and logs what would go.
    let r = start(&reg, json!({"delete_untagged": true, "dry_run": true})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let dry_id = r.header("location").rsplit('/').next().unwrap().to_owned();
    assert_eq!(ended(&reg, &dry_id).await["job_status"], "Success");
    let dry_log = gc_log(&reg, &dry_id).await;
    assert!(
        dry_log.contains(&format!("would delete blob {stray}")),
        "{dry_log}"
    );
    assert!(dry_log.contains(old.as_str()), "{dry_log}");
    let manifest = format!("/v2/library/app/manifests/{old}");
    assert_eq!(reg.get(&manifest).await.status, StatusCode::OK);

    let r = start(&reg, json!({"delete_untagged": true, "workers": 2})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let location = r.header("location").to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    assert_eq!(location, format!("/api/v2.0/system/gc/{id}"));
    let run = ended(&reg, &id).await;
    assert_eq!(run["job_status"], "Success", "{run}");
    assert_eq!(run["job_name"], "GARBAGE_COLLECTION");
    assert_eq!(run["job_kind"], "MANUAL");
    assert_eq!(run["schedule"]["type"], "Manual");
    let parameters: Value = serde_json::from_str(run["job_parameters"].as_str().unwrap()).unwrap();
    assert_eq!(
        parameters,
        json!({"delete_untagged": true, "dry_run": false, "workers": 2})
    );
    let log = gc_log(&reg, &id).await;
    assert!(log.contains(&format!("deleted blob {stray}")), "{log}");
    assert!(
        log.contains(&format!("deleted untagged manifest library/app@{old}")),
        "{log}"
    );
    assert!(log.contains("done: 1 untagged manifests"), "{log}");
    assert_eq!(reg.get(&manifest).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reg.get(&format!("/v2/library/app/blobs/{stray}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        reg.get("/v2/library/app/manifests/latest").await.status,
        StatusCode::OK
    );

    // The history: newest first, paged.
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/system/gc?page=1&page_size=1",
        "/system/gc",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-total-count"), "2");
    assert_eq!(r.json()[0]["id"].to_string(), id);
    assert!(next_link(&r).is_some());
}

#[tokio::test]
async fn the_schedule_is_set_replaced_and_removed() {
    let reg = TestRegistry::secure().await;
    let schedule = |body: Value, method: Method| {
        let reg = &reg;
        async move {
            call(
                reg,
                Some(ADMIN),
                method,
                "/system/gc/schedule",
                "/system/gc/schedule",
                Some(body),
            )
            .await
        }
    };
    let read = || async {
        call(
            &reg,
            Some(ADMIN),
            Method::GET,
            "/system/gc/schedule",
            "/system/gc/schedule",
            None,
        )
        .await
    };
    assert!(read().await.body.is_empty(), "no schedule yet");

    let daily = json!({"schedule": {"type": "Daily"}, "parameters": {"delete_untagged": true}});
    assert_eq!(
        schedule(daily, Method::POST).await.status,
        StatusCode::CREATED
    );
    let got = read().await.json();
    assert_eq!(got["schedule"]["type"], "Daily");
    assert_eq!(got["schedule"]["cron"], "0 0 0 * * *");
    assert!(got["schedule"]["next_scheduled_time"].is_string());
    let parameters: Value = serde_json::from_str(got["job_parameters"].as_str().unwrap()).unwrap();
    assert_eq!(parameters["delete_untagged"], true);

    for bad in [
        json!({"schedule": {"type": "Custom"}}),
        json!({"schedule": {"type": "Custom", "cron": "not a cron"}}),
        json!({"schedule": {"type": "Custom", "cron": "0 0 * * *"}}),
        json!({"schedule": {"type": "Sometimes"}}),
        json!({"schedule": {"type": "Daily"}, "parameters": {"workers": 9}}),
    ] {
        let r = schedule(bad.clone(), Method::PUT).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
    }
    let custom = json!({"schedule": {"type": "Custom", "cron": "0 */5 * * * *"}});
    assert_eq!(schedule(custom, Method::PUT).await.status, StatusCode::OK);
    let got = read().await.json();
    assert_eq!(got["schedule"]["type"], "Custom");
    assert_eq!(got["schedule"]["cron"], "0 */5 * * * *");

    let none = json!({"schedule": {"type": "None"}});
    assert_eq!(schedule(none, Method::PUT).await.status, StatusCode::OK);
    assert!(read().await.body.is_empty(), "the schedule is gone");
}

#[tokio::test]
async fn a_queued_run_is_stopped_and_a_second_waits_for_the_first() {
    let reg = TestRegistry::secure().await;
    let r = start(&reg, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.header("location").rsplit('/').next().unwrap().to_owned();
    assert_eq!(run_status(&reg, &id).await["job_status"], "Pending");
    let again = start(&reg, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);

    let stop = call(
        &reg,
        Some(ADMIN),
        Method::PUT,
        &format!("/system/gc/{id}"),
        "/system/gc/{gc_id}",
        None,
    )
    .await;
    assert_eq!(stop.status, StatusCode::OK);
    assert_eq!(run_status(&reg, &id).await["job_status"], "Stopped");
    assert_eq!(start(&reg, json!({})).await.status, StatusCode::CREATED);

    for unknown in ["/system/gc/999999", "/system/gc/999999/log"] {
        let r = reg
            .send(
                Method::GET,
                &format!("/api/v2.0{unknown}"),
                &[("authorization", basic(ADMIN).as_str())],
                "",
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{unknown}");
    }
}

#[tokio::test]
async fn only_administrators_see_or_start_collections() {
    let reg = TestRegistry::secure().await;
    let id = create_user(&reg, "alice").await;
    let alice = ("alice", PASSWORD);
    let r = call(
        &reg,
        Some(ADMIN),
        Method::PUT,
        &format!("/users/{id}/sysadmin"),
        "/users/{user_id}/sysadmin",
        Some(json!({"sysadmin_flag": false})),
    )
    .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    for (method, uri, template, body) in [
        (Method::GET, "/system/gc", "/system/gc", None),
        (
            Method::GET,
            "/system/gc/schedule",
            "/system/gc/schedule",
            None,
        ),
        (
            Method::POST,
            "/system/gc/schedule",
            "/system/gc/schedule",
            Some(json!({"schedule": {"type": "Manual"}})),
        ),
    ] {
        let anonymous = call(&reg, None, method.clone(), uri, template, body.clone()).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{uri}");
        let user = call(&reg, Some(alice), method, uri, template, body).await;
        assert_eq!(user.status, StatusCode::FORBIDDEN, "{uri}");
    }
}

/// A run whose database fails midway is run again from its last checkpoint.
#[tokio::test]
async fn a_failed_run_resumes_from_its_checkpoint() {
    let clock = ManualClock::new();
    let reg = TestRegistry::secure_with(RegistryConfig::default(), clock.clone(), None).await;
    reg.log_in(Some(ADMIN));
    let mut strays = Vec::new();
    for n in 0..3 {
        strays.push(
            reg.push_blob("library/app", format!("stray {n}").as_bytes())
                .await,
        );
    }
    clock.advance(2 * HOUR);
    let _runner = runner(&reg, clock.clone());
    // Marking fails: the run fails once it has unlinked everything.
    reg.faults.cut_marks(1);
    let r = start(&reg, json!({})).await;
    let id = r.header("location").rsplit('/').next().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let job = reg.jobs.job(id.parse().unwrap()).await.unwrap().unwrap();
        if job.attempts == 1 && job.state == berth_meta::JobState::Queued {
            let progress = job.progress.expect("a checkpoint");
            assert!(progress.contains(r#""phase":"mark""#), "{progress}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The retry, once its back-off is over, goes on from the marking.
    clock.advance(Duration::from_secs(61));
    assert_eq!(ended(&reg, &id).await["job_status"], "Success");
    let log = gc_log(&reg, &id).await;
    assert!(log.contains("resumed at the Mark phase"), "{log}");
    assert!(log.contains("3 blob links, 3 blobs"), "{log}");
    for stray in &strays {
        let blob = format!("/v2/library/app/blobs/{stray}");
        assert_eq!(reg.get(&blob).await.status, StatusCode::NOT_FOUND);
    }
}

/// Two administrators (or one client retrying) ask for a run at the same moment: one
/// run is queued, and the others are answered 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_manual_runs_asked_at_once_start_one() {
    let clock = ManualClock::new();
    let reg = TestRegistry::secure_with(RegistryConfig::default(), clock.clone(), None).await;
    reg.log_in(Some(ADMIN));
    let starts = (0..8).map(|_| start(&reg, json!({})));
    let answers = futures_util::future::join_all(starts).await;
    let created = answers
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert!(
        answers
            .iter()
            .all(|r| matches!(r.status, StatusCode::CREATED | StatusCode::CONFLICT)),
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(created, 1, "runs queued by simultaneous starts");
}

/// Harbor runs one collection at a time (its GC job's concurrency is 1): the schedule
/// fires no run beside one that has not ended, as a manual start starts none.
#[tokio::test]
async fn the_schedule_fires_no_run_beside_one_that_has_not_ended() {
    let clock = ManualClock::new();
    let reg = TestRegistry::secure_with(RegistryConfig::default(), clock.clone(), None).await;
    reg.log_in(Some(ADMIN));
    let r = call(
        &reg,
        Some(ADMIN),
        Method::POST,
        "/system/gc/schedule",
        "/system/gc/schedule",
        Some(json!({"schedule": {"type": "Custom", "cron": "* * * * * *"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = start(&reg, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    clock.advance(Duration::from_secs(2));
    let now = berth_app::Clock::now_ms(&*clock);
    for schedule in reg.jobs.schedules().await.unwrap() {
        let next = schedule.period.next_after(schedule.next_fire, now);
        reg.jobs
            .fire_schedule(&schedule.name, schedule.next_fire, next, now)
            .await
            .unwrap();
    }
    let r = call(
        &reg,
        Some(ADMIN),
        Method::GET,
        "/system/gc",
        "/system/gc",
        None,
    )
    .await;
    let runs: Vec<Value> = r.json().as_array().cloned().unwrap_or_default();
    let unfinished = (runs.iter())
        .filter(|run| matches!(run["job_status"].as_str(), Some("Pending" | "Running")))
        .count();
    assert_eq!(unfinished, 1, "{runs:?}");
}
