//! The job runner over the real SQLite queue: takeover after a node dies (resuming from
//! the last checkpoint), heartbeats, retries, stop requests, graceful shutdown, bounded
//! concurrency, and schedules (intervals and cron) firing once across nodes. Leases are
//! short, so each wait is a fraction of a second.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_app::jobs::{Finished, HandlerError, JobContext, JobHandler, JobRunner, RunnerConfig};
use berth_app::{Clock, SystemClock};
use berth_meta::{
    Checkpoint, JobId, JobRecord, JobSpec, JobState, JobStore, NewJob, Period, RetryPolicy,
    StopRequest,
};
use berth_meta_sqlite::SqliteMetaStore;
use tokio::sync::{mpsc, watch};

const LEASE: Duration = Duration::from_millis(300);

fn config() -> RunnerConfig {
    RunnerConfig {
        workers: 2,
        lease: LEASE,
        poll: Duration::from_millis(20),
        shutdown_grace: Duration::from_millis(200),
    }
}

struct Queue {
    store: Arc<dyn JobStore>,
    _dir: tempfile::TempDir,
}

fn queue() -> Queue {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteMetaStore::open(dir.path().join("meta.db")).unwrap();
    Queue {
        store: Arc::new(store),
        _dir: dir,
    }
}

fn now() -> i64 {
    SystemClock.now_ms()
}

async fn enqueue(store: &dyn JobStore, kind: &str, retry: RetryPolicy) -> JobId {
    let job = NewJob {
        spec: JobSpec {
            kind: kind.into(),
            payload: "{}".into(),
            retry,
        },
        run_after: now(),
        dedup_key: None,
    };
    store.enqueue(&job, now()).await.unwrap().id()
}

async fn record(store: &dyn JobStore, id: JobId) -> JobRecord {
    store.job(id).await.unwrap().expect("the job")
}

/// Waits (up to 10 s) until `done` holds.
async fn eventually<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A node: a runner on its own task, and what stops it.
struct Node {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(runner: JobRunner) -> Node {
    let (stop, stopped) = watch::channel(false);
    Node {
        stop,
        task: tokio::spawn(runner.run(stopped)),
    }
}

impl Node {
    /// Stops it gracefully and waits for it.
    async fn shut_down(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the runner stops within its grace period")
            .unwrap();
    }

