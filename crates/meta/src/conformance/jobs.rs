//! The behaviour every job-queue adapter must show; each adapter's tests call [`run`].
//!
//! Each check uses job kinds of its own, so checks do not see each other's jobs. Times
//! are given explicitly, so nothing waits on a clock.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::Barrier;

use crate::{
    Checkpoint, ClaimedJob, Enqueued, JobError, JobId, JobLogLine, JobOutcome, JobSpec, JobState,
    JobStore, NewJob, Period, RetryPolicy, Schedule, StopRequest,
};

/// A time far from zero, as real ones are.
const T0: i64 = 1_700_000_000_000;
/// The lease most checks claim with.
const LEASE: i64 = 1_000;

/// Runs every check against `nodes`: one or more handles on the same fresh database
/// (each as a node of a cluster would open it). Concurrent claimers and tickers are
/// spread over the nodes.
pub async fn run(nodes: Vec<Arc<dyn JobStore>>) {
    assert!(!nodes.is_empty(), "at least one node");
    claims_follow_kind_and_due_time(&nodes).await;
    each_job_goes_to_one_claimer(&nodes).await;
    expired_leases_are_taken_over(&nodes).await;
    a_lost_last_attempt_fails_the_job(&nodes).await;
    failures_are_retried_with_backoff(&nodes).await;
    a_released_job_runs_again_as_the_same_attempt(&nodes).await;
    dedup_keys_enqueue_once(&nodes).await;
    schedules_fire_once_per_period(&nodes).await;
    schedules_keep_their_next_fire_unless_the_period_changes(&nodes).await;
    stop_requests_end_queued_jobs_and_flag_running_ones(&nodes).await;
    a_flagged_job_is_not_run_again(&nodes).await;
    checkpoints_carry_progress_to_the_next_run(&nodes).await;
    job_logs_are_numbered_in_order_and_paged(&nodes).await;
    finished_jobs_are_purged(&nodes).await;
}

fn node(nodes: &[Arc<dyn JobStore>], i: usize) -> &Arc<dyn JobStore> {
    &nodes[i % nodes.len()]
}

fn spec(kind: &str, payload: &str, retry: RetryPolicy) -> JobSpec {
    JobSpec {
        kind: kind.into(),
        payload: payload.into(),
        retry,
    }
}

fn new_job(kind: &str, payload: &str, run_after: i64) -> NewJob {
    NewJob {
        spec: spec(kind, payload, RetryPolicy::default()),
        run_after,
        dedup_key: None,
    }
}

fn kinds(names: &[&str]) -> Vec<String> {
    names.iter().map(|&k| k.to_owned()).collect()
}

async fn enqueue(store: &dyn JobStore, job: &NewJob) -> JobId {
    match store.enqueue(job, job.run_after).await.unwrap() {
        Enqueued::New(id) => id,
        other => panic!("expected a new job, got {other:?}"),
    }
}

async fn claim(store: &dyn JobStore, kind: &str, now: i64) -> Option<ClaimedJob> {
    store.claim(&kinds(&[kind]), now, LEASE).await.unwrap()
}

fn assert_lost<T: std::fmt::Debug>(result: Result<T, JobError>, job: JobId, what: &str) {
    match result {
        Err(JobError::LeaseLost(id)) => assert_eq!(id, job, "{what}"),
        other => panic!("{what}: expected the lease to be lost, got {other:?}"),
    }
}

