//! Quotas end to end, against the real binary: concurrent pushes near a project's limit
//! never take it past the limit, aborted uploads change nothing, deletes release, and
//! `berth fsck` finds the stored usage equal to its recomputation after every phase
//! (and, with `--blobs`, finds a blob whose bytes were changed at rest).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_oci::{Algorithm, Digest};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Berth, free_port};

const ADMIN: (&str, &str) = ("admin", "Adm1nPassword");

/// The settings every process of the test shares: cheap hashing, a known administrator.
const ENV: &[(&str, &str)] = &[
    ("BERTH_AUTH__MODE", "secure"),
    ("BERTH_ADMIN_PASSWORD", ADMIN.1),
    ("BERTH_AUTH__HASH_MEMORY_KIB", "64"),
    ("BERTH_AUTH__HASH_ITERATIONS", "1"),
];

/// The project's limit: room for a few of the images below, not all.
const LIMIT: u64 = 10_000;
/// Bytes of each image's own layer.
const LAYER: usize = 2_000;
/// Concurrent pushes: together far more than the limit.
const PUSHES: usize = 12;

/// Runs `berth <args> --data-dir <data>` with `env`.
fn berth(data: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .envs(env.iter().copied())
        .output()
        .expect("running berth")
}

/// Runs `berth fsck --projects` (and `--blobs`), which must find nothing; returns its
/// output.
fn fsck_clean(data: &Path, env: &[(&str, &str)]) -> String {
    let out = berth(data, env, &["fsck", "--projects", "--blobs"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "fsck found differences:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("agree with the manifests"), "{stdout}");
    stdout
}

/// Sends a request as the administrator.
async fn send(
    url: &str,
    method: Method,
    path: &str,
    body: Vec<u8>,
    kind: &str,
) -> reqwest::Response {
    support::client()
        .request(method, format!("{url}{path}"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .header("content-type", kind)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Uploads a blob in one request; returns the status.
async fn push_blob(url: &str, repository: &str, data: &[u8]) -> StatusCode {
    let digest = Digest::compute(Algorithm::Sha256, data);
    let path = format!("/v2/{repository}/blobs/uploads/?digest={digest}");
    let r = send(
        url,
        Method::POST,
        &path,
        data.to_vec(),
        "application/octet-stream",
    )
    .await;
    r.status()
}

/// An image manifest over `config` and `layer`.
fn manifest(config: &[u8], layer: &[u8]) -> Vec<u8> {
    let descriptor = |media: &str, data: &[u8]| {
        json!({"mediaType": media, "digest": Digest::compute(Algorithm::Sha256, data).as_str(),
               "size": data.len()})
    };
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": berth_oci::media_type::OCI_MANIFEST,
        "config": descriptor(berth_oci::media_type::OCI_CONFIG, config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
    }))
    .unwrap()
}

/// Pushes config, layer and manifest; returns the manifest's bytes when it was stored,
/// `None` when a quota refused a step (`403 DENIED`).
async fn push_image(url: &str, repository: &str, config: &[u8], layer: &[u8]) -> Option<Vec<u8>> {
    for blob in [config, layer] {
        match push_blob(url, repository, blob).await {
            StatusCode::CREATED => {}
            StatusCode::FORBIDDEN => return None,
            other => panic!("blob push answered {other}"),
        }
    }
    let body = manifest(config, layer);
    let path = format!("/v2/{repository}/manifests/v1");
    let r = send(
        url,
        Method::PUT,
        &path,
        body.clone(),
        berth_oci::media_type::OCI_MANIFEST,
    )
    .await;
    match r.status() {
        StatusCode::CREATED => Some(body),
        StatusCode::FORBIDDEN => {
            let text = r.text().await.unwrap();
            assert!(
                text.contains("DENIED") && text.contains("quota exceeded"),
                "{text}"
            );
            None
        }
        other => panic!(
            "manifest push answered {other}: {}",
            r.text().await.unwrap()
        ),
    }
}

/// The project's quota as `/api/v2.0/quotas` shows it.
async fn quota(url: &str, project_id: i64) -> Value {
    let path = format!("/api/v2.0/quotas?reference_id={project_id}");
    let r = send(url, Method::GET, &path, Vec::new(), "application/json").await;
    assert_eq!(r.status(), StatusCode::OK);
    serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap()[0].clone()
}

async fn used(url: &str, project_id: i64) -> u64 {
    quota(url, project_id).await["used"]["storage"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_stays_exact_and_under_the_limit_through_every_phase_on_sqlite() {
    phases(ENV).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_stays_exact_and_under_the_limit_through_every_phase_on_postgres() {
    let Some(db) = berth_testkit_postgres::TempDatabase::create().await else {
        return;
    };
    let mut env = ENV.to_vec();
    env.push(("BERTH_DATABASE__URL", db.url()));
    phases(&env).await;
}

/// Pushes concurrently near the limit, aborts uploads, deletes, and checks usage and
/// `berth fsck` after each phase, with the stores `env` names.
async fn phases(env: &[(&str, &str)]) {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let limit = LIMIT.to_string();
    let out = berth(
        &data,
        env,
        &["project", "create", "team", "--storage-limit", &limit],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Berth::start_with(&data, free_port(), env);
    let url = server.url();
    let r = send(&url, Method::GET, "/api/v2.0/projects/team", Vec::new(), "").await;
    let project_id =
        serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap()["project_id"]
            .as_i64()
            .unwrap();
    assert_eq!(
        quota(&url, project_id).await["hard"]["storage"],
        json!(LIMIT)
    );
    fsck_clean(&data, env);

    // Phase 1: concurrent pushes near the limit, all sharing one config.
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let pushes: Vec<_> = (0..PUSHES)
        .map(|i| {
            let (url, config) = (url.clone(), config.clone());
            let layer = support::random_bytes(LAYER);
            tokio::spawn(async move {
                let repository = format!("team/app{i}");
                let stored = push_image(&url, &repository, &config, &layer).await;
                stored.map(|m| (repository, m))
            })
        })
        .collect();
    let mut stored = Vec::new();
    for push in pushes {
        stored.extend(push.await.unwrap());
    }
    assert!(
        !stored.is_empty() && stored.len() < PUSHES,
        "{} stored",
        stored.len()
    );
    let expected: u64 = config.len() as u64
        + stored
            .iter()
            .map(|(_, m)| (m.len() + LAYER) as u64)
            .sum::<u64>();
    let now = used(&url, project_id).await;
    assert!(now <= LIMIT, "{now} bytes used of {LIMIT}");
    assert_eq!(
        now, expected,
        "usage is exactly what the stored images hold"
    );
    fsck_clean(&data, env);

    // Phase 2: uploads aborted or left open change nothing.
    let r = send(
        &url,
        Method::POST,
        "/v2/team/aborted/blobs/uploads/",
        Vec::new(),
        "",
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = send(
        &url,
        Method::PATCH,
        &location,
        vec![9u8; 5000],
        "application/octet-stream",
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = send(&url, Method::DELETE, &location, Vec::new(), "").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = send(
        &url,
        Method::POST,
        "/v2/team/open/blobs/uploads/",
        Vec::new(),
        "",
    )
    .await;
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    send(
        &url,
        Method::PATCH,
        &location,
        vec![8u8; 5000],
        "application/octet-stream",
    )
    .await;
    assert_eq!(
        push_blob(&url, "team/huge", &vec![7u8; LIMIT as usize]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(used(&url, project_id).await, expected);
    fsck_clean(&data, env);

    // Phase 3: deletes release what no other manifest holds.
    let (first, rest) = stored.split_first().unwrap();
    let digest = Digest::compute(Algorithm::Sha256, &first.1);
    let path = format!("/v2/{}/manifests/{digest}", first.0);
    let r = send(&url, Method::DELETE, &path, Vec::new(), "").await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let left = expected - (first.1.len() + LAYER) as u64;
    assert_eq!(
        used(&url, project_id).await,
        if rest.is_empty() { 0 } else { left }
    );
    fsck_clean(&data, env);
    // Room made, a push fits again.
    let layer = support::random_bytes(LAYER);
    assert!(
        push_image(&url, "team/again", &config, &layer)
            .await
            .is_some()
    );
    fsck_clean(&data, env);
    for (repository, _) in rest
        .iter()
        .map(|(r, m)| (r.as_str(), m))
        .chain([("team/again", &Vec::new())])
    {
        let name = repository.trim_start_matches("team/");
        let path = format!("/api/v2.0/projects/team/repositories/{name}");
        let r = send(&url, Method::DELETE, &path, Vec::new(), "").await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(used(&url, project_id).await, 0);
    let report = fsck_clean(&data, env);
    assert!(report.contains("team"), "{report}");

    // A blob changed at rest is reported by `--blobs`.
    let file = blob_file(&data, &config);
    std::fs::write(&file, b"not the config").unwrap();
    let out = berth(&data, env, &["fsck", "--blobs"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "blob {} is corrupt",
            Digest::compute(Algorithm::Sha256, &config)
        )),
        "{stdout}"
    );
}

/// Every file under `dir`.
fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walkdir(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// `berth fsck --blobs` also checks that every recorded blob has its bytes: a layer that
/// a manifest still references, gone from storage, is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_blobs_reports_a_referenced_blob_missing_from_storage() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let out = berth(&data, ENV, &["project", "create", "team"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Berth::start_with(&data, free_port(), ENV);
    let url = server.url();
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = support::random_bytes(LAYER);
    assert!(push_image(&url, "team/app", config, &layer).await.is_some());
    drop(server);
    fsck_clean(&data, ENV);
    let file = blob_file(&data, &layer);
    std::fs::remove_file(&file).unwrap();
    let out = berth(&data, ENV, &["fsck", "--blobs"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a layer that team/app:v1 references has no bytes, yet fsck --blobs passes:\n{stdout}"
    );
}

/// The `storage_per_project` setting accepts any positive i64, and on PostgreSQL too a
/// default of 10^18 bytes or more is new projects' limit, as on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nineteen_digit_default_limit_applies_on_postgres() {
    let Some(db) = berth_testkit_postgres::TempDatabase::create().await else {
        panic!("this check needs PostgreSQL");
    };
    let mut env = ENV.to_vec();
    env.push(("BERTH_DATABASE__URL", db.url()));
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let server = Berth::start_with(&data, free_port(), &env);
    let url = server.url();
    const DEFAULT: i64 = 1_000_000_000_000_000_000;
    let body = serde_json::to_vec(&json!({"storage_per_project": DEFAULT})).unwrap();
    let r = send(
        &url,
        Method::PUT,
        "/api/v2.0/configurations",
        body,
        "application/json",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = serde_json::to_vec(&json!({"project_name": "team"})).unwrap();
    let r = send(
        &url,
        Method::POST,
        "/api/v2.0/projects",
        body,
        "application/json",
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = send(&url, Method::GET, "/api/v2.0/projects/team", Vec::new(), "").await;
    let project_id =
        serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap()["project_id"]
            .as_i64()
            .unwrap();
    assert_eq!(
        quota(&url, project_id).await["hard"]["storage"],
        json!(DEFAULT),
        "the configured default, not -1"
    );
}

/// A counter that went negative is drift `berth fsck` reports, rather than failing to
/// read it. Needs the `sqlite3` command to edit the counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_reports_a_negative_usage_counter() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let out = berth(&data, ENV, &["project", "create", "team"]);
    assert!(out.status.success());
    fsck_clean(&data, ENV);
    let out = Command::new("sqlite3")
        .arg(data.join("berth.db"))
        .arg(
            "UPDATE quotas SET used = -5 \
             WHERE project_id = (SELECT id FROM projects WHERE name = 'team')",
        )
        .output()
        .expect("running sqlite3");
    assert!(out.status.success());
    let out = berth(&data, ENV, &["fsck"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("project \"team\" uses -5 bytes by its counter, 0 by its manifests"),
        "no report of the difference:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The file holding the blob of `bytes` under the data directory.
fn blob_file(data: &Path, bytes: &[u8]) -> PathBuf {
    let hex = Digest::compute(Algorithm::Sha256, bytes)
        .as_str()
        .trim_start_matches("sha256:")
        .to_owned();
    walkdir(data)
        .into_iter()
        .find(|p| p.ends_with(&hex))
        .expect("the blob's file")
}
