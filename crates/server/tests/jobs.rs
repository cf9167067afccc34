//! Background work of the real binary runs on the job queue: the upload purge is a
//! schedule whose jobs the node claims and runs.

mod support;

use std::time::{Duration, Instant};

use berth_meta::{JobState, JobStore, Period};
use berth_meta_sqlite::SqliteMetaStore;
use support::{Berth, client, free_port};

#[tokio::test]
async fn the_upload_purge_runs_as_a_scheduled_job() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let berth = Berth::start_with(
        &data,
        free_port(),
        &[
            ("BERTH_LIMITS__UPLOAD_MAX_AGE_SECS", "1"),
            ("BERTH_LIMITS__UPLOAD_PURGE_INTERVAL_SECS", "1"),
        ],
    );
    let http = client();
    let started = http
        .post(format!("{}/v2/p/idle/blobs/uploads/", berth.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_owned();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = http
            .get(format!("{}{location}", berth.url()))
            .send()
            .await
            .unwrap()
            .status();
        if status == 404 {
            break;
        }
        assert_eq!(status, 204, "the idle upload is still there");
        assert!(
            Instant::now() < deadline,
            "the idle upload was never purged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(berth.terminate(), "berth stops cleanly");

    let store = SqliteMetaStore::open(data.join("berth.db")).unwrap();
    let schedules = store.schedules().await.unwrap();
    let names: Vec<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["job-history", "upload-purge"],
        "audit retention is off by default"
    );
    let purge = &schedules[1];
    assert_eq!(purge.period, Period::EveryMs(1000));
    let jobs = store.jobs_of_kind("upload-purge", None, 100).await.unwrap();
    assert!(!jobs.is_empty());
    for job in &jobs {
        let key = job.dedup_key.as_deref().unwrap();
        assert!(
            key.starts_with("upload-purge@"),
            "fired by its schedule: {key}"
        );
        assert!(
            matches!(job.state, JobState::Succeeded | JobState::Queued),
            "{job:?}"
        );
    }
    assert!(
        jobs.iter().any(|j| j.state == JobState::Succeeded),
        "{jobs:?}"
    );
}