/// A claim takes a due job of the kinds asked for, oldest run time first, and no job
/// whose lease is held.
async fn claims_follow_kind_and_due_time(nodes: &[Arc<dyn JobStore>]) {
    let (a, b) = (&**node(nodes, 0), &**node(nodes, 1));
    let later = enqueue(a, &new_job("k.a", r#"{"n":1}"#, T0 + 100)).await;
    let first = enqueue(a, &new_job("k.a", r#"{"n":2}"#, T0)).await;
    let other = enqueue(b, &new_job("k.b", "{}", T0)).await;

    assert_eq!(claim(a, "k.a", T0 - 1).await, None, "nothing is due yet");
    let claimed = claim(a, "k.a", T0).await.expect("a due job");
    assert_eq!(claimed.lease.job, first);
    assert_eq!(
        (claimed.kind.as_str(), claimed.payload.as_str()),
        ("k.a", r#"{"n":2}"#)
    );
    assert_eq!((claimed.attempt, claimed.max_attempts), (1, 3));
    assert_eq!(claimed.lease_expires_at, T0 + LEASE);
    assert_eq!(claim(b, "k.a", T0).await, None, "a held lease is not taken");
    let second = claim(b, "k.a", T0 + 100).await.expect("the later job");
    assert_eq!(second.lease.job, later);
    assert_ne!(second.lease.token, claimed.lease.token);

    let seen = b.job(first).await.unwrap().expect("the job");
    assert_eq!(seen.state, JobState::Running);
    assert_eq!((seen.attempts, seen.due_at), (1, T0 + LEASE));
    assert_eq!(seen.spec, spec("k.a", r#"{"n":2}"#, RetryPolicy::default()));
    assert_eq!((seen.created_at, seen.finished_at), (T0, None));

    a.finish(&claimed.lease, &JobOutcome::Succeeded, T0 + 10)
        .await
        .unwrap();
    let done = b.job(first).await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.finished_at),
        (JobState::Succeeded, Some(T0 + 10))
    );
    assert_lost(
        a.finish(&claimed.lease, &JobOutcome::Succeeded, T0 + 11)
            .await,
        first,
        "finishing twice",
    );
    assert_lost(
        a.heartbeat(&claimed.lease, T0 + 11, LEASE).await,
        first,
        "a heartbeat after finishing",
    );

    assert_eq!(a.claim(&[], T0 + 100, LEASE).await.unwrap(), None);
    let third = a
        .claim(&kinds(&["k.x", "k.b"]), T0 + 100, LEASE)
        .await
        .unwrap()
        .expect("a job of one of the kinds");
    assert_eq!(third.lease.job, other);
    for lease in [&second.lease, &third.lease] {
        b.finish(lease, &JobOutcome::Succeeded, T0 + 200)
            .await
            .unwrap();
    }

    let ids = |jobs: Vec<crate::JobRecord>| jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        ids(a.jobs_of_kind("k.a", None, 10).await.unwrap()),
        [first, later],
        "newest first"
    );
    assert_eq!(ids(a.jobs_of_kind("k.a", None, 1).await.unwrap()), [first]);
    assert_eq!(
        ids(a.jobs_of_kind("k.a", Some(first), 10).await.unwrap()),
        [later]
    );
    assert_eq!(a.job(JobId::MAX).await.unwrap(), None);
}

/// Claimers racing each other, on every node, never get the same job.
async fn each_job_goes_to_one_claimer(nodes: &[Arc<dyn JobStore>]) {
    let mut queued = BTreeSet::new();
    for i in 0..24 {
        queued.insert(enqueue(&**node(nodes, i), &new_job("k.race", "{}", T0)).await);
    }
    let claimers: Vec<_> = (0..8)
        .map(|i| {
            let store = node(nodes, i).clone();
            tokio::spawn(async move {
                let mut claimed = Vec::new();
                while let Some(job) = claim(&*store, "k.race", T0).await {
                    claimed.push(job.lease.job);
                }
                claimed
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    let distinct: BTreeSet<JobId> = claimed.iter().copied().collect();
    assert_eq!(distinct.len(), claimed.len(), "a job was claimed twice");
    assert_eq!(distinct, queued, "every job was claimed");
}

/// A job whose lease expired is claimed again, as a new attempt; its old holder is
/// refused from then on, and heartbeats keep a lease from expiring.
async fn expired_leases_are_taken_over(nodes: &[Arc<dyn JobStore>]) {
    let (a, b) = (&**node(nodes, 0), &**node(nodes, 1));
    let id = enqueue(a, &new_job("k.lost", "{}", T0)).await;
    let first = claim(a, "k.lost", T0).await.unwrap();
    assert_eq!(
        a.heartbeat(&first.lease, T0 + 800, LEASE).await.unwrap(),
        T0 + 1800
    );
    assert_eq!(
        claim(b, "k.lost", T0 + 1500).await,
        None,
        "the lease was extended"
    );

    let second = claim(b, "k.lost", T0 + 1800)
        .await
        .expect("the expired job");
    assert_eq!((second.lease.job, second.attempt), (id, 2));
    assert_ne!(second.lease.token, first.lease.token);
    assert_lost(
        a.heartbeat(&first.lease, T0 + 1801, LEASE).await,
        id,
        "the old holder's heartbeat",
    );
    assert_lost(
        a.finish(&first.lease, &JobOutcome::Succeeded, T0 + 1801)
            .await,
        id,
        "the old holder's finish",
    );
    assert_lost(
        a.release(&first.lease, T0 + 1801).await,
        id,
        "the old holder's release",
    );
    let record = a.job(id).await.unwrap().unwrap();
    assert_eq!((record.state, record.attempts), (JobState::Running, 2));
    b.finish(&second.lease, &JobOutcome::Succeeded, T0 + 1900)
        .await
        .unwrap();
}

/// A job whose runner was lost on its last attempt fails for good.
async fn a_lost_last_attempt_fails_the_job(nodes: &[Arc<dyn JobStore>]) {
    let store = &**node(nodes, 0);
    let mut job = new_job("k.fatal", "{}", T0);
    job.spec.retry.max_attempts = 1;
    let id = enqueue(store, &job).await;
    let claimed = claim(store, "k.fatal", T0).await.unwrap();
    assert_eq!(claim(store, "k.fatal", T0 + LEASE).await, None);
    let record = node(nodes, 1).job(id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Failed);
    assert_eq!(record.finished_at, Some(T0 + LEASE));
    assert!(record.last_error.is_some(), "the failure is explained");
    assert_lost(
        store.heartbeat(&claimed.lease, T0 + LEASE, LEASE).await,
        id,
        "the lost runner's heartbeat",
    );
}

/// A failed run is tried again after a backoff that doubles, up to the last attempt.
async fn failures_are_retried_with_backoff(nodes: &[Arc<dyn JobStore>]) {
    let store = &**node(nodes, 0);
    let mut job = new_job("k.flaky", "{}", T0);
    job.spec.retry = RetryPolicy {
        max_attempts: 3,
        backoff_ms: 1000,
    };
    let id = enqueue(store, &job).await;
    let fail = |n: u32| JobOutcome::Failed {
        error: format!("boom {n}"),
    };

    let run = claim(store, "k.flaky", T0).await.unwrap();
    store.finish(&run.lease, &fail(1), T0 + 10).await.unwrap();
    let record = node(nodes, 1).job(id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Queued);
    assert_eq!((record.due_at, record.attempts), (T0 + 1010, 1));
    assert_eq!(record.last_error.as_deref(), Some("boom 1"));
    assert_eq!(
        claim(store, "k.flaky", T0 + 1009).await,
        None,
        "backing off"
    );

    let run = claim(store, "k.flaky", T0 + 1010).await.unwrap();
    assert_eq!(run.attempt, 2);
    store.finish(&run.lease, &fail(2), T0 + 1020).await.unwrap();
    assert_eq!(
        claim(store, "k.flaky", T0 + 3019).await,
        None,
        "twice as long"
    );

    let run = claim(store, "k.flaky", T0 + 3020).await.unwrap();
    assert_eq!(run.attempt, 3);
    store.finish(&run.lease, &fail(3), T0 + 3030).await.unwrap();
    let record = store.job(id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Failed);
    assert_eq!(record.finished_at, Some(T0 + 3030));
    assert_eq!(record.last_error.as_deref(), Some("boom 3"));
    assert_eq!(claim(store, "k.flaky", T0 + 1_000_000).await, None);
}

/// A job given back by a runner that stops is due again at once, as the same attempt.
async fn a_released_job_runs_again_as_the_same_attempt(nodes: &[Arc<dyn JobStore>]) {
    let store = &**node(nodes, 0);
    let id = enqueue(store, &new_job("k.released", "{}", T0)).await;
    let run = claim(store, "k.released", T0).await.unwrap();
    store.release(&run.lease, T0 + 5).await.unwrap();
    let record = store.job(id).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.attempts, record.due_at),
        (JobState::Queued, 0, T0 + 5)
    );
    assert_lost(
        store.heartbeat(&run.lease, T0 + 5, LEASE).await,
        id,
        "a heartbeat after releasing",
    );
    let again = claim(&**node(nodes, 1), "k.released", T0 + 5)
        .await
        .unwrap();
    assert_eq!((again.lease.job, again.attempt), (id, 1));
    assert_ne!(again.lease.token, run.lease.token);
    store
        .finish(&again.lease, &JobOutcome::Succeeded, T0 + 6)
        .await
        .unwrap();
}

/// A dedup key enqueues one job, even when many nodes enqueue it at once and after the
/// job finished.
async fn dedup_keys_enqueue_once(nodes: &[Arc<dyn JobStore>]) {
    let keyed = |key: &str, payload: &str| NewJob {
        dedup_key: Some(key.into()),
        ..new_job("k.dedup", payload, T0)
    };
    let store = &**node(nodes, 0);
    let first = enqueue(store, &keyed("once", "{}")).await;
    assert_eq!(
        store
            .enqueue(&keyed("once", r#"{"x":1}"#), T0)
            .await
            .unwrap(),
        Enqueued::Duplicate(first)
    );
    let run = claim(store, "k.dedup", T0).await.unwrap();
    store
        .finish(&run.lease, &JobOutcome::Succeeded, T0)
        .await
        .unwrap();
    assert_eq!(
        store.enqueue(&keyed("once", "{}"), T0 + 1).await.unwrap(),
        Enqueued::Duplicate(first),
        "a finished job still holds its key"
    );
    assert_eq!(
        store
            .job(first)
            .await
            .unwrap()
            .unwrap()
            .dedup_key
            .as_deref(),
        Some("once")
    );

    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = node(nodes, i).clone();
            let job = keyed("raced", "{}");
            tokio::spawn(async move { store.enqueue(&job, T0).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for racer in racers {
        outcomes.push(racer.await.unwrap());
    }
    let new: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, Enqueued::New(_)))
        .collect();
    assert_eq!(new.len(), 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o.id() == new[0].id()),
        "{outcomes:?}"
    );
    assert_eq!(
        store.jobs_of_kind("k.dedup", None, 10).await.unwrap().len(),
        2
    );
}

fn tick_schedule() -> Schedule {
    Schedule {
        name: "tick".into(),
        spec: spec(
            "k.tick",
            r#"{"every":"second"}"#,
            RetryPolicy {
                max_attempts: 2,
                backoff_ms: 10,
            },
        ),
        period: Period::EveryMs(1000),
        next_fire: T0,
    }
}

/// Tickers on every node that all see a schedule due fire it once per period, and its
/// job carries the schedule's spec and the fire time's dedup key; a period whose time
/// comes while the last run has not ended fires none.
async fn schedules_fire_once_per_period(nodes: &[Arc<dyn JobStore>]) {
    let schedule = tick_schedule();
    node(nodes, 0).put_schedule(&schedule).await.unwrap();
    const TICKERS: usize = 8;
    let mut fired = Vec::new();
    for period in 0..3 {
        let now = T0 + period * 1000 + 5;
        let all_seen = Arc::new(Barrier::new(TICKERS));
        let tickers: Vec<_> = (0..TICKERS)
            .map(|i| {
                let (store, all_seen) = (node(nodes, i).clone(), all_seen.clone());
                tokio::spawn(async move {
                    let schedules = store.schedules().await.unwrap();
                    let seen = schedules.iter().find(|s| s.name == "tick").unwrap().clone();
                    // Every ticker has read the same fire time before any fires it.
                    all_seen.wait().await;
                    assert!(seen.next_fire <= now, "due");
                    let next = seen.period.next_after(seen.next_fire, now);
                    store
                        .fire_schedule(&seen.name, seen.next_fire, next, now)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut jobs = Vec::new();
        for ticker in tickers {
            jobs.extend(ticker.await.unwrap());
        }
        assert_eq!(jobs.len(), 1, "period {period} fired {jobs:?}");
        fired.push(jobs[0]);
        // The run ends before the next period, which fires no run beside one that has
        // not ended.
        let store = &**node(nodes, 0);
        if period == 0 {
            let later = T0 + 1000;
            let unfinished = store.fire_schedule("tick", later, later + 1000, now).await;
            assert_eq!(unfinished.unwrap(), None, "a run beside an unfinished one");
            let mut moved_back = tick_schedule();
            moved_back.next_fire = later;
            store.delete_schedule("tick").await.unwrap();
            store.put_schedule(&moved_back).await.unwrap();
        }
        store.request_stop(jobs[0], now).await.unwrap();
    }
    let store = &**node(nodes, 1);
    assert_eq!(
        store
            .fire_schedule("tick", T0, T0 + 1000, T0)
            .await
            .unwrap(),
        None,
        "a stale fire time fires nothing"
    );
    let stored = store.schedules().await.unwrap();
    let stored = stored.iter().find(|s| s.name == "tick").unwrap();
    assert_eq!(stored.next_fire, T0 + 3000);
    for (period, id) in (0..).zip(&fired) {
        let job = store.job(*id).await.unwrap().unwrap();
        let fire_time = T0 + period * 1000;
        assert_eq!(job.spec, schedule.spec);
        assert_eq!(job.due_at, fire_time);
        assert_eq!(job.dedup_key, Some(Schedule::dedup_key("tick", fire_time)));
    }
    let mut fired_newest_first = fired.clone();
    fired_newest_first.reverse();
    let listed: Vec<JobId> = store
        .jobs_of_kind("k.tick", None, 10)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, fired_newest_first);
}

/// Putting a schedule again keeps its next fire time unless its period changed; a
/// deleted schedule fires no more.
async fn schedules_keep_their_next_fire_unless_the_period_changes(nodes: &[Arc<dyn JobStore>]) {
    let (a, b) = (&**node(nodes, 0), &**node(nodes, 1));
    let find = |all: Vec<Schedule>| all.into_iter().find(|s| s.name == "kept");
    let mut schedule = Schedule {
        name: "kept".into(),
        ..tick_schedule()
    };
    a.put_schedule(&schedule).await.unwrap();

    schedule.next_fire = T0 + 500;
    schedule.spec.payload = r#"{"changed":true}"#.into();
    b.put_schedule(&schedule).await.unwrap();
    let stored = find(a.schedules().await.unwrap()).unwrap();
    assert_eq!(stored.next_fire, T0, "the same period keeps the fire time");
    assert_eq!(stored.spec, schedule.spec, "the job is updated");

    schedule.period = Period::Cron("0 0 0 * * 0".parse().unwrap());
    schedule.next_fire = T0 + 600;
    a.put_schedule(&schedule).await.unwrap();
    assert_eq!(
        find(b.schedules().await.unwrap()),
        Some(schedule.clone()),
        "a cron period is stored and read back"
    );

    schedule.period = Period::EveryMs(2000);
    schedule.next_fire = T0 + 700;
    a.put_schedule(&schedule).await.unwrap();
    assert_eq!(find(b.schedules().await.unwrap()), Some(schedule.clone()));

    assert!(b.delete_schedule("kept").await.unwrap());
    assert!(!a.delete_schedule("kept").await.unwrap());
    assert_eq!(find(a.schedules().await.unwrap()), None);
    assert_eq!(
        a.fire_schedule("kept", T0 + 700, T0 + 2700, T0 + 700)
            .await
            .unwrap(),
        None
    );
}

/// A stop request stops a queued job at once and flags a running one, whose runner sees
/// it at its next checkpoint and ends the run as stopped; a run that fails or is given
/// back after the request ends the job stopped too. An ended job is left as it is.
async fn stop_requests_end_queued_jobs_and_flag_running_ones(nodes: &[Arc<dyn JobStore>]) {
    let (a, b) = (&**node(nodes, 0), &**node(nodes, 1));
    let queued = enqueue(a, &new_job("k.stop.queued", "{}", T0)).await;
    assert_eq!(
        b.request_stop(queued, T0 + 1).await.unwrap(),
        StopRequest::Stopped
    );
    let record = a.job(queued).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.finished_at, record.stop_requested),
        (JobState::Stopped, Some(T0 + 1), true)
    );
    assert_eq!(claim(a, "k.stop.queued", T0 + 10).await, None, "never run");
    assert_eq!(
        a.request_stop(queued, T0 + 2).await.unwrap(),
        StopRequest::AlreadyEnded
    );
    assert_eq!(
        a.job(queued).await.unwrap().unwrap().finished_at,
        Some(T0 + 1),
        "an ended job is left as it is"
    );

    let running = enqueue(a, &new_job("k.stop.running", "{}", T0)).await;
    let run = claim(a, "k.stop.running", T0).await.unwrap();
    assert_eq!(
        a.checkpoint(&run.lease, "1", T0 + 1).await.unwrap(),
        Checkpoint::Continue
    );
    for _ in 0..2 {
        assert_eq!(
            b.request_stop(running, T0 + 2).await.unwrap(),
            StopRequest::Requested
        );
    }
    let record = b.job(running).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.stop_requested, record.finished_at),
        (JobState::Running, true, None),
        "a running job is only flagged"
    );
    assert_eq!(
        a.checkpoint(&run.lease, "2", T0 + 3).await.unwrap(),
        Checkpoint::StopRequested
    );
    a.finish(&run.lease, &JobOutcome::Stopped, T0 + 4)
        .await
        .unwrap();
    let record = b.job(running).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.finished_at, record.last_error),
        (JobState::Stopped, Some(T0 + 4), None)
    );
    assert_eq!(record.progress.as_deref(), Some("2"));
    assert_eq!(
        b.request_stop(running, T0 + 5).await.unwrap(),
        StopRequest::AlreadyEnded
    );

    // A run that fails after the request is not retried, nor is one given back.
    let failing = enqueue(a, &new_job("k.stop.failing", "{}", T0)).await;
    let run = claim(a, "k.stop.failing", T0).await.unwrap();
    b.request_stop(failing, T0 + 1).await.unwrap();
    let boom = JobOutcome::Failed {
        error: "boom".into(),
    };
    a.finish(&run.lease, &boom, T0 + 2).await.unwrap();
    let record = b.job(failing).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.finished_at),
        (JobState::Stopped, Some(T0 + 2))
    );
    assert_eq!(
        record.last_error.as_deref(),
        Some("boom"),
        "its error is kept"
    );
    let released = enqueue(a, &new_job("k.stop.released", "{}", T0)).await;
    let run = claim(a, "k.stop.released", T0).await.unwrap();
    b.request_stop(released, T0 + 1).await.unwrap();
    a.release(&run.lease, T0 + 2).await.unwrap();
    let record = b.job(released).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.finished_at),
        (JobState::Stopped, Some(T0 + 2))
    );
    assert_eq!(claim(a, "k.stop.released", T0 + 10).await, None);

    let done = enqueue(a, &new_job("k.stop.done", "{}", T0)).await;
    let run = claim(a, "k.stop.done", T0).await.unwrap();
    a.finish(&run.lease, &JobOutcome::Succeeded, T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        b.request_stop(done, T0 + 2).await.unwrap(),
        StopRequest::AlreadyEnded
    );
    assert_eq!(
        b.job(done).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    assert_eq!(
        b.request_stop(JobId::MAX, T0).await.unwrap(),
        StopRequest::NotFound
    );
}

/// A running job asked to stop whose runner is lost is not taken over when its lease
/// expires: the claim that would take it ends it as stopped.
async fn a_flagged_job_is_not_run_again(nodes: &[Arc<dyn JobStore>]) {
    let (a, b) = (&**node(nodes, 0), &**node(nodes, 1));
    let id = enqueue(a, &new_job("k.stop.lost", "{}", T0)).await;
    let run = claim(a, "k.stop.lost", T0).await.unwrap();
    assert_eq!((run.attempt, run.max_attempts), (1, 3), "attempts are left");
    assert_eq!(
        b.request_stop(id, T0 + 1).await.unwrap(),
        StopRequest::Requested
    );
    assert_eq!(claim(b, "k.stop.lost", T0 + LEASE - 1).await, None);
    assert_eq!(
        claim(b, "k.stop.lost", T0 + LEASE).await,
        None,
        "not run again"
    );
    let record = a.job(id).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.attempts, record.finished_at),
        (JobState::Stopped, 1, Some(T0 + LEASE))
    );
    assert_eq!(record.last_error, None, "stopping is no failure");
    assert_lost(
        a.checkpoint(&run.lease, "late", T0 + LEASE).await,
        id,
        "the lost runner's checkpoint",
    );
}