    /// Kills it as a dying process would: nothing is finished or given back.
    async fn kill(self) {
        self.task.abort();
        assert!(self.task.await.unwrap_err().is_cancelled());
    }
}

/// Runs forever, saying when it starts and noting when it is dropped.
struct Stuck {
    started: mpsc::UnboundedSender<u32>,
    dropped: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl JobHandler for Stuck {
    async fn run(&self, job: &JobContext) -> Result<Finished, HandlerError> {
        let _noted = SetOnDrop(self.dropped.clone());
        self.started.send(job.attempt).unwrap();
        std::future::pending().await
    }
}

fn stuck() -> (Arc<Stuck>, mpsc::UnboundedReceiver<u32>, Arc<AtomicBool>) {
    let (started, starts) = mpsc::unbounded_channel();
    let dropped = Arc::new(AtomicBool::new(false));
    let handler = Stuck {
        started,
        dropped: dropped.clone(),
    };
    (Arc::new(handler), starts, dropped)
}

/// Records each run (job, attempt, time), fails the first `failing` attempts, and
/// takes `takes` per run while counting how many run at once.
#[derive(Default)]
struct Recorder {
    runs: Mutex<Vec<(JobId, u32, i64)>>,
    failing: u32,
    takes: Duration,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
}

#[async_trait]
impl JobHandler for Recorder {
    async fn run(&self, job: &JobContext) -> Result<Finished, HandlerError> {
        self.runs.lock().unwrap().push((job.id, job.attempt, now()));
        let at_once = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(at_once, Ordering::SeqCst);
        tokio::time::sleep(self.takes).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        if job.attempt <= self.failing {
            return Err(format!("attempt {} fails", job.attempt).into());
        }
        Ok(Finished::Done)
    }
}

impl Recorder {
    fn runs(&self) -> Vec<(JobId, u32, i64)> {
        self.runs.lock().unwrap().clone()
    }
}

/// Counts from the progress it is given, saving each count as a checkpoint and saying
/// so, until it reaches `until` or a checkpoint answers that a stop was requested.
struct Counter {
    saved: mpsc::UnboundedSender<(u32, u64)>,
    until: u64,
}

#[async_trait]
impl JobHandler for Counter {
    async fn run(&self, job: &JobContext) -> Result<Finished, HandlerError> {
        let mut count: u64 = match &job.progress {
            Some(progress) => progress.parse()?,
            None => 0,
        };
        while count < self.until {
            count += 1;
            if job.checkpoint(&count.to_string()).await? == Checkpoint::StopRequested {
                job.log([format!("asked to stop at {count}")]).await?;
                return Ok(Finished::Stopped);
            }
            self.saved.send((job.attempt, count))?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        job.log([format!("counted to {count}")]).await?;
        Ok(Finished::Done)
    }
}

fn counter(until: u64) -> (Arc<Counter>, mpsc::UnboundedReceiver<(u32, u64)>) {
    let (saved, checkpoints) = mpsc::unbounded_channel();
    (Arc::new(Counter { saved, until }), checkpoints)
}

async fn log_text(store: &dyn JobStore, id: JobId) -> Vec<String> {
    let lines = store.job_log(id, 0, 100).await.unwrap();
    lines.into_iter().map(|l| l.line).collect()
}

fn runner(q: &Queue, kind: &str, handler: Arc<dyn JobHandler>) -> JobRunner {
    let mut runner = JobRunner::new(q.store.clone(), Arc::new(SystemClock), config());
    runner.handle(kind, handler);
    runner
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_node_died_is_taken_over_when_its_lease_expires() {
    let q = queue();
    let id = enqueue(&*q.store, "test.work", RetryPolicy::default()).await;
    let (handler, mut starts, dropped) = stuck();
    let dying = start(runner(&q, "test.work", handler));
    assert_eq!(starts.recv().await, Some(1));
    dying.kill().await;
    eventually("the handler dies with its node", || async {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    let left = record(&*q.store, id).await;
    assert_eq!((left.state, left.attempts), (JobState::Running, 1));
    let lease_expiry = left.due_at;

    let recorder = Arc::new(Recorder::default());
    let survivor = start(runner(&q, "test.work", recorder.clone()));
    eventually("the job is done", || async {
        record(&*q.store, id).await.state == JobState::Succeeded
    })
    .await;
    survivor.shut_down().await;
    let runs = recorder.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let (job, attempt, at) = runs[0];
    assert_eq!((job, attempt), (id, 2));
    assert!(
        at >= lease_expiry,
        "taken over at {at}, before the lease expired at {lease_expiry}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_hold_the_job_and_a_lost_lease_stops_the_handler() {
    let q = queue();
    let id = enqueue(&*q.store, "test.long", RetryPolicy::default()).await;
    let (handler, mut starts, dropped) = stuck();
    // A longer lease than the other tests', so that a loaded machine delaying a
    // heartbeat by a few hundred milliseconds does not lose it.
    let lease = LEASE * 2;
    let mut runner = JobRunner::new(
        q.store.clone(),
        Arc::new(SystemClock),
        RunnerConfig { lease, ..config() },
    );
    runner.handle("test.long", handler);
    let node = start(runner);
    assert_eq!(starts.recv().await, Some(1));
    let claimed = record(&*q.store, id).await.due_at;
    tokio::time::sleep(lease * 2).await;
    let kinds = ["test.long".to_owned()];
    assert_eq!(
        q.store.claim(&kinds, now(), 1000).await.unwrap(),
        None,
        "heartbeats kept the lease alive for two lease lengths"
    );
    let held = record(&*q.store, id).await;
    assert_eq!(held.attempts, 1, "never claimed again");
    assert!(held.due_at > claimed, "the lease was extended");
    assert!(!dropped.load(Ordering::SeqCst));

    // Another node, seeing the lease expired (its clock is far ahead), takes the job.
    let far_ahead = now() + 600_000;
    let taken = q.store.claim(&kinds, far_ahead, 600_000).await.unwrap();
    assert_eq!(
        taken.as_ref().map(|j| (j.lease.job, j.attempt)),
        Some((id, 2))
    );
    eventually("the first runner's handler stops", || async {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    let held = record(&*q.store, id).await;
    assert_eq!(
        (held.state, held.attempts),
        (JobState::Running, 2),
        "the stopped runner recorded nothing"
    );
    node.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_retried_after_its_backoff() {
    let q = queue();
    let retry = RetryPolicy {
        max_attempts: 3,
        backoff_ms: 100,
    };
    let id = enqueue(&*q.store, "test.flaky", retry).await;
    let recorder = Arc::new(Recorder {
        failing: 1,
        ..Recorder::default()
    });
    let node = start(runner(&q, "test.flaky", recorder.clone()));
    eventually("the retry succeeds", || async {
        record(&*q.store, id).await.state == JobState::Succeeded
    })
    .await;
    node.shut_down().await;
    let runs = recorder.runs();
    let attempts: Vec<u32> = runs.iter().map(|r| r.1).collect();
    assert_eq!(attempts, [1, 2]);
    assert!(runs[1].2 - runs[0].2 >= 100, "backed off: {runs:?}");
    let done = record(&*q.store, id).await;
    assert_eq!(done.last_error.as_deref(), Some("attempt 1 fails"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_back_a_job_that_outlasts_the_grace_period() {
    let q = queue();
    let id = enqueue(&*q.store, "test.stuck", RetryPolicy::default()).await;
    let (handler, mut starts, dropped) = stuck();
    let node = start(runner(&q, "test.stuck", handler));
    assert_eq!(starts.recv().await, Some(1));
    node.shut_down().await;
    assert!(dropped.load(Ordering::SeqCst), "the handler was stopped");
    let back = record(&*q.store, id).await;
    assert_eq!(
        (back.state, back.attempts),
        (JobState::Queued, 0),
        "queued again, the interrupted run not counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_job_finish_within_the_grace_period() {
    let q = queue();
    let id = enqueue(&*q.store, "test.short", RetryPolicy::default()).await;
    let recorder = Arc::new(Recorder {
        takes: Duration::from_millis(100),
        ..Recorder::default()
    });
    let node = start(runner(&q, "test.short", recorder.clone()));
    eventually("the job starts", || async { !recorder.runs().is_empty() }).await;
    node.shut_down().await;
    assert_eq!(record(&*q.store, id).await.state, JobState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_at_most_its_workers_at_once() {
    let q = queue();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(enqueue(&*q.store, "test.batch", RetryPolicy::default()).await);
    }
    let recorder = Arc::new(Recorder {
        takes: Duration::from_millis(50),
        ..Recorder::default()
    });
    let node = start(runner(&q, "test.batch", recorder.clone()));
    eventually("every job is done", || async {
        let jobs = q.store.jobs_of_kind("test.batch", None, 10).await.unwrap();
        jobs.iter().all(|j| j.state == JobState::Succeeded)
    })
    .await;
    node.shut_down().await;
    assert_eq!(recorder.runs().len(), 5);
    assert_eq!(recorder.most_at_once.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_per_period_across_nodes() {
    let q = queue();
    let recorder = Arc::new(Recorder::default());
    let nodes: Vec<Node> = (0..3)
        .map(|_| {
            let mut runner = JobRunner::new(q.store.clone(), Arc::new(SystemClock), config());
            runner.recurring("test.tick", Duration::from_millis(100), recorder.clone());
            start(runner)
        })
        .collect();
    eventually("five firings ran", || async { recorder.runs().len() >= 5 }).await;
    for node in nodes {
        node.shut_down().await;
    }

    let jobs = q.store.jobs_of_kind("test.tick", None, 100).await.unwrap();
    let fire_times: BTreeSet<i64> = jobs
        .iter()
        .map(|j| {
            let key = j.dedup_key.as_deref().expect("a fired job has a dedup key");
            key.strip_prefix("test.tick@").unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(fire_times.len(), jobs.len(), "one job per fire time");
    let times: Vec<i64> = fire_times.into_iter().collect();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= 100,
            "fired twice in a period: {times:?}"
        );
    }
    let runs = recorder.runs();
    let run_ids: BTreeSet<JobId> = runs.iter().map(|r| r.0).collect();
    assert_eq!(run_ids.len(), runs.len(), "a job ran twice: {runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_asked_to_stop_ends_its_job_stopped() {
    let q = queue();
    let id = enqueue(&*q.store, "test.stoppable", RetryPolicy::default()).await;
    let (handler, mut checkpoints) = counter(u64::MAX);
    let node = start(runner(&q, "test.stoppable", handler));
    assert_eq!(checkpoints.recv().await, Some((1, 1)));
    assert_eq!(
        q.store.request_stop(id, now()).await.unwrap(),
        StopRequest::Requested
    );
    eventually("the job stops", || async {
        record(&*q.store, id).await.state == JobState::Stopped
    })
    .await;
    node.shut_down().await;
    let stopped = record(&*q.store, id).await;
    assert_eq!((stopped.attempts, stopped.last_error), (1, None));
    let at: u64 = stopped.progress.as_deref().unwrap().parse().unwrap();
    assert!(at >= 2, "stopped at its checkpoint after the request: {at}");
    assert_eq!(
        log_text(&*q.store, id).await,
        [format!("asked to stop at {at}")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_taken_over_resumes_from_its_last_checkpoint() {
    let q = queue();
    let id = enqueue(&*q.store, "test.resumable", RetryPolicy::default()).await;
    let (handler, mut checkpoints) = counter(u64::MAX);
    let dying = start(runner(&q, "test.resumable", handler));
    assert_eq!(checkpoints.recv().await, Some((1, 1)));
    dying.kill().await;
    // No other node may claim the job before its lease expires; by then a checkpoint
    // the dying handler had sent is stored too.
    tokio::time::sleep(LEASE).await;
    let left = record(&*q.store, id).await;
    assert_eq!((left.state, left.attempts), (JobState::Running, 1));
    let saved: u64 = left.progress.as_deref().unwrap().parse().unwrap();

    let (handler, mut checkpoints) = counter(saved + 3);
    let survivor = start(runner(&q, "test.resumable", handler));
    assert_eq!(
        checkpoints.recv().await,
        Some((2, saved + 1)),
        "the second attempt goes on from the first one's checkpoint"
    );
    eventually("the job is done", || async {
        record(&*q.store, id).await.state == JobState::Succeeded
    })
    .await;
    survivor.shut_down().await;
    let done = record(&*q.store, id).await;
    assert_eq!(done.progress, Some((saved + 3).to_string()));
    assert_eq!(
        log_text(&*q.store, id).await,
        [format!("counted to {}", saved + 3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_schedule_fires_at_its_times_once_across_nodes() {
    let q = queue();
    let recorder = Arc::new(Recorder::default());
    let every_second: Period = "@cron * * * * * *".parse().unwrap();
    let spec = JobSpec {
        kind: "test.cron".into(),
        payload: "{}".into(),
        retry: RetryPolicy::default(),
    };
    let nodes: Vec<Node> = (0..3)
        .map(|_| {
            let mut runner = JobRunner::new(q.store.clone(), Arc::new(SystemClock), config());
            runner.handle("test.cron", recorder.clone()).schedule(
                "test.cron",
                spec.clone(),
                every_second.clone(),
            );
            start(runner)
        })
        .collect();
    eventually("two firings ran", || async { recorder.runs().len() >= 2 }).await;
    for node in nodes {
        node.shut_down().await;
    }

    let jobs = q.store.jobs_of_kind("test.cron", None, 100).await.unwrap();
    let fire_times: BTreeSet<i64> = jobs
        .iter()
        .map(|j| {
            let key = j.dedup_key.as_deref().expect("a fired job has a dedup key");
            key.strip_prefix("test.cron@").unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(fire_times.len(), jobs.len(), "one job per fire time");
    assert!(
        fire_times.iter().all(|t| t % 1000 == 0),
        "fired on whole seconds only: {fire_times:?}"
    );
    let runs = recorder.runs();
    let run_ids: BTreeSet<JobId> = runs.iter().map(|r| r.0).collect();
    assert_eq!(run_ids.len(), runs.len(), "a job ran twice: {runs:?}");
}
