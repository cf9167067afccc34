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

/// A garbage collection whose node is killed mid-run is taken over by the node started
/// again on the same data once the run's lease lapses: it resumes from its checkpoint
/// and finishes, and every blob nothing referenced is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_killed_midway_resumes_and_finishes() {
    use futures_util::{StreamExt, stream};

    const STRAYS: usize = 1500;
    let env = [
        ("BERTH_AUTH__MODE", "open"),
        ("BERTH_ADMIN_PASSWORD", "Adm1nPassword"),
        ("BERTH_GC__GRACE_PERIOD", "0s"),
        ("BERTH_JOBS__LEASE_SECS", "2"),
    ];
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let berth = Berth::start_with(&data, free_port(), &env);
    let http = client();
    let url = berth.url();
    let strays: Vec<String> = stream::iter(0..STRAYS)
        .map(|n| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let bytes = format!("stray blob {n}");
                let digest =
                    berth_oci::Digest::compute(berth_oci::Algorithm::Sha256, bytes.as_bytes());
                let r = http
                    .post(format!("{url}/v2/gc/strays/blobs/uploads/?digest={digest}"))
                    .body(bytes)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                digest.to_string()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    let api = |node: &Berth, path: &str| format!("{}/api/v2.0/system/gc{path}", node.url());
    let started = http
        .post(api(&berth, "/schedule"))
        .basic_auth("admin", Some("Adm1nPassword"))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({"schedule": {"type": "Manual"}, "parameters": {"workers": 1}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    let id = started.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let log = |node: &Berth| {
        let (http, url) = (http.clone(), api(node, &format!("/{id}/log")));
        async move {
            let r = http
                .get(url)
                .basic_auth("admin", Some("Adm1nPassword"))
                .send()
                .await
                .unwrap();
            r.text().await.unwrap()
        }
    };
    // Killed once the sweep has begun.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log(&berth).await.contains("deleted blob") {
        assert!(Instant::now() < deadline, "the sweep never began");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    berth.kill9();

    let again = Berth::start_with(&data, free_port(), &env);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = http
            .get(api(&again, &format!("/{id}")))
            .basic_auth("admin", Some("Adm1nPassword"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let run: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if run["job_status"] == "Success" {
            break;
        }
        assert!(
            matches!(run["job_status"].as_str(), Some("Pending" | "Running")),
            "{run}"
        );
        assert!(Instant::now() < deadline, "the run never finished: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = log(&again).await;
    assert!(text.contains("resumed at the"), "{text}");
    assert!(text.contains("done:"), "{text}");
    for digest in strays.iter().step_by(50) {
        let r = http
            .head(format!("{}/v2/gc/strays/blobs/{digest}", again.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{digest}");
    }
}