/// A checkpoint is saved under the lease, and the job's next claim carries it: after a
/// lease expired and after a release. A stale lease's checkpoint is refused.
async fn checkpoints_carry_progress_to_the_next_run(nodes: &[Arc<dyn JobStore>]) {
    let (a, b) = (&**node(nodes, 0), &**node(nodes, 1));
    let id = enqueue(a, &new_job("k.progress", "{}", T0)).await;
    let first = claim(a, "k.progress", T0).await.unwrap();
    assert_eq!(first.progress, None, "a first run starts afresh");
    assert_eq!(
        a.checkpoint(&first.lease, r#"{"done":1}"#, T0 + 1)
            .await
            .unwrap(),
        Checkpoint::Continue
    );
    a.checkpoint(&first.lease, r#"{"done":2}"#, T0 + 2)
        .await
        .unwrap();
    let record = b.job(id).await.unwrap().unwrap();
    assert_eq!(record.progress.as_deref(), Some(r#"{"done":2}"#));
    assert!(!record.stop_requested);

    let second = claim(b, "k.progress", T0 + LEASE)
        .await
        .expect("the expired job");
    assert_eq!(second.attempt, 2);
    assert_eq!(second.progress.as_deref(), Some(r#"{"done":2}"#));
    assert_lost(
        a.checkpoint(&first.lease, r#"{"done":3}"#, T0 + LEASE + 1)
            .await,
        id,
        "the old holder's checkpoint",
    );
    b.checkpoint(&second.lease, r#"{"done":4}"#, T0 + LEASE + 2)
        .await
        .unwrap();
    b.release(&second.lease, T0 + LEASE + 3).await.unwrap();
    assert_lost(
        b.checkpoint(&second.lease, r#"{"done":5}"#, T0 + LEASE + 4)
            .await,
        id,
        "a checkpoint after releasing",
    );

    let third = claim(a, "k.progress", T0 + LEASE + 3).await.unwrap();
    assert_eq!(third.attempt, 2, "the released run did not count");
    assert_eq!(third.progress.as_deref(), Some(r#"{"done":4}"#));
    a.finish(&third.lease, &JobOutcome::Succeeded, T0 + LEASE + 5)
        .await
        .unwrap();
    assert_lost(
        a.checkpoint(&third.lease, r#"{"done":6}"#, T0 + LEASE + 6)
            .await,
        id,
        "a checkpoint after finishing",
    );
    assert_eq!(
        b.job(id).await.unwrap().unwrap().progress.as_deref(),
        Some(r#"{"done":4}"#)
    );
}

fn log_lines(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|&l| l.to_owned()).collect()
}

/// Log lines are appended under the lease and numbered on across runs; they are read
/// oldest first, a page at a time.
async fn job_logs_are_numbered_in_order_and_paged(nodes: &[Arc<dyn JobStore>]) {
    let (a, b) = (&**node(nodes, 0), &**node(nodes, 1));
    let id = enqueue(a, &new_job("k.log", "{}", T0)).await;
    let other = enqueue(a, &new_job("k.log.other", "{}", T0)).await;
    let first = claim(a, "k.log", T0).await.unwrap();
    a.append_job_log(&first.lease, &log_lines(&["one", "two"]), T0 + 1)
        .await
        .unwrap();
    a.append_job_log(&first.lease, &[], T0 + 2).await.unwrap();
    let neighbour = claim(b, "k.log.other", T0).await.unwrap();
    b.append_job_log(&neighbour.lease, &log_lines(&["elsewhere"]), T0 + 2)
        .await
        .unwrap();

    // The first runner is lost; the second goes on with the numbering.
    let second = claim(b, "k.log", T0 + LEASE).await.unwrap();
    assert_lost(
        a.append_job_log(&first.lease, &log_lines(&["late"]), T0 + LEASE)
            .await,
        id,
        "the old holder's log line",
    );
    b.append_job_log(&second.lease, &log_lines(&["three"]), T0 + LEASE + 1)
        .await
        .unwrap();

    let line = |seq, at, text: &str| JobLogLine {
        seq,
        at,
        line: text.into(),
    };
    assert_eq!(
        a.job_log(id, 0, 10).await.unwrap(),
        [
            line(1, T0 + 1, "one"),
            line(2, T0 + 1, "two"),
            line(3, T0 + LEASE + 1, "three")
        ]
    );
    assert_eq!(a.job_log(id, 1, 1).await.unwrap(), [line(2, T0 + 1, "two")]);
    assert!(a.job_log(id, 3, 10).await.unwrap().is_empty());
    assert_eq!(
        b.job_log(other, 0, 10).await.unwrap(),
        [line(1, T0 + 2, "elsewhere")]
    );
    assert!(a.job_log(JobId::MAX, 0, 10).await.unwrap().is_empty());

    b.finish(&second.lease, &JobOutcome::Succeeded, T0 + LEASE + 2)
        .await
        .unwrap();
    assert_lost(
        b.append_job_log(&second.lease, &log_lines(&["after"]), T0 + LEASE + 3)
            .await,
        id,
        "a log line after finishing",
    );
    assert_eq!(a.job_log(id, 0, 10).await.unwrap().len(), 3);

    // Appends racing each other, from every node, take distinct consecutive numbers.
    let appenders: Vec<_> = (0..8)
        .map(|i| {
            let (store, lease) = (node(nodes, i).clone(), neighbour.lease.clone());
            tokio::spawn(async move {
                let lines = log_lines(&[&format!("{i}a"), &format!("{i}b")]);
                store.append_job_log(&lease, &lines, T0 + 3).await.unwrap();
            })
        })
        .collect();
    for appender in appenders {
        appender.await.unwrap();
    }
    let logged = a.job_log(other, 0, 100).await.unwrap();
    let numbers: Vec<i64> = logged.iter().map(|l| l.seq).collect();
    assert_eq!(numbers, (1..=17).collect::<Vec<_>>(), "{logged:?}");
    for pair in logged[1..].chunks(2) {
        let first = pair[0].line.strip_suffix('a');
        assert_eq!(
            first,
            pair[1].line.strip_suffix('b'),
            "an append's lines stay together"
        );
    }
    b.finish(&neighbour.lease, &JobOutcome::Succeeded, T0 + 4)
        .await
        .unwrap();
}

/// Jobs that ended (succeeded, failed or stopped) before the cutoff are deleted with
/// their logs; others stay.
async fn finished_jobs_are_purged(nodes: &[Arc<dyn JobStore>]) {
    // Long before every other check's times, so that only this check's jobs are old.
    let old = T0 - 10_000_000;
    let store = &**node(nodes, 0);
    let done = enqueue(store, &new_job("k.history", "{}", old)).await;
    let running = enqueue(store, &new_job("k.history", "{}", old)).await;
    let waiting = enqueue(store, &new_job("k.history", "{}", old + 1_000)).await;
    let stopped = enqueue(store, &new_job("k.history.stopped", "{}", old)).await;
    let run = claim(store, "k.history", old).await.unwrap();
    assert_eq!(run.lease.job, done);
    store
        .append_job_log(&run.lease, &log_lines(&["purged with its job"]), old + 5)
        .await
        .unwrap();
    store
        .finish(&run.lease, &JobOutcome::Succeeded, old + 10)
        .await
        .unwrap();
    assert_eq!(
        store.request_stop(stopped, old + 9).await.unwrap(),
        StopRequest::Stopped
    );
    let lease_held = store
        .claim(&kinds(&["k.history"]), old, 1_000_000_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease_held.lease.job, running);

    assert_eq!(store.purge_finished_jobs(old + 9).await.unwrap(), 0);
    assert_eq!(store.purge_finished_jobs(old + 10).await.unwrap(), 1);
    assert_eq!(node(nodes, 1).job(stopped).await.unwrap(), None);
    assert_eq!(store.job_log(done, 0, 10).await.unwrap().len(), 1);
    assert_eq!(store.purge_finished_jobs(old + 11).await.unwrap(), 1);
    assert_eq!(node(nodes, 1).job(done).await.unwrap(), None);
    assert!(
        store.job_log(done, 0, 10).await.unwrap().is_empty(),
        "its log went with it"
    );
    for kept in [running, waiting] {
        assert!(store.job(kept).await.unwrap().is_some(), "job {kept} kept");
    }
}
